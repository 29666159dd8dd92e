"""The builtin load engine: the same walks, checks, pacing and stats as the locust profiles, driven by
threads and httpx in this process, for machines without locust.

Bounded like a locust run: each user thread stops at the deadline, at the request cap, or when the
run is stopped; an in-flight request is bounded by the request timeout.
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from canary_harness.loadgen.journey import (
    UNKNOWN_VERSION,
    ModePicker,
    PlannedRequest,
    Walk,
    make_walk,
    served_version,
)
from canary_harness.loadgen.pacing import RateLimiter, RequestBudget
from canary_harness.loadgen.settings import LoadSettings
from canary_harness.loadgen.stats import LoadStats, build_stats
from canary_harness.loadgen.tally import Histogram, Tally

PROBE_INTERVAL_S = 1.0  # the light profile's per-user pacing without a total rate (as in load/fragrance.py)


class BuiltinEngine:
    """``settings.users`` threads walking the chosen profile against ``base_url`` for ``duration_s``."""

    name = "builtin"

    def __init__(self, base_url: str, duration_s: float, settings: LoadSettings, stats_dir: Path) -> None:
        self.base_url, self.duration_s, self.settings = base_url, duration_s, settings
        self.stats_dir = stats_dir
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], Histogram] = {}
        self._first: dict[tuple[str, str], float] = {}
        self._last: dict[tuple[str, str], float] = {}
        self._tally = Tally()
        self._rng = random.Random(settings.seed)
        self._picker = ModePicker(settings.mix, self._rng)
        self._limiter = RateLimiter(settings.rate_rps) if settings.rate_rps else None
        self._budget = RequestBudget(settings.max_requests)
        self._started: float | None = None
        self._last_exit = 0.0

    def start(self) -> None:
        """Start the user threads (spread over time by the spawn rate) and return at once."""
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        self._started = time.time()
        deadline = time.monotonic() + self.duration_s
        for index in range(self.settings.users):
            thread = threading.Thread(
                target=self._user,
                args=(index / self.settings.spawn_rate, deadline),
                name=f"canary-load-{index}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def pids(self) -> list[int]:
        """No processes of its own: the threads live in this interpreter."""
        return []

    def running(self) -> bool:
        """True while any user thread runs."""
        return any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float) -> LoadStats:
        """Stop the users (in-flight requests finish), then build the stats and write them to stats_dir."""
        if self._started is None:
            return LoadStats.empty(self.name)
        # A run that ended by itself ended when its last user did; otherwise it ends now.
        stopped = time.time() if self.running() else max(self._last_exit, self._started)
        self._stop.set()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        entries = self._locust_entries()
        tally = {
            "started": self._started,
            "stopped": stopped,
            "target_rps": self.settings.rate_rps,
            "workers": 0,
            "users": self.settings.users,
            "client": "httpx",
            **self._tally.to_dict(),
        }
        # The same two documents as a locust run, so a stage's stats directory looks alike either way.
        (self.stats_dir / "locust.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
        (self.stats_dir / "canary.json").write_text(json.dumps(tally, indent=1), encoding="utf-8")
        return build_stats(self.name, entries, tally)

    # ------------------------------------------------------------------ one simulated user
    def _user(self, start_delay: float, deadline: float) -> None:
        if self._stop.wait(start_delay):
            return
        walk = make_walk(self.settings.profile, self._picker, random.Random(self._rng.random()), self.settings.requests)
        next_probe = 0.0
        with httpx.Client(base_url=self.base_url, timeout=self.settings.request_timeout_s) as client:
            while not self._stop.is_set() and time.monotonic() < deadline and self._budget.take():
                if self._limiter is not None:
                    delay = self._limiter.reserve()
                elif self.settings.profile == "light":
                    now = time.monotonic()
                    slot = max(now, next_probe)
                    next_probe = slot + PROBE_INTERVAL_S
                    delay = slot - now
                else:
                    delay = 0.0
                if delay > 0 and self._stop.wait(delay):
                    break  # stopped while waiting for the slot: the request is not sent
                self._send(client, walk.next_request(), walk)
        with self._lock:
            self._last_exit = time.time()

    def _send(self, client: httpx.Client, planned: PlannedRequest, walk: Walk) -> None:
        if planned.starts_journey and planned.mode:
            self._tally.journey_started(planned.mode)
        started = time.perf_counter()
        try:
            response = client.request(planned.method, planned.path, json=planned.body, headers=dict(planned.headers))
            status, headers, text = response.status_code, dict(response.headers), response.text
        except httpx.HTTPError:
            status, headers, text = 0, {}, ""
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        verdict = walk.record(status, headers, text)
        reason = None if verdict.ok else f"{planned.name}: {verdict.reason}"
        self._tally.record(served_version(headers) or UNKNOWN_VERSION, elapsed_ms, reason)
        key = (planned.name, planned.method)
        with self._lock:
            self._entries.setdefault(key, Histogram()).record(elapsed_ms, not verdict.ok)
            self._first.setdefault(key, time.time())
            self._last[key] = time.time()

    def _locust_entries(self) -> list[dict[str, Any]]:
        """Per-name stats in the shape of locust's --json-file entries."""
        with self._lock:
            return [
                {
                    "name": name,
                    "method": method,
                    "num_requests": hist.requests,
                    "num_failures": hist.failures,
                    "total_response_time": hist.total_ms,
                    "max_response_time": hist.max_ms,
                    "response_times": hist.to_dict()["response_times"],
                    "start_time": self._first[(name, method)],
                    "last_request_timestamp": self._last[(name, method)],
                }
                for (name, method), hist in sorted(self._entries.items())
            ]
