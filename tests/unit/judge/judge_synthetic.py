"""Synthetic arms for judge tests: seeded cumulative MetricsSnapshots of a simulated service.

Each arm draws Poisson arrivals, binomial 5xx, log-normal latencies bucketed on the reference
service's histogram edges (per LLM mode), llm briefs with schema failures, and RL updates in
blocks whose mean loss is log-normal around ``loss_mean``. Counts are cumulative since the arm
started, exactly like the deltas since stage start that the observation loop hands the judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from canary_harness.judge import Judge, StageVerdict
from canary_harness.judge.planning_assumptions import SERVICE_LATENCY_EDGES
from canary_harness.metrics.types import MetricsSnapshot

EDGES = (*SERVICE_LATENCY_EDGES, math.inf)


@dataclass
class SyntheticArm:
    """One instance (production or canary) of a simulated service."""

    rng: np.random.Generator
    rps: float
    error_rate: float = 0.002
    latency_median: Mapping[str, float] = field(default_factory=lambda: {"fast": 1.0})
    latency_sigma: float = 0.45
    schema_rate: float = 0.0
    loss_mean: float = 1.0
    loss_sigma: float = 0.3
    loss_block_s: float = 5.0
    updates_per_block: int = 4
    requests: float = 0.0
    errors: float = 0.0
    briefs: float = 0.0
    schema_failures: float = 0.0
    rl_updates: float = 0.0
    rl_loss_sum: float = 0.0
    clock: float = 0.0
    next_block: float = 5.0
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def advance(self, dt: float) -> MetricsSnapshot:
        """Simulate ``dt`` more seconds and return the cumulative snapshot."""
        self.clock += dt
        n = int(self.rng.poisson(self.rps * dt))
        self.requests += n
        self.errors += int(self.rng.binomial(n, self.error_rate))
        modes = list(self.latency_median)
        per_mode = self.rng.multinomial(n, [1 / len(modes)] * len(modes))
        for mode, count in zip(modes, per_mode, strict=True):
            latencies = self.rng.lognormal(math.log(self.latency_median[mode]), self.latency_sigma, count)
            hist = np.bincount(np.searchsorted(EDGES, latencies, side="left"), minlength=len(EDGES))
            self.counts[mode] = self.counts.get(mode, np.zeros(len(EDGES))) + hist
        self.briefs += n
        self.schema_failures += int(self.rng.binomial(n, self.schema_rate))
        while self.clock >= self.next_block:
            block_mean = self.loss_mean * math.exp(self.loss_sigma * self.rng.standard_normal())
            self.rl_updates += self.updates_per_block
            self.rl_loss_sum += self.updates_per_block * block_mean
            self.next_block += self.loss_block_s
        return self.snapshot()

    def snapshot(self) -> MetricsSnapshot:
        """The cumulative counters now."""
        buckets = {mode: tuple(zip(EDGES, np.cumsum(hist).tolist(), strict=True)) for mode, hist in self.counts.items()}
        return MetricsSnapshot(
            taken_at=self.clock,
            requests=self.requests,
            errors_5xx=self.errors,
            latency_buckets=buckets,
            briefs=self.briefs,
            schema_failures=self.schema_failures,
            rl_updates=self.rl_updates,
            rl_loss_sum=self.rl_loss_sum,
        )


def run_stage(
    judge: Judge,
    canary: SyntheticArm,
    production: SyntheticArm,
    weight_percent: int,
    duration_s: float = 900.0,
    tick_s: float = 1.0,
) -> StageVerdict:
    """Drive a judge tick by tick like the observation loop: stop at a decided verdict or conclude."""
    elapsed = 0.0
    while elapsed + tick_s <= duration_s + 1e-9:
        elapsed += tick_s
        verdict = judge.observe(elapsed, canary.advance(tick_s), production.advance(tick_s), weight_percent)
        if verdict.decided:
            return verdict
    return judge.conclude(elapsed, canary.snapshot(), production.snapshot(), weight_percent)


def arms(
    seed: int, weight_percent: int, *, total_rps: float = 50.0, **canary_changes: Any
) -> tuple[SyntheticArm, SyntheticArm]:
    """A (canary, production) pair splitting ``total_rps``; keyword arguments change the canary only."""
    rng = np.random.default_rng(seed)
    weight = weight_percent / 100
    production = SyntheticArm(rng=rng, rps=total_rps * (1 - weight))
    canary = SyntheticArm(rng=rng, rps=total_rps * weight)
    for name, value in canary_changes.items():
        setattr(canary, name, value)
    return canary, production
