"""Run service versions as Docker containers of the release's image (``fragrance-ai-app:<version>``), or
of the image a target profile names (``[target.docker]``, see :mod:`canary_harness.deploy.container_target`).

Containers use host networking and bind the spec's loopback port, exactly like a process would. Each
carries the labels ``canary-harness.role``, ``.version``, ``.run-dir`` and ``.port``, so that a later
process finds the containers of a run directory even when its ``state.json`` is lost
(``find_containers``).

Logs: the service's structured log (``--log-file``) is written into the run directory's log directory,
bind-mounted into the container, at the same name a process would use (``canary.log`` ->
``canary.jsonl``), so the harness reads it exactly as for processes. The container runs as the host
user's uid:gid (the image's own user, 65534, could not write into a directory the host user owns), so
the files it writes belong to the host user. The container's stdout/stderr (``docker logs``) are
appended to ``handle.log_path`` when it stops or fails to start.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from canary_harness.deploy.container_cgroups import scheduling_options
from canary_harness.deploy.container_target import CONTAINER_LOG_DIR
from canary_harness.deploy.health import check_reported_version, health, reported_version
from canary_harness.deploy.pids import port_is_free, tail
from canary_harness.deploy.process import app_log_path
from canary_harness.deploy.protocol import ROLES, ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError
from canary_harness.waiting import wait_until

IMAGE_REPOSITORY = "fragrance-ai-app"
LABEL_PREFIX = "canary-harness."
LABEL_ROLE = LABEL_PREFIX + "role"
LABEL_VERSION = LABEL_PREFIX + "version"
LABEL_RUN_DIR = LABEL_PREFIX + "run-dir"
LABEL_PORT = LABEL_PREFIX + "port"
# Seconds the SDK waits for one engine API call (a stop waits longer: its own timeout is added).
API_TIMEOUT_S = 30


def image_for(version: str, repository: str = IMAGE_REPOSITORY) -> str:
    """The image that holds ``version`` (the runbook's name, built by ``canary images build``)."""
    return f"{repository}:{version}"


def container_name(run_dir: Path, role: str) -> str:
    """A name unique per run directory and role: two stacks on one engine never clash."""
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return f"canary-harness-{role}-{digest}"


def _docker_module() -> Any:
    try:
        import docker
    except ImportError as exc:  # the SDK is a dependency, but a broken install should read clearly
        raise BackendError("the docker backend needs the docker SDK: pip install 'docker>=7'") from exc
    return docker


@contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Translate the SDK's errors (engine down, API errors) into one-line BackendErrors about ``what``."""
    docker = _docker_module()
    try:
        yield
    except docker.errors.APIError as exc:
        raise BackendError(f"{what}: Docker engine error: {exc.explanation or exc}") from exc
    except docker.errors.DockerException as exc:
        raise BackendError(f"{what}: Docker engine not reachable ({exc}); start it (scripts/docker-up.sh)") from exc
    except OSError as exc:  # the socket went away between calls
        raise BackendError(f"{what}: Docker engine not reachable: {exc}") from exc


class DockerBackend:
    """Backend that runs each version as a container on the host network: of ``fragrance-ai-app:<version>``, or
    of the image the spec's ``container`` (a target's ``[target.docker]``) names."""

    name = "docker"
    # Never called: containers are found by their labels, not through a spawn hook.
    on_spawn: Callable[[ServiceHandle], None] | None = None

    def __init__(
        self, repository: str = IMAGE_REPOSITORY, *, extra_env: dict[str, str] | None = None, client: Any = None
    ) -> None:
        """``repository`` names the images; ``extra_env`` goes under each spec's env; ``client`` an SDK client."""
        self.repository = repository
        self._extra_env = dict(extra_env or {})
        self._client = client

    # ------------------------------------------------------------------ engine
    @property
    def client(self) -> Any:
        """The SDK client, connected on first use (BackendError in one line if the engine is down)."""
        if self._client is None:
            docker = _docker_module()
            with engine_errors("docker backend"):
                # The engine picks its own API version (1.41 on 20.10): pinning a newer one fails.
                self._client = docker.from_env(timeout=API_TIMEOUT_S)
        return self._client

    def image_of(self, spec: ServiceSpec) -> str:
        """The image ``spec`` runs: the target's template filled with the version, else the release image."""
        if spec.container is not None:
            return spec.container.image_for(spec.version)
        return image_for(spec.version, self.repository)

    def require_image(self, spec: ServiceSpec) -> str:
        """The image of ``spec.version``; BackendError naming how to make it when it is absent (never pulled)."""
        docker = _docker_module()
        image = self.image_of(spec)
        with engine_errors(f"{spec.role} {spec.version}"):
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                if spec.container is not None:
                    raise BackendError(
                        f"{spec.role} {spec.version}: image {image} not found on the Docker engine "
                        f"([target.docker] image = {spec.container.image!r}, {spec.container.source}); "
                        "build or load it first: nothing is pulled"
                    ) from None
                raise BackendError(
                    f"{spec.role} {spec.version}: image {image} not found; build it with "
                    f"`canary images build --version {spec.version}`"
                ) from None
        return image

    def preflight(self, specs: list[ServiceSpec]) -> None:
        """Every image the specs need is on the engine: checked before anything starts (BackendError)."""
        for spec in specs:
            self.require_image(spec)

    def _container(self, handle: ServiceHandle) -> Any | None:
        """The handle's container, None once it is gone."""
        docker = _docker_module()
        ref = handle.container_id
        if not ref:
            return None
        with engine_errors(f"{handle.role} {handle.version}"):
            try:
                return self.client.containers.get(ref)
            except docker.errors.NotFound:
                return None

    # ------------------------------------------------------------------ lifecycle
    def labels(self, spec: ServiceSpec) -> dict[str, str]:
        """The labels that let a later process find this container by run directory and role."""
        return {
            LABEL_ROLE: spec.role,
            LABEL_VERSION: spec.version,
            LABEL_RUN_DIR: str(_run_dir(spec)),
            LABEL_PORT: str(spec.port),
        }

    def run_container(
        self, image: str, command: list[str] | None, *, name: str, role: str, environment: Mapping[str, str],
        labels: Mapping[str, str], log_dir: Path, user: str | None = None, **options: Any,
    ) -> Any:  # fmt: skip
        """Run a detached container as the harness runs every one: on the host network, output unbuffered, the
        run directory's ``log_dir`` mounted at CONTAINER_LOG_DIR, as ``user`` (default: the host user, so that
        the files it writes there are the caller's) and in its role's own CPU cgroup (deploy/container_cgroups.py).
        """
        return self.client.containers.run(
            image, command, detach=True, name=name, network_mode="host",
            environment={"PYTHONUNBUFFERED": "1", **environment}, labels=dict(labels),
            user=user or f"{os.getuid()}:{os.getgid()}",
            volumes={str(log_dir): {"bind": CONTAINER_LOG_DIR, "mode": "rw"}},
            **scheduling_options(self.client, role), **options,
        )  # fmt: skip

    def start(self, spec: ServiceSpec, *, timeout: float = 30.0) -> ServiceHandle:
        """Run the image of ``spec`` and wait for its health check (and version, if the target reports one).

        BackendError with the container's last log lines on failure; the container is removed then.
        """
        what = f"{spec.role} {spec.version}"
        image = self.require_image(spec)
        if not port_is_free(spec.host, spec.port):
            raise BackendError(f"{what}: port {spec.host}:{spec.port} is already in use")
        log_dir = spec.log_path.parent.resolve()
        log_dir.mkdir(parents=True, exist_ok=True)
        app_log = app_log_path(spec.log_path)
        name = container_name(_run_dir(spec), spec.role)
        self._remove_leftover(name, spec)
        values = {"version": spec.version, "host": spec.host, "port": str(spec.port),
                  "log": f"{CONTAINER_LOG_DIR}/{app_log.name}"}  # fmt: skip
        target = spec.container
        if target is None:
            command = ["--host", spec.host, "--port", values["port"], "--version", spec.version,
                       "--log-file", values["log"]]  # fmt: skip
            options: dict[str, Any] = {}
        else:
            command = target.argv(values)
            options = {"working_dir": target.workdir} if target.workdir else {}
        user = target.user if target is not None and target.user else None
        environment = target.environment(values) if target is not None else {}
        with engine_errors(what):
            container = self.run_container(
                image, command or None, name=name, role=spec.role,
                environment={**environment, **self._extra_env, **dict(spec.env)}, labels=self.labels(spec),
                log_dir=log_dir, user=user, **options,
            )  # fmt: skip
        handle = ServiceHandle(
            role=spec.role, version=spec.version, url=spec.url, pid=None, log_path=spec.log_path,
            app_log_path=app_log, backend=self.name, container_id=container.id, probe=spec.probe,
        )  # fmt: skip

        def ready() -> bool:
            container.reload()
            if container.status in ("exited", "dead"):
                code = container.attrs.get("State", {}).get("ExitCode")
                raise BackendError(f"container exited with code {code} before becoming healthy")
            data = health(spec.url, timeout=1.0, probe=spec.probe)
            return data is not None and check_reported_version(data, spec.version, spec.probe)

        try:
            with engine_errors(what):
                wait_until(ready, timeout, 0.05, f"{spec.url}{spec.probe.path}")
        except BaseException as exc:
            # Ctrl-C or SIGTERM during the wait too: a container that never became healthy is never left.
            self.stop(handle, timeout=5.0)
            if not isinstance(exc, TimeoutError | BackendError):
                raise
            raise BackendError(
                f"{what} (container {name} {container.short_id}, image {image}) did not become healthy: "
                f"{exc}\n--- last lines of {spec.log_path} ---\n{tail(spec.log_path)}"
            ) from exc
        return handle

    def _remove_leftover(self, name: str, spec: ServiceSpec) -> None:
        """A stopped container of the same run dir and role (a killed session's) would block the name."""
        docker = _docker_module()
        with engine_errors(f"{spec.role} {spec.version}"):
            try:
                old = self.client.containers.get(name)
            except docker.errors.NotFound:
                return
            if old.labels.get(LABEL_RUN_DIR) != str(_run_dir(spec)):
                raise BackendError(f"container name {name} is taken by a container of another run directory")
            if old.status == "running":
                raise BackendError(
                    f"{spec.role} {spec.version}: container {name} ({old.labels.get(LABEL_VERSION)}) already "
                    f"runs for {_run_dir(spec)}; run `canary stack down` first"
                )
            old.remove(force=True)

    def stop(self, handle: ServiceHandle, *, timeout: float = 10.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``, then remove; its output is appended to ``handle.log_path``.

        Idempotent: a container already gone is left alone.
        """
        container = self._container(handle)
        if container is None:
            return
        docker = _docker_module()
        with engine_errors(f"{handle.role} {handle.version} (container {container.short_id})"):
            try:
                # The engine sends the image's STOPSIGNAL (SIGTERM), then SIGKILL after the timeout.
                container.stop(timeout=max(1, round(timeout)))
                _save_output(container, handle.log_path)
                container.remove(force=True)
            except docker.errors.NotFound:
                return  # removed meanwhile (another stop, `docker rm`): the goal is reached

    def is_running(self, handle: ServiceHandle) -> bool:
        """True if the recorded container exists and runs."""
        container = self._container(handle)
        return container is not None and container.status == "running"

    def is_healthy(self, handle: ServiceHandle) -> bool:
        """True if the container runs and ``/health`` answers healthy."""
        return self.is_running(handle) and health(handle.url, probe=handle.probe) is not None

    def version(self, handle: ServiceHandle) -> str | None:
        """The version ``/health`` reports while the service answers healthy, else None."""
        return reported_version(handle.url, probe=handle.probe)

    # ------------------------------------------------------------------ discovery
    def find_containers(self, run_dir: Path) -> list[ServiceHandle]:
        """Handles of every container (running or not) labelled with ``run_dir``: by label, never by name."""
        with engine_errors(f"containers of {run_dir}"):
            found = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_RUN_DIR}={Path(run_dir).resolve()}"}
            )
        return [handle for handle in map(self._handle_of, found) if handle is not None]

    def _handle_of(self, container: Any) -> ServiceHandle | None:
        labels = container.labels
        role, port = labels.get(LABEL_ROLE), labels.get(LABEL_PORT, "")
        if role not in ROLES or not port.isdigit():
            return None
        log_path = Path(labels[LABEL_RUN_DIR]) / "logs" / f"{role}.log"
        return ServiceHandle(
            role=role, version=labels.get(LABEL_VERSION, "?"), url=f"http://127.0.0.1:{port}", pid=None,
            log_path=log_path, app_log_path=app_log_path(log_path), backend=self.name,
            container_id=container.id,
        )  # fmt: skip


def _run_dir(spec: ServiceSpec) -> Path:
    # Specs made by LocalStack carry the run dir; others (tests, benchmarks) label with their log's dir.
    return (spec.run_dir or spec.log_path.parent).resolve()


def _save_output(container: Any, log_path: Path) -> None:
    """Append the container's stdout/stderr to ``log_path`` (it is lost once the container is removed)."""
    output = container.logs(stdout=True, stderr=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        out.write(output)
