"""The backend contract: start a service version, find it healthy, stop it.

``ProcessBackend`` (subprocesses), ``DockerBackend`` and ``ComposeBackend`` (containers),
``ExternalBackend`` (services given by URL: never started or stopped) and the test double
``FakeBackend`` (``canary_harness.testing.backend``: tiny in-thread HTTP services) implement it;
``backend_for(name)`` in ``canary_harness.deploy.factory`` picks one by the name recorded in each handle.
A new backend passes the compliance suite in ``tests/integration/test_backend_compliance.py``.
A ``ServiceHandle`` round-trips through JSON so that a later process (``canary stack down``) can stop
what an earlier one (``canary stack up``) started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from canary_harness.deploy.compose_target import ComposeTarget
from canary_harness.deploy.container_target import ContainerTarget
from canary_harness.deploy.health import FRAGRANCE_PROBE, HealthProbe
from canary_harness.errors import StackError

ROLES = ("production", "canary")


@dataclass(frozen=True)
class ServiceSpec:
    """What to run: one version of the service in a role, on a loopback port, with extra environment."""

    role: str
    version: str
    host: str = "127.0.0.1"
    port: int = 8000
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: Path = Path("service.log")
    # The stack's run directory: container backends label their containers with it (None: the log's dir).
    run_dir: Path | None = None
    # How the target answers its health check, and (process backend) the argv that starts it, with
    # {version}, {host}, {port} and {log} holes; empty: fragrance-ai's own console script.
    probe: HealthProbe = FRAGRANCE_PROBE
    command: tuple[str, ...] = ()
    # (docker backend) the target's image and container settings; None: fragrance-ai's release images.
    container: ContainerTarget | None = None
    # (compose backend) the target's compose files and services; None: fragrance-ai's runbook files.
    compose: ComposeTarget | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r}: must be one of {', '.join(ROLES)}")

    @property
    def url(self) -> str:
        """Base URL of the service once it runs."""
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class ServiceHandle:
    """A running service version. ``pid`` is None for backends without a local process (containers).

    ``log_path`` holds the process's stdout/stderr; ``app_log_path`` the service's own structured log
    (``--log-file``), when the backend knows it. ``pid_start_time`` guards against a reused PID.
    """

    role: str
    version: str
    url: str
    pid: int | None
    log_path: Path
    app_log_path: Path | None = None
    pid_start_time: int | None = None
    backend: str = "process"
    # The extra environment it was started with (--canary-env), in memory only: never written to the
    # state file, which keeps ``env_digest`` (keyed hash, see canary_harness.envstore) for the reuse decision.
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    env_digest: str | None = None
    # The container's id for container backends (absent from state files written before containers).
    container_id: str | None = None
    probe: HealthProbe = FRAGRANCE_PROBE

    @property
    def address(self) -> str:
        """``host:port`` of the service, as an NGINX upstream server."""
        return self.url.split("://", 1)[-1].rstrip("/")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings)."""
        return {
            "role": self.role,
            "version": self.version,
            "url": self.url,
            "pid": self.pid,
            "log_path": str(self.log_path),
            "app_log_path": str(self.app_log_path) if self.app_log_path else None,
            "pid_start_time": self.pid_start_time,
            "backend": self.backend,
            "env_digest": self.env_digest,
            "container_id": self.container_id,
            "probe": self.probe.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "state file") -> ServiceHandle:
        """Inverse of ``to_json``; StackError naming the source if a field is missing or mistyped."""
        try:
            pid = data["pid"]
            start = data.get("pid_start_time")
            app_log = data.get("app_log_path")
            return cls(
                role=str(data["role"]),
                version=str(data["version"]),
                url=str(data["url"]),
                pid=int(pid) if pid is not None else None,
                log_path=Path(str(data["log_path"])),
                app_log_path=Path(str(app_log)) if app_log else None,
                pid_start_time=int(start) if start is not None else None,
                backend=str(data.get("backend", "process")),
                env_digest=str(data["env_digest"]) if data.get("env_digest") else None,
                container_id=str(data["container_id"]) if data.get("container_id") else None,
                probe=HealthProbe.from_json(data.get("probe")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Name the fields, not their values: an older state file may hold an environment in clear.
            raise StackError(f"{source}: invalid service entry (fields {_fields(data)}): {exc!r}") from exc


def _fields(data: object) -> str:
    return str(sorted(map(str, data))) if isinstance(data, Mapping) else f"a {type(data).__name__}"


@runtime_checkable
class Backend(Protocol):
    """Starts and stops service versions (subprocesses, containers, ...)."""

    # The name recorded in each handle it starts (``ServiceHandle.backend``), as ``backend_for`` knows it.
    name: str
    # Called with the handle the moment the service exists, before the health wait, so that the caller can
    # record it (an interrupted start then leaves nothing unknown). Backends that find their services by
    # other means (containers, by label) never call it.
    on_spawn: Callable[[ServiceHandle], None] | None

    def start(self, spec: ServiceSpec, *, timeout: float = 30.0) -> ServiceHandle:
        """Start ``spec`` and wait (up to ``timeout``) for its ``/health`` to report its version.

        Raises BackendError carrying the last log lines on failure, with nothing left running.
        """
        ...

    def stop(self, handle: ServiceHandle, *, timeout: float = 10.0) -> None:
        """Stop the service (TERM, then KILL after ``timeout``). Idempotent."""
        ...

    def is_running(self, handle: ServiceHandle) -> bool:
        """True if the recorded process or container still runs (healthy or not)."""
        ...

    def is_healthy(self, handle: ServiceHandle) -> bool:
        """True if the service answers ``/health`` with 200 and status ``healthy``."""
        ...

    def version(self, handle: ServiceHandle) -> str | None:
        """The version the service reports on ``/health`` while it answers healthy; None otherwise."""
        ...
