"""Run service versions as the runbook's compose services (``--backend compose``).

A stage starts exactly what an operator would start by hand: ``docker-compose -p P -f
compose/docker-compose.production.yml -f compose/docker-compose.canary.yml up -d app-canary`` (``app``
for production), with the version and port given as the files' own variables (``CANARY_VERSION``,
``CANARY_IMAGE``, ``CANARY_API_PORT``; ``PRODUCTION_VERSION``, ``PRODUCTION_API_PORT``). One more file,
written next to the role's log (``logs/canary.compose.yml``), adds what only the harness needs: the
stage's extra environment, the service's JSON log written into the run directory's ``logs/``
(bind-mounted, as the invoking user, so the log-field checks read it live) and a run-directory label.

Any other service is run from its own compose files, named in the target's ``[target.compose]`` table
(:mod:`canary_harness.deploy.compose_target`): its services get the version and port variables the table
names, and the override adds the environment names, labels and CPU cgroup only.

The compose project is derived from the run directory, and the override records the files and services, so a
later process (``canary stack down``) finds the containers again from the recorded handle alone. Images are
never built or pulled here: ``fragrance-ai-app:<version>`` comes from ``canary images build``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from canary_harness.deploy.compose_target import ComposeRole, ComposeTarget
from canary_harness.deploy.container_cgroups import cgroup_parent_for
from canary_harness.deploy.health import check_reported_version, health, reported_version
from canary_harness.deploy.pids import port_is_free, tail
from canary_harness.deploy.process import app_log_path
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError, ConfigError
from canary_harness.waiting import wait_until

COMPOSE_FILES = ("docker-compose.production.yml", "docker-compose.canary.yml")
COMPOSE_DIR_ENV = "CANARY_COMPOSE_DIR"
IMAGE_REPOSITORY = "fragrance-ai-app"
# The override's record of the target it goes with: read back by a later process to stop the service.
TARGET_RECORD = "x-canary-harness"
CONTAINER_LOG_DIR = "/var/log/fragrance-ai"
LOG_TAIL_LINES = 30


def default_compose_dir() -> Path:
    """Where the compose files are read from.

    ``$CANARY_COMPOSE_DIR`` if set, else ``./compose`` when it holds them, else the ``compose/`` directory of
    the source checkout this package is installed from.
    """
    env = os.environ.get(COMPOSE_DIR_ENV, "")
    candidates = [Path(env)] if env else [Path("compose"), Path(__file__).resolve().parents[3] / "compose"]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in COMPOSE_FILES):
            return candidate.resolve()
    where = f"${COMPOSE_DIR_ENV}={env!r}" if env else " or ".join(str(c) for c in candidates)
    raise BackendError(f"compose files {' and '.join(COMPOSE_FILES)} not found in {where}")


def runbook_target(compose_dir: Path) -> ComposeTarget:
    """fragrance-ai's runbook: ``app`` and ``app-canary`` of the two files in ``compose_dir``."""
    return ComposeTarget(
        files=tuple(compose_dir / name for name in COMPOSE_FILES),
        roles={
            "production": ComposeRole("app", "PRODUCTION_VERSION", "PRODUCTION_API_PORT"),
            "canary": ComposeRole("app-canary", "CANARY_VERSION", "CANARY_API_PORT", image_variable="CANARY_IMAGE"),
        },
        image=IMAGE_REPOSITORY + ":{version}",
        service_log=True,
        source=f"the runbook's compose files in {compose_dir}",
    )


def project_name(log_dir: Path) -> str:
    """The compose project of a run directory's services (from its log directory: stable across processes)."""
    digest = hashlib.sha256(str(log_dir.resolve()).encode()).hexdigest()[:12]
    return f"canary-{digest}"


def override_path(log_path: Path) -> Path:
    """The harness's own compose file for a role, next to its log (``canary.log`` -> ``canary.compose.yml``)."""
    return log_path.with_suffix(".compose.yml")


def _escape(value: str) -> str:
    # docker-compose interpolates ``$`` in every file it reads: a literal value must double it.
    return value.replace("$", "$$")


def render_override(spec: ServiceSpec, target: ComposeTarget, cgroup_parent: str | None = None) -> str:
    """The extra compose file for ``spec``: environment names, labels, the CPU cgroup parent of its role when
    there is one (deploy/container_cgroups.py says why), and the runbook's JSON log in the run directory.

    It records ``target`` under ``x-canary-harness``. JSON is YAML, so docker-compose reads it as it is.
    """
    body: dict[str, Any] = {
        # Names only: docker-compose takes each value from its own environment (``start`` passes them),
        # so no value of the service's environment is ever written to a file.
        "environment": sorted(spec.env),
        "labels": {
            "canary-harness.run-dir": _escape(str(spec.log_path.parent.parent.resolve())),
            "canary-harness.backend": "compose",
            "canary-harness.role": spec.role,
            "canary-harness.version": _escape(spec.version),
        },
    }
    if target.service_log:
        body["command"] = [
            "--port", str(spec.port),
            "--log-file", f"{CONTAINER_LOG_DIR}/{app_log_path(spec.log_path).name}",
        ]  # fmt: skip
        body["volumes"] = [f"{spec.log_path.parent.resolve()}:{CONTAINER_LOG_DIR}"]
        # The invoking user: the log it writes into the run directory is the caller's file.
        body["user"] = f"{os.getuid()}:{os.getgid()}"
    if cgroup_parent is not None:
        body["cgroup_parent"] = cgroup_parent
    document = {TARGET_RECORD: target.to_json(), "services": {target.roles[spec.role].service: body}}
    return json.dumps(document, indent=2) + "\n"


