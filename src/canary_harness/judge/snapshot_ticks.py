"""From cumulative snapshots to per-tick increments: warm-up, τ_m freezing, RL-loss blocks.

The observation loop hands the judge counter deltas since stage start at irregular ticks. This
module keeps what the tests need between ticks:

- the warm-up: counts before ``warmup_s`` are excluded (the snapshot at the first tick after it is
  the baseline). Schema failures are zero-tolerance and count from stage start regardless.
- τ_m: production's p95 of mode m, frozen (rounded up to a bucket edge, so exceedances are exact
  bucket differences) at the first tick where production has ``tau_min_requests`` requests of m
  after warm-up. The relative latency test only counts exceedances after that tick, so the data
  that chose τ_m is not reused to test against it.
- RL-loss blocks: each arm's updates are cut into blocks of ≥ k updates (block mean =
  Δloss_sum / Δupdates). Canary blocks are judged in *pairs* with fresh production blocks: at a
  tick where both arms have unpaired blocks, the k pending canary blocks and the m pending
  production blocks form one pair, D = mean log(canary) − mean log(production) − log(ratio). No
  production block is used twice, so the noise of production's level enters each pair once
  instead of biasing every judged block together (see :func:`pair_scale` and docs/judge.md). The
  sign tests count D > 0; the magnitude test adds the capped standardised excess
  ζ = clip(D / (scale·√(1/k + 1/m))), the scale an upper confidence bound of the per-block spread
  estimated from the blocks of *earlier* pairs (predictable: never from the pair it standardises).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

from canary_harness.judge.eprocess import LOSS_EXCESS_CAP, FloatArray
from canary_harness.judge.ratio_settings import RatioCheck
from canary_harness.judge.settings import LATENCY_TAIL, JudgeSettings
from canary_harness.judge.tick import ModeTick, RatioTick, Tick
from canary_harness.metrics.histogram import bucket_edge_at_or_above, histogram_quantile
from canary_harness.metrics.types import MetricsSnapshot

EMPTY = MetricsSnapshot(taken_at=0.0)
# Smallest per-block spread of log block means the magnitude test uses: identical blocks would
# otherwise make every excess infinite.
MIN_LOSS_SPREAD = 0.05
# One-sided confidence of the upper bound on the spread that standardises a pair (see pair_scale).
SPREAD_CONFIDENCE = 0.8
_NORMAL = NormalDist()


def log_spread(means: list[float]) -> float | None:
    """The standard deviation of the log block means (n − 1 in the denominator), at least
    MIN_LOSS_SPREAD; None without two positive blocks."""
    logs = [math.log(m) for m in means if m > 0]
    if len(logs) < 2:
        return None
    return max(statistics.stdev(logs), MIN_LOSS_SPREAD)


def chi2_lower_quantile(dof: ArrayLike, q: float) -> FloatArray:
    """The q-quantile of a χ² with ``dof`` degrees of freedom (exact for 1 and 2, else Wilson-Hilferty).

    Pure numpy (the judge does not depend on scipy); Wilson-Hilferty is within 2 % for dof ≥ 3.
    """
    nu = np.maximum(np.asarray(dof, dtype=np.float64), 1.0)
    z = _NORMAL.inv_cdf(q)
    wilson = nu * np.maximum(1 - 2 / (9 * nu) + z * np.sqrt(2 / (9 * nu)), 1e-3) ** 3
    one = _NORMAL.inv_cdf((1 + q) / 2) ** 2
    two = -2 * math.log(1 - q)
    return np.asarray(np.where(nu < 1.5, one, np.where(nu < 2.5, two, wilson)), dtype=np.float64)


def pair_scale(
    canary_n: ArrayLike,
    canary_ss: ArrayLike,
    production_n: ArrayLike,
    production_ss: ArrayLike,
    k: ArrayLike,
    m: ArrayLike,
) -> FloatArray:
    """The scale that standardises a pair of k canary and m production blocks (NaN: none yet).

    Each arm's per-block variance is estimated from the log blocks of earlier pairs (n blocks, ss
    their sum of squared deviations from the arm's mean); an arm with fewer than two borrows the
    other's. D's variance is s_c²/k + s_p²/m, with Welch-Satterthwaite degrees of freedom ν, and
    the scale is its SPREAD_CONFIDENCE upper confidence bound √(v·ν / χ²_{1−conf}(ν)): a spread
    underestimated by chance from few blocks would otherwise over-weigh the early pairs. Works
    on floats and on numpy arrays of any shape (the benchmark's runs).
    """
    n_c, n_p = np.asarray(canary_n, dtype=np.float64), np.asarray(production_n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_c = np.where(n_c >= 2, np.asarray(canary_ss) / np.maximum(n_c - 1, 1), np.nan)
        var_p = np.where(n_p >= 2, np.asarray(production_ss) / np.maximum(n_p - 1, 1), np.nan)
        dof_c, dof_p = np.where(n_c >= 2, n_c - 1, 0.0), np.where(n_p >= 2, n_p - 1, 0.0)
        var_c, dof_c_eff = np.where(np.isnan(var_c), var_p, var_c), np.where(np.isnan(var_c), dof_p, dof_c)
        var_p, dof_p_eff = np.where(np.isnan(var_p), var_c, var_p), np.where(np.isnan(var_p), dof_c, dof_p)
        floor = MIN_LOSS_SPREAD**2
        a = np.maximum(var_c, floor) / np.asarray(k, dtype=np.float64)
        b = np.maximum(var_p, floor) / np.asarray(m, dtype=np.float64)
        variance = a + b
        dof = variance**2 / (a**2 / np.maximum(dof_c_eff, 1) + b**2 / np.maximum(dof_p_eff, 1))
        dof = np.maximum(dof, 1.0)
        scale = np.sqrt(variance * dof / chi2_lower_quantile(dof, 1 - SPREAD_CONFIDENCE))
    return np.asarray(np.where(np.isfinite(scale), scale, np.nan), dtype=np.float64)


@dataclass
class _LogMoments:
    """Count, sum and sum of squares of one arm's paired log block means (for its spread)."""

    n: float = 0.0
    total: float = 0.0
    squares: float = 0.0

    def add(self, logs: list[float]) -> None:
        self.n += len(logs)
        self.total += sum(logs)
        self.squares += sum(x * x for x in logs)

    @property
    def ss(self) -> float:
        """Sum of squared deviations from the mean."""
        return max(self.squares - self.total**2 / self.n, 0.0) if self.n > 0 else 0.0


@dataclass
class _Blocks:
    """Cuts one arm's cumulative (updates, loss sum) into blocks of at least k updates."""

    size: int
    start_updates: float = 0.0
    start_sum: float = 0.0
    means: list[float] = field(default_factory=list)

    def advance(self, updates: float, loss_sum: float) -> list[float]:
        fresh: list[float] = []
        if updates - self.start_updates >= self.size:
            mean = (loss_sum - self.start_sum) / (updates - self.start_updates)
            # A non-finite mean compares False with every cut: it would count as a healthy block. It is
            # left out here (the canary's is FAILed through canary_nonfinite_loss; production's leaves
            # the reference undecided).
            if math.isfinite(mean):
                fresh.append(mean)
            self.start_updates, self.start_sum = updates, loss_sum
        self.means.extend(fresh)
        return fresh


class SnapshotFeed:
    """Turns each tick's snapshots (deltas since stage start) into a :class:`Tick` of increments."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.baseline: tuple[MetricsSnapshot, MetricsSnapshot] | None = None
        self.canary = EMPTY  # window since the baseline (after warm-up)
        self.production = EMPTY
        self.canary_raw = EMPTY  # since stage start
        self.production_raw = EMPTY
        self.tau: dict[str, float] = {}
        self._tau_prev: dict[str, tuple[float, float]] = {}
        self.canary_blocks = _Blocks(settings.loss_block_updates)
        self.production_blocks = _Blocks(settings.loss_block_updates)
        self.pending_canary: list[float] = []
        self.pending_production: list[float] = []  # production blocks not paired yet
        self.judged_canary: list[float] = []
        self.paired_production: list[float] = []
        self.pairs: int = 0
        self.judged_over: int = 0
        self.judged_excess: float = 0.0  # Σ of capped standardised excesses of judged pairs
        # The per-block spread bound behind the last standardised pair (the pair's scale / √(1/k + 1/m)).
        self.last_scale: float | None = None
        self._moments = {"canary": _LogMoments(), "production": _LogMoments()}
        self.weight: float | None = None  # configured canary share at the last tick
        # The canary's loss sum since stage start once it is NaN/±Inf (its own defect: the judges FAIL it).
        self.canary_nonfinite_loss: float | None = None
        self.observed_s = 0.0  # seconds of evidence: since the baseline (the end of the warm-up)
        self._baseline_s = 0.0

    @property
    def warmed_up(self) -> bool:
        """Whether the warm-up is over (the baseline is set)."""
        return self.baseline is not None

    @property
    def loss_reference(self) -> float | None:
        """B: the median of production's loss blocks so far, once there are ``loss_reference_blocks``
        of them. Shown in the messages and the report; the tests judge pairs and do not wait for it."""
        means = self.production_blocks.means
        return statistics.median(means) if len(means) >= self.settings.loss_reference_blocks else None

    def push(self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int) -> Tick:
        """The increments since the previous tick (only schema counts during warm-up)."""
        weight = weight_percent / 100.0
        self.weight = weight
        tick = Tick(
            weight=weight,
            canary_briefs=canary.briefs - self.canary_raw.briefs,
            canary_schema_failures=canary.schema_failures - self.canary_raw.schema_failures,
            production_briefs=production.briefs - self.production_raw.briefs,
            production_schema_failures=production.schema_failures - self.production_raw.schema_failures,
        )
        self.canary_raw, self.production_raw = canary, production
        if canary.rl_updates > 0 and not math.isfinite(canary.rl_loss_sum):
            self.canary_nonfinite_loss = canary.rl_loss_sum
        if self.baseline is None:
            if elapsed_s < self.settings.warmup_s:
                return tick
            # Without a warm-up every count since stage start is evidence.
            self.baseline = (EMPTY, EMPTY) if self.settings.warmup_s <= 0 else (canary, production)
            self._baseline_s = 0.0 if self.settings.warmup_s <= 0 else elapsed_s
        self.observed_s = elapsed_s - self._baseline_s
        canary_now = canary.minus(self.baseline[0])
        production_now = production.minus(self.baseline[1])
        previous_c, previous_p = self.canary, self.production
        self.canary, self.production = canary_now, production_now
        tick.canary_requests = canary_now.requests - previous_c.requests
        tick.production_requests = production_now.requests - previous_p.requests
        if canary.split_unit or canary_now.journeys + production_now.journeys > 0:
            tick.canary_units = canary_now.journeys - previous_c.journeys
            tick.production_units = production_now.journeys - previous_p.journeys
        else:
            tick.canary_units, tick.production_units = tick.canary_requests, tick.production_requests
        tick.canary_errors = canary_now.errors_5xx - previous_c.errors_5xx
        tick.production_errors = production_now.errors_5xx - previous_p.errors_5xx
        tick.modes = {mode: self._mode_tick(mode, previous_c, previous_p) for mode in self.settings.modes}
        tick.loss_blocks, tick.loss_exceed, tick.loss_excess, tick.loss_excess_pairs = self._loss_tick()
        tick.ratios = {ratio.name: self._ratio_tick(ratio, previous_c, previous_p) for ratio in self.settings.ratios}
        return tick

    def _ratio_tick(self, ratio: RatioCheck, previous_c: MetricsSnapshot, previous_p: MetricsSnapshot) -> RatioTick:
        """The increments of a ratio check's numerator and denominator on each arm since the previous tick."""

        def grew(now: MetricsSnapshot, before: MetricsSnapshot, text: str) -> float:
            return now.counters.get(text, 0.0) - before.counters.get(text, 0.0)

        num, den = ratio.numerator.text, ratio.denominator.text
        return RatioTick(
            canary_events=grew(self.canary, previous_c, num),
            canary_trials=grew(self.canary, previous_c, den),
            production_events=grew(self.production, previous_p, num),
            production_trials=grew(self.production, previous_p, den),
        )

    def _mode_tick(self, mode: str, previous_c: MetricsSnapshot, previous_p: MetricsSnapshot) -> ModeTick:
        threshold = self.settings.p95_thresholds[mode]
        now_c, now_p = self.canary, self.production
        result = ModeTick(
            canary_requests=now_c.latency_count(mode) - previous_c.latency_count(mode),
            production_requests=now_p.latency_count(mode) - previous_p.latency_count(mode),
            canary_over_threshold=now_c.latency_over(mode, threshold) - previous_c.latency_over(mode, threshold),
        )
        if mode in self.tau:
            tau = self.tau[mode]
            over_c, over_p = now_c.latency_over(mode, tau), now_p.latency_over(mode, tau)
            before_c, before_p = self._tau_prev[mode]
            result.canary_over_tau, result.production_over_tau = over_c - before_c, over_p - before_p
            self._tau_prev[mode] = (over_c, over_p)
        elif now_p.latency_count(mode) >= self.settings.tau_min_requests:
            buckets = now_p.latency_buckets[mode]
            quantile = histogram_quantile(1 - LATENCY_TAIL, buckets)
            if quantile is not None:
                tau = bucket_edge_at_or_above(quantile, buckets)
                self.tau[mode] = tau
                self._tau_prev[mode] = (now_c.latency_over(mode, tau), now_p.latency_over(mode, tau))
        return result

    @property
    def loss_spread(self) -> float | None:
        """The per-block spread of production's log block means so far (shown in the evidence)."""
        return log_spread(self.production_blocks.means)

    def _loss_tick(self) -> tuple[float, float, float, float]:
        """(pairs judged, of them with D > 0, Σζ, pairs standardised) this tick: at most one pair."""
        fresh = self.production_blocks.advance(self.production.rl_updates, self.production.rl_loss_sum)
        # A production block with a non-positive mean has no log: it cannot serve as a reference.
        self.pending_production.extend(mean for mean in fresh if mean > 0)
        self.pending_canary.extend(self.canary_blocks.advance(self.canary.rl_updates, self.canary.rl_loss_sum))
        if not self.pending_canary or not self.pending_production:
            return 0.0, 0.0, 0.0, 0.0
        canary, production = self.pending_canary, self.pending_production
        k, m = len(canary), len(production)
        production_logs = [math.log(mean) for mean in production]
        # A canary block with zero or negative mean loss is as far below the cut as it gets.
        if all(mean > 0 for mean in canary):
            canary_logs = [math.log(mean) for mean in canary]
            difference = sum(canary_logs) / k - sum(production_logs) / m - math.log(self.settings.loss_ratio)
        else:
            canary_logs = [math.log(mean) for mean in canary if mean > 0]
            difference = -math.inf
        c, p = self._moments["canary"], self._moments["production"]
        scale = float(pair_scale(c.n, c.ss, p.n, p.ss, k, m))
        standardised = 0.0
        if math.isfinite(scale):
            self.last_scale = scale / math.sqrt(1 / k + 1 / m)
            ratio = difference / scale if math.isfinite(difference) else -LOSS_EXCESS_CAP
            standardised = max(-LOSS_EXCESS_CAP, min(LOSS_EXCESS_CAP, ratio))
        over = 1.0 if difference > 0 else 0.0
        c.add(canary_logs)
        p.add(production_logs)
        self.judged_canary.extend(canary)
        self.paired_production.extend(production)
        self.pairs += 1
        self.judged_over += int(over)
        self.judged_excess += standardised
        self.pending_canary, self.pending_production = [], []
        return 1.0, over, standardised, 1.0 if math.isfinite(scale) else 0.0
