"""The fixed-window judge (the classic gate) and the judge factory."""

from __future__ import annotations

from typing import Any

import pytest
from judge_synthetic import arms, run_stage

from canary_harness.errors import ConfigError
from canary_harness.judge import FixedJudge, JudgeSettings, SequentialJudge, State, make_judge
from canary_harness.metrics.types import MetricsSnapshot

SETTINGS = JudgeSettings(p95_thresholds={"fast": 2.5}, max_duration_s=300)


def test_observe_only_reports_running_figures() -> None:
    judge = FixedJudge(SETTINGS)
    canary, production = arms(seed=30, weight_percent=5, error_rate=0.5)  # clearly broken, still RUNNING
    verdict = None
    for second in range(1, 61):
        verdict = judge.observe(float(second), canary.advance(1), production.advance(1), 5)
    assert verdict is not None and verdict.state is State.RUNNING and not verdict.decided
    error_rate = verdict.check("error_rate")
    assert error_rate.state is State.RUNNING
    assert error_rate.measured is not None and error_rate.measured > 0.3
    assert verdict.check("p95_latency[fast]").measured is not None


def test_schema_failure_is_still_zero_tolerance() -> None:
    canary, production = arms(seed=31, weight_percent=25, schema_rate=0.05)
    verdict = run_stage(FixedJudge(SETTINGS), canary, production, 25, duration_s=300)
    assert verdict.state is State.FAIL and verdict.elapsed_s < 10


def test_healthy_canary_passes_at_the_end_of_the_window() -> None:
    canary, production = arms(seed=32, weight_percent=25)
    verdict = run_stage(FixedJudge(SETTINGS), canary, production, 25, duration_s=300)
    assert verdict.state is State.PASS and verdict.elapsed_s == 300 and not verdict.warning
    assert verdict.judge == "fixed"
    assert "fixed window" in verdict.check("error_rate").message


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"error_rate": 0.03}, "error_rate"),
        ({"latency_median": {"fast": 1.4}}, "p95_latency[fast]"),
        ({"loss_mean": 3.0}, "rl_loss"),
    ],
)
def test_regressions_fail_only_at_the_end(changes: dict[str, Any], check: str) -> None:
    canary, production = arms(seed=33, weight_percent=25, **changes)
    verdict = run_stage(FixedJudge(SETTINGS), canary, production, 25, duration_s=300)
    assert verdict.state is State.FAIL and verdict.elapsed_s == 300
    failed = verdict.check(check)
    assert failed.state is State.FAIL
    assert failed.threshold is not None and failed.measured is not None
    assert str(int(failed.sample_size)) in failed.message


def test_split_outside_tolerance_fails() -> None:
    canary, production = arms(seed=34, weight_percent=10)
    verdict = run_stage(FixedJudge(SETTINGS), canary, production, 5, duration_s=300)
    assert verdict.check("traffic_split").state is State.FAIL
    assert "outside ±25%" in verdict.check("traffic_split").message


def test_checks_without_samples_are_inconclusive_never_silent_passes() -> None:
    settings = SETTINGS.replace(p95_thresholds={"fast": 2.5, "creative": 4.5})
    canary, production = arms(seed=35, weight_percent=25)  # no creative requests, healthy otherwise
    verdict = run_stage(FixedJudge(settings), canary, production, 25, duration_s=300)
    creative = verdict.check("p95_latency[creative]")
    assert creative.state is State.INCONCLUSIVE and "no canary requests in mode creative" in creative.message
    assert verdict.state is State.PASS and verdict.warning  # default policy: pass_with_warning
    strict = run_stage(
        FixedJudge(settings.replace(on_inconclusive="fail")),
        *arms(seed=35, weight_percent=25),
        25,
        duration_s=300,
    )
    assert strict.state is State.FAIL


def test_empty_stage_is_inconclusive() -> None:
    judge = FixedJudge(SETTINGS)
    empty = MetricsSnapshot(taken_at=0.0)
    verdict = judge.conclude(300.0, empty, empty, 5)
    assert all(check.state is State.INCONCLUSIVE for check in verdict.checks)
    assert verdict.warning


def test_make_judge() -> None:
    assert isinstance(make_judge("sequential", SETTINGS), SequentialJudge)
    assert isinstance(make_judge("fixed", SETTINGS), FixedJudge)
    with pytest.raises(ConfigError, match="judge 'bayes': must be one of sequential, fixed"):
        make_judge("bayes", SETTINGS)