def recorded_target(log_path: Path) -> ComposeTarget | None:
    """The target recorded in the override of the role logging to ``log_path`` (None: no override, or one
    written before targets were recorded: the runbook's). BackendError naming the file if the record is
    damaged: guessing the runbook's services could leave another service's container running."""
    path = override_path(log_path)
    try:
        record = json.loads(path.read_text()).get(TARGET_RECORD)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        raise BackendError(f"compose override {path}: unreadable: {exc}") from exc
    if record is None:
        return None
    try:
        return ComposeTarget.from_json(record)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendError(f"compose override {path}: damaged {TARGET_RECORD} record: {exc!r}") from exc


class ComposeBackend:
    """Backend over docker-compose 1.29 and the runbook's files (``app`` and ``app-canary``)."""

    name = "compose"
    # Never called: containers are found by their labels, not through a spawn hook.
    on_spawn: Callable[[ServiceHandle], None] | None = None

    def __init__(
        self,
        compose_dir: Path | None = None,
        *,
        docker_compose: str = "docker-compose",
        docker: str = "docker",
        command_timeout: float = 120.0,
    ) -> None:
        """Args:
        compose_dir: the directory of the two compose files (default: ``default_compose_dir()``).
        docker_compose, docker: the executables to run.
        command_timeout: seconds any one docker-compose command may take.
        """
        self._compose_dir = compose_dir
        self._docker_compose = docker_compose
        self._docker = docker
        self._command_timeout = command_timeout

    # ------------------------------------------------------------------ commands
    def target_of(self, log_path: Path) -> ComposeTarget:
        """The target of the role logging to ``log_path``: as its override records it, else the runbook's."""
        return recorded_target(log_path) or self._runbook()

    def _runbook(self) -> ComposeTarget:
        return runbook_target(self._compose_dir or default_compose_dir())

    def compose_argv(self, log_path: Path, *args: str, target: ComposeTarget | None = None) -> list[str]:
        """``docker-compose -p P -f FILE... -f override ARGS`` for the role logging to ``log_path`` (``target``:
        its target when the caller has it already, else the one its override records)."""
        target = target or self.target_of(log_path)
        files = [arg for file in target.files for arg in ("-f", str(file))]
        override = override_path(log_path)
        if override.is_file():
            files += ["-f", str(override)]
        return [self._docker_compose, "-p", project_name(log_path.parent), *files, *args]

    def _run(self, argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> str:
        """Run a docker/docker-compose command; BackendError with its output if it fails."""
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=self._command_timeout, check=False,
                env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendError(f"{what}: {' '.join(argv)} failed: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr.strip() or done.stdout.strip()).splitlines()[-LOG_TAIL_LINES:]
            raise BackendError(f"{what}: {' '.join(argv)} exited {done.returncode}:\n" + "\n".join(output))
        return done.stdout

    def _container(self, handle: ServiceHandle, target: ComposeTarget | None = None) -> str | None:
        """Id of the role's container in the project, running or not (None if there is none)."""
        target = target or self.target_of(handle.log_path)
        out = self._run(
            self.compose_argv(handle.log_path, "ps", "-q", target.roles[handle.role].service, target=target),
            f"{handle.role} {handle.version}: list containers",
            target.variables(handle.role, handle.version, _port(handle.url)),
        )
        ids = out.split()
        return ids[0] if ids else None

    def _state(self, container: str) -> dict[str, object]:
        out = self._run([self._docker, "inspect", "--format", "{{json .State}}", container], "inspect")
        state = json.loads(out)
        return state if isinstance(state, dict) else {}

    # ------------------------------------------------------------------ Backend
    def require_image(self, spec: ServiceSpec) -> ComposeTarget:
        """The target of ``spec``, once its compose files exist and its image (if it names one) is on the
        engine; BackendError naming the file or image and where it was configured."""
        target = spec.compose or self._runbook()
        try:
            target.check_files()
        except ConfigError as exc:  # checked at load too: here, a file gone since
            raise BackendError(f"{spec.role} {spec.version}: {exc}") from exc
        image = target.image_for(spec.version)
        if image is not None:
            where = (
                f"build it: canary images build --version {spec.version}"
                if target.service_log
                else f"images are never pulled; [target.compose] image = {target.image!r} ({target.source})"
            )
            inspect = [self._docker, "image", "inspect", "--format", "{{.Id}}", image]
            self._run(inspect, f"{spec.role} {spec.version}: image {image} not found ({where})")
        return target

    def preflight(self, specs: list[ServiceSpec]) -> None:
        """Every compose file and image the specs need is there: checked before anything starts."""
        for spec in specs:
            self.require_image(spec)

    def start(self, spec: ServiceSpec, *, timeout: float = 60.0) -> ServiceHandle:
        """``up -d --no-build --no-deps <service>``, then wait for ``/health`` to report ``spec.version``.

        BackendError (with the container's last log lines) if the image is missing, the port is taken,
        docker-compose refuses, or the service does not become healthy; nothing is left running then.
        """
        what = f"{spec.role} {spec.version}"
        target = self.require_image(spec)
        if not port_is_free(spec.host, spec.port):
            raise BackendError(f"{what}: port {spec.host}:{spec.port} is already in use")
        if spec.host not in ("127.0.0.1", "localhost"):
            raise BackendError(f"{what}: host {spec.host!r}: the compose services bind 127.0.0.1 only")
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        override = override_path(spec.log_path)
        driver = self._run([self._docker, "info", "--format", "{{.CgroupDriver}}"], f"{what}: docker info").strip()
        override.write_text(render_override(spec, target, cgroup_parent_for(spec.role, driver)))
        handle = ServiceHandle(
            role=spec.role, version=spec.version, url=spec.url, pid=None, log_path=spec.log_path,
            app_log_path=app_log_path(spec.log_path) if target.service_log else None, backend=self.name,
            probe=spec.probe,
        )  # fmt: skip
        variables = target.variables(spec.role, spec.version, spec.port)
        service = target.roles[spec.role].service
        try:
            self._run(
                self.compose_argv(spec.log_path, "up", "-d", "--no-build", "--no-deps", service, target=target),
                f"{what}: start", {**variables, **{key: str(value) for key, value in spec.env.items()}},
            )  # fmt: skip
            container = self._container(handle, target)
            if container is None:
                raise BackendError(f"{what}: docker-compose started no container for {service}")

            def ready() -> bool:
                state = self._state(container)
                if not state.get("Running"):
                    raise BackendError(f"container {container[:12]} exited with code {state.get('ExitCode')}")
                data = health(spec.url, timeout=1.0, probe=spec.probe)
                return data is not None and check_reported_version(data, spec.version, spec.probe)

            wait_until(ready, timeout, 0.1, f"{spec.url}/health")
        except BaseException as exc:
            # Ctrl-C or SIGTERM during the wait too: a service that never became healthy is never left.
            try:
                self.stop(handle, timeout=5.0)
            except BackendError as stop_exc:
                exc.add_note(f"and stopping it failed: {stop_exc}")
            if not isinstance(exc, TimeoutError | BackendError):
                raise
            raise BackendError(
                f"{what} (compose service {service}, project {project_name(spec.log_path.parent)}) did not "
                f"become healthy: {exc}\n--- last lines of {spec.log_path} ---\n{tail(spec.log_path, LOG_TAIL_LINES)}"
            ) from exc
        return handle

    def stop(self, handle: ServiceHandle, *, timeout: float = 10.0) -> None:
        """Keep the container's output in ``handle.log_path``, then ``stop`` and ``rm -f`` the service.

        Idempotent: with no container left there is nothing to do.
        """
        what = f"{handle.role} {handle.version}"
        target = self.target_of(handle.log_path)
        container = self._container(handle, target)
        if container is None:
            return
        service = target.roles[handle.role].service
        variables = target.variables(handle.role, handle.version, _port(handle.url))
        self._save_output(container, handle.log_path)
        self._run(
            self.compose_argv(handle.log_path, "stop", "-t", str(max(1, round(timeout))), service, target=target),
            f"{what}: stop", variables,
        )  # fmt: skip
        self._save_output(container, handle.log_path)
        remove = self.compose_argv(handle.log_path, "rm", "-f", service, target=target)
        self._run(remove, f"{what}: remove", variables)

    def _save_output(self, container: str, log_path: Path) -> None:
        """The container's stdout/stderr so far, into ``log_path`` (docker keeps it until removal)."""
        done = subprocess.run(
            [self._docker, "logs", "--timestamps", container], capture_output=True, text=True,
            timeout=self._command_timeout, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            log_path.write_text(done.stdout + done.stderr)

    def is_running(self, handle: ServiceHandle) -> bool:
        """True if the role's container exists and runs."""
        container = self._container(handle)
        return container is not None and bool(self._state(container).get("Running"))

    def is_healthy(self, handle: ServiceHandle) -> bool:
        """True if the container runs and ``/health`` answers healthy."""
        try:
            return self.is_running(handle) and health(handle.url, probe=handle.probe) is not None
        except BackendError:
            return False

    def version(self, handle: ServiceHandle) -> str | None:
        """The version ``/health`` reports while the service answers healthy, else None."""
        return reported_version(handle.url, probe=handle.probe)


def image_name(version: str) -> str:
    """The runbook's image of a release: ``fragrance-ai-app:<version>``."""
    return f"{IMAGE_REPOSITORY}:{version}"


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])
