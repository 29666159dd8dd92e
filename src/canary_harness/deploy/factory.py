"""Pick a backend by name: the name given by ``--backend`` / ``[stack] backend``, or the one recorded in
each ``ServiceHandle`` (so a stack is always stopped the way it was started)."""

from __future__ import annotations

from canary_harness.deploy.protocol import Backend
from canary_harness.errors import ConfigError

# ``testcontainers`` only runs the smoke checks against a throwaway container (pytest -m smoke): it
# never backs a stack, so ``backend_for`` refuses it.
# ``fake`` is canary_harness.testing's in-process double (the plugin's lifecycle tests): never a default.
BACKENDS: tuple[str, ...] = ("process", "docker", "compose", "testcontainers", "fake")
STACK_BACKENDS: tuple[str, ...] = ("process", "docker", "compose", "fake")


def parse_backend(raw: object, source: str) -> str:
    """A backend name among BACKENDS; ConfigError naming the value and its source otherwise."""
    text = str(raw).strip()
    if text not in BACKENDS:
        raise ConfigError(f"backend {raw!r} ({source}): must be one of {', '.join(BACKENDS)}")
    return text


def backend_for(name: str) -> Backend:
    """A backend instance for ``name`` (imports the docker SDK only when a container backend is asked for)."""
    if name == "process":
        from canary_harness.deploy.process import ProcessBackend

        return ProcessBackend()
    if name == "docker":
        from canary_harness.deploy.docker import DockerBackend

        return DockerBackend()
    if name == "compose":
        from canary_harness.deploy.compose import ComposeBackend

        return ComposeBackend()
    if name == "fake":
        from canary_harness.testing.backend import FakeBackend

        return FakeBackend()
    if name == "external":  # recorded in handles of services given by URL; never chosen by a flag
        from canary_harness.deploy.external import ExternalBackend

        return ExternalBackend()
    if name == "testcontainers":
        raise ConfigError(
            "backend 'testcontainers': only for smoke runs (pytest canary_tests -m smoke), "
            "not for a stack; use process, docker or compose"
        )
    raise ConfigError(f"backend {name!r}: must be one of {', '.join(STACK_BACKENDS)}")
