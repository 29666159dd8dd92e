"""Plans from measured rates: measuring the streams, re-planning on a rate change, the rates round trip."""

from __future__ import annotations

import math

import pytest

from canary_harness.errors import ConfigError
from canary_harness.judge import JudgeSettings
from canary_harness.judge.planner import plan_stage
from canary_harness.judge.rates import REPLAN_EVERY_S, Replanner, StreamRates, measure, plan_from
from canary_harness.metrics.types import MetricsSnapshot

SETTINGS = JudgeSettings(p95_thresholds={"fast": 2.5}, max_duration_s=180)
STAGE = 25


def _arm(seconds: float, rps: float, seconds_per_block: float) -> MetricsSnapshot:
    """Counter deltas of one arm after ``seconds``: ``rps`` requests/s, one loss block per ``seconds_per_block``."""
    requests = rps * seconds
    updates = SETTINGS.loss_block_updates * seconds / seconds_per_block
    return MetricsSnapshot(
        taken_at=seconds,
        requests=requests,
        latency_buckets={"fast": ((2.5, requests * 0.97), (math.inf, requests))},
        rl_updates=updates,
        rl_loss_sum=updates,
    )


def _loss_fail(plan_rates: StreamRates) -> float:
    plan = plan_from(STAGE, SETTINGS, plan_rates)
    test = next(t for t in plan.tests if t.key == "rl_loss:fail")
    assert test.seconds50 is not None
    return test.seconds50


def test_measure_gives_weight_free_rates() -> None:
    canary, production = _arm(60, 12.5, 20.0), _arm(60, 37.5, 20.0 / 3)
    rates = measure(SETTINGS, 60, canary, production, "test")
    assert rates is not None
    assert rates.mode_rps == {"fast": pytest.approx(50.0)}
    # One block per 20 s at 12.5 req/s, and production three times as many at three times the traffic.
    assert rates.canary_blocks_per_request == pytest.approx(1 / (20 * 12.5))
    assert rates.production_blocks_per_request == pytest.approx(rates.canary_blocks_per_request)
    assert measure(SETTINGS, 5, canary, production, "too early") is None


def test_a_slower_block_rate_moves_the_loss_check_past_the_window_and_is_reported() -> None:
    # The plan before traffic: defaults (a block every 1.25 s), loss ×3 decided well inside 180 s.
    initial = plan_stage(STAGE, 50, SETTINGS)
    replanner = Replanner(STAGE, SETTINGS, initial)
    fast = next(t for t in initial.tests if t.key == "rl_loss:fail")
    assert fast.seconds50 is not None and fast.seconds50 < SETTINGS.max_duration_s
    # Measured: a canary block only every 20 s; production likewise per request.
    note = replanner.update(15, _arm(15, 12.5, 20.0), _arm(15, 37.5, 20.0 / 3))
    assert note is not None and "rl_loss (FAIL) now beyond the window" in note
    assert "loss blocks per 100 requests: canary 0.40" in note
    assert replanner.rates is not None and replanner.plan.tests != initial.tests
    slow = next(t for t in replanner.plan.tests if t.key == "rl_loss:fail")
    assert slow.seconds50 is not None and slow.seconds50 > SETTINGS.max_duration_s
    # Same rates half a minute later: re-planned, but nothing crossed the window end, so silent.
    assert replanner.update(15 + REPLAN_EVERY_S, _arm(45, 12.5, 20.0), _arm(45, 37.5, 20.0 / 3)) is None
    # Blocks speed up tenfold: a large change re-plans at once (before the 30 s are up) and says so.
    note = replanner.update(50, _arm(50, 12.5, 2.0), _arm(50, 37.5, 2.0 / 3))
    assert note is not None and "rl_loss (FAIL) now inside the window" in note


def test_later_stages_plan_from_the_previous_stages_rates() -> None:
    measured = measure(SETTINGS, 120, _arm(120, 2.5, 100.0), _arm(120, 47.5, 100.0 / 19), "stage 5 %")
    assert measured is not None
    again = StreamRates.from_dict(measured.to_dict(), "record")
    assert again == measured
    # At 25 % the canary gets five times the requests of the 5 % stage, so a block every 20 s: the
    # plan is the one a 25 % stage that measured a block every 20 s makes for itself.
    at_25 = measure(SETTINGS, 60, _arm(60, 12.5, 20.0), _arm(60, 37.5, 20.0 / 3), "stage 25 %")
    assert at_25 is not None
    assert _loss_fail(again) == pytest.approx(_loss_fail(at_25))
    assert plan_from(STAGE, SETTINGS, again).canary_rps == pytest.approx(12.5)


def test_damaged_rates_are_refused_with_the_place_named() -> None:
    with pytest.raises(ConfigError, match=r"measured rates in run/judge-rates.json"):
        StreamRates.from_dict(
            {"mode_rps": {"fast": -1}, "canary_blocks_per_request": 0, "production_blocks_per_request": 0},
            "run/judge-rates.json",
        )
    with pytest.raises(ConfigError, match="measured rates in x"):
        StreamRates.from_dict({"mode_rps": {}}, "x")
