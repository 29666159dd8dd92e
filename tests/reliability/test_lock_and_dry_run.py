"""Issue 11 item 6: one traffic- or stack-changing command at a time, and a dry run that moves nothing.

* While a rollout runs (its stage sessions inherit its lock), ``canary weights N``, ``canary rollback``,
  ``canary stack up``, ``canary stack down`` and a standalone stage session are refused, naming the
  rollout; the weight in force is untouched (read back from NGINX) and the rollout's stage goes on.
* A dry run against a stack whose canary serves 25 %: with another canary environment it refuses to
  replace the canary; when its stage fails it rolls nothing back. Asserted by traffic (the canary still
  answers about a quarter of 400 requests) and by process table (the same canary PID, alive).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from canary_harness.config import resolve_stack_settings
from canary_harness.deploy import pids
from canary_harness.stack import LocalStack
from tests.integration.rolloutfixtures import (
    CANARY_VERSION,
    LATENCY_ENV,
    REPO,
    RolloutCli,
    describe,
    rollout_args,
)
from tests.integration.stagefixtures import binomial_bounds

pytest_plugins = ("tests.integration.rolloutfixtures",)
pytestmark = pytest.mark.integration
# Long enough that the stage is certainly still observing while the other commands are tried.
LONG_PERIOD_S = 60
HOLDER = f"rollout of {CANARY_VERSION} already running (pid "


def weight_in_force(cli: RolloutCli) -> int:
    """The canary weight NGINX has in force (read from the live upstream), not what a command claims."""
    ports = {
        "CANARY_NGINX_PORT": str(cli.nginx_port),
        "CANARY_PRODUCTION_PORT": str(cli.production_port),
        "CANARY_CANARY_PORT": str(cli.canary_port),
    }
    return LocalStack(resolve_stack_settings(environ=ports, run_dir=str(cli.run_dir))).traffic().canary_weight()


def _stage_session(cli: RolloutCli) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--canary-version",
        CANARY_VERSION,
        "--stage",
        "50",
        "--observation-period",
        "5",
        f"--canary-run-dir={cli.run_dir}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    return subprocess.run(command, cwd=REPO, env=cli.env, capture_output=True, text=True, timeout=120, check=False)


def test_commands_are_refused_while_a_rollout_runs_and_its_stage_inherits_the_lock(
    cli_in_rollout: RolloutCli,
) -> None:
    cli = cli_in_rollout
    weight_before = weight_in_force(cli)
    assert weight_before == 5

    refused = {
        "weights": cli("weights", "50"),
        "rollback": cli("rollback"),
        "stack up": cli("stack", "up"),
        "stack down": cli("stack", "down"),
    }
    for name, result in refused.items():
        assert result.returncode == 1, f"{name}: {describe(result)}"
        assert HOLDER in result.stderr and "wait for it or stop it" in result.stderr, f"{name}: {result.stderr}"
    stage = _stage_session(cli)
    assert stage.returncode == pytest.ExitCode.USAGE_ERROR, stage.stdout[-2000:] + stage.stderr[-2000:]
    assert HOLDER in stage.stderr, stage.stderr[-2000:]

    assert weight_in_force(cli) == 5, "a refused command changed the weight in force"
    state = cli.state()
    assert state is not None and state.canary is not None and state.canary.pid is not None
    assert pids.is_alive(state.canary.pid, state.canary.pid_start_time), "a refused command stopped the canary"


@pytest.fixture
def cli_in_rollout(rollout_cli: RolloutCli) -> RolloutCli:
    """A rollout observing its first stage (5 %) in the background; stopped by SIGTERM at teardown."""
    cli = rollout_cli
    run = cli.start(*rollout_args(stages="5,100", period=LONG_PERIOD_S))
    cli.wait_for_entry(
        "the 5 % stage applied", lambda e: e.event == "weight" and e.details.get("weight") == 5, timeout=90, run=run
    )
    cli.wait_for_output(run, "% t=", timeout=60)  # observing: the stage session is past its start
    return cli


def _canary_share(cli: RolloutCli, requests: int = 400) -> int:
    return cli.probe(requests).canary


def test_a_dry_run_never_replaces_the_canary_nor_rolls_it_back(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    faulty = ("--canary-env", LATENCY_ENV, "--canary-env", "FRAGRANCE_FAULTS=error_rate=0.3")
    up = cli("stack", "up", "--canary-version", CANARY_VERSION, "--canary-weight", "25", *faulty)
    assert up.returncode == 0, describe(up)
    state = cli.state()
    assert state is not None and state.canary is not None and state.canary.pid is not None
    canary_pid, canary_start = state.canary.pid, state.canary.pid_start_time
    low, high = binomial_bounds(400, 0.25)
    assert low <= _canary_share(cli) <= high

    # 1. Another canary environment (no faults): the dry run refuses to replace the running canary.
    other_env = cli(*rollout_args("--dry-run", "--partial", stages="5"), timeout=120)
    assert other_env.returncode == 1, describe(other_env)
    assert "a dry run never replaces a canary that serves traffic" in other_env.stdout, other_env.stdout[-3000:]
    # 2. The same canary: its stage FAILs (30 % 5xx) and nothing is rolled back.
    failing = cli(
        *rollout_args(
            "--dry-run", "--partial", "--canary-env", "FRAGRANCE_FAULTS=error_rate=0.3", stages="5", period=20
        ),
        timeout=150,
    )
    assert failing.returncode == 1, describe(failing)
    assert "nothing is rolled back" in failing.stdout, failing.stdout[-3000:]
    assert "Dry run failed: no traffic was moved" in failing.stdout

    assert pids.is_alive(canary_pid, canary_start), "the dry run stopped or replaced the running canary"
    assert weight_in_force(cli) == 25
    assert low <= _canary_share(cli) <= high
    moved = [entry.to_dict() for entry in cli.journal() if entry.event in ("weight", "rollback")]
    assert moved == [], moved
