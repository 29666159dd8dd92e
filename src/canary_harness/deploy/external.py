"""Services the harness did not start and never stops, given by URL (``canary stack up --production-url``).

Their handle is recorded with ``backend = "external"`` and no PID: a stack refers to them, probes them and
routes traffic to them, but ``canary stack down`` (and every stop path) leaves them running.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from canary_harness.deploy.health import FRAGRANCE_PROBE, HealthProbe, health, reported_version
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError, ConfigError, StackError

EXTERNAL = "external"
_URL_RE = re.compile(r"^http://(\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9A-Fa-f:.]+\]):(\d{1,5})/?$")


def parse_service_url(raw: str, source: str) -> str:
    """``http://host:port`` (no path): the URL of a running service version; ConfigError naming it."""
    match = _URL_RE.match(str(raw).strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(f"URL {raw!r} ({source}): must be http://HOST:PORT of a running service, e.g. "
                          "http://127.0.0.1:8000")  # fmt: skip
    return str(raw).strip().rstrip("/")


def is_external(handle: ServiceHandle | None) -> bool:
    """True for a service the harness refers to but does not own."""
    return handle is not None and handle.backend == EXTERNAL


def adopt(
    role: str, url: str, *, expected_version: str | None, log_path: Path, probe: HealthProbe = FRAGRANCE_PROBE
) -> ServiceHandle:
    """The handle of the healthy service at ``url``; StackError if it does not answer healthy, or answers
    another version than ``expected_version`` (when given). Nothing is started."""
    data = health(url, probe=probe)
    if data is None:
        raise StackError(f"{role} at {url} (given by URL) is not healthy: expected {probe.describe()}; "
                         "the harness does not start services given by URL")  # fmt: skip
    reported = data.get("version")
    version = str(reported) if reported is not None else (expected_version or "unknown")
    if expected_version is not None and probe.checks_version and version != expected_version:
        raise StackError(f"{role} at {url} reports version {version!r}, expected {expected_version!r}")
    return ServiceHandle(
        role=role, version=version, url=url, pid=None, log_path=log_path, backend=EXTERNAL, probe=probe
    )


class ExternalBackend:
    """The backend of services given by URL: it starts and stops nothing, and judges them by ``/health``."""

    name = EXTERNAL
    # Never called: nothing is ever started.
    on_spawn: Callable[[ServiceHandle], None] | None = None

    def start(self, spec: ServiceSpec, *, timeout: float = 30.0) -> ServiceHandle:
        """Refused: a service given by URL is started by its owner, never by the harness."""
        raise BackendError(f"{spec.role} {spec.version}: services given by URL are never started by the harness")

    def stop(self, handle: ServiceHandle, *, timeout: float = 10.0) -> None:
        """Nothing to do: the harness never stops a service it did not start."""

    def is_running(self, handle: ServiceHandle) -> bool:
        """True if the service answers ``/health`` healthy (its process is not the harness's to see)."""
        return health(handle.url, probe=handle.probe) is not None

    def is_healthy(self, handle: ServiceHandle) -> bool:
        """True if the service answers ``/health`` healthy."""
        return health(handle.url, probe=handle.probe) is not None

    def version(self, handle: ServiceHandle) -> str | None:
        """The version ``/health`` reports while the service answers healthy, else None."""
        return reported_version(handle.url, probe=handle.probe)
