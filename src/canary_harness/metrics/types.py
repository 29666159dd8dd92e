"""What a metrics source returns: cumulative counters of one service instance at one instant.

The observation loop subtracts the snapshot taken at stage start from each later one, so every
figure of a stage (p95 per mode, 5xx rate, schema failures, RL loss) comes from counter deltas:
the same arithmetic as PromQL ``increase()`` and ``histogram_quantile`` over the stage window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from canary_harness.errors import CounterResetError, MetricsError

# Cumulative histogram buckets, ascending by upper edge ``le``; the last edge is +Inf.
Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class MetricsSnapshot:
    """Cumulative counters of one arm (production or canary) read at ``taken_at`` (unix seconds).

    requests / errors_5xx: API requests (every route but /health and /metrics) and those answered 5xx.
    journeys: /dna/create requests. A user journey starts with one and NGINX keeps a journey on one
    instance, so journeys, not requests, are the independent units of the traffic split.
    latency_buckets: per LLM mode, the request-duration histogram (all statuses) as cumulative buckets.
    briefs / schema_failures: llm_brief documents produced and those that failed the schema.
    rl_updates / rl_loss_sum: PPO updates run and the sum of their reported losses.
    counters: the named counters of the judge's ratio checks, by selector text (metrics/counters.py);
    empty unless the stage has ratio checks.
    """

    taken_at: float
    requests: float = 0.0
    errors_5xx: float = 0.0
    journeys: float = 0.0
    latency_buckets: Mapping[str, Buckets] = field(default_factory=dict)
    briefs: float = 0.0
    schema_failures: float = 0.0
    rl_updates: float = 0.0
    rl_loss_sum: float = 0.0
    version: str | None = None
    # The split's units when the source counts them in ``journeys`` even while they are 0 (NGINX's log: units
    # by start time, released late), in its words ("journeys", "requests"). "": 0 journeys means the service
    # has none, and requests are the units.
    split_unit: str = ""
    counters: Mapping[str, float] = field(default_factory=dict)

    def minus(self, base: MetricsSnapshot) -> MetricsSnapshot:
        """Counter deltas since ``base``; a counter that went down means the instance restarted."""
        for name in ("requests", "errors_5xx", "journeys", "briefs", "schema_failures", "rl_updates"):
            if getattr(self, name) < getattr(base, name):
                raise CounterResetError(
                    f"counter {name} went down ({getattr(base, name)} -> {getattr(self, name)}): "
                    f"the instance (version {self.version}) restarted during the stage"
                )
        for name, value in self.counters.items():
            if value < base.counters.get(name, 0.0):
                raise CounterResetError(
                    f"counter {name} went down ({base.counters[name]} -> {value}): "
                    f"the instance (version {self.version}) restarted during the stage"
                )
        return MetricsSnapshot(
            taken_at=self.taken_at,
            requests=self.requests - base.requests,
            errors_5xx=self.errors_5xx - base.errors_5xx,
            journeys=self.journeys - base.journeys,
            latency_buckets={
                mode: subtract_buckets(buckets, base.latency_buckets.get(mode, ()))
                for mode, buckets in self.latency_buckets.items()
            },
            briefs=self.briefs - base.briefs,
            schema_failures=self.schema_failures - base.schema_failures,
            rl_updates=self.rl_updates - base.rl_updates,
            rl_loss_sum=self.rl_loss_sum - base.rl_loss_sum,
            version=self.version,
            split_unit=self.split_unit,
            counters={name: value - base.counters.get(name, 0.0) for name, value in self.counters.items()},
        )

    def towards(self, later: MetricsSnapshot, fraction: float, at: float) -> MetricsSnapshot:
        """The counters ``fraction`` (0..1) of the way to ``later``, as read at ``at``: linear between two scrapes.

        Counts are rounded to whole numbers (round-half-up, so the result never decreases as ``fraction``
        grows); the RL pair (updates, loss sum) is kept from this snapshot, because a block mean made of
        interpolated halves would be no loss any update reported. If a counter went down between the two
        (a restart), this snapshot is returned unchanged and the next read reports the reset.
        """
        return self.advanced(self, later, fraction, at)

    def advanced(self, earlier: MetricsSnapshot, later: MetricsSnapshot, fraction: float, at: float) -> MetricsSnapshot:
        """This snapshot plus ``fraction`` (0..1) of the step from ``earlier`` to ``later``, as read at ``at``.

        An arm of several scrape targets is interpolated one target at a time: each step is one target's
        next scrape, weighted by how far ``at`` is between that target's scrapes. Rounding, the RL pair and
        a counter that went down are treated as in :meth:`towards` (``towards`` is the step from this
        snapshot itself).
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction {fraction!r}: must be within 0..1")
        try:
            later.minus(earlier)
        except CounterResetError:
            return self

        def plus_step(own: float, early: float, late: float) -> float:
            return float(math.floor(own + fraction * (late - early) + 0.5))

        buckets = dict(self.latency_buckets)
        for mode, late_buckets in later.latency_buckets.items():
            own, early = dict(self.latency_buckets.get(mode, ())), dict(earlier.latency_buckets.get(mode, ()))
            buckets[mode] = tuple(
                (edge, plus_step(own.get(edge, 0.0), early.get(edge, 0.0), count)) for edge, count in late_buckets
            )
        counters = dict(self.counters)
        for name, late in later.counters.items():
            counters[name] = plus_step(self.counters.get(name, 0.0), earlier.counters.get(name, 0.0), late)
        return MetricsSnapshot(
            taken_at=at,
            requests=plus_step(self.requests, earlier.requests, later.requests),
            errors_5xx=plus_step(self.errors_5xx, earlier.errors_5xx, later.errors_5xx),
            journeys=plus_step(self.journeys, earlier.journeys, later.journeys),
            latency_buckets=buckets,
            briefs=plus_step(self.briefs, earlier.briefs, later.briefs),
            schema_failures=plus_step(self.schema_failures, earlier.schema_failures, later.schema_failures),
            rl_updates=self.rl_updates,
            rl_loss_sum=self.rl_loss_sum,
            version=self.version,
            split_unit=self.split_unit,
            counters=counters,
        )

    def latency_count(self, mode: str) -> float:
        """Requests observed in ``mode``'s histogram (the +Inf bucket)."""
        buckets = self.latency_buckets.get(mode, ())
        return buckets[-1][1] if buckets else 0.0

    def latency_over(self, mode: str, threshold: float) -> float:
        """Requests in ``mode`` slower than ``threshold``: count − bucket{le=threshold}.

        The threshold must be a bucket edge, otherwise the count is not exact.
        """
        buckets = self.latency_buckets.get(mode, ())
        if not buckets:
            return 0.0
        for edge, cumulative in buckets:
            if math.isclose(edge, threshold, rel_tol=1e-9):
                return buckets[-1][1] - cumulative
        edges = ", ".join(str(edge) for edge, _ in buckets)
        raise MetricsError(f"latency threshold {threshold}s is not a histogram bucket edge (edges: {edges})")


def subtract_buckets(later: Buckets, earlier: Buckets) -> Buckets:
    """Bucket-wise difference of two cumulative histograms with the same edges."""
    if not earlier:
        return tuple(later)
    base = dict(earlier)
    return tuple((edge, count - base.get(edge, 0.0)) for edge, count in later)
