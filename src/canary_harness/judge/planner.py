"""The stage planner: before traffic moves, how long each check of a stage needs.

For every e-process of the sequential judge, the exact sample sizes n50 / n90 at which it crosses
its bound for the minimum detectable effect (FAIL tests) or for a healthy canary (PASS tests),
turned into seconds from the request rate and the stage weight. A test whose fewest possible
samples exceed what the window delivers can never reach a verdict; the plan says so in plain words.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from canary_harness.errors import ConfigError
from canary_harness.judge.check_names import ERROR_RATE, RL_LOSS, latency_check
from canary_harness.judge.eprocess import BernoulliMixture, ShareTest
from canary_harness.judge.eprocess_engine import MAGNITUDE_WEIGHT, EProcessEngine
from canary_harness.judge.plan_notes import plan_notes
from canary_harness.judge.planning_assumptions import (
    latency_exceedance,
    loss_exceedance,
    loss_pair_effect,
    predicted_tau,
)
from canary_harness.judge.power import SampleSize, magnitude_sample_sizes, sample_sizes
from canary_harness.judge.ratio_settings import RatioCheck
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.stage_plan import (
    LIKELY,
    NEVER,
    NOT_APPLICABLE,
    POSSIBLE,
    UNLIKELY,
    MeasuredStreams,
    StagePlan,
    TestPlan,
)


def plan_stage(
    stage_percent: int,
    total_rps: float,
    settings: JudgeSettings,
    mode_mix: Mapping[str, float] | None = None,
    rates: MeasuredStreams | None = None,
) -> StagePlan:
    """Plan a stage at ``stage_percent`` % of ``total_rps`` requests per second.

    ``mode_mix`` is the share of requests per LLM mode (default: equal over the judged modes).
    ``rates`` (measured loss blocks per request on each arm) replaces the assumption of one loss
    block every ``loss_block_s`` on each arm: canary blocks then arrive at canary req/s × blocks
    per request and are judged in pairs with the production blocks that arrived meanwhile.
    """
    if isinstance(stage_percent, bool) or not isinstance(stage_percent, int) or not 0 <= stage_percent <= 100:
        raise ConfigError(f"stage {stage_percent!r}: must be an integer percentage in 0..100")
    if not isinstance(total_rps, int | float) or not math.isfinite(total_rps) or total_rps <= 0:
        raise ConfigError(f"request rate {total_rps!r}: must be a positive number of requests per second")
    mix = _mode_mix(settings, mode_mix)
    engine = EProcessEngine(settings)
    ctx = _Planner(settings, engine, stage_percent / 100.0, float(total_rps), rates)
    tests = [*ctx.error_tests()] if "error_rate" in settings.checks else []
    if "latency" in settings.checks:
        for mode in settings.modes:
            tests += ctx.latency_tests(mode, mix[mode])
    if "ratio" in settings.checks:
        for ratio in settings.ratios:
            tests += ctx.ratio_tests(ratio)
    if "rl_loss" in settings.checks:  # families the target turned off are not planned: they are N/A
        tests += ctx.loss_tests()
    plan = StagePlan(
        stage_percent=stage_percent,
        total_rps=float(total_rps),
        canary_rps=ctx.canary_rps,
        max_duration_s=settings.max_duration_s,
        warmup_s=settings.warmup_s,
        min_soak_s=settings.min_soak_s,
        alpha_i=engine.alpha_i,
        beta_i=engine.beta_i,
        tests=tuple(tests),
        notes=(),
    )
    return dataclasses.replace(plan, notes=plan_notes(plan, settings))


def _mode_mix(settings: JudgeSettings, mode_mix: Mapping[str, float] | None) -> dict[str, float]:
    if mode_mix is None:
        return {mode: 1.0 / len(settings.modes) for mode in settings.modes}
    for mode, share in mode_mix.items():
        if mode not in settings.modes:
            raise ConfigError(f"mode mix entry {mode!r}: not a judged mode ({', '.join(settings.modes)})")
        if not isinstance(share, int | float) or not math.isfinite(share) or share < 0:
            raise ConfigError(f"mode mix entry {mode}={share!r}: must be a non-negative number")
    total = sum(mode_mix.values())
    if total <= 0:
        raise ConfigError(f"mode mix {dict(mode_mix)!r}: the shares must add up to more than 0")
    return {mode: mode_mix.get(mode, 0.0) / total for mode in settings.modes}


class _Planner:
    """Builds TestPlans for one stage."""

    def __init__(
        self,
        settings: JudgeSettings,
        engine: EProcessEngine,
        weight: float,
        total_rps: float,
        rates: MeasuredStreams | None = None,
    ) -> None:
        self.rates = rates
        self.s = settings
        self.engine = engine
        self.weight = weight
        self.total_rps = total_rps
        self.canary_rps = total_rps * weight
        self.window = settings.max_duration_s - settings.warmup_s

    def _plan(
        self,
        key: str,
        test: BernoulliMixture,
        true_rate: float,
        rate: float,
        effect: str,
        unit: str = "requests",
        per_sample: float = 1.0,
        wait_s: float = 0.0,
        budget: float | None = None,
        sizes: SampleSize | None = None,
    ) -> TestPlan:
        """Size ``test`` (or take ``sizes``); samples arrive at ``rate``/s and each counts ``per_sample`` ``unit``."""
        spec = self.engine.spec(key)
        if budget is None:
            budget = self.engine.alpha_i if spec.role == "fail" else self.engine.beta_i
        # Nothing is judged before ``wait_s``: a wait past the window leaves no samples at all.
        available = rate * self.window if wait_s < self.window else 0.0
        if rate <= 0:
            return self._empty(key, spec.description, effect, unit, NEVER)
        limit = int(min(200_000, max(20_000, 3 * available)))
        size = sizes if sizes is not None else sample_sizes(test, true_rate, budget, limit=limit)
        reach = _reach(size, available)

        def seconds(n: int | None) -> float | None:
            # Samples that arrive before ``wait_s`` are judged together when it ends.
            return None if n is None else self.s.warmup_s + max(n / rate, wait_s)

        def scaled(n: int | None) -> int | None:
            return None if n is None else int(math.ceil(n * per_sample))

        return TestPlan(
            check=spec.check,
            key=key,
            role=spec.role,
            description=spec.description,
            effect=effect,
            unit=unit,
            rate=rate * per_sample,
            available=available * per_sample,
            n50=scaled(size.n50),
            n90=scaled(size.n90),
            n_min=scaled(size.n_min),
            seconds50=seconds(size.n50),
            seconds90=seconds(size.n90),
            reach=reach,
        )

    def _empty(self, key: str, description: str, effect: str, unit: str, reach: str) -> TestPlan:
        """A test that gets no samples at this stage."""
        spec = self.engine.spec(key)
        return TestPlan(
            check=spec.check,
            key=key,
            role=spec.role,
            description=description,
            effect=effect,
            unit=unit,
            rate=0.0,
            available=0.0,
            n50=None,
            n90=None,
            n_min=None,
            seconds50=None,
            seconds90=None,
            reach=reach,
        )

    def _not_applicable(self, key: str, effect: str, why: str) -> TestPlan:
        return self._empty(key, f"{self.engine.spec(key).description} ({why})", effect, "requests", NOT_APPLICABLE)

    def _share_plan(
        self,
        key: str,
        share_test: ShareTest,
        canary_rate: float,
        production_rate: float,
        canary_rps: float,
        production_rps: float,
        effect: str,
    ) -> TestPlan:
        """A share test as a Bernoulli mixture over events, reported in canary requests."""
        if canary_rps <= 0 or production_rps <= 0:
            return self._not_applicable(key, effect, "needs traffic on both arms")
        share = canary_rps / (canary_rps + production_rps)
        events_per_s = canary_rps * canary_rate + production_rps * production_rate
        ratio = canary_rate / production_rate
        test = share_test.as_bernoulli(share)
        true_share = share_test.canary_probability(ratio, share)
        return self._plan(key, test, true_share, events_per_s, effect, per_sample=canary_rps / events_per_s)

    def error_tests(self) -> list[TestPlan]:
        s, e = self.s, self.engine
        bad = f"5xx {s.mde_error_rate:.2%}"
        healthy = f"5xx {s.healthy_error_rate:.2%}"
        return [
            self._plan(f"{ERROR_RATE}:fail_slo", e.error_fail, s.mde_error_rate, self.canary_rps, bad),
            self._share_plan(
                f"{ERROR_RATE}:fail_relative",
                e.error_share,
                s.mde_error_rate,
                s.healthy_error_rate,
                self.canary_rps,
                self.total_rps - self.canary_rps,
                f"{bad} vs {s.healthy_error_rate:.2%}",
            ),
            self._plan(f"{ERROR_RATE}:pass_slo", e.error_pass, s.healthy_error_rate, self.canary_rps, healthy),
        ]

    def ratio_tests(self, ratio: RatioCheck) -> list[TestPlan]:
        """error_tests with the ratio's own max: its denominator is assumed to count one event per request."""
        e, name = self.engine, ratio.check
        bad, healthy = f"share {ratio.planned_mde:.2%}", f"share {ratio.planned_healthy:.2%}"
        unit = ratio.denominator.name
        tests = [
            self._plan(f"{name}:fail_slo", e.ratio_fail[name], ratio.planned_mde, self.canary_rps, bad, unit),
            self._plan(f"{name}:pass_slo", e.ratio_pass[name], ratio.planned_healthy, self.canary_rps, healthy, unit),
        ]
        if name in e.ratio_share:
            tests.insert(
                1,
                self._share_plan(
                    f"{name}:fail_relative",
                    e.ratio_share[name],
                    ratio.planned_mde,
                    ratio.planned_healthy,
                    self.canary_rps,
                    self.total_rps - self.canary_rps,
                    f"{bad} vs {ratio.planned_healthy:.2%}",
                ),
            )
        return tests

    def latency_tests(self, mode: str, mix: float) -> list[TestPlan]:
        s, e = self.s, self.engine
        name = latency_check(mode)
        canary_rps = self.canary_rps * mix
        production_rps = (self.total_rps - self.canary_rps) * mix
        slower = f"+{s.mde_latency_factor - 1:.0%} latency"
        bad = latency_exceedance(s, mode, s.mde_latency_factor)
        healthy = latency_exceedance(s, mode)
        tau = predicted_tau(s, mode)
        canary_tail = latency_exceedance(s, mode, s.mde_latency_factor, cut=tau)
        production_tail = latency_exceedance(s, mode, 1.0, cut=tau)
        relative = f"{slower} (τ {tau:g} s)"
        if canary_tail / production_tail <= s.latency_relative_r0:
            relative_plan = self._not_applicable(f"{name}:fail_relative", relative, "effect within r0")
        else:
            relative_plan = self._share_plan(
                f"{name}:fail_relative",
                e.latency_share,
                canary_tail,
                production_tail,
                canary_rps,
                production_rps,
                relative,
            )
        return [
            self._plan(f"{name}:fail_threshold", e.latency_fail, bad, canary_rps, f"{slower} ({bad:.1%} over)"),
            relative_plan,
            self._plan(f"{name}:pass_threshold", e.latency_pass, healthy, canary_rps, f"healthy ({healthy:.1%} over)"),
        ]

    def loss_tests(self) -> list[TestPlan]:
        s, e = self.s, self.engine
        if self.canary_rps > 0 and self.canary_rps >= self.total_rps:
            # At 100 % production makes no loss blocks: the check is not applicable (judged before).
            why = "n/a at 100 %: no production traffic"
            return [
                self._empty(key, f"{e.spec(key).description} ({why})", f"loss ×{s.mde_loss_factor:g}", "pairs",
                            NOT_APPLICABLE)
                for key in (f"{RL_LOSS}:fail", f"{RL_LOSS}:pass")
            ]  # fmt: skip
        canary_rate = 1.0 / s.loss_block_s if self.canary_rps > 0 else 0.0
        production_rate = 1.0 / s.loss_block_s if self.total_rps > self.canary_rps else 0.0
        if self.rates is not None:
            canary_rate = self.canary_rps * self.rates.canary_blocks_per_request
            production_rate = (self.total_rps - self.canary_rps) * self.rates.production_blocks_per_request
        # A pair forms once both arms have a block: at the slower arm's rate, each canary block
        # meeting production_rate / canary_rate production blocks (fewer than one: they share).
        rate = min(canary_rate, production_rate)
        per_canary = production_rate / canary_rate if canary_rate > 0 else 1.0
        wait = 1.0 / production_rate if production_rate > 0 else math.inf
        bad = loss_exceedance(s, s.mde_loss_factor, per_canary)
        healthy = loss_exceedance(s, 1.0, per_canary)
        effect = f"loss ×{s.mde_loss_factor:g}"
        # The FAIL test is ¼·sign + ¾·magnitude: it crosses once the sign part reaches 1/(¼·α_i) or
        # the magnitude part 1/(¾·α_i). The plan is the faster of those two sufficient conditions.
        sign = self._plan(
            f"{RL_LOSS}:fail",
            e.loss_fail,
            bad,
            rate,
            effect,
            unit="pairs",
            wait_s=wait,
            budget=self.engine.alpha_i * (1 - MAGNITUDE_WEIGHT),
        )
        limit = int(min(200_000, max(20_000, 3 * rate * self.window)))
        sizes = magnitude_sample_sizes(
            e.loss_excess,
            loss_pair_effect(s, s.mde_loss_factor, per_canary),
            self.engine.alpha_i * MAGNITUDE_WEIGHT,
            limit,
        )
        magnitude = self._plan(
            f"{RL_LOSS}:fail", e.loss_fail, bad, rate, effect, unit="pairs", wait_s=wait, sizes=sizes
        )
        fail = magnitude if _faster(magnitude, sign) else sign
        return [
            fail,
            self._plan(f"{RL_LOSS}:pass", e.loss_pass, healthy, rate, "healthy loss", unit="pairs", wait_s=wait),
        ]


def _faster(one: TestPlan, other: TestPlan) -> bool:
    """Whether ``one`` expects to decide sooner (by n50, then n90; None is never)."""

    def key(plan: TestPlan) -> tuple[float, float]:
        return (math.inf if plan.n50 is None else plan.n50, math.inf if plan.n90 is None else plan.n90)

    return key(one) <= key(other)


def _reach(size: SampleSize, available: float) -> str:
    if size.n_min is None or size.n_min > available:
        return NEVER
    if size.n90 is not None and size.n90 <= available:
        return LIKELY
    if size.n50 is not None and size.n50 <= available:
        return POSSIBLE
    return UNLIKELY
