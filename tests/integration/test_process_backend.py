"""ProcessBackend with the real fragrance-ai: start, health, environment, logs, stop by PID."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from canary_harness.deploy import pids
from canary_harness.deploy.process import ProcessBackend, app_log_path
from canary_harness.deploy.protocol import Backend, ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError
from tests.integration.stackfixtures import FAST_ENV, ServiceFactory, free_port

pytest_plugins = ("tests.integration.stackfixtures",)
pytestmark = pytest.mark.integration


def environ_of(pid: int) -> dict[str, str]:
    """The environment a running process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def script(tmp_path: Path, name: str, body: str) -> str:
    """An executable stand-in that takes the service's argv (to exercise failure paths)."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport signal, sys, time\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_process_backend_satisfies_the_protocol() -> None:
    assert isinstance(ProcessBackend(), Backend)


def test_start_serves_health_with_its_version_and_env(service_factory: ServiceFactory) -> None:
    handle = service_factory("v0.2.0", role="canary", env={"CANARY_TEST_MARKER": "on"})
    assert handle.pid is not None and pids.is_alive(handle.pid, handle.pid_start_time)
    response = httpx.get(handle.url + "/health", timeout=5)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["version"]) == ("healthy", "v0.2.0")
    assert response.headers["X-App-Version"] == "v0.2.0"
    env = environ_of(handle.pid)
    assert env["CANARY_TEST_MARKER"] == "on"
    assert env["FRAGRANCE_LATENCY_SCALE"] == FAST_ENV["FRAGRANCE_LATENCY_SCALE"]
    assert handle.log_path.exists()
    assert handle.app_log_path == app_log_path(handle.log_path)
    assert ProcessBackend().is_healthy(handle)


def test_stop_terminates_by_pid_and_is_idempotent(service_factory: ServiceFactory) -> None:
    handle = service_factory()
    backend = ProcessBackend()
    backend.stop(handle, timeout=10)
    assert handle.pid is not None and not pids.is_alive(handle.pid, handle.pid_start_time)
    assert not backend.is_healthy(handle)
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url + "/health", timeout=2)
    backend.stop(handle)  # a second stop is a no-op


def test_handle_round_trips_through_json(service_factory: ServiceFactory) -> None:
    handle = service_factory()
    assert ServiceHandle.from_json(handle.to_json()) == handle


def test_busy_port_is_refused_and_nothing_starts(tmp_path: Path, service_factory: ServiceFactory) -> None:
    running = service_factory()
    port = int(running.url.rsplit(":", 1)[1])
    spec = ServiceSpec(role="canary", version="v0.2.0", port=port, env=FAST_ENV, log_path=tmp_path / "c.log")
    with pytest.raises(BackendError, match=f"127.0.0.1:{port} is already in use"):
        ProcessBackend().start(spec, timeout=10)
    assert not spec.log_path.exists()


def test_early_exit_reports_the_log_tail(tmp_path: Path) -> None:
    exe = script(tmp_path, "dies", 'print("cannot load model weights: boom", flush=True)\nsys.exit(3)')
    spec = ServiceSpec(role="canary", version="v9", port=free_port(), log_path=tmp_path / "dies.log")
    with pytest.raises(BackendError) as caught:
        ProcessBackend(exe).start(spec, timeout=10)
    message = str(caught.value)
    assert "exited with code 3" in message and "cannot load model weights: boom" in message


def test_never_healthy_times_out_and_leaves_nothing_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    exe = script(
        tmp_path, "hangs",
        f'import os\nopen({str(pid_file)!r}, "w").write(str(os.getpid()))\nprint("warming up", flush=True)\n'
        "time.sleep(60)",
    )  # fmt: skip
    spec = ServiceSpec(role="production", version="v1", port=free_port(), log_path=tmp_path / "hangs.log")
    with pytest.raises(BackendError, match=r"did not become healthy(.|\n)*warming up"):
        ProcessBackend(exe).start(spec, timeout=1.0)
    assert not pids.is_alive(int(pid_file.read_text()))


def test_terminate_escalates_to_kill_when_term_is_ignored(tmp_path: Path) -> None:
    body = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"
    exe = script(tmp_path, "stubborn", body)
    proc = subprocess.Popen([exe], stdout=subprocess.PIPE)
    pids.track_child(proc)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        pids.terminate(proc.pid, start_time=pids.process_start_time(proc.pid), timeout=0.5)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_reused_pid_is_not_signalled(service_factory: ServiceFactory) -> None:
    handle = service_factory()
    assert handle.pid is not None and handle.pid_start_time is not None
    stale = ServiceHandle.from_json(handle.to_json() | {"pid_start_time": handle.pid_start_time - 1})
    ProcessBackend().stop(stale, timeout=1)
    assert pids.is_alive(handle.pid, handle.pid_start_time), "stopped a process whose start time differs"
