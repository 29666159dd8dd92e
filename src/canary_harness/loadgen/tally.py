"""Counting requests: response-time histograms and the per-version / per-mode / per-error tally.

Response times are kept as locust keeps them (milliseconds rounded to 2 significant digits above 100 ms,
counted per rounded value), so histograms from locust workers, locust's own JSON and the builtin engine
merge and give the same percentiles. A Tally is plain data so that locust workers can ship it to the
master in their periodic reports.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_ERROR_KINDS = 50  # distinct failure reasons kept; the rest are counted under OTHER_ERRORS
OTHER_ERRORS = "(other failures)"


def round_ms(ms: float) -> int:
    """Locust's rounding of a response time: exact below 100 ms, then 2 significant digits."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    if ms < 10000:
        return int(round(ms, -2))
    return int(round(ms, -3))


def percentile_ms(response_times: Mapping[int, int], count: int, fraction: float) -> int:
    """The response time that ``fraction`` of ``count`` requests finished within (locust's definition)."""
    if count <= 0:
        return 0
    allowed_above = int(count * fraction)
    processed = 0
    for value in sorted(response_times, reverse=True):
        processed += response_times[value]
        if count - processed <= allowed_above:
            return value
    return 0


@dataclass
class Histogram:
    """Requests, failures and rounded response times of one group (a version, a request name)."""

    requests: int = 0
    failures: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    response_times: Counter[int] = field(default_factory=Counter)

    def record(self, response_ms: float, failed: bool) -> None:
        """Count one request."""
        self.requests += 1
        self.failures += int(failed)
        self.total_ms += response_ms
        self.max_ms = max(self.max_ms, response_ms)
        self.response_times[round_ms(response_ms)] += 1

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add a histogram given as ``to_dict`` output (JSON turns the integer keys into strings)."""
        self.requests += int(data.get("requests", 0))
        self.failures += int(data.get("failures", 0))
        self.total_ms += float(data.get("total_ms", 0.0))
        self.max_ms = max(self.max_ms, float(data.get("max_ms", 0.0)))
        for value, count in dict(data.get("response_times", {})).items():
            self.response_times[int(float(value))] += int(count)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "total_ms": self.total_ms,
            "max_ms": self.max_ms,
            "response_times": {str(k): v for k, v in self.response_times.items()},
        }


class Tally:
    """What locust's own stats lack: requests per served version, journeys per mode, failure reasons,
    and (on a locust master) requests per worker."""

    def __init__(self) -> None:
        self.versions: dict[str, Histogram] = {}
        self.modes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.completed = 0
        self._lock = threading.Lock()

    def record(self, version: str, response_ms: float, failure: str | None) -> None:
        """One answered (or failed) request; ``failure`` is its reason, None when it passed."""
        with self._lock:
            self.completed += 1
            self.versions.setdefault(version, Histogram()).record(response_ms, failure is not None)
            if failure is not None:
                self._count_error(failure, 1)

    def journey_started(self, mode: str) -> None:
        """A journey drew ``mode``."""
        with self._lock:
            self.modes[mode] += 1

    def _count_error(self, reason: str, count: int) -> None:
        if reason not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            reason = OTHER_ERRORS
        self.errors[reason] += count

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: versions, modes, errors."""
        with self._lock:
            return {
                "versions": {name: hist.to_dict() for name, hist in self.versions.items()},
                "modes": dict(self.modes),
                "errors": dict(self.errors),
                "sources": dict(self.sources),
            }

    def drain(self) -> dict[str, Any]:
        """``to_dict`` and reset (a locust worker ships its counts since the last report)."""
        data = self.to_dict()
        with self._lock:
            self.versions, self.modes, self.errors, self.sources = {}, Counter(), Counter(), Counter()
        return data

    def merge(self, data: Mapping[str, Any], source: str | None = None) -> None:
        """Add another tally's ``to_dict`` output (a worker's report on the master, ``source`` its name)."""
        with self._lock:
            for name, hist in dict(data.get("versions", {})).items():
                self.versions.setdefault(str(name), Histogram()).merge(hist)
                self.completed += int(hist.get("requests", 0))
                if source is not None:
                    self.sources[source] += int(hist.get("requests", 0))
            self.sources.update({str(k): int(v) for k, v in dict(data.get("sources", {})).items()})
            self.modes.update({str(k): int(v) for k, v in dict(data.get("modes", {})).items()})
            for reason, count in dict(data.get("errors", {})).items():
                self._count_error(str(reason), int(count))
