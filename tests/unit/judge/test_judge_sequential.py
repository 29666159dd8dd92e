"""The sequential judge through the Judge interface, fed synthetic cumulative snapshots."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from judge_synthetic import EDGES, SyntheticArm, arms, run_stage

from canary_harness.judge import FixedJudge, JudgeSettings, SequentialJudge, StageVerdict, State, make_judge
from canary_harness.judge.verdict import outcome_summary
from canary_harness.metrics.types import MetricsSnapshot

ONE_MODE = JudgeSettings(p95_thresholds={"fast": 2.5})


def test_healthy_canary_passes_early_but_not_before_min_soak() -> None:
    canary, production = arms(seed=1, weight_percent=25)
    verdict = run_stage(SequentialJudge(ONE_MODE.replace(min_soak_s=200)), canary, production, 25)
    assert verdict.state is State.PASS and verdict.decided and not verdict.warning
    assert 200 <= verdict.elapsed_s < 900
    assert all(check.state is State.PASS for check in verdict.checks)
    error_rate = verdict.check("error_rate")
    # Crossings are final: the largest e so far crossed the bound even if the current e fell since.
    assert error_rate.evidence["e_max_pass_slo"] >= error_rate.evidence["pass_bound"]  # type: ignore[operator]
    assert "shown over" in error_rate.message and "requests (canary)" in error_rate.message


def test_early_pass_can_be_switched_off() -> None:
    canary, production = arms(seed=1, weight_percent=25)
    verdict = run_stage(
        SequentialJudge(ONE_MODE.replace(early_pass=False, max_duration_s=300)),
        canary,
        production,
        25,
        duration_s=300,
    )
    assert verdict.state is State.PASS and verdict.elapsed_s == 300 and not verdict.warning


@pytest.mark.parametrize(
    ("changes", "check", "words"),
    [
        ({"error_rate": 0.03}, "error_rate", "5xx rate"),
        ({"latency_median": {"fast": 1.4}}, "p95_latency[fast]", "p95 latency (fast)"),
        ({"loss_mean": 3.0}, "rl_loss", "RL loss"),
    ],
    ids=["5xx", "latency", "loss"],
)
def test_regressions_fail_well_before_the_window_ends(changes: dict[str, Any], check: str, words: str) -> None:
    canary, production = arms(seed=2, weight_percent=5, **changes)
    verdict = run_stage(SequentialJudge(ONE_MODE), canary, production, 5)
    assert verdict.state is State.FAIL and verdict.decided
    assert verdict.elapsed_s < 400
    failed = verdict.check(check)
    assert failed.state is State.FAIL
    assert words in failed.message and "≥ 1/α=" in failed.message
    assert failed.evidence["crossed_at_s"] is not None
    assert words in verdict.reason


def test_schema_failure_fails_at_once() -> None:
    canary, production = arms(seed=3, weight_percent=25, schema_rate=0.05)
    verdict = run_stage(SequentialJudge(ONE_MODE), canary, production, 25)
    assert verdict.state is State.FAIL and verdict.elapsed_s <= 5
    assert "zero tolerance" in verdict.check("schema_failures").message


def test_schema_failure_during_warmup_still_counts_but_warmup_errors_do_not() -> None:
    settings = ONE_MODE.replace(warmup_s=30)
    judge = SequentialJudge(settings)
    canary, production = arms(seed=4, weight_percent=25, error_rate=0.5)
    for second in range(1, 30):  # a cold start: half the canary requests fail during warm-up
        verdict = judge.observe(float(second), canary.advance(1), production.advance(1), 25)
        assert verdict.state is State.RUNNING
    canary.error_rate = 0.002
    verdict = run_stage(judge, canary, production, 25)
    assert verdict.state is State.PASS
    broken = SequentialJudge(settings)
    canary, production = arms(seed=5, weight_percent=25, schema_rate=0.5)
    assert broken.observe(1.0, canary.advance(1), production.advance(1), 25).state is State.FAIL


def test_sample_ratio_mismatch_voids_the_stage() -> None:
    canary, production = arms(seed=6, weight_percent=20)  # the proxy really sends 20 % ...
    verdict = run_stage(SequentialJudge(ONE_MODE), canary, production, 5)  # ... but 5 % was set
    split = verdict.check("traffic_split")
    assert verdict.state is State.FAIL and split.state is State.FAIL
    assert "sample-ratio mismatch" in split.message and "no other verdict" in split.message
    assert verdict.elapsed_s < 60


def test_requests_on_production_at_full_weight_are_a_mismatch() -> None:
    canary, production = arms(seed=7, weight_percent=100)
    production.rps = 1.0
    verdict = run_stage(SequentialJudge(ONE_MODE), canary, production, 100, duration_s=30)
    assert verdict.state is State.FAIL and verdict.check("traffic_split").state is State.FAIL


def _silent_stage(settings: JudgeSettings, seconds: int = 120) -> StageVerdict:
    judge = SequentialJudge(settings)
    empty = MetricsSnapshot(taken_at=0.0)
    for second in range(1, seconds):
        verdict = judge.observe(float(second), empty, empty, 5)
        assert verdict.state is State.RUNNING
    return judge.conclude(float(seconds), empty, empty, 5)


def test_no_data_is_inconclusive_and_passes_only_with_a_warning() -> None:
    verdict = _silent_stage(ONE_MODE.replace(max_duration_s=120))
    assert verdict.state is State.PASS and verdict.warning and verdict.decided
    assert "INCONCLUSIVE" in verdict.reason and "compliance was not shown" in verdict.reason
    error_rate = verdict.check("error_rate")
    assert error_rate.state is State.INCONCLUSIVE
    assert "no canary requests in the whole stage" in error_rate.message
    assert "a PASS needed ~6724 requests" in error_rate.message  # n90 for a healthy 0.2 %


@pytest.mark.parametrize("policy", ["fail", "extend"])
def test_strict_policies_fail_an_inconclusive_stage(policy: str) -> None:
    verdict = _silent_stage(ONE_MODE.replace(on_inconclusive=policy, max_duration_s=60, min_soak_s=30), 60)
    assert verdict.state is State.FAIL and not verdict.warning
    assert f"on_inconclusive = {policy}" in verdict.reason


def test_inconclusive_explains_sample_size_and_detectable_regression() -> None:
    canary, production = arms(seed=8, weight_percent=1)
    verdict = run_stage(
        SequentialJudge(ONE_MODE.replace(max_duration_s=300, min_soak_s=60)),
        canary,
        production,
        1,
        duration_s=300,
    )
    assert verdict.state is State.PASS and verdict.warning
    error_rate = verdict.check("error_rate")
    assert error_rate.state is State.INCONCLUSIVE
    assert error_rate.evidence["n_needed"] == 6724
    caught = error_rate.evidence["detectable_regression"]
    assert isinstance(caught, float) and 0.005 < caught < 1
    assert "would have caught a 5xx rate ≥" in error_rate.message
    assert "over" in error_rate.message and "requests (canary)" in error_rate.message


def test_extend_keeps_observing_and_passes_once_shown() -> None:
    settings = ONE_MODE.replace(
        on_inconclusive="extend", max_duration_s=60, min_soak_s=10, extend_limit_s=900, early_pass=False
    )
    assert settings.observation_limit_s == 960
    canary, production = arms(seed=9, weight_percent=25)
    verdict = run_stage(SequentialJudge(settings), canary, production, 25, duration_s=settings.observation_limit_s)
    assert verdict.state is State.PASS and not verdict.warning
    assert 60 < verdict.elapsed_s < 960


def test_missing_mode_traffic_is_never_a_silent_pass() -> None:
    settings = JudgeSettings(p95_thresholds={"fast": 2.5, "creative": 4.5})
    canary, production = arms(seed=10, weight_percent=25)  # only "fast" requests
    verdict = run_stage(SequentialJudge(settings.replace(max_duration_s=120)), canary, production, 25, duration_s=120)
    creative = verdict.check("p95_latency[creative]")
    assert creative.state is State.INCONCLUSIVE
    assert "no canary requests in mode creative" in creative.message
    assert verdict.warning


def test_decided_verdicts_are_final() -> None:
    judge = SequentialJudge(ONE_MODE)
    canary, production = arms(seed=11, weight_percent=25, schema_rate=1.0)
    first = judge.observe(1.0, canary.advance(1), production.advance(1), 25)
    assert first.state is State.FAIL
    healthy = SyntheticArm(rng=canary.rng, rps=10.0)
    assert judge.observe(2.0, canary.advance(1), production.advance(1), 25) is first
    assert judge.conclude(3.0, healthy.advance(1), production.advance(1), 25) is first


def test_running_verdict_carries_running_figures() -> None:
    judge = SequentialJudge(ONE_MODE)
    canary, production = arms(seed=12, weight_percent=25)
    verdict = None
    for second in range(1, 31):
        verdict = judge.observe(float(second), canary.advance(1), production.advance(1), 25)
    assert verdict is not None and verdict.state is State.RUNNING and not verdict.decided
    latency = verdict.check("p95_latency[fast]")
    assert latency.measured is not None and 1.0 < latency.measured < 3.0
    assert latency.sample_size > 100
    assert verdict.check("error_rate").measured is not None
    assert "observing for 30 s" in verdict.reason


def test_verdict_round_trips_through_strict_json() -> None:
    canary, production = arms(seed=13, weight_percent=5, error_rate=0.03)
    verdict = run_stage(make_judge("sequential", ONE_MODE), canary, production, 5)
    text = json.dumps(verdict.to_dict(), allow_nan=False)
    again = StageVerdict.from_dict(json.loads(text))
    assert again == verdict
    assert again.check("error_rate").state is State.FAIL


def test_latency_threshold_must_be_a_bucket_edge() -> None:
    from canary_harness.errors import MetricsError

    judge = SequentialJudge(JudgeSettings(p95_thresholds={"fast": 2.4}))
    canary, production = arms(seed=14, weight_percent=25)
    with pytest.raises(MetricsError, match="not a histogram bucket edge"):
        judge.observe(1.0, canary.advance(1), production.advance(1), 25)
    assert 2.5 in EDGES


def test_relative_schema_policy_compares_with_production() -> None:
    settings = ONE_MODE.replace(schema_policy="relative", max_duration_s=120)
    canary, production = arms(seed=15, weight_percent=25, schema_rate=0.01)
    production.schema_rate = 0.01  # the same base rate on both arms is not a regression
    verdict = run_stage(SequentialJudge(settings), canary, production, 25, duration_s=120)
    assert verdict.check("schema_failures").state is State.PASS
    canary, production = arms(seed=16, weight_percent=25, schema_rate=0.2)
    production.schema_rate = 0.01
    verdict = run_stage(SequentialJudge(settings), canary, production, 25, duration_s=120)
    schema = verdict.check("schema_failures")
    assert verdict.state is State.FAIL and schema.state is State.FAIL
    assert "more often than production" in schema.message


def _loss_stage(settings: JudgeSettings, loss_mean: float, seed: int = 31) -> tuple[SequentialJudge, StageVerdict]:
    judge = SequentialJudge(settings)
    canary, production = arms(seed=seed, weight_percent=25, loss_mean=loss_mean)
    return judge, run_stage(judge, canary, production, 25, duration_s=settings.observation_limit_s)


def test_extend_if_suspect_extends_a_suspect_stage_and_fails_it_at_the_full_bound() -> None:
    """A regression too slow for the window: suspect at its end, extended, failed at e ≥ 1/α_i."""
    settings = ONE_MODE.replace(on_inconclusive="extend_if_suspect", max_duration_s=90, extend_limit_s=600)
    judge, verdict = _loss_stage(settings, loss_mean=4.0, seed=34)
    assert judge.extension is not None and "rl_loss e_fail=" in judge.extension
    assert "extend_if_suspect" in judge.extension and "still fails only at e_fail ≥ 1/α_i" in judge.extension
    assert verdict.state is State.FAIL and 90 < verdict.elapsed_s <= 690
    loss = verdict.check("rl_loss")
    assert loss.state is State.FAIL and float(loss.evidence["e_max_fail"]) >= loss.evidence["fail_bound"]  # type: ignore[operator,arg-type]
    assert "in the extension" in verdict.reason


def test_extend_if_suspect_ends_an_unsuspicious_stage_at_the_window_with_a_warning() -> None:
    settings = ONE_MODE.replace(on_inconclusive="extend_if_suspect", max_duration_s=60, extend_limit_s=600)
    judge = SequentialJudge(settings)
    empty = MetricsSnapshot(taken_at=0.0)
    for second in range(1, 60):
        assert judge.observe(float(second), empty, empty, 5).state is State.RUNNING
    verdict = judge.observe(60.0, empty, empty, 5)
    assert verdict.decided and verdict.state is State.PASS and verdict.warning and judge.extension is None
    assert "no check was suspect at the window end" in verdict.reason


def test_outcome_summary_never_calls_an_undecided_stage_proven() -> None:
    undecided = _silent_stage(ONE_MODE.replace(max_duration_s=120))
    assert undecided.state is State.PASS
    text = outcome_summary(undecided)
    assert text.startswith("passed undecided (") and "checks without evidence: error_rate" in text
    canary, production = arms(seed=9, weight_percent=25)
    proven = run_stage(SequentialJudge(ONE_MODE), canary, production, 25)
    assert proven.state is State.PASS and not proven.warning
    assert outcome_summary(proven) == "passed: every check decided PASS"
    canary, production = arms(seed=2, weight_percent=25, error_rate=0.05)
    assert outcome_summary(run_stage(SequentialJudge(ONE_MODE), canary, production, 25)) == "failed"


def test_rl_loss_is_not_applicable_at_full_weight_and_does_not_hold_the_stage() -> None:
    """At 100 % production makes no loss blocks: rl_loss says so (N/A, never PASS) and the stage can
    still end at its first decided PASS; at 25 % the same check is judged."""
    canary, production = arms(seed=4, weight_percent=100)
    production.next_block = math.inf  # no requests, no feedback, no PPO update: no loss block
    full = run_stage(SequentialJudge(ONE_MODE), canary, production, 100)
    assert full.state is State.PASS and full.decided and not full.warning and full.elapsed_s < 900
    loss = full.check("rl_loss")
    assert loss.state is State.NOT_APPLICABLE and "not applicable at 100 %" in loss.message
    assert outcome_summary(full) == "passed: every check decided PASS (not applicable in this stage: rl_loss)"
    canary, production = arms(seed=4, weight_percent=25)
    assert run_stage(SequentialJudge(ONE_MODE), canary, production, 25).check("rl_loss").state is State.PASS


def test_rl_loss_failure_is_still_judged_when_production_made_blocks() -> None:
    """Not applicable means no production block at all: a bad canary at 25 % still fails on its loss."""
    canary, production = arms(seed=5, weight_percent=25, loss_mean=4.0)
    verdict = run_stage(SequentialJudge(ONE_MODE), canary, production, 25)
    assert verdict.state is State.FAIL and verdict.check("rl_loss").state is State.FAIL


def test_checks_a_target_turns_off_are_na_and_do_not_hold_the_stage() -> None:
    def plain_http_arms() -> tuple[SyntheticArm, SyntheticArm]:
        # A plain HTTP service: no briefs, no RL updates, latency grouped by its own name.
        canary, production = arms(seed=3, weight_percent=25, latency_median={"checkout": 0.2})
        production.latency_median = {"checkout": 0.2}
        for arm in (canary, production):
            arm.loss_block_s = math.inf
            arm.next_block = math.inf
        return canary, production

    settings = JudgeSettings(
        p95_thresholds={"checkout": 1.0},
        checks=("error_rate", "latency", "traffic_split"),
        min_soak_s=60,
    )
    fixed = FixedJudge(settings.replace(max_duration_s=120, min_soak_s=120))
    for judge in (SequentialJudge(settings), fixed):
        verdict = run_stage(judge, *plain_http_arms(), 25, duration_s=judge.settings.max_duration_s)
        assert verdict.state is State.PASS and verdict.decided, verdict.reason
        states = {check.name: check.state for check in verdict.checks}
        assert states["schema_failures"] is State.NOT_APPLICABLE and states["rl_loss"] is State.NOT_APPLICABLE
        assert states["p95_latency[checkout]"] is State.PASS and states["error_rate"] is State.PASS
        # The stage says why, not a reason that belongs to fragrance-ai (e.g. "not applicable at 100 %").
        message = verdict.check("rl_loss").message
        assert message.startswith("RL loss vs production"), message
        assert message.endswith(": not a check of this target ([judge] checks leaves out 'rl_loss')"), message


def test_a_turned_off_check_never_fails_the_stage() -> None:
    canary, production = arms(seed=4, weight_percent=25, schema_rate=0.2)
    on = run_stage(
        SequentialJudge(ONE_MODE.replace(min_soak_s=60)), *arms(seed=4, weight_percent=25, schema_rate=0.2), 25
    )
    assert on.state is State.FAIL and on.check("schema_failures").state is State.FAIL
    settings = ONE_MODE.replace(min_soak_s=60, checks=("error_rate", "latency", "rl_loss", "traffic_split"))
    off = run_stage(SequentialJudge(settings), canary, production, 25)
    assert off.check("schema_failures").state is State.NOT_APPLICABLE and off.state is not State.FAIL
