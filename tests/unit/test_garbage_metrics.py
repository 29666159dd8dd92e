"""Issue 11 item 4: NaN, ±Inf, negative or backwards counters are a clear state, never a silent PASS."""

from __future__ import annotations

import math

import pytest

from canary_harness.errors import CounterResetError, MetricsError
from canary_harness.judge import make_judge
from canary_harness.judge.check_names import RL_LOSS
from canary_harness.judge.policy import CANARY_RESTART, restarted_canary
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import State
from canary_harness.metrics.scrape import parse_exposition
from tests.unit.judge.judge_synthetic import arms, run_stage
from tests.unit.test_scrape import EXPOSITION

REQUESTS = 'http_requests_total{app_version="v0.2.0",method="POST",route="/dna/create",status="200"} 90.0'
BUCKET = (
    'http_request_duration_seconds_bucket{app_version="v0.2.0",le="+Inf",method="POST",mode="fast",'
    'route="/dna/create",status="200"} 90.0'
)


@pytest.mark.parametrize(
    ("line", "garbage"),
    [
        (REQUESTS, "NaN"),
        (REQUESTS, "+Inf"),
        (REQUESTS, "-4.0"),
        (BUCKET, "NaN"),
        ('llm_brief_total{app_version="v0.2.0",mode="fast"} 94.0', "-1.0"),
        ('rl_update_loss_count{app_version="v0.2.0"} 3.0', "NaN"),
    ],
)
def test_a_garbage_count_is_refused_naming_the_series(line: str, garbage: str) -> None:
    text = EXPOSITION.replace(line, line.rsplit(" ", 1)[0] + " " + garbage)
    assert text != EXPOSITION
    with pytest.raises(MetricsError) as info:
        parse_exposition(text, taken_at=1.0)
    message = str(info.value)
    assert line.split("{", 1)[0] in message and "must be finite and >= 0" in message, message


@pytest.mark.parametrize("garbage", ["NaN", "+Inf", "-Inf"])
def test_a_non_finite_loss_sum_is_passed_on_to_the_judge(garbage: str) -> None:
    line = 'rl_update_loss_sum{app_version="v0.2.0"} 1.5'
    snap = parse_exposition(EXPOSITION.replace(line, line.replace("1.5", garbage)), taken_at=1.0)
    assert not math.isfinite(snap.rl_loss_sum) and snap.rl_updates == 3


def test_a_counter_going_backwards_is_a_counter_reset() -> None:
    before = parse_exposition(EXPOSITION, taken_at=1.0)
    after = parse_exposition(EXPOSITION.replace("} 90.0", "} 2.0"), taken_at=2.0)
    with pytest.raises(CounterResetError, match="counter requests went down .* restarted"):
        after.minus(before)


def test_a_restarted_canary_is_a_failed_stage() -> None:
    verdict = restarted_canary("sequential", 12.0, "counter requests went down (96.0 -> 3.0)")
    assert verdict.state is State.FAIL and verdict.decided
    assert verdict.check(CANARY_RESTART).state is State.FAIL
    assert "restarted during the stage" in verdict.reason


SETTINGS = JudgeSettings(max_duration_s=300, warmup_s=0, min_soak_s=60)


@pytest.mark.parametrize("judge", ["sequential", "fixed"])
def test_the_canary_own_nan_loss_fails_the_stage(judge: str) -> None:
    canary, production = arms(7, 25, loss_mean=float("nan"))
    verdict = run_stage(make_judge(judge, SETTINGS), canary, production, 25, duration_s=300)
    assert verdict.state is State.FAIL, verdict.reason
    loss = verdict.check(RL_LOSS)
    assert loss.state is State.FAIL and "non-finite" in loss.message, loss.message


@pytest.mark.parametrize("judge", ["sequential", "fixed"])
def test_production_nan_loss_never_fails_the_canary_on_loss(judge: str) -> None:
    canary, production = arms(7, 25)
    production.loss_mean = float("nan")
    verdict = run_stage(make_judge(judge, SETTINGS), canary, production, 25, duration_s=300)
    assert verdict.check(RL_LOSS).state is not State.FAIL, verdict.check(RL_LOSS).message


def test_a_healthy_canary_still_passes_the_loss_check() -> None:
    canary, production = arms(7, 25)
    verdict = run_stage(make_judge("sequential", SETTINGS), canary, production, 25, duration_s=300)
    assert verdict.check(RL_LOSS).state is not State.FAIL
