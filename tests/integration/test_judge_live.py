"""Issue 15's live case on the real stack: a loss ×4 canary at 25 % with a 180 s window fails and rolls back.

Before the magnitude loss test and the extend_if_suspect policy this canary passed with a warning (9 of 9
loss blocks at 3.8× production, e_fail 136 < 1/α_i). The session runs with the default load and the
default judge settings (on_inconclusive = extend_if_suspect), so it may run into the extension; it must
end FAILED on the rl_loss check, the canary rolled back.
"""

from __future__ import annotations

import pytest

from canary_harness.judge.settings import JudgeSettings
from tests.integration.stagefixtures import SESSION_MARGIN_S, StageRunner
from tests.integration.test_stage_session import assert_rolled_back, failed_checks

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = pytest.mark.integration

WINDOW_S = 180.0


def test_loss_factor_4_at_25_percent_fails_the_stage_and_rolls_back(stage_runner: StageRunner) -> None:
    """The stage ends FAIL on rl_loss (within the window or its extension) and the canary is rolled back."""
    limit = WINDOW_S + JudgeSettings().extend_limit_s
    # The user's default load (sized to decide), not the fixtures' old fixed load.
    started = stage_runner.start(25, WINDOW_S, "--load-rate", "auto", faults="loss_factor=4")
    run = stage_runner.wait(started, limit + SESSION_MARGIN_S)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert failed_checks(run) == {"rl_loss"}, run.record().verdict
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "FAIL"
    loss = next(check for check in verdict["checks"] if check["name"] == "rl_loss")
    assert loss["evidence"]["e_max_fail"] >= loss["evidence"]["fail_bound"]
    if verdict["elapsed_s"] > WINDOW_S:  # decided in the extension: the console and the record say why
        assert run.record().extension and "EXTENDED:" in run.output
    assert_rolled_back(stage_runner, run, "RL loss")
