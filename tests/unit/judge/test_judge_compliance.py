"""One compliance suite for every Judge (``make_judge`` kinds): the contract the observation loop relies on.

Fed by ``CannedMetricsSource`` (canary_harness.testing) on a clock the test advances, exactly as the stage
session feeds a judge: cumulative snapshots minus the stage-start snapshot, one ``observe`` per tick, one
``conclude`` at the window's end. A new judge joins by adding its kind to ``JUDGE_KINDS``.
"""

from __future__ import annotations

import dataclasses

import pytest

from canary_harness.judge import JUDGE_KINDS, JudgeSettings, StageVerdict, State, make_judge
from canary_harness.judge.protocol import Judge
from canary_harness.testing import ArmRates, CannedMetricsSource

WINDOW_S = 120.0
WEIGHT = 50


def settings() -> JudgeSettings:
    """A two-minute stage without warm-up, soaking for the whole window."""
    return dataclasses.replace(JudgeSettings(), max_duration_s=WINDOW_S, min_soak_s=WINDOW_S, warmup_s=0.0, tick_s=1.0)


def run_stage(judge: Judge, canary: ArmRates, production: ArmRates) -> tuple[list[StageVerdict], StageVerdict]:
    """Observe every second until a decided verdict or the window's end, then conclude if undecided."""
    now = [0.0]
    source = CannedMetricsSource({"canary": canary, "production": production}, clock=lambda: now[0])
    base = {role: source.snapshot(role) for role in ("canary", "production")}
    seen: list[StageVerdict] = []
    while now[0] + 1.0 < WINDOW_S:  # the session concludes, rather than observes, at the deadline
        now[0] += 1.0
        deltas = {role: source.snapshot(role).minus(base[role]) for role in base}
        verdict = judge.observe(now[0], deltas["canary"], deltas["production"], WEIGHT)
        seen.append(verdict)
        if verdict.decided:
            return seen, verdict
    now[0] = WINDOW_S
    deltas = {role: source.snapshot(role).minus(base[role]) for role in base}
    return seen, judge.conclude(now[0], deltas["canary"], deltas["production"], WEIGHT)


@pytest.fixture(params=JUDGE_KINDS)
def judge(request: pytest.FixtureRequest) -> Judge:
    """A fresh judge of each kind."""
    return make_judge(request.param, settings())


def test_judge_names_itself_and_starts_without_extension(judge: Judge, request: pytest.FixtureRequest) -> None:
    assert judge.name == request.node.callspec.params["judge"]
    assert judge.extension is None


def test_bad_canary_fails_and_names_the_metric(judge: Judge) -> None:
    _, verdict = run_stage(judge, ArmRates(rps=50, error_rate=0.2), ArmRates(rps=50, error_rate=0.001))
    assert verdict.state is State.FAIL and verdict.decided
    assert "5xx" in verdict.reason
    assert "error_rate" in {check.name for check in verdict.failed_checks}


def test_healthy_canary_never_fails(judge: Judge) -> None:
    seen, verdict = run_stage(judge, ArmRates(rps=50), ArmRates(rps=50))
    assert verdict.decided and verdict.state is not State.FAIL, verdict.reason
    assert all(item.state is not State.FAIL for item in seen)


def test_no_traffic_is_never_decided_before_the_window_ends(judge: Judge) -> None:
    seen, verdict = run_stage(judge, ArmRates(rps=0), ArmRates(rps=0))
    assert len(seen) == WINDOW_S - 1 and not any(item.decided for item in seen)
    assert verdict.decided, "conclude always decides"


def test_verdict_round_trips_through_its_dict(judge: Judge) -> None:
    _, verdict = run_stage(judge, ArmRates(rps=50, error_rate=0.2), ArmRates(rps=50))
    assert StageVerdict.from_dict(verdict.to_dict()) == verdict
