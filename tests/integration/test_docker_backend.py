"""What only the Docker backend has: images, labels, names, the engine, and a stack of containers driven by
the ``canary`` command (state entry lost -> `canary stack down` still finds the container by its label)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from canary_harness.config import StackSettings
from canary_harness.deploy.docker import (
    LABEL_PORT,
    LABEL_ROLE,
    LABEL_RUN_DIR,
    LABEL_VERSION,
    DockerBackend,
    container_name,
)
from canary_harness.deploy.protocol import ServiceSpec
from canary_harness.errors import BackendError
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from tests.integration.stackfixtures import FAST_ENV, free_port, free_ports

pytestmark = pytest.mark.integration


def labelled(run_dir: Path) -> list[docker.models.containers.Container]:
    """Every container (running or not) labelled with ``run_dir``, straight from the engine."""
    client = docker.from_env()
    return client.containers.list(all=True, filters={"label": f"{LABEL_RUN_DIR}={run_dir.resolve()}"})


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run directory; every container labelled with it is removed at teardown."""
    path = (tmp_path / "run").resolve()
    yield path
    for container in labelled(path):
        container.remove(force=True)


def spec(run_dir: Path, version: str = "v0.2.0", role: str = "canary") -> ServiceSpec:
    return ServiceSpec(
        role=role,
        version=version,
        port=free_port(),
        env=dict(FAST_ENV),
        log_path=run_dir / "logs" / f"{role}.log",
        run_dir=run_dir,
    )


def test_container_carries_labels_and_a_run_dir_name(run_dir: Path) -> None:
    handle = DockerBackend().start(spec(run_dir), timeout=30)
    [container] = labelled(run_dir)
    assert container.id == handle.container_id
    assert container.name == container_name(run_dir, "canary")
    port = handle.url.rsplit(":", 1)[1]
    assert {k: container.labels[k] for k in (LABEL_ROLE, LABEL_VERSION, LABEL_RUN_DIR, LABEL_PORT)} == {
        LABEL_ROLE: "canary",
        LABEL_VERSION: "v0.2.0",
        LABEL_RUN_DIR: str(run_dir),
        LABEL_PORT: port,
    }
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    [found] = DockerBackend().find_containers(run_dir)
    assert (found.role, found.version, found.url, found.container_id) == (
        "canary",
        "v0.2.0",
        handle.url,
        handle.container_id,
    )


def test_missing_image_names_the_build_command(run_dir: Path) -> None:
    with pytest.raises(BackendError) as caught:
        DockerBackend().start(spec(run_dir, version="v9.9.9"), timeout=10)
    message = str(caught.value)
    assert "fragrance-ai-app:v9.9.9 not found" in message
    assert "`canary images build --version v9.9.9`" in message
    assert "\n" not in message
    assert labelled(run_dir) == []


