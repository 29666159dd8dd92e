"""Backend selection and the container field of a handle: pure code, no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.config import resolve_stack_settings
from canary_harness.deploy.factory import backend_for, parse_backend
from canary_harness.deploy.process import ProcessBackend
from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.errors import ConfigError


def test_backend_for_names() -> None:
    assert isinstance(backend_for("process"), ProcessBackend)
    assert type(backend_for("docker")).__name__ == "DockerBackend"  # no engine contact until first use
    with pytest.raises(ConfigError, match="only for smoke runs"):
        backend_for("testcontainers")
    with pytest.raises(ConfigError, match="'k8s'"):
        backend_for("k8s")


def test_parse_backend_names_value_and_source() -> None:
    assert parse_backend(" docker ", "x") == "docker"
    with pytest.raises(ConfigError, match=r"backend 'vm' \(from --backend\): must be one of process, docker"):
        parse_backend("vm", "from --backend")


@pytest.mark.parametrize(
    ("cli", "environ", "toml", "expected"),
    [
        ("docker", {"CANARY_BACKEND": "process"}, {"backend": "process"}, "docker"),
        (None, {"CANARY_BACKEND": "docker"}, {"backend": "process"}, "docker"),
        (None, {}, {"backend": "docker"}, "docker"),
        (None, {}, {}, "process"),
    ],
)
def test_stack_backend_precedence(
    cli: str | None, environ: dict[str, str], toml: dict[str, str], expected: str
) -> None:
    settings = resolve_stack_settings(toml={"stack": toml}, environ=environ, backend=cli)
    assert settings.backend == expected


def test_toml_backend_error_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"'pods' \(from canary.toml \[stack\] backend\)"):
        resolve_stack_settings(toml={"stack": {"backend": "pods"}}, environ={})


def test_handle_without_container_id_reads_as_before() -> None:
    old = {"role": "canary", "version": "v0.2.0", "url": "http://127.0.0.1:8001", "pid": 12, "log_path": "l.log"}
    handle = ServiceHandle.from_json(old)
    assert handle.container_id is None and handle.backend == "process"
    container = ServiceHandle(
        "canary", "v0.2.0", "http://127.0.0.1:8001", None, Path("l.log"), backend="docker", container_id="abc123"
    )
    assert ServiceHandle.from_json(container.to_json()) == container
