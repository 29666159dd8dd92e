"""Issue 11 item 5: nothing the harness starts outlives it unnoticed.

* Ctrl-C while a service waits to become healthy: the service is recorded in the state file before the
  wait, and stopped when the interrupt arrives (it leads its own session: no terminal signal reaches it).
* ``canary stack down`` with the state file lost still stops every process the harness started for the
  run directory (found by the ``CANARY_HARNESS_RUN_DIR`` marker in its environment, with its start time),
  and leaves alone a process marked for another run directory and an unmarked one.
* ``canary stack down`` that cannot stop a container (its engine is gone) still stops the rest, the broker
  included, then reports what it could not stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_harness.cli import main
from canary_harness.deploy import pids
from canary_harness.deploy.broker import start_broker, stop_broker
from canary_harness.deploy.pids import port_is_free
from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.deploy.workers import WorkerRecord, WorkersState, save_workers
from canary_harness.stack_state import StackState, load_state
from canary_harness.waiting import wait_until
from tests.integration.rolloutfixtures import CANARY_VERSION, RolloutCli, describe
from tests.integration.stackfixtures import free_ports

pytest_plugins = ("tests.integration.rolloutfixtures",)
pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

# Brings a stack up with a "service" that never answers /health, so the start waits (30 s) for it.
UP_WITH_SILENT_SERVICE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from canary_harness.config import StackSettings
    from canary_harness.deploy.process import ProcessBackend
    from canary_harness.stack import LocalStack
    nginx, production, canary = map(int, sys.argv[3:6])
    settings = StackSettings(run_dir=Path(sys.argv[1]), nginx_port=nginx, production_port=production,
                             canary_port=canary)
    LocalStack(settings, ProcessBackend(sys.argv[2])).up(with_canary=False)
""")


@pytest.fixture
def stray() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts itself; killed by PID at teardown if still running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_ctrl_c_during_the_health_wait_stops_the_service(tmp_path: Path, stray: list[subprocess.Popen[bytes]]) -> None:
    silent = tmp_path / "silent-service"
    silent.write_text("#!/bin/sh\nexec sleep 120\n")
    silent.chmod(0o700)
    run_dir = tmp_path / "run"
    ports = [str(port) for port in free_ports(3)]
    starter = subprocess.Popen(
        [sys.executable, "-c", UP_WITH_SILENT_SERVICE, str(run_dir), str(silent), *ports],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stray.append(starter)

    def recorded() -> tuple[int, int] | None:
        state = load_state(run_dir) if (run_dir / "state.json").exists() else None
        if state is not None and state.production is not None and state.production.pid:
            return state.production.pid, state.production.pid_start_time or 0
        assert starter.poll() is None, f"the starter exited early: {starter.communicate()[0].decode()[-2000:]}"
        return None

    found = wait_until(recorded, 20, 0.05, "the waiting service in the state file")
    assert found is not None
    pid, start_time = found
    assert pids.is_alive(pid, start_time), "the recorded service is not the running one"

    starter.send_signal(signal.SIGINT)
    output = starter.communicate(timeout=30)[0].decode()
    assert "KeyboardInterrupt" in output, output[-2000:]
    try:
        wait_until(lambda: not pids.is_alive(pid, start_time), 15, 0.05, f"service PID {pid} to be stopped")
    finally:
        if pids.is_alive(pid, start_time):
            os.kill(pid, signal.SIGKILL)
    assert load_state(run_dir) is None, "an interrupted `up` left a state file naming stopped processes"


def _sleeper(marker_dir: Path | None) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if key != pids.HARNESS_MARKER}
    if marker_dir is not None:
        env.update(pids.marker_env(marker_dir))
    return subprocess.Popen(["sleep", "120"], env=env, start_new_session=True)


def test_stack_down_without_a_state_file_stops_what_the_harness_started(
    rollout_cli: RolloutCli, tmp_path: Path, stray: list[subprocess.Popen[bytes]]
) -> None:
    cli = rollout_cli
    up = cli("stack", "up", "--canary-version", CANARY_VERSION, "--canary-weight", "10")
    assert up.returncode == 0, describe(up)
    state = load_state(cli.run_dir)
    assert state is not None and state.nginx and state.production and state.canary
    started = [(item.pid, item.pid_start_time) for item in (state.nginx, state.production, state.canary)]
    assert all(pid and pids.is_alive(pid, start) for pid, start in started)
    # Decoys: one marked for another run directory, one not marked at all; both must survive.
    other, unmarked = _sleeper(tmp_path / "other-run"), _sleeper(None)
    stray += [other, unmarked]

    (cli.run_dir / "state.json").unlink()
    down = cli("stack", "down")

    assert down.returncode == 0, describe(down)
    assert "also stopped" in down.stdout and "unrecorded process" in down.stdout, down.stdout
    for pid, start in started:
        assert pid is not None
        wait_until(lambda p=pid, s=start: not pids.is_alive(p, s), 10, 0.05, f"PID {pid} to be gone")
    assert all(port_is_free("127.0.0.1", port) for port in (cli.nginx_port, cli.production_port, cli.canary_port))
    assert other.poll() is None and unmarked.poll() is None, "a process not started for this run dir was stopped"


def test_stack_down_stops_the_broker_when_the_engine_under_the_containers_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recorded service container and a worker container whose engine no longer answers (the Docker engine
    stopped under a compose stage): `down` cannot stop them, says so, and still stops the broker it started."""
    run_dir = tmp_path / "run"
    broker = start_broker(run_dir / "redis", "127.0.0.1", free_ports(1)[0])
    try:
        log = run_dir / "logs" / "canary-worker-rl-1.log"
        worker = WorkerRecord("rl", 1, CANARY_VERSION, "http://127.0.0.1:9", 0, None, log, log, container_id="0" * 64)
        save_workers(run_dir, WorkersState(broker, (worker,)))
        production = ServiceHandle("production", "v0.1.0", "http://127.0.0.1:9", None, run_dir / "logs" / "p.log",
                                   backend="docker", container_id="1" * 64)  # fmt: skip
        StackState(run_dir, production=production).save()
        monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
        assert main(["stack", "down", "--run-dir", str(run_dir)]) == 1
        error = capsys.readouterr().err
        assert "canary: StackError: could not stop everything: production: " in error, error
        assert "worker-rl-1 (container 000000000000)" in error, error
        assert not pids.is_alive(broker.pid, broker.pid_start_time), "the broker outlived `canary stack down`"
        assert port_is_free("127.0.0.1", broker.port)
        state = load_state(run_dir)
        assert state is not None and state.production == production  # kept: a later `down` retries it
    finally:
        stop_broker(broker)
