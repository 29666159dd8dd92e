"""Smoke checks against a throwaway canary container (``--canary-backend testcontainers``), for laptops.

``pytest canary_tests -m smoke --canary-version v0.2.0 --canary-backend testcontainers`` starts
``fragrance-ai-app:<version>`` with testcontainers on the host network, runs the smoke API, log-field and
metrics-exposed checks against it directly (no NGINX, no weights, no journal, no stage) and removes it
at the end of the session, also when a check fails or the run is interrupted (Ctrl-C, SIGTERM).

The ``canary_container`` fixture is public: teams writing their own smoke tests request it and get a
``CanaryContainer`` (its URL, version, structured log and container id).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from canary_harness.deploy.docker import (
    CONTAINER_LOG_DIR,
    LABEL_PORT,
    LABEL_PREFIX,
    LABEL_ROLE,
    LABEL_RUN_DIR,
    LABEL_VERSION,
    DockerBackend,
)
from canary_harness.deploy.health import health
from canary_harness.deploy.pids import port_is_free
from canary_harness.deploy.protocol import ServiceSpec
from canary_harness.errors import BackendError
from canary_harness.pytest_plugin.keys import OPTIONS_KEY
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.waiting import wait_until

SMOKE_BACKEND = "testcontainers"
# The stage number of a smoke run's record: no stage runs (-1 is never a stage; 0 is the shadow stage).
SMOKE_STAGE = -1
LABEL_PURPOSE = LABEL_PREFIX + "purpose"
START_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class CanaryContainer:
    """A running throwaway canary: where it answers and where its structured log is."""

    url: str
    version: str
    log_path: Path
    container_id: str


def is_smoke_run(options: StageOptions) -> bool:
    """True when the session only smoke-checks a throwaway container (no stage)."""
    return options.backend == SMOKE_BACKEND


def smoke_record(options: StageOptions, container: CanaryContainer) -> StageRecord:
    """The stage record the release checks read, for a smoke run: the canary only, no NGINX, no verdict."""
    return StageRecord(
        canary_version=options.canary_version,
        production_version=options.production_version,
        stage=SMOKE_STAGE,
        dry_run=True,
        judge=options.judge,
        canary_url=container.url,
        canary_log=str(container.log_path),
    )


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _testcontainer(image: str) -> Any:
    # Ryuk, testcontainers' reaper, is an image pulled from a registry: there is none here. Removal is
    # ours (the fixture's finalizer), so the reaper is switched off before testcontainers reads its config.
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    from testcontainers.core.container import DockerContainer

    return DockerContainer(image)


def start_canary_container(options: StageOptions, *, host: str = "127.0.0.1") -> tuple[Any, CanaryContainer]:
    """Start the canary image on a free loopback port and wait for ``/health`` to report its version.

    Returns the testcontainers object (stop it to remove the container) and what tests need. On failure
    the container is removed and BackendError carries its last log lines.
    """
    version = options.canary_version
    run_dir = Path(options.stack.run_dir).resolve()
    port = _free_port(host)
    log_dir = run_dir / "smoke"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_name = f"canary-{version}-{os.getpid()}.jsonl"
    spec = ServiceSpec(
        role="canary",
        version=version,
        host=host,
        port=port,
        env=dict(options.canary_env),
        log_path=log_dir / log_name,
        run_dir=run_dir,
    )
    image = DockerBackend().require_image(spec)  # one clear line, before testcontainers tries to pull it
    if not port_is_free(host, port):
        raise BackendError(f"smoke canary {version}: port {host}:{port} is already in use")
    labels = {
        LABEL_ROLE: "canary",
        LABEL_VERSION: version,
        LABEL_RUN_DIR: str(run_dir),
        LABEL_PORT: str(port),
        LABEL_PURPOSE: "smoke",
    }
    container = (
        _testcontainer(image)
        .with_command(f"--host {host} --port {port} --version {version} --log-file {CONTAINER_LOG_DIR}/{log_name}")
        .with_env("PYTHONUNBUFFERED", "1")
        .with_volume_mapping(str(log_dir), CONTAINER_LOG_DIR, "rw")
        # Host networking: the testcontainers wait strategies and get_exposed_port need published ports.
        .with_kwargs(network_mode="host", labels=labels, user=f"{os.getuid()}:{os.getgid()}")
    )
    for key, value in options.canary_env.items():
        container.with_env(key, value)
    try:
        container.start()
        wrapped = container.get_wrapped_container()

        def ready() -> bool:
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                raise BackendError(f"container exited with code {wrapped.attrs['State'].get('ExitCode')}")
            data = health(spec.url, timeout=1.0)
            if data is not None and data.get("version") != version:
                raise BackendError(f"/health reports version {data.get('version')!r}, expected {version!r}")
            return data is not None

        wait_until(ready, START_TIMEOUT_S, 0.05, f"{spec.url}/health")
    except Exception as exc:  # whatever failed (engine, wait, SDK), remove the container first
        logs = _last_lines(container)
        container.stop()
        raise BackendError(
            f"smoke canary {version} ({image}) did not become healthy: {exc}\n"
            f"--- last lines of the container's output ---\n{logs}"
        ) from exc
    return container, CanaryContainer(spec.url, version, spec.log_path, wrapped.id)


def _last_lines(container: Any) -> str:
    try:
        out, err = container.get_logs()
    except Exception as exc:  # the container may never have been created; say so instead of failing again
        return f"(no output: {exc})"
    return "\n".join((out + err).decode(errors="replace").splitlines()[-LOG_TAIL_LINES:])


class _TermAsInterrupt:
    """While the container runs, SIGTERM unwinds like Ctrl-C so that the finalizer still removes it."""

    def __enter__(self) -> None:
        self._previous = signal.getsignal(signal.SIGTERM)
        if self._previous == signal.SIG_DFL:  # leave a handler someone else installed alone
            signal.signal(signal.SIGTERM, self._raise)

    def __exit__(self, *exc: object) -> None:
        if self._previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    @staticmethod
    def _raise(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt("SIGTERM")


@pytest.fixture(scope="session")
def canary_container(pytestconfig: pytest.Config) -> Iterator[CanaryContainer]:
    """A throwaway container of the canary image (``--canary-version``, ``--canary-env``), host network.

    Yields a ``CanaryContainer``: ``url`` (``http://127.0.0.1:PORT``), ``version``, ``log_path`` (the
    service's JSON log, bind-mounted from the run dir) and ``container_id``. The container is removed
    when the session ends, also after a failure, Ctrl-C or SIGTERM. A missing image fails with the
    ``canary images build --version V`` command to run.
    """
    options: StageOptions = pytestconfig.stash[OPTIONS_KEY]
    try:
        container, info = start_canary_container(options)
    except BackendError as exc:
        pytest.fail(f"canary: {exc}", pytrace=False)
    with _TermAsInterrupt():
        try:
            yield info
        finally:
            container.stop()
