"""A target's ``[target.docker]`` table: validation of every key, the templates filled per version, and which
backends can start which targets, the stack's image check before anything starts (canned tables and the
in-process double; the engine is used by tests/integration/test_docker_target.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from canary_harness.config import StackSettings, resolve_stack_settings
from canary_harness.deploy.container_target import CONTAINER_LOG_DIR, ContainerTarget
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError, ConfigError
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.target import TargetSettings
from canary_harness.testing.backend import FakeBackend
from tests.integration.stackfixtures import free_ports

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-service.toml"
HELLO = {"image": "hello:{version}", "command": ["--port", "{port}"]}


def test_the_example_profile_runs_its_image_with_the_version_and_port() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    target = TargetSettings.from_mapping(document["target"], "hello-service.toml [target]")
    assert target.docker is not None and target.docker.source == "hello-service.toml"
    assert target.docker.image_for("v2") == "hello-service:v2"
    values = {"version": "v2", "host": "127.0.0.1", "port": "9001", "log": f"{CONTAINER_LOG_DIR}/canary.jsonl"}
    assert target.docker.argv(values) == ["--host", "127.0.0.1", "--port", "9001", "--release", "v2"]


def test_env_user_and_workdir_are_kept_and_filled() -> None:
    target = ContainerTarget.from_mapping(
        {"image": "shop", "env": {"RELEASE": "{version}", "LOG": "{log}"}, "user": "1000:1000", "workdir": "/srv"},
        "t",
    )
    assert target.environment({"version": "v3", "log": "/l", "host": "h", "port": "1"}) == {
        "RELEASE": "v3",
        "LOG": "/l",
    }
    assert (target.user, target.workdir, target.command) == ("1000:1000", "/srv", ())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, r"\[target.docker\] image = None \(t\): required"),
        ({"image": "Hello:{version}"}, r"image = 'Hello:\{version\}' \(t\): not an image reference"),
        ({"image": "hello:{release}"}, r"image = 'hello:\{release\}' \(t\): unknown hole \{release\}"),
        ({"image": "hello:{version", "command": []}, r"image = 'hello:\{version' \(t\): "),
        ({**HELLO, "command": "--port {port}"}, r"command = '--port \{port\}' \(t\): must be a list"),
        ({**HELLO, "command": ["{python}", "x"]}, r"command = \['\{python\}', 'x'\] \(t\): unknown hole \{python\}"),
        ({**HELLO, "env": ["A=1"]}, r"env = \['A=1'\] \(t\): must be a table"),
        ({**HELLO, "env": {"A B": "1"}}, r"env A B = '1' \(t\)"),
        ({**HELLO, "env": {"A": 1}}, r"env A = 1 \(t\)"),
        ({**HELLO, "user": "root; rm"}, r"user = 'root; rm' \(t\)"),
        ({**HELLO, "workdir": "srv"}, r"workdir = 'srv' \(t\): must be an absolute path"),
        ({**HELLO, "ports": [1]}, r"unknown \[target.docker\] key 'ports' \(t\)"),
        ({"image": "hello:latest"}, r"\{version\} appears in none of image, command, env"),
    ],
)
def test_bad_docker_tables_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ContainerTarget.from_mapping(data, "t")


def test_a_version_that_makes_a_bad_tag_is_named() -> None:
    target = ContainerTarget.from_mapping({"image": "hello:{version}"}, "p.toml")
    with pytest.raises(BackendError, match=r"version 'v1\+build': .*gives 'hello:v1\+build', not a valid image"):
        target.image_for("v1+build")


def test_target_tables_name_their_file() -> None:
    with pytest.raises(ConfigError, match=r"\[target.docker\] image = 'x:\{nope\}' \(p.toml\)"):
        TargetSettings.from_mapping({"name": "shop", "docker": {"image": "x:{nope}"}}, "p.toml [target]")
    with pytest.raises(ConfigError, match=r"unknown \[target.compose\] key 'file' \(p.toml\)"):
        TargetSettings.from_mapping({"name": "shop", "compose": {"file": "c.yml"}}, "p.toml [target]")


@pytest.mark.parametrize(
    ("target", "backend", "message"),
    [
        ({"name": "shop", "command": ["shop", "{port}"]}, "docker", r"target 'shop' .* has no \[target.docker\]"),
        ({"name": "shop", "docker": HELLO}, "compose", r"target 'shop' .* has no \[target.compose\]"),
        ({"name": "generic-http"}, "docker", r"target 'generic-http' .* has no \[target.docker\]"),
    ],
)
def test_a_backend_that_cannot_start_the_target_is_refused_at_load(
    target: dict[str, Any], backend: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_stack_settings(toml={"target": target}, backend=backend, environ={})


@pytest.mark.parametrize("backend", ["process", "docker", "compose"])
def test_fragrance_ai_runs_on_every_backend(backend: str) -> None:
    assert resolve_stack_settings(toml={}, backend=backend, environ={}).target.docker is None
    docker = resolve_stack_settings(toml={"target": {"name": "shop", "docker": HELLO}}, backend="docker", environ={})
    assert docker.target.docker is not None and docker.target.docker.image == "hello:{version}"


class ImageCheckingBackend(FakeBackend):
    """The in-process double with the docker backend's ``preflight``: version v9's image is missing."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[str] = []

    def preflight(self, specs: list[ServiceSpec]) -> None:
        for spec in specs:
            if spec.version == "v9":
                raise BackendError(f"{spec.role} {spec.version}: image hello:v9 not found")

    def start(self, spec: ServiceSpec, *, timeout: float = 30.0) -> ServiceHandle:
        self.started.append(f"{spec.role} {spec.version}")
        return super().start(spec, timeout=timeout)


def _stack(tmp_path: Path, canary_version: str) -> tuple[LocalStack, ImageCheckingBackend]:
    nginx, production, canary = free_ports(3)
    settings = StackSettings(
        nginx_port=nginx, production_port=production, canary_port=canary, run_dir=tmp_path / "run",
        production_version="v1", canary_version=canary_version,
    )  # fmt: skip
    backend = ImageCheckingBackend()
    return LocalStack(settings, backend=backend), backend


def test_a_missing_image_stops_the_stack_before_anything_starts(tmp_path: Path) -> None:
    stack, backend = _stack(tmp_path, "v9")
    with pytest.raises(BackendError, match=r"canary v9: image hello:v9 not found"):
        stack.up(with_canary=True, router="memory")
    assert backend.started == [] and load_state(stack.run_dir) is None


def test_a_missing_image_leaves_the_running_canary_in_place(tmp_path: Path) -> None:
    stack, backend = _stack(tmp_path, "v2")
    stack.up(with_canary=True, router="memory")
    try:
        with pytest.raises(BackendError, match=r"canary v9: image hello:v9 not found"):
            stack.start_canary("v9", {})
        state = stack.state()
        assert state.canary is not None and state.canary.version == "v2" and stack.is_healthy(state.canary)
        assert backend.started == ["production v1", "canary v2"]
    finally:
        stack.down()
