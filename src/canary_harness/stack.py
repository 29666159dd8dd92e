"""The local stack: NGINX in front of a production and an optional canary version of the service.

Everything runs in the background and is recorded in ``<run_dir>/state.json`` (PIDs with their start
times, ports, versions, log paths, the NGINX directory), so that a later command or process can report
on it, change its weights and stop it by PID. Layout of the run directory::

    state.json               mode 0600 like every file here; the directory is 0700
    env.key, service-env.json  the services' environment: HMAC key and values (see canary_harness.envstore)
    nginx/                   NGINX prefix (see canary_harness.traffic.nginx)
    logs/production.log      stdout/stderr of production; production.jsonl its structured log
    logs/canary.log          the same for the canary
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from canary_harness.config import StackSettings
from canary_harness.deploy.external import adopt, is_external
from canary_harness.deploy.factory import backend_for
from canary_harness.deploy.pids import is_alive, stop_marked
from canary_harness.deploy.protocol import Backend, ServiceHandle, ServiceSpec
from canary_harness.deploy.workers import CanaryWorkers
from canary_harness.envstore import EnvStore
from canary_harness.errors import BackendError, CanaryError, ConfigError, StackError, raise_collected
from canary_harness.private import private_dir
from canary_harness.stack_state import STATE_FILE, NginxRecord, StackState, load_state
from canary_harness.stack_status import StackStatus, measure_status
from canary_harness.traffic.protocol import ManagedTrafficController


@dataclass(frozen=True)
class Unrecorded:
    """What ``LocalStack.down`` stopped although the state file did not record it."""

    containers: list[ServiceHandle]
    pids: list[int]

    def __bool__(self) -> bool:
        return bool(self.containers or self.pids)


class LocalStack:
    """Brings the local stack up and down and gives access to its traffic controller."""

    def __init__(self, settings: StackSettings, backend: Backend | None = None) -> None:
        """``settings`` come from ``resolve_stack_settings``; ``backend`` defaults to ``settings.backend``.

        New services start with ``backend``; recorded ones are stopped and checked with the backend
        named in their handle.
        """
        self.settings = settings
        self.run_dir = Path(settings.run_dir).resolve()
        self.backend: Backend = backend or backend_for(settings.backend)
        if self.backend.on_spawn is None:
            # Record each service the moment it exists: an interrupted health wait leaves no unknown PID.
            self.backend.on_spawn = self._record_spawn
        self.env_store = EnvStore(self.run_dir)

    def backend_of(self, handle: ServiceHandle) -> Backend:
        """The backend that started ``handle`` (the stack's own when the names match)."""
        if getattr(self.backend, "name", None) == handle.backend:
            return self.backend
        return backend_for(handle.backend)

    # ------------------------------------------------------------------ state helpers
    @property
    def nginx_dir(self) -> Path:
        """The NGINX prefix directory inside the run directory."""
        return self.run_dir / "nginx"

    def _log_path(self, role: str) -> Path:
        return self.run_dir / "logs" / f"{role}.log"

    def state(self) -> StackState:
        """The recorded state; StackError if no stack is recorded in the run directory."""
        state = load_state(self.run_dir)
        if state is None:
            raise StackError(f"no stack recorded in {self.run_dir} (run `canary stack up` first)")
        return state

    def _alive(self, state: StackState) -> list[str]:
        alive = [
            f"{h.role} {f'container {h.container_id[:12]}' if h.container_id else f'PID {h.pid}'}"
            for h in (state.production, state.canary)
            if h and self.backend_of(h).is_running(h)
        ]
        if state.nginx and state.nginx.pid and is_alive(state.nginx.pid, state.nginx.pid_start_time):
            alive.append(f"nginx PID {state.nginx.pid}")
        elif state.nginx and state.nginx.router != "managed" and self.controller_for(state.nginx).is_running():
            alive.append(f"{state.nginx.router} router {state.nginx.base_url}")
        return alive

    def controller_for(self, record: NginxRecord) -> ManagedTrafficController:
        """The traffic controller of ``record``'s router, adopting its recorded NGINX master if any."""
        if record.router == "memory":
            from canary_harness.testing.traffic import MemoryTrafficController  # the test double: only when asked

            return MemoryTrafficController.for_record(record)
        if record.router != "managed":
            raise StackError(f"{self.run_dir / STATE_FILE}: unknown router {record.router!r} (managed or memory)")
        from canary_harness.traffic.nginx import NginxTrafficController

        controller = NginxTrafficController(
            record.dir,
            listen_port=record.port,
            listen_host=record.host,
            production=record.production,
            canary=record.canary,
            group_header=self.settings.group_header,
        )
        if record.pid is not None:
            controller.process.adopt(record.pid, record.pid_start_time)
        return controller

    def _nginx_record(self, state: StackState) -> NginxRecord:
        if state.nginx is None:
            raise StackError(f"the stack in {self.run_dir} has no NGINX recorded")
        return state.nginx

    def traffic(self) -> ManagedTrafficController:
        """The traffic controller of the recorded router (NGINX, or the in-memory double)."""
        return self.controller_for(self._nginx_record(self.state()))

    def _spec(self, role: str, version: str, port: int, env: Mapping[str, str]) -> ServiceSpec:
        return ServiceSpec(
            role=role, version=version, host=self.settings.host, port=port, env=dict(env),
            log_path=self._log_path(role), run_dir=self.run_dir,
            probe=self.settings.target.probe, command=self.settings.target.command,
            container=self.settings.target.docker, compose=self.settings.target.compose,
        )  # fmt: skip

    def is_healthy(self, handle: ServiceHandle) -> bool:
        """True if ``handle`` answers healthy: through its backend, or by URL alone for a service given by URL."""
        return self.backend_of(handle).is_healthy(handle)

    def _stop(self, handle: ServiceHandle) -> None:
        """Stop a service the harness started; one given by URL is left running."""
        if not is_external(handle):
            self.backend_of(handle).stop(handle)

    def env_digest(self, env: Mapping[str, str]) -> str:
        """The keyed hash recorded for a service started with ``env`` (compare it, never the values)."""
        return self.env_store.digest(env)

    def service_env(self, role: str) -> dict[str, str]:
        """The extra environment ``role`` was started with, from the private store ({} if unknown)."""
        return self.env_store.load(role)

    def _record_spawn(self, handle: ServiceHandle) -> None:
        state = load_state(self.run_dir) or StackState(run_dir=self.run_dir)
        if handle.role == "canary":
            replace(state, canary=handle).save()
        else:
            replace(state, production=handle).save()

    def preflight(self, *, production: bool, canary_version: str | None) -> None:
        """What the backend can check before anything starts (the docker backend: the images are there), for
        production (if it is to start) and the canary at ``canary_version`` (if given); BackendError if not."""
        s = self.settings
        specs = [self._spec("production", s.production_version, s.production_port, {})] if production else []
        if canary_version:
            specs.append(self._spec("canary", canary_version, s.canary_port, {}))
        check = getattr(self.backend, "preflight", None)
        if check is not None:
            check(specs)

    def _start(self, spec: ServiceSpec) -> ServiceHandle:
        """Start through the backend; the environment goes to the private store, its keyed hash to the handle."""
        self.env_store.save(spec.role, spec.env)
        return replace(self.backend.start(spec), env=dict(spec.env), env_digest=self.env_digest(spec.env))

    # ------------------------------------------------------------------ lifecycle
    def up(
        self,
        *,
        with_canary: bool,
        canary_weight: int = 0,
        production_url: str | None = None,
        canary_url: str | None = None,
        router: str = "managed",
    ) -> StackState:
        """Start production, the canary if asked, then NGINX at ``canary_weight``; record everything.

        ``router``: "managed" (NGINX) or "memory" (``canary_harness.testing``'s in-process double, which
        lives only as long as this process: for the plugin's own lifecycle tests).

        A service given by URL (``production_url``, ``canary_url``: already running, healthy) is recorded,
        not started, and never stopped. If any step fails, whatever this call started is stopped again
        and nothing stays recorded.
        """
        s = self.settings
        if with_canary and not s.canary_version and not canary_url:
            raise ConfigError("canary version: required to start a canary (--canary-version or CANARY_VERSION)")
        if type(canary_weight) is not int or not 0 <= canary_weight <= 100:
            raise ConfigError(f"canary weight {canary_weight!r}: must be an integer in 0..100")
        if canary_weight and not with_canary:
            raise ConfigError(f"canary weight {canary_weight!r}: needs a canary (--canary-version)")
        # The canary's address is in the upstream even while no canary runs, so its port counts too.
        ports = {"nginx": s.nginx_port, "production": s.production_port, "canary": s.canary_port}
        if len(set(ports.values())) != len(ports):
            raise ConfigError(f"ports {ports}: nginx, production and canary ports must all differ")
        existing = load_state(self.run_dir)
        if existing is not None:
            alive = self._alive(existing)
            if alive:
                raise StackError(
                    f"a stack is already up in {self.run_dir} ({', '.join(alive)}); run `canary stack down` first"
                )
        # A missing image is named before anything starts.
        canary_started = with_canary and not canary_url
        self.preflight(production=not production_url, canary_version=s.canary_version if canary_started else None)
        private_dir(self.run_dir)
        state = StackState(run_dir=self.run_dir)
        state.save()  # a fresh record: each process is added to it the moment it exists (_record_spawn)
        controller: ManagedTrafficController | None = None
        try:
            if production_url:
                production = adopt("production", production_url, expected_version=None,
                                   log_path=self._log_path("production"), probe=s.target.probe)  # fmt: skip
            else:
                production = self._start(
                    self._spec("production", s.production_version, s.production_port, s.production_env)
                )
            state = replace(state, production=production)
            state.save()
            canary_address = f"{s.host}:{s.canary_port}"
            if canary_url:
                canary = adopt("canary", canary_url, expected_version=s.canary_version,
                               log_path=self._log_path("canary"), probe=s.target.probe)  # fmt: skip
                canary_address = canary.address
                state = replace(state, canary=canary)
                state.save()
            elif with_canary:
                canary = self._start(self._spec("canary", str(s.canary_version), s.canary_port, s.canary_env))
                state = replace(state, canary=canary)
                state.save()
            record = NginxRecord(
                dir=self.nginx_dir,
                host=s.host,
                port=s.nginx_port,
                production=production.address,
                canary=canary_address,
                router=router,
            )
            controller = self.controller_for(record)
            pid = controller.start(canary_weight)
            record = replace(record, pid=pid, pid_start_time=controller.start_time)
            state = replace(state, nginx=record)
            state.save()
        except BaseException:
            self._stop_all(state, controller)
            state.state_file.unlink(missing_ok=True)
            raise
        return state

    def start_canary(self, version: str, env: Mapping[str, str]) -> ServiceHandle:
        """(Re)start the canary at ``version`` on the recorded canary address, and record it.

        The weight in force is not changed; while the canary restarts NGINX fails its share over to
        production.
        """
        state = self.state()
        record = self._nginx_record(state)
        if state.canary is not None and is_external(state.canary):
            raise StackError(f"the canary at {state.canary.url} was given by URL: the harness does not replace it")
        port = int(record.canary.rsplit(":", 1)[1])
        self.preflight(production=False, canary_version=version)  # the old canary stays if the new cannot start
        if state.canary is not None:
            self.backend_of(state.canary).stop(state.canary)
            state = replace(state, canary=None)
            state.save()
        handle = self._start(self._spec("canary", version, port, env))
        state = replace(state, canary=handle)
        state.save()
        return handle

    def stop_canary(self) -> None:
        """Stop the recorded canary (the weight is not changed: set it to 0 first). Idempotent."""
        state = self.state()
        if state.canary is not None:
            self._stop(state.canary)
            replace(state, canary=None).save()
        # Its workers go with it, verified on the broker: none may keep consuming the canary's queue.
        CanaryWorkers(self.run_dir).stop()

    def restart_production(self, version: str, env: Mapping[str, str] | None = None) -> ServiceHandle:
        """Replace production with ``version`` on the same address (used when promoting a canary),
        with ``env`` (default: the stack's production environment).

        Do this at canary weight 100 (production rendered ``down``) so that no request meets the gap.
        """
        state = self.state()
        record = self._nginx_record(state)
        if state.production is not None and is_external(state.production):
            raise StackError(f"production at {state.production.url} was given by URL: the harness does not replace it")
        if state.production is not None:
            self.backend_of(state.production).stop(state.production)
            state = replace(state, production=None)
            state.save()
        port = int(record.production.rsplit(":", 1)[1])
        production_env = self.settings.production_env if env is None else env
        handle = self._start(self._spec("production", version, port, production_env))
        replace(state, production=handle).save()
        return handle

    def down(self) -> Unrecorded:
        """Stop everything recorded (by PID or container id) and forget it; then anything else the harness
        started for this run directory: containers labelled with it, processes carrying its environment marker
        (see ``deploy.pids``), e.g. when the state file was lost. Idempotent. Returns what it found unrecorded
        and stopped.

        A part that cannot be stopped (a container whose engine went away) does not keep the others running:
        every step runs, the processes of the run directory (its broker too) are stopped last, and then the
        error is raised (one StackError naming all of them when several steps failed); the state file stays
        for a later ``down`` when a recorded service is left."""
        errors: list[CanaryError] = []
        state = load_state(self.run_dir)
        if state is not None:
            controller = self.controller_for(state.nginx) if state.nginx else None
            try:
                self._stop_all(state, controller, raise_errors=True)
                state.state_file.unlink(missing_ok=True)
            except CanaryError as exc:
                errors.append(exc)
        if not errors:  # the values stay while a recorded service does (a later `down` or promotion needs them)
            self.env_store.forget()
        try:
            CanaryWorkers(self.run_dir, backend=self.settings.backend).down()
        except CanaryError as exc:
            errors.append(exc)
        removed: list[ServiceHandle] = []
        try:
            removed = self.remove_unrecorded_containers(state)
        except CanaryError as exc:
            errors.append(exc)
        try:
            pids = stop_marked(self.run_dir)
        except OSError as exc:
            errors.append(StackError(f"could not stop a process started for {self.run_dir}: {exc}"))
        raise_collected(errors)
        return Unrecorded(containers=removed, pids=pids)

    def unrecorded_containers(self, state: StackState | None = None) -> list[ServiceHandle]:
        """Containers labelled with this run directory that the state does not record (lost state file,
        deleted entry, killed session). Empty when no Docker engine answers and none was asked for."""
        from canary_harness.deploy.docker import DockerBackend

        recorded = {h.container_id for h in (state.production, state.canary) if h} if state else set()
        wanted = self.settings.backend == "docker" or any(
            h.backend == "docker" for h in ((state.production, state.canary) if state else ()) if h
        )
        try:
            found = DockerBackend().find_containers(self.run_dir)
        except BackendError:
            if wanted:
                raise
            return []  # a process-only stack on a machine without Docker: nothing to look for
        return [h for h in found if h.container_id not in recorded]

    def remove_unrecorded_containers(self, state: StackState | None = None) -> list[ServiceHandle]:
        """Stop and remove the containers of ``unrecorded_containers``; returns them."""
        found = self.unrecorded_containers(state)
        for handle in found:
            self.backend_of(handle).stop(handle)
        return found

    def _stop_all(
        self, state: StackState, controller: ManagedTrafficController | None, *, raise_errors: bool = False
    ) -> None:
        errors: list[str] = []
        if controller is not None:
            try:
                controller.stop()
            except CanaryError as exc:
                errors.append(f"nginx: {exc}")
        for handle in (state.canary, state.production):
            if handle is not None:
                try:
                    self._stop(handle)
                except CanaryError as exc:
                    errors.append(f"{handle.role}: {exc}")
        if errors and raise_errors:
            raise StackError("could not stop everything: " + "; ".join(errors))

    # ------------------------------------------------------------------ observation
    def status(self) -> StackStatus:
        """Measure what runs: each recorded PID alive, each /health, and the split NGINX reports."""
        return measure_status(self, self.state())
