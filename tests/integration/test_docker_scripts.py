"""scripts/docker-up.sh and docker-down.sh against this machine's real engine: a running engine is left
alone, and docker-down stops nothing it did not start (a recorded PID that is not a dockerd, a dead one).

Starting an engine is exercised by CI on a clean machine (.ci/run); here an engine already runs and must
not be disturbed. The scripts' PID file is redirected into a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from canary_harness.deploy import pids
from canary_harness.deploy.images import connect
from canary_harness.errors import EngineUnavailableError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run_script(name: str, pid_file: Path) -> subprocess.CompletedProcess[str]:
    """Run scripts/NAME with its PID file at ``pid_file``."""
    env = {**os.environ, "CANARY_DOCKERD_PID_FILE": str(pid_file), "CANARY_DOCKERD_LOG": str(pid_file) + ".log"}
    return subprocess.run(["bash", str(REPO / "scripts" / name)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def running_engine() -> None:
    """An engine that answers (skips without one, fails without one when CANARY_DOCKER=1)."""
    try:
        connect().close()
    except EngineUnavailableError as exc:
        if os.environ.get("CANARY_DOCKER") == "1":
            pytest.fail(f"CANARY_DOCKER=1 but {exc}")
        pytest.skip(str(exc))


def test_docker_up_leaves_a_running_engine_alone(running_engine: None, tmp_path: Path) -> None:
    engine_pid = Path("/var/run/docker.pid").read_text().strip() if Path("/var/run/docker.pid").exists() else None
    pid_file = tmp_path / "canary-dockerd.pid"
    result = run_script("docker-up.sh", pid_file)
    assert result.returncode == 0, result.stderr
    assert "already answers" in result.stdout and "left alone" in result.stdout
    assert not pid_file.exists()
    if engine_pid:
        assert pids.is_alive(int(engine_pid))
    # Idempotent: a second run says the same and starts nothing.
    again = run_script("docker-up.sh", pid_file)
    assert again.returncode == 0 and "left alone" in again.stdout and not pid_file.exists()


def test_docker_down_without_a_pid_file_stops_nothing(tmp_path: Path) -> None:
    result = run_script("docker-down.sh", tmp_path / "absent.pid")
    assert result.returncode == 0
    assert "nothing to stop" in result.stdout


def test_docker_down_never_signals_a_pid_that_is_not_dockerd(tmp_path: Path) -> None:
    # A recorded PID now used by another process (here a sleep this test owns) must survive.
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = tmp_path / "canary-dockerd.pid"
        pid_file.write_text(f"{other.pid}\n")
        result = run_script("docker-down.sh", pid_file)
        assert result.returncode == 0, result.stderr
        assert "no longer a dockerd" in result.stdout
        assert other.poll() is None, "docker-down signalled a process that is not dockerd"
        assert not pid_file.exists()
    finally:
        other.kill()
        other.wait(timeout=10)


def test_docker_down_with_a_dead_pid_cleans_the_stale_file(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=10)
    pid_file = tmp_path / "canary-dockerd.pid"
    pid_file.write_text(f"{gone.pid}\n")
    result = run_script("docker-down.sh", pid_file)
    assert result.returncode == 0 and "nothing to stop" in result.stdout
    assert not pid_file.exists()
