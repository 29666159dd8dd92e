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
  Δloss_sum / Δupdates); B is the median of production's blocks so far, trusted once there are
  ``loss_reference_blocks`` of them (a median of one or two blocks is too noisy: it would make the
  loss test slower, not wrong); a canary block is judged (Y = 1{mean > ratio·B}) as soon as a
  positive B exists, earlier blocks waiting for it (the cut is raised by a margin for the noise of
  B, see :func:`reference_margin`). For the magnitude test each judged block also
  gives its standardised excess z = log(mean / (ratio·B)) / s − margin, s the spread of
  production's log block means and the margin an allowance for the noise of B itself, summed per
  tick after capping at ±cap.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from canary_harness.judge.engine import ModeTick, Tick
from canary_harness.judge.eprocess import LOSS_EXCESS_CAP
from canary_harness.judge.settings import LATENCY_TAIL, JudgeSettings
from canary_harness.metrics.histogram import bucket_edge_at_or_above, histogram_quantile
from canary_harness.metrics.types import MetricsSnapshot

EMPTY = MetricsSnapshot(taken_at=0.0)
# Smallest spread of log block means the magnitude test uses: identical production blocks would
# otherwise make every canary block's excess infinite.
MIN_LOSS_SPREAD = 0.05
# Standard errors of B's log taken off each block's standardised excess (see reference_margin):
# the magnitude test adds the bias up, the sign test only counts it once per block.
LOSS_REFERENCE_MARGIN = 2.0
SIGN_REFERENCE_MARGIN = 1.5


def log_spread(means: list[float]) -> float | None:
    """s: the standard deviation of the log block means (n − 1 in the denominator), at least
    MIN_LOSS_SPREAD; None without two positive blocks."""
    logs = [math.log(m) for m in means if m > 0]
    if len(logs) < 2:
        return None
    return max(statistics.stdev(logs), MIN_LOSS_SPREAD)


def reference_margin(blocks: int, standard_errors: float = LOSS_REFERENCE_MARGIN) -> float:
    """The margin (in units of s) taken off every standardised excess while B rests on ``blocks``.

    B is itself an estimate shared by every canary block judged against it (the blocks that
    waited for it are all judged against the first one): a B that is low by chance pushes every
    block up together, and the tests add that bias up block after block. Measured at the null
    boundary over 180 blocks at α = 1 % without a margin: the sign test rejects 6.2 %. The median
    of n normal blocks has standard error ≈ s·√(π/(2n)); taking ``standard_errors`` of those off
    z (LOSS_REFERENCE_MARGIN for the magnitude test, SIGN_REFERENCE_MARGIN for the sign test's
    cut) keeps both below α (tests/unit/judge/test_judge_loss_magnitude.py); the margin shrinks
    as production's blocks accumulate.
    """
    return standard_errors * math.sqrt(math.pi / (2 * blocks))


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
        self.judged_canary: list[float] = []
        self.judged_over: int = 0
        self.judged_excess: float = 0.0  # Σ of capped standardised excesses of judged blocks
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
        """B: the median of production's loss blocks so far, once there are enough of them."""
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
        if canary_now.journeys + production_now.journeys > 0:
            tick.canary_units = canary_now.journeys - previous_c.journeys
            tick.production_units = production_now.journeys - previous_p.journeys
        else:
            tick.canary_units, tick.production_units = tick.canary_requests, tick.production_requests
        tick.canary_errors = canary_now.errors_5xx - previous_c.errors_5xx
        tick.production_errors = production_now.errors_5xx - previous_p.errors_5xx
        tick.modes = {mode: self._mode_tick(mode, previous_c, previous_p) for mode in self.settings.modes}
        tick.loss_blocks, tick.loss_exceed, tick.loss_exceed_low, tick.loss_excess = self._loss_tick()
        return tick

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
        """s of the magnitude test, once B is trusted (see :func:`log_spread`)."""
        if self.loss_reference is None:
            return None
        return log_spread(self.production_blocks.means)

    def _loss_tick(self) -> tuple[float, float, float, float]:
        self.production_blocks.advance(self.production.rl_updates, self.production.rl_loss_sum)
        self.pending_canary.extend(self.canary_blocks.advance(self.canary.rl_updates, self.canary.rl_loss_sum))
        reference = self.loss_reference
        spread = self.loss_spread
        if reference is None or reference <= 0 or spread is None or not self.pending_canary:
            return 0.0, 0.0, 0.0, 0.0
        cut = self.settings.loss_ratio * reference
        blocks = len(self.production_blocks.means)
        # The FAIL test counts blocks above a cut raised by the margin, the PASS test blocks above a cut
        # lowered by it: either way B's noise works against the test, never for it.
        shift = math.exp(spread * reference_margin(blocks, SIGN_REFERENCE_MARGIN))
        over = sum(mean > cut * shift for mean in self.pending_canary)
        over_low = sum(mean > cut / shift for mean in self.pending_canary)
        # A block with zero or negative mean loss is as far below the cut as the cap allows.
        margin = reference_margin(blocks)
        excess = sum(
            max(-LOSS_EXCESS_CAP, min(LOSS_EXCESS_CAP, math.log(mean / cut) / spread - margin))
            if mean > 0
            else -LOSS_EXCESS_CAP
            for mean in self.pending_canary
        )
        judged = len(self.pending_canary)
        self.judged_canary.extend(self.pending_canary)
        self.judged_over += over
        self.judged_excess += excess
        self.pending_canary = []
        return float(judged), float(over), float(over_low), float(excess)
