"""Judging a shadow stage (stage 0): the canary's copies against production, and the mirror-coverage check."""

from __future__ import annotations

import numpy as np
import pytest

from canary_harness.judge import FixedJudge, JudgeSettings, SequentialJudge, State, make_judge
from canary_harness.judge.check_names import COVERAGE, SPLIT
from canary_harness.judge.eprocess_engine import EProcessEngine
from tests.unit.judge.judge_synthetic import SyntheticArm, run_stage

SETTINGS = JudgeSettings(min_soak_s=60.0, max_duration_s=600.0)
RPS = 40.0


def shadow_arms(seed: int, share: float, copied: float | None = None, **canary: object) -> tuple[SyntheticArm, ...]:
    """Production at RPS; the canary sees ``copied`` (default: ``share``) of it as copies."""
    rng = np.random.default_rng(seed)
    production = SyntheticArm(rng=rng, rps=RPS)
    arm = SyntheticArm(rng=rng, rps=RPS * (share if copied is None else copied))
    for name, value in canary.items():
        setattr(arm, name, value)
    return arm, production


def check(verdict_checks: tuple, name: str):  # type: ignore[no-untyped-def]
    return next(item for item in verdict_checks if item.name == name)


@pytest.mark.parametrize("share", [1.0, 0.3])
def test_healthy_shadow_stage_passes_with_the_coverage_check_instead_of_the_split(share: float) -> None:
    canary, production = shadow_arms(1, share)
    verdict = run_stage(SequentialJudge(SETTINGS, shadow_share=share), canary, production, 0)
    names = [item.name for item in verdict.checks]
    assert COVERAGE in names and SPLIT not in names
    assert verdict.state is State.PASS, verdict.reason
    coverage = check(verdict.checks, COVERAGE)
    assert coverage.state is State.PASS
    assert coverage.measured == pytest.approx(share, rel=0.1)
    assert "coverage as configured" in coverage.message


def test_missing_copies_fail_the_coverage_check() -> None:
    canary, production = shadow_arms(2, 1.0, copied=0.6)
    verdict = run_stage(SequentialJudge(SETTINGS, shadow_share=1.0), canary, production, 0)
    assert verdict.state is State.FAIL
    coverage = check(verdict.checks, COVERAGE)
    assert coverage.state is State.FAIL
    assert "mirror coverage mismatch" in coverage.message and "shadow share 100" in coverage.message


def test_canary_requests_at_weight_zero_are_not_misrouted_in_a_shadow_stage() -> None:
    canary, production = shadow_arms(3, 1.0)
    judge = SequentialJudge(SETTINGS, shadow_share=1.0)
    run_stage(judge, canary, production, 0, duration_s=30.0)
    assert float(judge.engine.counts["misrouted"]) == 0.0
    # The same counts at an ordinary stage at weight 0 are a mismatch at once.
    canary, production = shadow_arms(3, 1.0)
    verdict = run_stage(SequentialJudge(SETTINGS), canary, production, 0, duration_s=30.0)
    assert check(verdict.checks, SPLIT).state is State.FAIL


def test_a_five_percent_5xx_canary_fails_on_its_copies() -> None:
    canary, production = shadow_arms(4, 1.0, error_rate=0.05)
    verdict = run_stage(make_judge("sequential", SETTINGS, 1.0), canary, production, 0)
    assert verdict.state is State.FAIL
    assert check(verdict.checks, "error_rate").state is State.FAIL
    assert verdict.elapsed_s < 120, verdict.reason


@pytest.mark.parametrize(("copied", "state"), [(1.0, State.PASS), (0.5, State.FAIL)])
def test_fixed_judge_compares_copies_with_the_share(copied: float, state: State) -> None:
    canary, production = shadow_arms(5, 1.0, copied=copied)
    verdict = run_stage(FixedJudge(SETTINGS, shadow_share=1.0), canary, production, 0, duration_s=120.0)
    coverage = check(verdict.checks, COVERAGE)
    assert coverage.state is state, coverage.message
    assert "shadow share 100" in coverage.message


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_engine_refuses_a_share_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError, match="shadow share"):
        EProcessEngine(SETTINGS, shadow_share=bad)
