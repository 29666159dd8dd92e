"""Count, with real requests, which upstream NGINX sends traffic to.

Each response through the canary NGINX carries ``X-Upstream`` (``canary`` / ``production``: the upstream
that served it, i.e. the last one tried) and ``X-Served-Version`` (the served app's ``X-App-Version``).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

from canary_harness.errors import TrafficError

# Clients sharing a probe by default: the requests wait on NGINX and the services, not on each other, so
# four keep-alive clients send 400 probes in about a third of the time one does (the stage's split probe
# and the rollback's verification are on every stage's critical path: benchmarks/stage_overhead.py).
DEFAULT_CONCURRENCY = 4


@dataclass
class SplitCount:
    """What ``probe_split`` saw: answers per upstream, per served version and per status."""

    total: int = 0
    canary: int = 0
    production: int = 0
    other: int = 0  # answered without a known upstream (e.g. NGINX's own 502 when nothing is up)
    failures: int = 0  # no HTTP answer at all (connection reset, timeout)
    by_version: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # the first few transport errors, for messages

    @property
    def canary_fraction(self) -> float:
        """Share of answered requests that the canary served (0.0 when nothing answered)."""
        answered = self.canary + self.production + self.other
        return self.canary / answered if answered else 0.0

    @property
    def ok(self) -> int:
        """Requests answered with a 2xx status."""
        return sum(count for status, count in self.by_status.items() if 200 <= status < 300)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (for records, the journal and reports)."""
        return {
            "total": self.total,
            "canary": self.canary,
            "production": self.production,
            "other": self.other,
            "failures": self.failures,
            "by_version": dict(self.by_version),
            "by_status": {str(status): count for status, count in self.by_status.items()},
        }

    def add(self, other: SplitCount) -> None:
        """Fold another count into this one."""
        self.total += other.total
        self.canary += other.canary
        self.production += other.production
        self.other += other.other
        self.failures += other.failures
        self.by_version.update(other.by_version)
        self.by_status.update(other.by_status)
        self.errors.extend(other.errors[: max(0, 5 - len(self.errors))])

    def record(self, response: httpx.Response) -> str:
        """Count one response; returns the upstream role it names."""
        role = response.headers.get("X-Upstream", "")
        self.total += 1
        self.by_status[response.status_code] += 1
        if role == "canary":
            self.canary += 1
        elif role == "production":
            self.production += 1
        else:
            self.other += 1
        version = response.headers.get("X-Served-Version") or response.headers.get("X-App-Version") or ""
        if version:
            self.by_version[version] += 1
        return role


def _probe_worker(url: str, count: int, timeout: float, result: SplitCount, fresh_connections: bool) -> None:
    headers = {"Connection": "close"} if fresh_connections else {}
    with httpx.Client(timeout=timeout, headers=headers) as client:
        for _ in range(count):
            try:
                result.record(client.get(url))
            except httpx.HTTPError as exc:
                result.total += 1
                result.failures += 1
                if len(result.errors) < 5:
                    result.errors.append(f"{type(exc).__name__}: {exc}")


def probe_split(
    base_url: str,
    requests: int,
    *,
    path: str = "/health",
    timeout: float = 5.0,
    concurrency: int = DEFAULT_CONCURRENCY,
    fresh_connections: bool = False,
) -> SplitCount:
    """Send ``requests`` real GETs to ``base_url + path`` and count who served them.

    ``concurrency`` clients share the requests; each request has ``timeout`` seconds. With
    ``fresh_connections`` every request opens a new connection (so it reaches whichever NGINX worker
    accepts it, as a new client would). Transport failures are counted, not raised.
    """
    if requests < 0 or concurrency < 1:
        raise TrafficError(f"probe_split: requests={requests!r} concurrency={concurrency!r} out of range")
    url = base_url.rstrip("/") + path
    shares = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    partial = [SplitCount() for _ in shares]
    threads = [
        threading.Thread(target=_probe_worker, args=(url, share, timeout, part, fresh_connections), daemon=True)
        for share, part in zip(shares, partial, strict=True)
        if share
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Bounded: every request has its own timeout, so this join ends.
        thread.join()
    total = SplitCount()
    for part in partial:
        total.add(part)
    return total
