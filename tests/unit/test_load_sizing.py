"""--load-rate auto's sizing: bounds, users for the rate, real traffic subtracted (pure arithmetic)."""

from __future__ import annotations

import pytest

from canary_harness.errors import ConfigError
from canary_harness.judge.plan_text import rate_to_decide
from canary_harness.judge.planner import plan_stage
from canary_harness.judge.settings import JudgeSettings
from canary_harness.loadgen.sizing import (
    SUSTAINED_RPS_PER_CORE,
    AutoLoad,
    load_bound,
    machine_max_rps,
    missing_rate,
    name_bound,
    real_rate,
    spawn_rate_for,
    users_for_rate,
)
from canary_harness.pytest_plugin.options import parse_load_rate


def test_the_machine_bound_grows_with_its_cores() -> None:
    assert machine_max_rps(2) == 2 * SUSTAINED_RPS_PER_CORE
    assert machine_max_rps(0) == SUSTAINED_RPS_PER_CORE  # never zero, whatever os.cpu_count() says
    assert machine_max_rps() >= SUSTAINED_RPS_PER_CORE


def test_users_keep_the_rate_through_slow_answers() -> None:
    # Each user is busy ~1.5 s per request (LLM answers take seconds): 200 req/s needs 300 users.
    assert users_for_rate(200, 20) == 300
    assert users_for_rate(5, 20) == 20  # never fewer than asked for
    assert spawn_rate_for(300, 10) == 150  # all of them within two seconds
    assert spawn_rate_for(10, 10) == 10
    with pytest.raises(ConfigError, match="load rate -1"):
        users_for_rate(-1, 20)


def test_the_lower_bound_holds_and_the_machine_is_named_when_it_holds() -> None:
    plan = plan_stage(25, 20, JudgeSettings(max_duration_s=60))
    bound = load_bound(max_rps=1000, machine_rps=300)
    assert bound == 300
    rate, why = rate_to_decide(plan, bound)
    assert rate == 300  # the PASS of error_rate needs ~500 req/s at 25 % in 60 s: held at the machine's bound
    auto = name_bound(rate, why, max_rps=1000, machine_rps=300)
    assert auto.load_rps == 300 and "this machine's bound" in auto.why and "--load-max-rps is 1000" in auto.why
    # The user's bound below the machine's: the planner's own reason, no word about the machine.
    rate, why = rate_to_decide(plan, load_bound(max_rps=100, machine_rps=300))
    assert rate == 100 and "machine" not in name_bound(rate, why, 100, 300).why
    # A need below both bounds is sent as it is.
    small = name_bound(40.0, "needs 40 req/s", 200, 300)
    assert small == AutoLoad(40.0, 40.0, "needs 40 req/s")


def test_real_traffic_is_subtracted_and_may_leave_nothing_to_add() -> None:
    auto = AutoLoad(120.0, 120.0, "needs 120 req/s")
    assert real_rate(1000, 1250, 5.0) == 50.0
    assert real_rate(1000, 900, 5.0) == 0.0  # a restarted instance never gives a negative rate
    with pytest.raises(ConfigError, match="interval must be positive"):
        real_rate(0, 10, 0)
    part = missing_rate(auto, 50.0)
    assert part.load_rps == 70.0 and part.needed_rps == 120.0 and "real traffic brings 50.0 req/s" in part.why
    none = missing_rate(auto, 130.0)
    assert none.load_rps == 0.0 and "no load added" in none.why


def test_load_rate_zero_is_the_closed_loop() -> None:
    assert parse_load_rate("0", "from --load-rate") == 0.0
    assert parse_load_rate("0.0", "from --load-rate") == 0.0
    with pytest.raises(ConfigError, match=r"load rate '-3' \(from CANARY_LOAD_RATE\): must be a positive number"):
        parse_load_rate("-3", "from CANARY_LOAD_RATE")
    with pytest.raises(ConfigError, match="or 0 \\(closed loop\\)"):
        parse_load_rate("", "from --load-rate")
