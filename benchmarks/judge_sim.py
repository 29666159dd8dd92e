"""Seeded simulation of stage judging under the benchmark protocol; prints its figures and a SUMMARY.

    python benchmarks/judge_sim.py [--healthy-runs 2000] [--bad-runs 500] [--null-runs 2000] [--seed 7] [--json FILE]

The protocol (also in docs/judge.md):
- Traffic: 50 rps, Poisson arrivals, every request routed at random (canary with the stage weight),
  1 s ticks, a 900 s window, stages 1 %, 5 %, 25 %, one LLM mode (threshold 2.5 s).
- Production: 0.2 % 5xx; log-normal latency, median 1 s, σ 0.45 (p95 2.10 s against 2.5 s); RL
  loss as one block of 4 updates every 5 s on each arm, its log mean normal with σ 0.3 around
  production's level. The judge cuts the same update stream into its own blocks
  (``loss_block_updates``, default 1: a block every 1.25 s with σ 0.6).
- Bad canaries, from t = 0: 3 % 5xx; latency × 1.4; loss × 3. Healthy canaries equal production.
- The measured block rate of the reference service: loss × 4 at the 25 % stage with a 4-update
  canary block every 20 s (production's every 6.7 s) and a 180 s window.
- Targets (the SUMMARY line): false rollbacks ≤ 1 % (one-sided 95 % Clopper-Pearson bound, healthy
  canaries, extension included); stage 5 % median detection of 5xx / latency ≤ 75 s (p90 ≤ 150 s)
  and of loss × 3 ≤ 60 s; the live case caught within its window in ≥ 90 % of runs; ≥ 10× faster
  than the fixed window; stage 1 % detection ≥ 95 % and its latency median ≤ 300 s; healthy 25 %
  canaries PASSed early in ≥ 95 % of runs (median ≤ 330 s); every e-process alone at its null
  boundary crossing 1/α (α = 1 %) in at most α of 2 000 runs.

Rules compared on the same simulated traffic:
- SEQUENTIAL: the real judge engine (canary_harness.judge.eprocess_engine.EProcessEngine, vectorised over runs;
  tests/unit/judge check it equals the per-snapshot judge), default settings with
  on_inconclusive = extend_if_suspect; τ is frozen by the judge's own histogram code and loss
  blocks are paired and standardised with the feed's own functions.
- FIXED: the seed rule, judged once at 900 s (5xx ≥ 0.5 %, p95 > 2.5 s, mean block loss ≥ 2×
  production's, split off by more than 25 %).
- NAIVE: fail the moment a running (since stage start) value breaches its threshold.
- FLAGGER: a check of the last 60 s every 60 s; roll back after 5 failed checks.

Also the type-I error of each e-process at its null boundary: one-sample tests with the true rate
at p0, share tests with R = r0 under load swings and an incident hitting both arms, the loss FAIL
test with canary loss exactly 2× production's (normal and t₃ blocks, pairs 1:1 and 1:3).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from canary_harness.judge.eprocess import (
    LATENCY_FAIL_GRID,
    LOSS_FAIL_GRID,
    SPLIT_MULTIPLIERS,
    BernoulliMixture,
    ExcessTest,
    ShareTest,
    crossing_bound,
)
from canary_harness.judge.eprocess_engine import MAGNITUDE_WEIGHT, EProcessEngine
from canary_harness.judge.planning_assumptions import SERVICE_LATENCY_EDGES
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.snapshot_ticks import pair_scale
from canary_harness.judge.tick import ModeTick, Tick
from canary_harness.metrics.histogram import bucket_edge_at_or_above, histogram_quantile

RPS = 50.0
WINDOW_S = 900
STAGES = (1, 5, 25)
SCENARIOS = ("healthy", "5xx", "latency", "loss")
RULES = ("SEQUENTIAL", "FIXED", "NAIVE", "FLAGGER")
BASE_ERROR = 0.002
BAD_ERROR = 0.03
MEDIAN_S = 1.0
SIGMA = 0.45
THRESHOLD_S = 2.5
LATENCY_FACTOR = 1.4
LOSS_BLOCK_S = 5
LOSS_SIGMA = 0.3
LOSS_FACTOR = 3.0
# The protocol's loss block: 4 updates, one every LOSS_BLOCK_S on each arm, spread LOSS_SIGMA.
PROTOCOL_BLOCK_UPDATES = 4
SETTINGS = JudgeSettings(p95_thresholds={"fast": THRESHOLD_S}, on_inconclusive="extend_if_suspect")
# The reference service as measured (issue 15): a canary loss block every ~20 s at the 25 % stage.
LIVE_STAGE = 25
LIVE_WINDOW_S = 180
LIVE_CANARY_BLOCK_S = 20.0
LIVE_LOSS_FACTOR = 4.0
EDGES = np.array([*SERVICE_LATENCY_EDGES, math.inf])
NEVER = np.inf


def exceed(cut: np.ndarray | float, factor: float) -> np.ndarray:
    """P(latency > cut) for log-normal latency with median MEDIAN_S × factor."""
    return np.asarray(stats.norm.sf(np.log(np.asarray(cut) / (MEDIAN_S * factor)) / SIGMA))


_EDGE_TABLE: dict[float, np.ndarray] = {}
_THRESHOLD_TABLE: dict[float, float] = {}


def _exceed_at_threshold(factor: float) -> float:
    """exceed(THRESHOLD_S, factor), computed once per factor (the per-tick hot path)."""
    if factor not in _THRESHOLD_TABLE:
        _THRESHOLD_TABLE[factor] = float(exceed(THRESHOLD_S, factor))
    return _THRESHOLD_TABLE[factor]


def _exceed_at_edge(cut: np.ndarray, factor: float) -> np.ndarray:
    """exceed() for cuts that are bucket edges, from a table (the per-tick hot path)."""
    if factor not in _EDGE_TABLE:
        _EDGE_TABLE[factor] = exceed(EDGES[:-1], factor)
    return _EDGE_TABLE[factor][np.searchsorted(EDGES[:-1], cut)]


@dataclass
class Outcome:
    """Per run: when each rule failed (inf: never), when the sequential judge passed, and which
    sequential runs were extended past the window (on_inconclusive = extend_if_suspect)."""

    fail_s: dict[str, np.ndarray] = field(default_factory=dict)
    pass_s: np.ndarray | None = None
    crossed_at: dict[str, np.ndarray] = field(default_factory=dict)
    extended: np.ndarray | None = None
    window_s: int = WINDOW_S


@dataclass(frozen=True)
class Blocks:
    """RL-loss timing: seconds between blocks of PROTOCOL_BLOCK_UPDATES updates on each arm, their spread.

    The judge cuts blocks of ``loss_block_updates`` updates from the same update stream: blocks of
    u updates arrive every ``canary_s``·u/4 s with spread ``sigma``·√(4/u) (log block means
    average u updates' worth of noise).
    """

    canary_s: float = LOSS_BLOCK_S
    production_s: float = LOSS_BLOCK_S
    sigma: float = LOSS_SIGMA  # log-normal spread of one protocol block's mean loss
    updates: int = SETTINGS.loss_block_updates
    heavy: bool = False  # Student t₃ log block means (scaled to the same spread) instead of normal

    def period(self, arm_s: float) -> float:
        """Seconds between the judge's blocks on an arm with one protocol block every ``arm_s``."""
        return arm_s * self.updates / PROTOCOL_BLOCK_UPDATES

    @property
    def spread(self) -> float:
        """Spread of one judge block's log mean."""
        return self.sigma * math.sqrt(PROTOCOL_BLOCK_UPDATES / self.updates)


class LossFeed:
    """Vectorised twin of the judge's feed for RL-loss blocks (canary_harness.judge.snapshot_ticks).

    Canary blocks are paired with the production blocks that arrived since the last pair: at a
    tick where both arms have unpaired blocks they form one pair, D = mean log canary − mean log
    production − log ratio; Y = 1{D > 0} for the sign tests and ζ = clip(D / scale) for the
    magnitude test, the scale from the blocks of earlier pairs (feed.pair_scale).
    """

    def __init__(self, runs: int, blocks: Blocks) -> None:
        self.blocks = blocks
        self.runs = runs
        self.excess = ExcessTest()
        self.pending = {arm: (0, np.zeros(runs), np.zeros(runs)) for arm in ("canary", "production")}
        self.moments = {arm: [0.0, np.zeros(runs), np.zeros(runs)] for arm in ("canary", "production")}

    def _arrive(self, arm: str, t: int, period: float, centre: float, rng: np.random.Generator) -> np.ndarray:
        if int(t / period) <= int((t - 1) / period):
            return np.zeros(self.runs)
        noise = rng.standard_t(3, self.runs) / math.sqrt(3) if self.blocks.heavy else rng.standard_normal(self.runs)
        logs = centre + self.blocks.spread * noise
        count, total, squares = self.pending[arm]
        self.pending[arm] = (count + 1, total + logs, squares + logs * logs)
        return np.exp(logs)

    def tick(
        self, t: int, rng: np.random.Generator, loss_c: float
    ) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
        """(pairs judged, D > 0, Σζ, pairs standardised, canary and production block means this tick)."""
        zero = np.zeros(self.runs)
        p_block = self._arrive("production", t, self.blocks.period(self.blocks.production_s), 0.0, rng)
        c_block = self._arrive("canary", t, self.blocks.period(self.blocks.canary_s), math.log(loss_c), rng)
        (k, c_sum, _), (m, p_sum, _) = self.pending["canary"], self.pending["production"]
        if k == 0 or m == 0:
            return 0.0, zero, zero, 0.0, c_block, p_block
        difference = c_sum / k - p_sum / m - math.log(SETTINGS.loss_ratio)
        (n_c, t_c, q_c), (n_p, t_p, q_p) = self.moments["canary"], self.moments["production"]
        ss_c = np.maximum(q_c - t_c**2 / n_c, 0.0) if n_c else zero
        ss_p = np.maximum(q_p - t_p**2 / n_p, 0.0) if n_p else zero
        scale = pair_scale(n_c, ss_c, n_p, ss_p, k, m)
        standardised = bool(np.isfinite(scale).all())
        zeta = self.excess.clip(difference / scale) if standardised else zero
        for arm, (count, total, squares) in self.pending.items():
            moments = self.moments[arm]
            moments[0] += count
            moments[1] = moments[1] + total
            moments[2] = moments[2] + squares
        self.pending = {arm: (0, zero.copy(), zero.copy()) for arm in self.pending}
        return 1.0, (difference > 0).astype(float), zeta, float(standardised), c_block, p_block


def _suspect(engine: EProcessEngine) -> np.ndarray:
    """Runs whose largest FAIL e-value of any check reached √(1/α_i) (policy.suspect_checks)."""
    cut = 0.5 * crossing_bound(engine.alpha_i)
    peaks = [engine.peak[spec.key] for spec in engine.specs if spec.role == "fail"]
    return np.asarray(np.max(np.stack(peaks), axis=0) >= cut)


def simulate(
    stage: int,
    scenario: str,
    runs: int,
    rng: np.random.Generator,
    window: int = WINDOW_S,
    blocks: Blocks = Blocks(),
    loss_factor: float = LOSS_FACTOR,
) -> Outcome:
    """One stage × scenario, ``runs`` independent canaries, every rule on the same traffic.

    The sequential judge runs under on_inconclusive = extend_if_suspect: runs still open at the
    window end with a suspect check go on for up to extend_limit_s (the other rules stop).
    """
    w = stage / 100
    error_c = BAD_ERROR if scenario == "5xx" else BASE_ERROR
    factor_c = LATENCY_FACTOR if scenario == "latency" else 1.0
    loss_c = loss_factor if scenario == "loss" else 1.0
    q_c, q_p = float(exceed(THRESHOLD_S, factor_c)), float(exceed(THRESHOLD_S, 1.0))
    bucket_p = np.diff(np.concatenate(([0.0], 1 - exceed(EDGES[:-1], 1.0), [1.0])))

    horizon = window + int(SETTINGS.extend_limit_s)
    engine = EProcessEngine(SETTINGS, shape=(runs,))
    tau = np.full(runs, np.nan)
    cum = {k: np.zeros(runs) for k in ("n_c", "n_p", "e_c", "over_c", "closs", "ploss", "c_blocks", "p_blocks")}
    feed = LossFeed(runs, blocks)
    flagger_window = {k: np.zeros(runs) for k in ("n_c", "e_c", "over_c", "closs", "ploss", "c_blocks", "p_blocks")}
    flagger_failed = np.zeros(runs)
    fail = {rule: np.full(runs, NEVER) for rule in RULES}
    passed = np.full(runs, NEVER)
    extended = np.zeros(runs, dtype=bool)

    for t in range(1, horizon + 1):
        in_window = t <= window
        open_runs = np.isinf(fail["SEQUENTIAL"]) & np.isinf(passed) & (in_window | extended)
        if not in_window and not open_runs.any():
            break
        n_c = rng.poisson(RPS * w, runs).astype(float)
        n_p = rng.poisson(RPS * (1 - w), runs).astype(float)
        e_c = rng.binomial(n_c.astype(int), error_c).astype(float)
        e_p = rng.binomial(n_p.astype(int), BASE_ERROR).astype(float)
        over_c = rng.binomial(n_c.astype(int), q_c).astype(float)
        over_p = rng.binomial(n_p.astype(int), q_p).astype(float)
        tau_c, tau_p = _tau_exceedances(rng, tau, n_c, n_p, over_c, over_p, factor_c)
        loss_blocks, loss_exceed, loss_excess, loss_pairs, c_block, p_block = feed.tick(t, rng, loss_c)

        if open_runs.any():  # once every run is decided the judge has nothing left to do
            engine.update(
                Tick(
                    weight=w,
                    canary_requests=n_c,
                    production_requests=n_p,
                    canary_units=n_c,  # the simulation routes each request on its own
                    production_units=n_p,
                    canary_errors=e_c,
                    production_errors=e_p,
                    canary_briefs=n_c,
                    production_briefs=n_p,
                    modes={"fast": ModeTick(n_c, n_p, over_c, tau_c, tau_p)},
                    loss_blocks=loss_blocks,
                    loss_exceed=loss_exceed,
                    loss_excess=loss_excess,
                    loss_excess_pairs=loss_pairs,
                ),
                float(t),
            )
            decision = engine.decide(float(t))
            fail["SEQUENTIAL"] = np.where(open_runs & decision.stage_fail, t, fail["SEQUENTIAL"])
            passed = np.where(open_runs & ~decision.stage_fail & decision.stage_pass, t, passed)
        if t == window:
            still_open = np.isinf(fail["SEQUENTIAL"]) & np.isinf(passed)
            extended = still_open & _suspect(engine)

        # Freeze τ after this tick's counts, as the judge's feed does (counts start next tick).
        _freeze_tau(rng, tau, cum["n_p"] + n_p, bucket_p)
        if not in_window:
            continue
        increments = {
            "n_c": n_c,
            "n_p": n_p,
            "e_c": e_c,
            "over_c": over_c,
            "closs": c_block,
            "ploss": p_block,
            "c_blocks": (c_block > 0).astype(float),
            "p_blocks": (p_block > 0).astype(float),
        }
        for key, value in increments.items():
            cum[key] += value
            if key in flagger_window:
                flagger_window[key] += value

        naive = _breach(cum)
        fail["NAIVE"] = np.where(np.isinf(fail["NAIVE"]) & naive, t, fail["NAIVE"])
        if t % 60 == 0:
            flagger_failed += _breach(flagger_window)
            fail["FLAGGER"] = np.where(np.isinf(fail["FLAGGER"]) & (flagger_failed >= 5), t, fail["FLAGGER"])
            flagger_window = {k: np.zeros(runs) for k in flagger_window}

    fixed = _breach(cum)
    share = cum["n_c"] / np.maximum(cum["n_c"] + cum["n_p"], 1)
    fixed |= np.abs(share / w - 1) > SETTINGS.split_tolerance
    fail["FIXED"] = np.where(fixed, float(window), NEVER)
    return Outcome(fail_s=fail, pass_s=passed, crossed_at=dict(engine.crossed_at), extended=extended, window_s=window)


def _breach(counts: dict[str, np.ndarray]) -> np.ndarray:
    """The classic thresholds on given counts: 5xx ≥ SLO, p95 > T, mean block loss ≥ ratio × production's."""
    requests, errors, over = counts["n_c"], counts["e_c"], counts["over_c"]
    with np.errstate(invalid="ignore", divide="ignore"):
        error_bad = (requests > 0) & (errors / np.maximum(requests, 1) >= SETTINGS.error_rate_slo)
        # p95 > T exactly when more than 5 % of requests are over T (T is a bucket edge).
        latency_bad = (requests > 0) & (over > 0.05 * requests)
        canary_mean = counts["closs"] / np.maximum(counts["c_blocks"], 1)
        production_mean = counts["ploss"] / np.maximum(counts["p_blocks"], 1)
        loss_bad = (
            (counts["c_blocks"] > 0) & (counts["p_blocks"] > 0) & (canary_mean >= SETTINGS.loss_ratio * production_mean)
        )
    return np.asarray(error_bad | latency_bad | loss_bad)


def _freeze_tau(rng: np.random.Generator, tau: np.ndarray, production_count: np.ndarray, bucket_p: np.ndarray) -> None:
    """Production's p95 rounded up to a bucket edge, with the judge's own histogram functions."""
    ready = np.flatnonzero(np.isnan(tau) & (production_count >= SETTINGS.tau_min_requests))
    for run in ready:
        counts = np.cumsum(rng.multinomial(int(production_count[run]), bucket_p))
        buckets = tuple(zip(EDGES.tolist(), counts.tolist(), strict=True))
        quantile = histogram_quantile(0.95, buckets)
        assert quantile is not None
        tau[run] = bucket_edge_at_or_above(quantile, buckets)


def _tau_exceedances(
    rng: np.random.Generator,
    tau: np.ndarray,
    n_c: np.ndarray,
    n_p: np.ndarray,
    over_c: np.ndarray,
    over_p: np.ndarray,
    factor_c: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Requests over τ this tick, consistent with the counts over T (zero while τ is not frozen)."""
    frozen = ~np.isnan(tau)
    cut = np.where(frozen, tau, THRESHOLD_S)

    def draw(n: np.ndarray, over_t: np.ndarray, factor: float) -> np.ndarray:
        q_t, q_tau = _exceed_at_threshold(factor), _exceed_at_edge(cut, factor)
        above = rng.binomial(over_t.astype(int), np.clip(q_tau / q_t, 0, 1))  # τ ≥ T: a subset of over-T
        extra = rng.binomial((n - over_t).astype(int), np.clip((q_tau - q_t) / (1 - q_t), 0, 1))
        return np.where(cut >= THRESHOLD_S, above, over_t + extra).astype(float)

    return (np.where(frozen, draw(n_c, over_c, factor_c), 0.0), np.where(frozen, draw(n_p, over_p, 1.0), 0.0))


# ----------------------------------------------------------------------------- type-I error
def null_boundary(rng: np.random.Generator, runs: int, chunk: int = 250) -> dict[str, tuple[float, float]]:
    """Crossing rate of each e-process alone at level α over the window, its null exactly true.

    One-sample tests see their true rate at p0; share tests see R = r0 while the load swings
    between 25 and 125 rps and an incident multiplies both arms' event rates by 5 for two minutes;
    the split test sees requests routed exactly at the configured weight. Evaluated at every tick.
    """
    a = SETTINGS.alpha
    bound = crossing_bound(a)
    ticks = np.arange(WINDOW_S)
    load = RPS * (1.5 + np.sin(ticks / 60.0))
    incident = np.where((ticks >= 300) & (ticks < 420), 5.0, 1.0)
    crossed: dict[str, int] = {}

    def count(label: str, log_e: np.ndarray) -> None:
        crossed[label] = crossed.get(label, 0) + int((log_e >= bound).any(axis=1).sum())

    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        for label, test, rate in (
            ("B_FAIL 5xx (p = SLO, 12.5 req/s)", BernoulliMixture.fail_form(SETTINGS.error_rate_slo), 12.5),
            ("B_FAIL p95 (p = 5 %, 12.5 req/s)", BernoulliMixture(0.05, LATENCY_FAIL_GRID), 12.5),
            ("B_FAIL loss (p = 50 %, 1 block/5 s)", BernoulliMixture(0.5, LOSS_FAIL_GRID), 0.2),
        ):
            n = rng.poisson(rate, (size, WINDOW_S))
            x = rng.binomial(n, test.p0)
            count(label, test.log_e(x.cumsum(axis=1), n.cumsum(axis=1)))
        for label, r0, base in (
            ("S 5xx (R = 1, load swings, shared incident)", 1.0, 0.002),
            ("S p95 tail (R = 1.5, load swings, shared incident)", 1.5, 0.02),
        ):
            share_test = ShareTest(r0)
            n_c = rng.poisson(load * 0.05, (size, WINDOW_S))
            n_p = rng.poisson(load * 0.95, (size, WINDOW_S))
            x_c = rng.binomial(n_c, np.minimum(base * incident * r0, 1.0))
            x_p = rng.binomial(n_p, base * incident)
            total = n_c + n_p
            share = np.where(total > 0, n_c / np.maximum(total, 1), np.nan)
            steps = share_test.update(share_test.initial((size, WINDOW_S)), x_c, x_p, share)
            count(label, share_test.log_e(np.cumsum(steps, axis=1)))
        # The loss FAIL test (sign and magnitude parts weighted as the engine does) with canary loss
        # exactly ratio × production's, blocks paired and the scale estimated as the feed does.
        for label, blocks_case in (
            ("loss FAIL (loss = 2× production, blocks 1:1)", Blocks()),
            ("loss FAIL (loss = 2× production, t₃ blocks)", Blocks(heavy=True)),
            ("loss FAIL (loss = 2× production, 1:3 as at 25 %)", Blocks(LIVE_CANARY_BLOCK_S, LIVE_CANARY_BLOCK_S / 3)),
        ):
            feed = LossFeed(size, blocks_case)
            engine = EProcessEngine(SETTINGS, shape=(size,))
            sums = np.zeros((4, size))  # pairs, D > 0, Σζ, pairs standardised
            loss_log_e = np.zeros((size, WINDOW_S))
            for t in range(1, WINDOW_S + 1):
                judged, above, zeta, pairs, _, _ = feed.tick(t, rng, SETTINGS.loss_ratio)
                sums += np.stack(np.broadcast_arrays(judged, above, zeta, pairs))
                # The engine's FAIL test of the check (EProcessEngine._refresh), on this check's counts only.
                sign = engine.loss_fail.log_e(sums[1], sums[0])
                magnitude = engine.loss_excess.log_e(sums[2], sums[3])
                loss_log_e[:, t - 1] = np.logaddexp(
                    math.log(1 - MAGNITUDE_WEIGHT) + sign, math.log(MAGNITUDE_WEIGHT) + magnitude
                )
            count(label, loss_log_e)
        split = ShareTest(1.0, SPLIT_MULTIPLIERS)
        n = rng.poisson(RPS, (size, WINDOW_S))
        n_c = rng.binomial(n, 0.05)
        steps = split.update(split.initial((size, WINDOW_S)), n_c, n - n_c, 0.05)
        count("split (5 % weight, exact)", split.log_e(np.cumsum(steps, axis=1)))
    return {label: (hits / runs, a) for label, hits in crossed.items()}


def oracle_loss_median(rng: np.random.Generator, alpha_i: float, runs: int = 20_000) -> float:
    """Median seconds to a FAIL of loss × LOSS_FACTOR at the 5 % stage for an oracle e-process.

    The oracle knows the blocks' spread and the exact regression: its e-process is the likelihood
    ratio of the paired differences at that effect (the log-optimal test for it). No valid test
    that, like the judge, learns production's level from the stage's own blocks does better, so
    this is the floor of the "loss × 3 median" figure at level α_i.
    """
    blocks = Blocks()
    period = blocks.period(blocks.canary_s)
    effect = math.log(LOSS_FACTOR / SETTINGS.loss_ratio) / (blocks.spread * math.sqrt(2))
    pairs = int(4 * WINDOW_S / period)
    log_lr = effect * np.cumsum(effect + rng.standard_normal((runs, pairs)), axis=1)
    log_lr -= np.arange(1, pairs + 1) * effect * effect / 2
    crossed = log_lr >= crossing_bound(alpha_i)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1, np.inf) * period
    return quantile(first, 0.5)


# ----------------------------------------------------------------------------- reporting
def clopper_pearson_upper(failures: int, runs: int) -> float:
    """One-sided 95 % upper bound of a rate."""
    return 1.0 if failures >= runs else float(stats.beta.ppf(0.95, failures + 1, runs - failures))


def quantile(values: np.ndarray, q: float) -> float:
    """A quantile of decision times where inf means "never" (no interpolation across inf)."""
    return float(np.quantile(values, q, method="inverted_cdf")) if values.size else math.inf


def fmt_time(values: np.ndarray | None, q: float) -> str:
    """A decision-time quantile, "never" if fewer than that share decided."""
    if values is None:
        return "-"
    value = quantile(values, q)
    return "never" if math.isinf(value) else f"{value:.0f}"


def _row(outcome: Outcome, rule: str, runs: int, scenario: str) -> dict[str, Any]:
    """The figures of one rule on one stage × scenario."""
    times = outcome.fail_s[rule]
    failed = int(np.isfinite(times).sum())
    row: dict[str, Any] = {
        "runs": runs,
        "rollback_rate": failed / runs,
        "rollback_upper95": clopper_pearson_upper(failed, runs),
        "median_s": quantile(times, 0.5),
        "p90_s": quantile(times, 0.9),
        "inconclusive_pass_rate": 1 - failed / runs,
    }
    if rule == "SEQUENTIAL" and outcome.pass_s is not None and outcome.extended is not None:
        early = np.isfinite(outcome.pass_s)
        row["pass_rate"] = float(early.mean())
        row["pass_median_s"] = quantile(outcome.pass_s, 0.5)
        row["extended_rate"] = float(outcome.extended.mean())
        row["inconclusive_pass_rate"] = float((np.isinf(times) & ~early).mean())
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the protocol, print the table and the summary line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--healthy-runs", type=int, default=2000)
    parser.add_argument("--bad-runs", type=int, default=500)
    parser.add_argument("--null-runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if min(args.healthy_runs, args.bad_runs, args.null_runs) < 1:
        parser.error("run counts must be ≥ 1")
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    engine = EProcessEngine(SETTINGS)
    print(
        f"judge simulation: {RPS:g} rps, {WINDOW_S} s window, α = {SETTINGS.alpha:g} "
        f"(α_i = {engine.alpha_i:.4g}), "
        f"β = {SETTINGS.beta:g}, seed {args.seed}, {args.healthy_runs} healthy / {args.bad_runs} bad runs "
        "per stage and scenario"
    )
    print(
        "rollback: share of runs rolled back (healthy: false rollbacks, with the one-sided 95 % Clopper-Pearson "
        "upper bound);\nmed/p90 s: time to roll back (never: not rolled back); the sequential judge runs with "
        "on_inconclusive = extend_if_suspect: ext = runs extended past the window (a check with e_fail ≥ √(1/α_i)),"
        "\nrolled back up to extend_limit_s later; PASS: runs it PASSed early; INC->pass: runs that ended "
        "undecided and passed with a warning\n(for the other rules: runs not rolled back)"
    )
    header = (
        f"{'rule':<10} {'stage':>5} {'scenario':<8} {'runs':>5} {'rollback':>8} {'95% UB':>7} "
        f"{'med s':>6} {'p90 s':>6} {'ext':>6} {'PASS':>6} {'PASS med s':>10} {'INC->pass':>9}"
    )
    print(header)
    print("-" * len(header))
    figures: dict[str, Any] = {}
    cases = [(stage, scenario, WINDOW_S, Blocks(), LOSS_FACTOR, "") for stage in STAGES for scenario in SCENARIOS]
    live = Blocks(LIVE_CANARY_BLOCK_S, LIVE_CANARY_BLOCK_S * LIVE_STAGE / (100 - LIVE_STAGE))
    cases.append((LIVE_STAGE, "loss", LIVE_WINDOW_S, live, LIVE_LOSS_FACTOR, "live"))
    for stage, scenario, window, blocks, factor, tag in cases:
        runs = args.healthy_runs if scenario == "healthy" else args.bad_runs
        outcome = simulate(stage, scenario, runs, rng, window=window, blocks=blocks, loss_factor=factor)
        name = f"{scenario}{factor:g}-{tag}" if tag else scenario
        if tag:
            print(
                f"live block rate: loss ×{factor:g} at {stage} %, a canary block every {blocks.canary_s:g} s "
                f"(production every {blocks.production_s:.1f} s), {window} s window:"
            )
        for rule in RULES:
            row = _row(outcome, rule, runs, scenario)
            figures[f"{rule}/{stage}/{name}"] = row
            times = outcome.fail_s[rule]
            bound = f"{row['rollback_upper95']:.2%}" if scenario == "healthy" else "-"
            extra = ("", "", "")
            if rule == "SEQUENTIAL":
                extra = (f"{row['extended_rate']:.1%}", f"{row['pass_rate']:.1%}", fmt_time(outcome.pass_s, 0.5))
            print(
                f"{rule:<10} {stage:>4}% {name:<8} {runs:>5} {row['rollback_rate']:>8.2%} {bound:>7} "
                f"{fmt_time(times, 0.5):>6} {fmt_time(times, 0.9):>6} {extra[0]:>6} {extra[1]:>6} {extra[2]:>10} "
                f"{row['inconclusive_pass_rate']:>9.1%}"
            )
        if tag:
            seq = outcome.fail_s["SEQUENTIAL"]
            figures[f"SEQUENTIAL/{stage}/{name}"]["within_window_rate"] = float((seq <= window).mean())
            print(f"  sequential: {float((seq <= window).mean()):.1%} rolled back within the {window} s window")
        print()
    print(
        "type-I error of each test alone at its null boundary "
        f"(crossing 1/α = {1 / SETTINGS.alpha:g} within {WINDOW_S} s):"
    )
    for label, (rate, budget) in null_boundary(rng, args.null_runs).items():
        upper = clopper_pearson_upper(round(rate * args.null_runs), args.null_runs)
        figures[f"null/{label}"] = {"rate": rate, "upper95": upper, "budget": budget}
        print(f"  {label:<58} {rate:>7.2%} (95% UB {upper:.2%}) vs α {budget:.0%}")
    oracle = oracle_loss_median(rng, engine.alpha_i)
    figures["oracle_loss_median_s"] = oracle
    print(
        f"\nloss ×{LOSS_FACTOR:g} at 5 %: an oracle knowing the spread and the effect (paired likelihood ratio at "
        f"α_i) needs {oracle:.0f} s (median): the floor for any test that estimates production's level"
    )
    elapsed = time.perf_counter() - started
    figures["elapsed_s"] = elapsed
    summary, ok = summarise(figures, args)
    print(f"\nsimulated in {elapsed:.1f} s")
    print(summary)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2)
    return 0 if ok else 1


def summarise(figures: dict[str, Any], args: argparse.Namespace) -> tuple[str, bool]:
    """One line: every target of the protocol with its measured figure and OK / MISS."""
    seq = {key.split("/", 1)[1]: row for key, row in figures.items() if key.startswith("SEQUENTIAL/")}
    checks: list[tuple[str, bool]] = []
    worst_upper = max(seq[f"{s}/healthy"]["rollback_upper95"] for s in STAGES)
    worst_rate = max(seq[f"{s}/healthy"]["rollback_rate"] for s in STAGES)
    checks.append((f"false rollback ≤ {worst_rate:.2%} (95% UB {worst_upper:.2%} ≤ 1%)", worst_upper <= 0.01))
    medians = {sc: seq[f"5/{sc}"]["median_s"] for sc in ("5xx", "latency", "loss")}
    p90s = {sc: seq[f"5/{sc}"]["p90_s"] for sc in ("5xx", "latency")}
    ok5 = medians["5xx"] <= 75 and medians["latency"] <= 75 and max(p90s.values()) <= 150
    checks.append(
        (
            f"stage 5% median detect 5xx/latency {medians['5xx']:.0f}/{medians['latency']:.0f} s "
            f"(p90 {p90s['5xx']:.0f}/{p90s['latency']:.0f} s)",
            ok5,
        )
    )
    checks.append(
        (
            f"stage 5% loss ×{LOSS_FACTOR:g} median {medians['loss']:.0f} s ≤ 60 s "
            f"(oracle floor {figures['oracle_loss_median_s']:.0f} s)",
            medians["loss"] <= 60,
        )
    )
    live = seq[f"{LIVE_STAGE}/loss{LIVE_LOSS_FACTOR:g}-live"]
    checks.append(
        (
            f"loss ×{LIVE_LOSS_FACTOR:g} at {LIVE_STAGE}% (block/{LIVE_CANARY_BLOCK_S:g} s) caught within "
            f"{LIVE_WINDOW_S} s {live['within_window_rate']:.1%} ≥ 90%",
            live["within_window_rate"] >= 0.9,
        )
    )
    speedup = min(WINDOW_S / medians[sc] for sc in medians)
    checks.append((f"{speedup:.1f}× faster than FIXED", speedup >= 10))
    detect1 = min(seq[f"1/{sc}"]["rollback_rate"] for sc in ("5xx", "latency", "loss"))
    median1 = max(seq[f"1/{sc}"]["median_s"] for sc in ("5xx", "latency", "loss"))
    latency1 = seq["1/latency"]["median_s"]
    checks.append((f"stage 1% detection ≥ {detect1:.1%}, median ≤ {median1:.0f} s", detect1 >= 0.95))
    checks.append((f"stage 1% latency median {latency1:.0f} s ≤ 300 s", latency1 <= 300))
    pass25, pass25_median = seq["25/healthy"]["pass_rate"], seq["25/healthy"]["pass_median_s"]
    checks.append(
        (
            f"stage 25% healthy PASS {pass25:.1%}, median {pass25_median:.0f} s",
            pass25 >= 0.95 and pass25_median <= 330,
        )
    )
    bad_pass = max(row["inconclusive_pass_rate"] for key, row in seq.items() if not key.endswith("/healthy"))
    checks.append((f"bad canaries INCONCLUSIVE→pass ≤ {bad_pass:.1%} (any stage)", True))
    nulls = [row for key, row in figures.items() if key.startswith("null/")]
    checks.append(
        (
            f"type-I per test ≤ {max(r['rate'] for r in nulls):.2%} (α 1%)",
            all(r["rate"] <= r["budget"] for r in nulls),
        )
    )
    naive = max(figures[f"NAIVE/{s}/healthy"]["rollback_rate"] for s in STAGES)
    parts = [f"{text} {'OK' if ok else 'MISS'}" for text, ok in checks]
    line = "SUMMARY: " + " | ".join(parts) + f" | NAIVE false rollback up to {naive:.0%}"
    return line, all(ok for _, ok in checks)


if __name__ == "__main__":
    sys.exit(main())
