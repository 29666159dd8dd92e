"""The sequential evidence engine: every e-process of a stage, combined per check (docs/judge.md).

It consumes per-tick count increments (:class:`Tick`) and keeps, for each test, log E, whether it
has crossed its bound (crossings are final: Ville's inequality covers the first crossing) and
when. Counts may be numpy arrays of any shape: the real judge uses shape ``()``, the benchmark one
entry per simulated run, so both run this same code.

Checks and their tests (α_i = α / number of FAIL tests, β_i = β / number of PASS tests):

- error_rate: FAIL by S(errors, r0) or B_FAIL(p0 = SLO); PASS by B_PASS(p0 = SLO)
- p95_latency[m]: FAIL by B_FAIL(Z, 0.05) with Z = 1{latency > T_m} or S(exceedances of τ_m, r0);
  PASS by B_PASS(Z, 0.05)
- rl_loss: canary blocks are judged in pairs with fresh production blocks (snapshot_ticks.py), D = mean
  log canary − mean log production − log ratio. FAIL by ¼·B_FAIL(Y, 0.5) + ¾·X with Y = 1{D > 0}
  (the sign test) and X the magnitude test on the standardised D (ExcessTest); PASS by
  B_PASS(Y, 0.5). A convex combination of e-processes is an e-process, so the FAIL test keeps its
  α_i; it crosses once the magnitude part reaches (4/3)/α_i or the sign part 4/α_i
- schema_failures: zero tolerance (or S(schema failures, r0 = 1) under the "relative" policy);
  it counts as shown once at least one brief was checked
- ratio[name] (each ``[[judge.ratios]]`` check): error_rate's tests on the counters, numerator events out of
  denominator trials: FAIL by B_FAIL(p0 = max) or, with ``relative``, S(numerator, r0 = relative) over the
  shares of the denominators; PASS by B_PASS(p0 = max)
- traffic_split: sample-ratio mismatch S(requests vs configured weight) at srm_alpha; at weight
  0 or 100 any request on the wrong arm is a mismatch
- mirror_coverage (replaces traffic_split at a shadow stage, stage 0): the canary's requests are copies
  of a share s of production's, so its share of all requests is s / (1 + s); the same test at srm_alpha.
  Each production request is copied independently with probability s, so the canary's count varies less
  than the test assumes (N·s·(1 − s) against N·s / (1 + s)): the bound stays valid, conservatively.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from canary_harness.judge.check_names import COVERAGE, ERROR_RATE, RL_LOSS, SCHEMA, SPLIT, check_family, latency_check
from canary_harness.judge.eprocess import (
    LATENCY_FAIL_GRID,
    LATENCY_PASS_GRID,
    LATENCY_SHARE_MULTIPLIERS,
    LOSS_FAIL_GRID,
    LOSS_PASS_GRID,
    SPLIT_MULTIPLIERS,
    BernoulliMixture,
    ExcessTest,
    FloatArray,
    ShareTest,
    crossing_bound,
)
from canary_harness.judge.settings import LATENCY_TAIL, JudgeSettings
from canary_harness.judge.tick import ModeTick, RatioTick, Tick

BoolArray = NDArray[np.bool_]

LOSS_NULL = 0.5
# Weight of the magnitude part in the loss FAIL test's average (the sign part gets the rest): the
# magnitude part decides almost every regression; the sign part is the fallback that needs no
# shape assumption, so it keeps a quarter.
MAGNITUDE_WEIGHT = 0.75


@dataclass(frozen=True)
class TestSpec:
    """One e-process of the stage: its key, its check, its role ("fail" | "pass" | "split")."""

    key: str
    check: str
    role: str
    description: str


@dataclass(frozen=True)
class Decision:
    """Per-check and stage outcome at one moment (arrays of the engine's shape)."""

    check_fail: Mapping[str, BoolArray]
    check_pass: Mapping[str, BoolArray]
    stage_fail: BoolArray
    stage_pass: BoolArray
    # Checks that cannot be judged in this stage (no FAIL possible, never a PASS): see decide().
    not_applicable: Mapping[str, BoolArray] = field(default_factory=dict)


def _share(canary: FloatArray, production: FloatArray) -> FloatArray:
    total = canary + production
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, canary / np.where(total > 0, total, 1.0), np.nan)


