"""``CannedMetricsSource``: a MetricsSource that returns snapshots built from a rate, not read from anywhere.

Each arm's cumulative counters grow linearly with the time since the source was made (or with a clock
the test advances), at a per-arm request rate and 5xx share: enough to drive a judge to a chosen FAIL
(``error_rate`` above the SLO) or PASS without services. ``fail_next(role, error)`` programs a read error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from canary_harness.errors import MetricsError
from canary_harness.metrics.protocol import ROLES
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.testing.backend import BUCKETS, MODES


@dataclass(frozen=True)
class ArmRates:
    """How one arm's counters grow: requests per second, their 5xx share, their latency, and named counters.

    ``ratios``: (numerator, denominator, share) triples of counter selector texts (a ratio check's
    numerator and denominator): the denominator counts every request, the numerator that share of them.
    """

    rps: float = 20.0
    error_rate: float = 0.0
    latency_s: float = 0.2
    version: str | None = None
    ratios: tuple[tuple[str, str, float], ...] = ()


class CannedMetricsSource:
    """Snapshots of ``arms`` at ``clock()`` seconds (default: monotonic time since construction)."""

    def __init__(self, arms: Mapping[str, ArmRates], clock: Callable[[], float] | None = None) -> None:
        """``arms``: the rates of "production" and "canary"."""
        unknown = set(arms) - set(ROLES)
        if unknown:
            raise MetricsError(f"CannedMetricsSource: unknown arms {sorted(unknown)} (known: {', '.join(ROLES)})")
        self.arms = dict(arms)
        started = time.monotonic()
        self.clock = clock or (lambda: time.monotonic() - started)
        self._failures: dict[str, MetricsError] = {}
        self.closed = False

    def fail_next(self, role: str, error: MetricsError) -> None:
        """The next ``snapshot(role)`` raises ``error``."""
        self._failures[role] = error

    def snapshot(self, role: str) -> MetricsSnapshot:
        """The arm's cumulative counters now; MetricsError for an unknown arm or a programmed failure."""
        if self.closed:
            raise MetricsError("CannedMetricsSource: read after close")
        if role in self._failures:
            raise self._failures.pop(role)
        if role not in self.arms:
            raise MetricsError(f"no canned rates for arm {role!r}")
        arm = self.arms[role]
        requests = math.floor(arm.rps * max(0.0, self.clock()))
        per_mode = requests // len(MODES)
        buckets = {
            mode: tuple((edge, float(per_mode if arm.latency_s <= edge else 0)) for edge in BUCKETS) for mode in MODES
        }
        return MetricsSnapshot(
            taken_at=time.time(),
            requests=requests,
            errors_5xx=math.floor(requests * arm.error_rate),
            journeys=requests // 3,
            latency_buckets=buckets,
            briefs=requests // 3,
            version=arm.version,
            counters=_counters(arm, requests),
        )

    def snapshots(self, roles: Sequence[str]) -> dict[str, MetricsSnapshot]:
        """Each arm's counters now."""
        return {role: self.snapshot(role) for role in roles}

    def close(self) -> None:
        """Nothing to release; later reads fail (as with a closed HTTP client)."""
        self.closed = True


def _counters(arm: ArmRates, requests: int) -> dict[str, float]:
    counters: dict[str, float] = {}
    for numerator, denominator, share in arm.ratios:
        counters[denominator] = float(requests)
        counters[numerator] = float(math.floor(requests * share))
    return counters
