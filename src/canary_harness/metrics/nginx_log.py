"""``NginxLogSource``: each arm's counters computed from NGINX's own JSON access log, for services without
``/metrics`` (``[metrics] source = "nginx-log"``).

Every proxied request is one line of ``access.jsonl`` (the format is ``canary_json`` in the NGINX
template). A request may have tried several upstreams (a failover: ``upstream_addr`` "canary, production",
``upstream_status`` "502, 200"); each attempt counts for the arm it reached, with that attempt's status
and response time, so a canary whose failures NGINX hid from the user by retrying on production still
shows them to the judge. Latency is grouped by the ``group`` field (the value of the response header
the NGINX template names, fragrance-ai's LLM mode; the request header of the same name when the answer
has none); requests without a group count under ``default_group``, or, without one, for requests and
5xx but not for latency, as fragrance-ai's own histogram leaves out requests without an LLM mode.
Schema failures and RL updates are not in the log: they stay 0.

The log is read incrementally from where it ended when the source was created; a line still being
written (no newline yet) waits for the next read.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary_harness.errors import MetricsError, NoDataError
from canary_harness.judge.planning_assumptions import SERVICE_LATENCY_EDGES
from canary_harness.metrics.types import Buckets, MetricsSnapshot

# The service's own histogram edges (fragrance-ai), which hold the release thresholds 2.5, 3.2 and 4.5 s.
DEFAULT_EDGES: tuple[float, ...] = SERVICE_LATENCY_EDGES
# Routes that are not API traffic (probes and scrapes), as the service's own request counter leaves them out.
NOT_API = frozenset({"/health", "/metrics"})
# Margin beyond the slowest request seen before a split unit is counted (log writes, clock granularity).
UNIT_LAG_S = 1.0
# A failed attempt NGINX logs without a status (connection refused before any answer) counts as a 502.
NO_ANSWER_STATUS = 502


@dataclass
class _Arm:
    """Cumulative counters of one arm."""

    requests: int = 0
    errors_5xx: int = 0
    journeys: int = 0
    # per group: count of attempts at or below each finite edge, and the total
    below: dict[str, list[int]] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    version: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One upstream attempt of a logged request."""

    role: str
    status: int
    seconds: float | None


def _number(raw: object) -> float | None:
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def attempts(entry: Mapping[str, Any], roles: Mapping[str, str]) -> list[Attempt]:
    """The upstream attempts of one log entry, each with the arm its address belongs to (others: skipped)."""
    addresses = [part.strip() for part in str(entry.get("upstream_addr", "")).split(",")]
    statuses = [part.strip() for part in str(entry.get("upstream_status", "")).split(",")]
    times = [part.strip() for part in str(entry.get("upstream_response_time", "")).split(",")]
    result = []
    for index, address in enumerate(addresses):
        role = roles.get(address)
        if role is None:
            continue
        status_text = statuses[index] if index < len(statuses) else ""
        status = int(status_text) if status_text.isdigit() else NO_ANSWER_STATUS
        time_text = times[index] if index < len(times) else ""
        try:
            seconds: float | None = float(time_text)
        except ValueError:
            seconds = None
        result.append(Attempt(role, status, seconds if seconds is not None and math.isfinite(seconds) else None))
    return result