def test_unreachable_engine_is_one_clear_line(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    with pytest.raises(BackendError) as caught:
        DockerBackend().start(spec(run_dir), timeout=10)
    message = str(caught.value)
    assert "Docker engine not reachable" in message and "\n" not in message
    monkeypatch.delenv("DOCKER_HOST")
    assert labelled(run_dir) == []


def test_a_stopped_leftover_of_the_same_run_dir_is_replaced(run_dir: Path) -> None:
    backend = DockerBackend()
    first = backend.start(spec(run_dir), timeout=30)
    docker.from_env().containers.get(first.container_id).stop(timeout=5)  # a killed session's container
    second = backend.start(spec(run_dir), timeout=30)
    assert second.container_id != first.container_id
    assert [c.id for c in labelled(run_dir)] == [second.container_id]
    backend.stop(second)
    assert labelled(run_dir) == []


# --------------------------------------------------------------------------- the canary command
def canary(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``canary`` command as a user would, with fast services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, run_dir: Path) -> Iterator[Path]:
    """A directory whose canary.toml puts the stack on free ports, backend docker, in ``run_dir``."""
    work = tmp_path / "work"
    work.mkdir()
    nginx, production, canary_port = free_ports(3)
    (work / "canary.toml").write_text(
        f'[stack]\nbackend = "docker"\nrun_dir = "{run_dir}"\nnginx_port = {nginx}\n'
        f"production_port = {production}\ncanary_port = {canary_port}\n"
    )
    yield work
    LocalStack(StackSettings(run_dir=run_dir)).down()


def test_stack_of_containers_and_down_after_a_lost_state_entry(workdir: Path, run_dir: Path) -> None:
    up = canary(workdir, "stack", "up", "--canary-version", "v0.2.0", "--canary-env", "FRAGRANCE_LATENCY_SCALE=0")
    assert up.returncode == 0, up.stderr
    state = load_state(run_dir)
    assert state is not None and state.production is not None and state.canary is not None
    assert (state.production.backend, state.canary.backend) == ("docker", "docker")
    assert {c.labels[LABEL_ROLE] for c in labelled(run_dir)} == {"production", "canary"}
    assert httpx.get(state.canary.url + "/health", timeout=5).json()["version"] == "v0.2.0"

    # The canary's entry is lost (a crashed command, a hand edit): only the label still ties it to the stack.
    data = json.loads(state.state_file.read_text())
    data["canary"] = None
    state.state_file.write_text(json.dumps(data))
    status = canary(workdir, "stack", "status")
    assert status.returncode == 1, status.stdout
    assert "labelled with this run dir but not recorded" in status.stdout

    down = canary(workdir, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert "canary" in down.stdout and "removed" in down.stdout
    assert labelled(run_dir) == []
    assert load_state(run_dir) is None


def test_stack_down_without_any_state_file_removes_labelled_containers(workdir: Path, run_dir: Path) -> None:
    DockerBackend().start(spec(run_dir, role="canary"), timeout=30)
    assert load_state(run_dir) is None
    down = canary(workdir, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert "removed" in down.stdout
    assert labelled(run_dir) == []


def test_bad_backend_is_a_usage_error_naming_value_and_source(workdir: Path, run_dir: Path) -> None:
    result = canary(workdir, "stack", "up", "--backend", "kubernetes")
    assert result.returncode == 2
    assert "backend 'kubernetes' (from --backend)" in result.stderr
    assert load_state(run_dir) is None and labelled(run_dir) == []


def test_without_an_engine_a_process_stack_skips_the_search_and_a_docker_stack_says_why(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    assert not LocalStack(StackSettings(run_dir=run_dir)).down()
    with pytest.raises(BackendError, match="Docker engine not reachable"):
        LocalStack(StackSettings(run_dir=run_dir, backend="docker")).down()


def cpu_cgroup(pid: int) -> str:
    """The CPU cgroup of ``pid`` as the kernel reports it (cgroup v1's cpu controller, else v2's unified path)."""
    lines = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    v1 = [path for _, controllers, path in lines if "cpu" in controllers.split(",")]
    return v1[0] if v1 else next(path for number, _, path in lines if number == "0")


def test_each_role_is_scheduled_in_its_own_cgroup(run_dir: Path) -> None:
    """Not in one cgroup shared with production, where a lightly loaded canary waits for CPU at each wake-up."""
    backend, client = DockerBackend(), docker.from_env()
    groups = {}
    for role, version in (("production", "v0.1.0"), ("canary", "v0.2.0")):
        handle = backend.start(spec(run_dir, version, role), timeout=30)
        container = client.containers.get(handle.container_id)
        groups[role] = cpu_cgroup(int(container.attrs["State"]["Pid"]))
    parents = {role: path.rsplit("/", 1)[0] for role, path in groups.items()}
    assert parents["production"] != parents["canary"], groups
    if client.info()["CgroupDriver"] == "cgroupfs":
        assert parents == {role: f"/canary-harness-{role}" for role in groups}, groups
