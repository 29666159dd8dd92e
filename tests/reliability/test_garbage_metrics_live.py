"""Issue 11 item 4, live: a canary whose RL loss is NaN (``FRAGRANCE_FAULTS=loss_nan=1``) fails its stage.

Before the fix the sequential judge compared NaN block means with the cut (always False), so a diverged
canary counted as healthy. Asserted on a real stage session: the verdict is FAIL through the rl_loss
check, long before the period ends, the release check on the RL loss fails, and the canary is rolled back
(weight 0 by traffic, canary gone).
"""

from __future__ import annotations

import pytest

from tests.integration.stagefixtures import StageRunner
from tests.integration.test_stage_session import GATES, PPO_FAST, assert_rolled_back, failed_checks

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = pytest.mark.integration
PERIOD_S = 90


def test_a_canary_with_a_nan_loss_fails_its_stage_and_is_rolled_back(stage_runner: StageRunner) -> None:
    run = stage_runner.run(50, PERIOD_S, *PPO_FAST, faults="loss_nan=1")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "FAIL", run.describe()
    # The service also answers 500 to the feedback that reports a NaN loss (NaN is not JSON): the 5xx check
    # may FAIL as well. The loss check must FAIL in its own right, saying why.
    failed = failed_checks(run)
    assert "rl_loss" in failed and failed <= {"rl_loss", "error_rate"}, verdict
    loss = next(check for check in verdict["checks"] if check["name"] == "rl_loss")
    assert "non-finite" in loss["message"] and "nan" in loss["message"], loss
    assert verdict["elapsed_s"] < PERIOD_S / 2, f"FAIL only after {verdict['elapsed_s']:.0f} s"
    failing = run.not_passed(GATES)
    assert GATES + "test_rl_loss_against_production_baseline" in failing, sorted(failing)
    assert_rolled_back(stage_runner, run, "RL loss")
