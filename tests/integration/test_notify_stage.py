"""Site plugins in real stage sessions: the webhook notifier and the manual approval gate.

A live receiver gets exactly the stage's events in order; a dead receiver given at the same time changes
neither the verdict nor the exit code. The approval gate holds the stage (nothing moves) until the
approval file appears, and a stage not approved in time exits 4 without starting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_harness import journal
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_port, free_ports
from tests.unit.test_notify import Receiver

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SECRET = "notify-secret-41c7"
FAST = "FRAGRANCE_LATENCY_SCALE=0.05"


@pytest.fixture(scope="module")
def stage_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A run directory and ports for the module's stages; the stack is stopped at the end."""
    run_dir = tmp_path_factory.mktemp("notify") / "run"
    nginx, production, canary = free_ports(3)
    env = {
        **os.environ,
        "CANARY_NGINX_PORT": str(nginx),
        "CANARY_PRODUCTION_PORT": str(production),
        "CANARY_CANARY_PORT": str(canary),
        "CANARY_RUN_DIR": str(run_dir),
        "CANARY_LOAD_RATE": "0",
    }  # the closed loop these tests were written for, not --load-rate auto
    yield run_dir, env
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from canary_harness.cli import main; raise SystemExit(main())",
            "stack",
            "down",
            "--run-dir",
            str(run_dir),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A live HTTP receiver."""
    server = Receiver()
    yield server
    server.close()


def _command(run_dir: Path, stage: int, *extra: str, period: float = 20) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "--canary-version",
        "v0.2.0",
        "--stage",
        str(stage),
        "--observation-period",
        f"{period:g}",
        f"--canary-run-dir={run_dir}",
        "--production-env",
        FAST,
        "--canary-env",
        FAST,
        "--canary-env",
        f"NOTIFY_TEST_TOKEN={SECRET}",
        "--load-users",
        "20",
        "-q",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def test_approved_stage_notifies_in_order_and_a_dead_receiver_changes_nothing(
    stage_env: tuple[Path, dict[str, str]], receiver: Receiver, tmp_path: Path
) -> None:
    run_dir, env = stage_env
    dead = f"http://127.0.0.1:{free_port()}/hook"
    approval, log = tmp_path / "approve-stage-25", tmp_path / "stage.log"
    command = _command(
        run_dir,
        25,
        "--canary-notify",
        receiver.url,
        "--canary-notify",
        dead,
        "--canary-approval-file",
        str(approval),
        "--canary-approval-timeout",
        "120",
        period=6,  # a PASS, decided or not ("with warning"), is what is checked: no need to wait for evidence
    )
    with log.open("w") as out:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "waits for approval" in log.read_text(), 60, 0.2, "the approval prompt")
            assert receiver.events == []  # held: nothing applied yet
            assert not [e for e in journal.read(run_dir) if e.event == "weight" and e.stage == 25]
            approval.write_text("approved by the test\n")
            code = child.wait(timeout=300)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "stage verdict: PASS" in output and "canary: stage 25% PASSED" in output
    assert f"canary: notify {dead}: stage_applied not delivered" in output
    assert [event["event"] for event in receiver.events] == ["stage_applied", "verdict"]
    assert receiver.events[1]["state"] == "PASS" and receiver.events[0]["weight"] == 25
    assert not approval.exists()  # consumed: the next stage waits for a new approval
    assert SECRET not in str(receiver.events)


def test_failed_stage_notifies_verdict_and_rollback_despite_a_dead_receiver(
    stage_env: tuple[Path, dict[str, str]], receiver: Receiver
) -> None:
    run_dir, env = stage_env
    dead = f"http://127.0.0.1:{free_port()}/hook"
    done = subprocess.run(
        _command(
            run_dir,
            100,
            "--canary-env",
            "FRAGRANCE_FAULTS=error_rate=0.05",
            "--canary-notify",
            dead,
            "--canary-notify",
            receiver.url,
        ),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout[-3000:]
    assert "stage verdict: FAIL" in done.stdout and "rolled back v0.2.0" in done.stdout
    assert [event["event"] for event in receiver.events] == ["stage_applied", "verdict", "rollback"]
    verdict = receiver.events[1]
    assert verdict["state"] == "FAIL" and verdict["failed_checks"][0]["name"] == "error_rate"
    assert "> SLO" in verdict["text"] and receiver.events[2]["weight_after"] == 0
    assert SECRET not in str(receiver.events) and "error_rate=0.05" not in str(receiver.events)


def test_a_stage_not_approved_in_time_exits_4_without_starting(
    stage_env: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run_dir, env = stage_env
    before = len(list(journal.read(run_dir)))
    done = subprocess.run(
        _command(run_dir, 5, "--canary-approval-file", str(tmp_path / "never"), "--canary-approval-timeout", "1.5"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "stage 5% not approved" in done.stdout + done.stderr
    assert len(list(journal.read(run_dir))) == before  # nothing moved, nothing recorded
