"""ComposeBackend on the real engine: the runbook's compose services started, checked and removed.

Each test's run directory gives its own compose project; the finalizer removes every container of it.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_harness.config import StackSettings
from canary_harness.deploy.compose import ComposeBackend, project_name
from canary_harness.deploy.container_cgroups import cgroup_parent_for
from canary_harness.deploy.pids import port_is_free
from canary_harness.deploy.protocol import Backend, ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError
from canary_harness.stack import LocalStack
from tests.integration.composefixtures import PROJECT_LABEL, REPO, run
from tests.integration.stackfixtures import free_port, free_ports

pytest_plugins = ("tests.integration.composefixtures",)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = "gpt-3.5-turbo,claude-3-haiku"


def project_containers(log_dir: Path) -> list[str]:
    """Ids of every container (running or not) of the compose project of ``log_dir``."""
    done = run(["docker", "ps", "-aq", "--filter", f"label={PROJECT_LABEL}={project_name(log_dir)}"], timeout=30)
    return done.stdout.split()


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run directory; every container of its compose project is removed afterwards."""
    yield tmp_path
    leftovers = project_containers(tmp_path / "logs")
    if leftovers:
        run(["docker", "rm", "-f", *leftovers], check=False, timeout=60)


def canary_spec(run_dir: Path, version: str, **env: str) -> ServiceSpec:
    """A canary on a free port logging into ``run_dir/logs``."""
    return ServiceSpec("canary", version, port=free_port(), env=env, log_path=run_dir / "logs" / "canary.log")


def test_start_stop_round_trip(compose_test_image: str, run_dir: Path) -> None:
    """Healthy at its version, env and JSON log in the run directory, found again from JSON, removed."""
    backend = ComposeBackend()
    assert isinstance(backend, Backend)
    spec = canary_spec(run_dir, compose_test_image, LLM_ENSEMBLE_MODELS=MODELS, FRAGRANCE_LATENCY_SCALE="0")
    handle = backend.start(spec, timeout=60)
    assert handle.backend == "compose" and handle.pid is None and handle.url == spec.url
    assert backend.is_healthy(handle)
    (container,) = project_containers(run_dir / "logs")
    labels = json.loads(run(["docker", "inspect", "--format", "{{json .Config.Labels}}", container]).stdout)
    assert labels["com.docker.compose.service"] == "app-canary"
    assert labels["canary-harness.role"] == "canary" and labels["canary-harness.version"] == compose_test_image
    assert labels["canary-harness.run-dir"] == str(run_dir.resolve())
    # Scheduled in its role's own CPU cgroup, not one shared with every container (deploy/container_cgroups.py).
    parent = run(["docker", "inspect", "--format", "{{.HostConfig.CgroupParent}}", container]).stdout.strip()
    driver = run(["docker", "info", "--format", "{{.CgroupDriver}}"]).stdout.strip()
    assert parent == (cgroup_parent_for("canary", driver) or ""), (parent, driver)
    # The service's own JSON log, written by the container into the run directory.
    assert handle.app_log_path is not None
    startup = [json.loads(line) for line in handle.app_log_path.read_text().splitlines() if '"startup"' in line]
    assert startup and startup[0]["models"] == MODELS.split(","), startup

    # A later process knows only the recorded handle.
    again = ServiceHandle.from_json(json.loads(json.dumps(handle.to_json())))
    ComposeBackend().stop(again, timeout=5)
    assert project_containers(run_dir / "logs") == []
    assert port_is_free("127.0.0.1", spec.port)
    assert not backend.is_healthy(handle)
    assert '"event":"startup"' in handle.log_path.read_text()
    backend.stop(handle)  # idempotent


def test_start_failure_reports_log_and_leaves_nothing(compose_test_image: str, run_dir: Path) -> None:
    """A service that exits at start: BackendError with its own error line, no container left."""
    spec = canary_spec(run_dir, compose_test_image, FRAGRANCE_FAULTS="error_rate=7")
    with pytest.raises(BackendError) as info:
        ComposeBackend().start(spec, timeout=30)
    message = str(info.value)
    assert "did not become healthy" in message and "exited with code 2" in message, message
    assert "FRAGRANCE_FAULTS" in message and "error_rate" in message, message
    assert project_containers(run_dir / "logs") == []


def test_missing_image_and_taken_port(compose_test_image: str, run_dir: Path) -> None:
    """Refused before anything starts, each with one line naming the cause."""
    with pytest.raises(BackendError, match=r"canary images build --version v9\.9\.9-absent"):
        ComposeBackend().start(canary_spec(run_dir, "v9.9.9-absent"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = ServiceSpec("canary", compose_test_image, port=port, log_path=run_dir / "logs" / "canary.log")
        with pytest.raises(BackendError, match=rf"port 127\.0\.0\.1:{port} is already in use"):
            ComposeBackend().start(spec)
    assert project_containers(run_dir / "logs") == []


def test_invalid_compose_file(compose_test_image: str, run_dir: Path, tmp_path: Path) -> None:
    """docker-compose's own complaint about a broken file, in one BackendError; nothing started."""
    broken = tmp_path / "compose"
    shutil.copytree(REPO / "compose", broken)
    production = broken / "docker-compose.production.yml"
    production.write_text(production.read_text().replace("network_mode: host", "network_mode: [host]", 1))
    with pytest.raises(BackendError, match=r"(?s)canary .*: start: .*exited 1:.*network_mode"):
        ComposeBackend(broken).start(canary_spec(run_dir, compose_test_image))
    assert project_containers(run_dir / "logs") == []


def test_local_stack_on_compose(compose_test_image: str, run_dir: Path) -> None:
    """A LocalStack whose production and canary are compose services: up at 25 %, split served, down."""
    nginx_port, production_port, canary_port = free_ports(3)
    settings = StackSettings(
        nginx_port=nginx_port, production_port=production_port, canary_port=canary_port, run_dir=run_dir,
        production_version=compose_test_image, canary_version=compose_test_image,
        production_env={"FRAGRANCE_LATENCY_SCALE": "0"}, canary_env={"FRAGRANCE_LATENCY_SCALE": "0"},
    )  # fmt: skip
    stack = LocalStack(settings, backend=ComposeBackend())
    try:
        stack.up(with_canary=True, canary_weight=25)
        status = stack.status()
        assert status.ok and status.canary_weight == 25, status
        services = {
            run(
                ["docker", "inspect", "--format", '{{ index .Config.Labels "com.docker.compose.service" }}', c]
            ).stdout.strip()
            for c in project_containers(run_dir / "logs")
        }
        assert services == {"app", "app-canary"}
    finally:
        stack.down()
    assert project_containers(run_dir / "logs") == []
