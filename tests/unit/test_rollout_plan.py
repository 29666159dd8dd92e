"""Stage lists, the promotion rule read from the journal, and the stage command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canary_harness import journal
from canary_harness.config import StackSettings
from canary_harness.errors import ConfigError, RolloutError
from canary_harness.rollout import RolloutPlan, completed_rollout, parse_stages, require_completed_rollout


@pytest.mark.parametrize("raw", ["0,5", "5,1", "a,b", "1,5,150", "1,1,100", "", "1,,100", "1.5,100"])
def test_bad_stage_lists_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_stages(raw, "from --stages")
    assert repr(raw) in str(info.value)


def test_stage_lists() -> None:
    assert parse_stages("1,5,25,100", "s") == (1, 5, 25, 100)
    assert parse_stages(" 10 , 100", "s") == (10, 100)
    with pytest.raises(ConfigError, match="must end at 100"):
        parse_stages("1,5", "s")
    assert parse_stages("1,5", "s", require_full=False) == (1, 5)


def _end(run_dir: Path, version: str, passed: bool, stages: list[int], dry_run: bool = False) -> None:
    journal.append(run_dir, "rollout_end", version=version, actor="t", passed=passed, stages=stages, dry_run=dry_run)


def test_promotion_needs_a_complete_real_rollout(tmp_path: Path) -> None:
    assert completed_rollout(tmp_path, "v0.2.0") is None
    _end(tmp_path, "v0.2.0", True, [1, 5, 25, 100], dry_run=True)
    assert completed_rollout(tmp_path, "v0.2.0") is None
    _end(tmp_path, "v0.2.0", True, [1, 5])
    assert completed_rollout(tmp_path, "v0.2.0") is None
    _end(tmp_path, "v0.2.0", False, [1, 5, 25, 100])
    with pytest.raises(RolloutError, match="no complete successful rollout"):
        require_completed_rollout(tmp_path, "v0.2.0")
    _end(tmp_path, "v0.2.0", True, [1, 5, 25, 100])
    assert completed_rollout(tmp_path, "v0.2.0") is not None
    assert completed_rollout(tmp_path, "v0.3.0") is None


def test_rollback_after_success_withdraws_the_promotion_right(tmp_path: Path) -> None:
    _end(tmp_path, "v0.2.0", True, [1, 5, 25, 100])
    journal.append(tmp_path, "rollback", version="v0.2.0", actor="t", reason="manual")
    assert completed_rollout(tmp_path, "v0.2.0") is None


def test_stage_command_is_the_pytest_session_a_person_would_run(tmp_path: Path) -> None:
    plan = RolloutPlan(
        version="v0.2.0",
        stages=(1, 100),
        stack=StackSettings(run_dir=tmp_path),
        observation_period=30,
        dry_run=True,
        canary_env={"FRAGRANCE_FAULTS": "error_rate=0.1"},
        pytest_args=("-x",),
    )
    command = plan.stage_command(5)
    assert command[1:3] == ["-m", "pytest"]
    joined = " ".join(command)
    for part in (
        "--canary-version v0.2.0",
        "--canary-stage 5",
        "--canary-observation-period 30",
        "--canary-dry-run",
        f"--canary-run-dir={tmp_path}",
    ):
        assert part in joined
    assert command[-1] == "-x"
    # The services' environment travels in the child's environment, never on its command line.
    assert "error_rate=0.1" not in joined and "--canary-env" not in joined
    environ = plan.stage_environ({"PATH": "/bin", "CANARY_PRODUCTION_ENV": "stale"})
    assert json.loads(environ["CANARY_ENV"]) == {"FRAGRANCE_FAULTS": "error_rate=0.1"}
    assert "CANARY_PRODUCTION_ENV" not in environ and environ["PATH"] == "/bin"
    assert plan.env_note() == " (plus --canary-env FRAGRANCE_FAULTS=***, passed by environment)"