class NginxLogSource:
    """MetricsSource over NGINX's JSON access log; ``roles`` maps upstream addresses (host:port) to arms."""

    def __init__(
        self,
        log_path: Path,
        roles: Mapping[str, str],
        *,
        edges: Sequence[float] = DEFAULT_EDGES,
        journey_route: str | None = "/dna/create",
        default_group: str | None = None,
        from_start: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log_path = Path(log_path)
        self.roles = dict(roles)
        self.edges = tuple(sorted({float(edge) for edge in edges if math.isfinite(edge) and edge > 0}))
        if not self.edges:
            raise MetricsError(f"nginx-log source: no finite positive latency edges in {list(edges)!r}")
        self.journey_route = journey_route
        self.default_group = default_group
        self._arms = {role: _Arm() for role in set(self.roles.values())}
        self._offset = 0 if from_start else self._size()
        self._pending = b""
        self.bad_lines = 0
        self._clock = clock
        # Split units (journeys, or requests without a journey route) wait here by start time until every
        # request that started as early has had time to finish: see _release_units.
        self._units: list[tuple[float, str]] = []
        self._slowest_s = 0.0
        self._cutoff = -math.inf

    def _size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise MetricsError(f"NGINX access log {self.log_path}: {exc}") from exc

    def _read_new(self) -> None:
        try:
            with self.log_path.open("rb") as handle:
                size = handle.seek(0, 2)
                if size < self._offset:  # the log was rotated or truncated: start over on the new file
                    self._offset, self._pending = 0, b""
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise MetricsError(f"NGINX access log {self.log_path} unreadable: {exc}") from exc
        self._offset += len(chunk)
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()  # the part after the last newline is a line still being written
        self._count(lines)

    def _count(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if not isinstance(entry, dict):
                self.bad_lines += 1
                continue
            self._count_entry(entry)

    def _count_entry(self, entry: Mapping[str, Any]) -> None:
        route = str(entry.get("route") or str(entry.get("uri", "")).split("?", 1)[0])
        if route in NOT_API:
            return
        group = str(entry.get("group") or entry.get("group_asked") or self.default_group or "")
        tried = attempts(entry, self.roles)
        took = _number(entry.get("request_time"))
        ended = _number(entry.get("msec"))
        started = (ended - (took or 0.0)) if ended is not None else self._clock()
        self._slowest_s = max(self._slowest_s, took or 0.0)
        is_unit = self.journey_route is None or route == self.journey_route
        for index, attempt in enumerate(tried):
            arm = self._arms[attempt.role]
            arm.requests += 1
            arm.errors_5xx += attempt.status >= 500
            if is_unit:
                heapq.heappush(self._units, (started, attempt.role))
            if index == len(tried) - 1 and entry.get("version"):
                arm.version = str(entry["version"])  # the answer's X-App-Version came from the last attempt
            if group and attempt.seconds is not None:
                below = arm.below.setdefault(group, [0] * len(self.edges))
                for position in range(bisect_left(self.edges, attempt.seconds), len(self.edges)):
                    below[position] += 1
                arm.counted[group] = arm.counted.get(group, 0) + 1

    # ------------------------------------------------------------------ MetricsSource
    def snapshot(self, role: str) -> MetricsSnapshot:
        """The arm's counters over every log line written since the source was created."""
        self._read_new()
        self._release_units()
        return self._snapshot(role)

    def snapshots(self, roles: Sequence[str]) -> dict[str, MetricsSnapshot]:
        """Every arm from one read of the log: the same lines, so the same instant."""
        self._read_new()
        self._release_units()
        return {role: self._snapshot(role) for role in roles}

    def _release_units(self) -> None:
        """Count the split units that started before now − (slowest request seen + UNIT_LAG_S).

        NGINX logs a request when it ends, so counting units as their lines arrive would count a slow
        arm's requests late: with a canary 1 s slower, the first seconds of a stage would show it a
        fraction of its share, which the split check rightly calls a mismatch. Counting by start time,
        once every request that started as early has had time to end, compares the two arms over the
        same span. The cutoff never moves back, so the counts never go down.
        """
        self._cutoff = max(self._cutoff, self._clock() - self._slowest_s - UNIT_LAG_S)
        while self._units and self._units[0][0] <= self._cutoff:
            _, role = heapq.heappop(self._units)
            self._arms[role].journeys += 1

    def _snapshot(self, role: str) -> MetricsSnapshot:
        if role not in self._arms:
            raise MetricsError(f"nginx-log source: no upstream address for arm {role!r} (known: {sorted(self._arms)})")
        if not self.log_path.exists():
            raise NoDataError(f"NGINX access log {self.log_path} does not exist (is NGINX logging there?)")
        arm = self._arms[role]
        buckets: dict[str, Buckets] = {
            group: (*zip(self.edges, map(float, below), strict=True), (math.inf, float(arm.counted[group])))
            for group, below in arm.below.items()
        }
        return MetricsSnapshot(
            taken_at=time.time(),
            requests=float(arm.requests),
            errors_5xx=float(arm.errors_5xx),
            journeys=float(arm.journeys),
            latency_buckets=buckets,
            version=arm.version,
            split_unit="requests" if self.journey_route is None else "journeys",
        )

    def close(self) -> None:
        """Nothing to release: the log is opened per read."""