class EProcessEngine:
    """All e-processes of one stage and their combination into check and stage states."""

    def __init__(self, settings: JudgeSettings, shape: tuple[int, ...] = (), shadow_share: float = 0.0) -> None:
        """``shadow_share`` (0..1): a shadow stage copying that share of production's requests to the canary
        (users at weight 0); the split check becomes the mirror-coverage check. 0: an ordinary stage."""
        if not 0.0 <= shadow_share <= 1.0:
            raise ValueError(f"shadow share {shadow_share!r}: must be in 0..1")
        self.settings = settings
        self.shape = shape
        self.shadow_share = shadow_share
        # The split check's name and test key, and at a shadow stage the canary's expected share of requests.
        self.split_name = COVERAGE if shadow_share > 0 else SPLIT
        self.split_key = f"{self.split_name}:mismatch"
        self.coverage_weight = shadow_share / (1.0 + shadow_share)
        self.modes = settings.modes
        self.error_fail = BernoulliMixture.fail_form(settings.error_rate_slo)
        self.error_pass = BernoulliMixture.pass_form(settings.error_rate_slo)
        self.error_share = ShareTest(settings.error_relative_r0)
        self.latency_fail = BernoulliMixture(LATENCY_TAIL, LATENCY_FAIL_GRID)
        self.latency_pass = BernoulliMixture(LATENCY_TAIL, LATENCY_PASS_GRID)
        self.latency_share = ShareTest(settings.latency_relative_r0, LATENCY_SHARE_MULTIPLIERS)
        self.loss_fail = BernoulliMixture(LOSS_NULL, LOSS_FAIL_GRID)
        self.loss_pass = BernoulliMixture(LOSS_NULL, LOSS_PASS_GRID)
        self.loss_excess = ExcessTest()
        self.schema_share = ShareTest(1.0)
        self.split_share = ShareTest(1.0, SPLIT_MULTIPLIERS)
        # The ratio checks' tests, by check name: the error-rate tests with their own p0 and r0.
        self.ratio_fail = {r.check: BernoulliMixture.fail_form(r.max) for r in settings.ratios}
        self.ratio_pass = {r.check: BernoulliMixture.pass_form(r.max) for r in settings.ratios}
        self.ratio_share = {r.check: ShareTest(r.relative) for r in settings.ratios if r.relative is not None}
        self.specs = self._build_specs()
        fail_count = sum(spec.role == "fail" for spec in self.specs)
        pass_count = sum(spec.role == "pass" for spec in self.specs)
        self.alpha_i = settings.alpha / fail_count
        self.beta_i = settings.beta / pass_count
        self.bounds = {
            "fail": crossing_bound(self.alpha_i),
            "pass": crossing_bound(self.beta_i),
            "split": crossing_bound(settings.srm_alpha),
        }
        zeros = np.zeros(shape, dtype=np.float64)
        self.counts: dict[str, FloatArray] = {name: zeros.copy() for name in _COUNT_NAMES}
        for mode in self.modes:
            for name in ("canary_requests", "canary_over_threshold"):
                self.counts[f"{mode}:{name}"] = zeros.copy()
        self.share_states: dict[str, FloatArray] = {
            f"{ERROR_RATE}:fail_relative": self.error_share.initial(shape),
            self.split_key: self.split_share.initial(shape),
        }
        for mode in self.modes:
            self.share_states[f"{latency_check(mode)}:fail_relative"] = self.latency_share.initial(shape)
        if settings.schema_policy == "relative":
            self.share_states[f"{SCHEMA}:fail_relative"] = self.schema_share.initial(shape)
        for ratio in settings.ratios:
            for name in _RATIO_COUNTS:
                self.counts[f"{ratio.check}:{name}"] = zeros.copy()
            if ratio.check in self.ratio_share:
                self.share_states[f"{ratio.check}:fail_relative"] = self.ratio_share[ratio.check].initial(shape)
        # Whether every tick so far had the canary at full weight (production served no one).
        self.full_weight = np.ones(shape, dtype=bool)
        self.log_e: dict[str, FloatArray] = {spec.key: zeros.copy() for spec in self.specs}
        # The largest log E so far: the evidence behind a crossing even if E has fallen since.
        self.peak: dict[str, FloatArray] = {spec.key: zeros.copy() for spec in self.specs}
        self.crossed: dict[str, BoolArray] = {spec.key: np.zeros(shape, dtype=bool) for spec in self.specs}
        self.crossed_at: dict[str, FloatArray] = {spec.key: np.full(shape, np.nan) for spec in self.specs}
        # log E of the sign and magnitude parts of the loss FAIL test (their average is the test).
        self.loss_parts: dict[str, FloatArray] = {"sign": zeros.copy(), "magnitude": zeros.copy()}

    def _build_specs(self) -> tuple[TestSpec, ...]:
        s = self.settings
        specs = [
            TestSpec(
                f"{ERROR_RATE}:fail_relative",
                ERROR_RATE,
                "fail",
                f"5xx vs production (r0 {s.error_relative_r0:g})",
            ),
            TestSpec(f"{ERROR_RATE}:fail_slo", ERROR_RATE, "fail", f"5xx > SLO {s.error_rate_slo:.2%}"),
            TestSpec(f"{ERROR_RATE}:pass_slo", ERROR_RATE, "pass", f"5xx < SLO {s.error_rate_slo:.2%}"),
        ]
        for mode in self.modes:
            name = latency_check(mode)
            threshold = s.p95_thresholds[mode]
            specs += [
                TestSpec(f"{name}:fail_threshold", name, "fail", f"> 5 % over {threshold:g} s"),
                TestSpec(
                    f"{name}:fail_relative",
                    name,
                    "fail",
                    f"tail vs production (r0 {s.latency_relative_r0:g})",
                ),
                TestSpec(f"{name}:pass_threshold", name, "pass", f"< 5 % over {threshold:g} s"),
            ]
        specs += [
            TestSpec(
                f"{RL_LOSS}:fail", RL_LOSS, "fail", f"canary vs {s.loss_ratio:g}× production blocks: > 50 % or by size"
            ),
            TestSpec(f"{RL_LOSS}:pass", RL_LOSS, "pass", f"canary vs {s.loss_ratio:g}× production blocks: < 50 %"),
        ]
        if s.schema_policy == "relative":
            specs.append(TestSpec(f"{SCHEMA}:fail_relative", SCHEMA, "fail", "schema failures vs production"))
        for ratio in s.ratios:
            name = ratio.check
            if ratio.relative is not None:
                specs.append(
                    TestSpec(f"{name}:fail_relative", name, "fail", f"share vs production (r0 {ratio.relative:g})")
                )
            specs += [
                TestSpec(f"{name}:fail_slo", name, "fail", f"share > {ratio.max:.2%}"),
                TestSpec(f"{name}:pass_slo", name, "pass", f"share < {ratio.max:.2%}"),
            ]
        if self.split_name == COVERAGE:
            description = f"canary copies vs {self.shadow_share:.0%} of production's requests"
        else:
            description = "canary share vs configured weight"
        specs.append(TestSpec(self.split_key, self.split_name, "split", description))
        return tuple(specs)

    @property
    def checks(self) -> tuple[str, ...]:
        """Check names in report order."""
        ratios = (ratio.check for ratio in self.settings.ratios)
        return (ERROR_RATE, *(latency_check(m) for m in self.modes), *ratios, SCHEMA, RL_LOSS, self.split_name)

    def spec(self, key: str) -> TestSpec:
        """The test called ``key``."""
        return next(spec for spec in self.specs if spec.key == key)

    def tests_of(self, check: str) -> tuple[TestSpec, ...]:
        """The tests that make up one check."""
        return tuple(spec for spec in self.specs if spec.check == check)

    # ------------------------------------------------------------------ update
    def update(self, tick: Tick, elapsed_s: float) -> None:
        """Add one tick's increments and refresh every e-value and crossing."""
        c = self.counts
        inc = {
            name: np.asarray(getattr(tick, name), dtype=np.float64)
            for name in _COUNT_NAMES
            if name not in ("loss_blocks", "loss_exceed", "loss_excess", "loss_excess_pairs", "misrouted")
        }
        for name, value in inc.items():
            c[name] = c[name] + value
        c["loss_blocks"] = c["loss_blocks"] + np.asarray(tick.loss_blocks, dtype=np.float64)
        c["loss_exceed"] = c["loss_exceed"] + np.asarray(tick.loss_exceed, dtype=np.float64)
        c["loss_excess"] = c["loss_excess"] + np.asarray(tick.loss_excess, dtype=np.float64)
        c["loss_excess_pairs"] = c["loss_excess_pairs"] + np.asarray(tick.loss_excess_pairs, dtype=np.float64)
        weight = np.asarray(tick.weight, dtype=np.float64)
        self.full_weight = self.full_weight & (weight >= 1)
        wrong_arm = np.where(
            weight >= 1, inc["production_requests"], np.where(weight <= 0, inc["canary_requests"], 0.0)
        )
        if self.shadow_share > 0:
            wrong_arm = np.zeros(self.shape)  # at weight 0 the canary's requests are the copies
        c["misrouted"] = c["misrouted"] + wrong_arm

        states = self.share_states
        request_share = _share(inc["canary_requests"], inc["production_requests"])
        key = f"{ERROR_RATE}:fail_relative"
        states[key] = self.error_share.update(
            states[key], inc["canary_errors"], inc["production_errors"], request_share
        )
        key = self.split_key
        if self.shadow_share > 0:
            # Copies are per request (journeys are not copied as units): requests against s / (1 + s).
            states[key] = self.split_share.update(
                states[key], inc["canary_requests"], inc["production_requests"], self.coverage_weight
            )
        else:
            states[key] = self.split_share.update(states[key], inc["canary_units"], inc["production_units"], weight)
        if SCHEMA + ":fail_relative" in states:
            key = f"{SCHEMA}:fail_relative"
            states[key] = self.schema_share.update(
                states[key],
                inc["canary_schema_failures"],
                inc["production_schema_failures"],
                _share(inc["canary_briefs"], inc["production_briefs"]),
            )
        for mode in self.modes:
            tick_mode = tick.modes.get(mode, ModeTick())
            n_c = np.asarray(tick_mode.canary_requests, dtype=np.float64)
            n_p = np.asarray(tick_mode.production_requests, dtype=np.float64)
            c[f"{mode}:canary_requests"] = c[f"{mode}:canary_requests"] + n_c
            c[f"{mode}:canary_over_threshold"] = c[f"{mode}:canary_over_threshold"] + np.asarray(
                tick_mode.canary_over_threshold, dtype=np.float64
            )
            key = f"{latency_check(mode)}:fail_relative"
            states[key] = self.latency_share.update(
                states[key], tick_mode.canary_over_tau, tick_mode.production_over_tau, _share(n_c, n_p)
            )
        for ratio in self.settings.ratios:
            self._update_ratio(ratio.check, tick.ratios.get(ratio.name, RatioTick()))
        self._refresh(elapsed_s)

    def _update_ratio(self, name: str, tick: RatioTick) -> None:
        c = self.counts
        values = {field_name: np.asarray(getattr(tick, field_name), dtype=np.float64) for field_name in _RATIO_COUNTS}
        for field_name, value in values.items():
            c[f"{name}:{field_name}"] = c[f"{name}:{field_name}"] + value
        if name in self.ratio_share:
            key = f"{name}:fail_relative"
            self.share_states[key] = self.ratio_share[name].update(
                self.share_states[key],
                values["canary_events"],
                values["production_events"],
                _share(values["canary_trials"], values["production_trials"]),
            )

    def _refresh(self, elapsed_s: float) -> None:
        c = self.counts
        log_e = self.log_e
        log_e[f"{ERROR_RATE}:fail_relative"] = self.error_share.log_e(self.share_states[f"{ERROR_RATE}:fail_relative"])
        log_e[f"{ERROR_RATE}:fail_slo"] = self.error_fail.log_e(c["canary_errors"], c["canary_requests"])
        log_e[f"{ERROR_RATE}:pass_slo"] = self.error_pass.log_e(c["canary_errors"], c["canary_requests"])
        for mode in self.modes:
            name = latency_check(mode)
            over, total = c[f"{mode}:canary_over_threshold"], c[f"{mode}:canary_requests"]
            log_e[f"{name}:fail_threshold"] = self.latency_fail.log_e(over, total)
            log_e[f"{name}:pass_threshold"] = self.latency_pass.log_e(over, total)
            log_e[f"{name}:fail_relative"] = self.latency_share.log_e(self.share_states[f"{name}:fail_relative"])
        # The two parts of the loss FAIL test, kept for the report; the test itself is their average.
        sign = self.loss_fail.log_e(c["loss_exceed"], c["loss_blocks"])
        size = self.loss_excess.log_e(c["loss_excess"], c["loss_excess_pairs"])
        self.loss_parts = {"sign": sign, "magnitude": size}
        log_e[f"{RL_LOSS}:fail"] = np.logaddexp(
            math.log(1 - MAGNITUDE_WEIGHT) + sign, math.log(MAGNITUDE_WEIGHT) + size
        )
        log_e[f"{RL_LOSS}:pass"] = self.loss_pass.log_e(c["loss_exceed"], c["loss_blocks"])
        if f"{SCHEMA}:fail_relative" in log_e:
            log_e[f"{SCHEMA}:fail_relative"] = self.schema_share.log_e(self.share_states[f"{SCHEMA}:fail_relative"])
        log_e[self.split_key] = self.split_share.log_e(self.share_states[self.split_key])
        for ratio in self.settings.ratios:
            name = ratio.check
            trials = c[f"{name}:canary_trials"]
            # A numerator above its denominator (counters read a scrape apart, or not a subset as promised)
            # is capped: more failures than orders is no Bernoulli count.
            events = np.minimum(c[f"{name}:canary_events"], trials)
            log_e[f"{name}:fail_slo"] = self.ratio_fail[name].log_e(events, trials)
            log_e[f"{name}:pass_slo"] = self.ratio_pass[name].log_e(events, trials)
            if name in self.ratio_share:
                log_e[f"{name}:fail_relative"] = self.ratio_share[name].log_e(
                    self.share_states[f"{name}:fail_relative"]
                )
        for spec in self.specs:
            self.peak[spec.key] = np.maximum(self.peak[spec.key], log_e[spec.key])
            now = log_e[spec.key] >= self.bounds[spec.role]
            fresh = now & ~self.crossed[spec.key]
            self.crossed_at[spec.key] = np.where(fresh, elapsed_s, self.crossed_at[spec.key])
            self.crossed[spec.key] = self.crossed[spec.key] | now

    # ------------------------------------------------------------------ decide
    def decide(self, elapsed_s: float) -> Decision:
        """Check and stage outcome now: FAIL at any crossing, PASS once every check is shown."""
        c = self.counts
        fails: dict[str, BoolArray] = {}
        passes: dict[str, BoolArray] = {}
        for check in self.checks:
            specs = self.tests_of(check)
            fail = np.zeros(self.shape, dtype=bool)
            for spec in specs:
                if spec.role in ("fail", "split"):
                    fail = fail | self.crossed[spec.key]
            pass_specs = [spec for spec in specs if spec.role == "pass"]
            shown = np.ones(self.shape, dtype=bool)
            for spec in pass_specs:
                shown = shown & self.crossed[spec.key]
            if check == SCHEMA:
                if self.settings.schema_policy == "zero_tolerance":
                    fail = fail | (c["canary_schema_failures"] > 0)
                shown = c["canary_briefs"] > 0
            elif check == self.split_name:
                fail = fail | (c["misrouted"] > 0)
                # Shown once the canary received one of the units the check counts (units counted late,
                # as NGINX's log releases them, must not show a split the check has not seen yet).
                shown = c["canary_units"] > 0
            fails[check] = fail
            passes[check] = shown & ~fail
        # At 100 % production serves no traffic and makes no loss blocks: the RL-loss check has nothing
        # to compare with (it was judged at the previous stage). It neither passes nor holds the stage.
        no_reference = self.full_weight & (c["loss_blocks"] == 0) & ~fails[RL_LOSS]
        not_applicable: dict[str, BoolArray] = {RL_LOSS: no_reference}
        for check in self.checks:  # families the target turned off: never fail, never hold the stage
            if check_family(check) not in self.settings.checks:
                fails[check] = np.zeros(self.shape, dtype=bool)
                passes[check] = np.zeros(self.shape, dtype=bool)
                not_applicable[check] = np.ones(self.shape, dtype=bool)
        stage_fail = np.zeros(self.shape, dtype=bool)
        stage_pass = np.ones(self.shape, dtype=bool)
        for check in self.checks:
            stage_fail = stage_fail | fails[check]
            stage_pass = stage_pass & (passes[check] | not_applicable.get(check, False))
        stage_pass = stage_pass & ~stage_fail & (elapsed_s >= self.settings.min_soak_s)
        return Decision(fails, passes, stage_fail, stage_pass, not_applicable)


_RATIO_COUNTS = ("canary_events", "canary_trials", "production_events", "production_trials")
_COUNT_NAMES = (
    "canary_requests",
    "production_requests",
    "canary_errors",
    "production_errors",
    "canary_units",
    "production_units",
    "canary_briefs",
    "canary_schema_failures",
    "production_briefs",
    "production_schema_failures",
    "loss_blocks",
    "loss_exceed",
    "loss_excess",
    "loss_excess_pairs",
    "misrouted",
)
