"""The canary's workers: ``fragrance-ai worker llm|rl`` processes started with the canary, on the stack's
broker (``deploy.broker``), judged with it and stopped with it.

How many: ``[workers] llm = N, rl = N`` in canary.toml, overridden by ``LLM_WORKER_CANARY_REPLICAS`` /
``RL_WORKER_CANARY_REPLICAS`` (the runbook's names). Zero of both (the default): no broker, no workers, the
canary does everything in-process.

Recorded in ``<run_dir>/workers.json`` (private, like state.json): the broker and each worker's PID with its
start time, port and log, so any later process (a rollback, ``canary stack down``) stops them by PID. Each
worker consumes the canary's queue (keyed by its version), so it never takes production's work; stopping
them is verified on the broker: no client of the canary's queue may be left connected.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.deploy import pids
from canary_harness.deploy.broker import BrokerRecord, ping, start_broker, stop_broker
from canary_harness.deploy.process import find_executable, health
from canary_harness.errors import BackendError, CanaryError, ConfigError, StackError, raise_collected
from canary_harness.ports import free_port
from canary_harness.private import open_private_append, private_dir, write_private
from canary_harness.waiting import wait_until

WORKERS_FILE = "workers.json"
ROLES = ("llm", "rl")
MAX_REPLICAS = 16
REPLICA_ENV = {"llm": "LLM_WORKER_CANARY_REPLICAS", "rl": "RL_WORKER_CANARY_REPLICAS"}
CONSUMER_PREFIX = "fw"  # fragrance_ai.queues: consumer (and Redis client) names are fw:<queue>:<role>:...
STOP_VERIFY_S = 10.0
# Backends whose canary workers are containers (the compose backend's through the canary-workers profile).
CONTAINER_BACKENDS = ("docker", "compose")


@dataclass(frozen=True)
class WorkerPlan:
    """Replicas of each worker role the canary runs with."""

    llm: int = 0
    rl: int = 0

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles with at least one replica, in ROLES order."""
        return tuple(role for role in ROLES if self.replicas(role) > 0)

    def replicas(self, role: str) -> int:
        """Replicas of ``role``."""
        return int(getattr(self, role))

    def __bool__(self) -> bool:
        return bool(self.roles)


def _replicas(raw: object, source: str) -> int:
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or int(text) > MAX_REPLICAS:
        raise ConfigError(f"worker replicas {raw!r} ({source}): must be an integer in 0..{MAX_REPLICAS}")
    return int(text)


def resolve_worker_plan(toml: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> WorkerPlan:
    """The canary's workers from ``[workers]`` and the *_WORKER_CANARY_REPLICAS variables (which win)."""
    env = os.environ if environ is None else environ
    table = toml.get("workers", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"canary.toml [workers]: must be a table (llm = N, rl = N), got {table!r}")
    unknown = sorted(set(table) - set(ROLES))
    if unknown:
        raise ConfigError(f"canary.toml [workers]: unknown keys {unknown} (known: {', '.join(ROLES)})")
    counts = {role: _replicas(table.get(role, 0), f"canary.toml [workers] {role}") for role in ROLES}
    for role, name in REPLICA_ENV.items():
        if env.get(name, "").strip():
            counts[role] = _replicas(env[name], f"from {name}")
    return WorkerPlan(**counts)


@dataclass(frozen=True)
class WorkerRecord:
    """One running worker process."""

    role: str
    index: int
    version: str
    url: str
    pid: int
    pid_start_time: int | None
    log_path: Path
    app_log_path: Path
    # Set for a worker run as a container (docker backend): it is found, checked and stopped by this id.
    container_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"role": self.role, "index": self.index, "version": self.version, "url": self.url, "pid": self.pid,
                "pid_start_time": self.pid_start_time, "log_path": str(self.log_path),
                "app_log_path": str(self.app_log_path), "container_id": self.container_id}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerRecord:
        """Inverse of ``to_json``."""
        start = data.get("pid_start_time")
        return cls(str(data["role"]), int(data["index"]), str(data["version"]), str(data["url"]), int(data["pid"]),
                   int(start) if start is not None else None, Path(str(data["log_path"])),
                   Path(str(data["app_log_path"])),
                   str(data["container_id"]) if data.get("container_id") else None)  # fmt: skip

    @property
    def name(self) -> str:
        """``worker-rl-1`` and so on."""
        return f"worker-{self.role}-{self.index}"

    def is_running(self) -> bool:
        """True while the recorded process (or container) lives."""
        if self.container_id:
            from canary_harness.deploy.worker_containers import container_state

            return container_state(self.container_id)[0] == "running"
        return pids.is_alive(self.pid, self.pid_start_time)

    def stop(self) -> None:
        """Stop the process by PID, or stop and remove the container (its output appended to the log)."""
        if self.container_id:
            from canary_harness.deploy.worker_containers import stop_worker_container

            stop_worker_container(self.container_id, self.log_path)
        else:
            pids.terminate(self.pid, start_time=self.pid_start_time, timeout=10.0)


@dataclass(frozen=True)
class WorkersState:
    """What ``workers.json`` records: the broker and the canary's workers."""

    broker: BrokerRecord | None = None
    workers: tuple[WorkerRecord, ...] = ()
    env_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "broker": self.broker.to_json() if self.broker else None,
            "workers": [worker.to_json() for worker in self.workers],
            "env_digest": self.env_digest,
        }


def load_workers(run_dir: Path) -> WorkersState:
    """The recorded broker and workers (an empty state when none is recorded); StackError if unreadable."""
    path = Path(run_dir) / WORKERS_FILE
    try:
        data = json.loads(path.read_text())
        broker = BrokerRecord.from_json(data["broker"]) if data.get("broker") else None
        workers = tuple(WorkerRecord.from_json(item) for item in data.get("workers", []))
        digest = data.get("env_digest")
    except FileNotFoundError:
        return WorkersState()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StackError(f"workers state {path}: unreadable: {exc!r}") from exc
    return WorkersState(broker, workers, str(digest) if digest else None)


def save_workers(run_dir: Path, state: WorkersState) -> None:
    """Write ``workers.json`` atomically and privately."""
    private_dir(Path(run_dir))
    write_private(Path(run_dir) / WORKERS_FILE, json.dumps(state.to_json(), indent=2) + "\n")


def consumers(url: str, queue: str) -> list[str]:
    """Names of the workers connected to the broker for ``queue`` (any role): who may still consume it. A
    worker holds several connections, all under its one name."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0, decode_responses=True)
    prefix = f"{CONSUMER_PREFIX}:{queue}:"
    try:
        return sorted({c["name"] for c in client.client_list() if str(c.get("name", "")).startswith(prefix)})
    except redis.RedisError as exc:
        raise StackError(f"broker {url}: cannot list its clients: {exc}") from exc
    finally:
        client.close()


class CanaryWorkers:
    """Starts, checks and stops the broker and the canary's workers of one run directory."""

    def __init__(self, run_dir: Path, host: str = "127.0.0.1", executable: str | None = None,
                 backend: str = "process") -> None:  # fmt: skip
        """``backend``: ``docker`` (or ``compose``) runs new workers as containers of the release's image,
        anything else as processes; recorded workers are stopped the way they were started."""
        self.run_dir = Path(run_dir).resolve()
        self.host = host
        self._executable = executable
        self.backend = backend

    def state(self) -> WorkersState:
        """What is recorded."""
        return load_workers(self.run_dir)

    def broker(self) -> BrokerRecord:
        """The recorded broker if it answers, else a new one (on the recorded port when there was one, so the
        canary's environment, which names the broker, stays the same)."""
        state = self.state()
        if state.broker is not None and state.broker.is_running() and ping(state.broker.url):
            return state.broker
        if state.broker is not None:
            stop_broker(state.broker)
        port = state.broker.port if state.broker is not None else free_port(self.host)
        record = start_broker(self.run_dir / "redis", self.host, port)
        save_workers(self.run_dir, WorkersState(record, state.workers, state.env_digest))
        return record

    def api_env(self, plan: WorkerPlan) -> dict[str, str]:
        """What the canary's API needs to hand its work to the workers (empty without workers)."""
        if not plan:
            return {}
        return {"FRAGRANCE_REDIS_URL": self.broker().url, "FRAGRANCE_WORKERS": ",".join(plan.roles)}

    def healthy(self, version: str, plan: WorkerPlan, env_digest: str) -> bool:
        """True if the recorded workers are exactly ``plan`` at ``version`` with that environment, all healthy."""
        state = self.state()
        wanted = sorted((role, i) for role in plan.roles for i in range(1, plan.replicas(role) + 1))
        running = sorted((w.role, w.index) for w in state.workers)
        return (
            running == wanted
            and state.env_digest == env_digest
            and all(w.version == version and w.is_running() and health(w.url) is not None for w in state.workers)
        )

    def start(self, version: str, env: Mapping[str, str], plan: WorkerPlan, env_digest: str,
              timeout: float = 30.0) -> tuple[WorkerRecord, ...]:  # fmt: skip
        """Replace the recorded workers by ``plan``'s at ``version`` (``env``: the canary's environment, its
        faults included); wait for each one's /health. BackendError with the log tail if one does not come up
        (every worker is stopped again then)."""
        self.stop()
        broker = self.broker()
        started: list[WorkerRecord] = []
        try:
            if self.backend == "compose":
                started.extend(self._compose_up(version, env, plan, broker, env_digest))
            for role in plan.roles if self.backend != "compose" else ():
                for index in range(1, plan.replicas(role) + 1):
                    worker = self._spawn(role, index, version, env, broker)
                    started.append(worker)
                    save_workers(self.run_dir, WorkersState(broker, tuple(started), env_digest))
            for worker in started:
                self._wait_healthy(worker, timeout)
        except BaseException:
            self.stop(verify=False)
            raise
        return tuple(started)

    def _compose_up(self, version: str, env: Mapping[str, str], plan: WorkerPlan, broker: BrokerRecord,
                    env_digest: str) -> list[WorkerRecord]:  # fmt: skip
        """The runbook's canary-workers profile in the canary's compose project (``deploy.compose_workers``)."""
        from canary_harness.deploy.compose_workers import start_compose_workers
        from canary_harness.deploy.worker_containers import find_worker_containers, stop_worker_container

        container_env = {key: value for key, value in env.items() if key != "FRAGRANCE_QUEUE_KEY"}
        logs = self.run_dir / "logs"
        private_dir(logs)
        try:
            replicas = {role: plan.replicas(role) for role in plan.roles}
            started = start_compose_workers(self.run_dir, version, replicas, broker.url, container_env, self.host)
        except BaseException:
            # Recorded nowhere yet: what `up` started is found by its labels and removed.
            for container_id in find_worker_containers(self.run_dir):
                stop_worker_container(container_id, logs / "canary-workers.log")
            raise
        records = [
            WorkerRecord(w.role, w.index, version, f"http://{self.host}:{w.port}", 0, None,
                         logs / f"canary-worker-{w.role}-{w.index}.log", logs / w.app_log_name, w.container_id)
            for w in started
        ]  # fmt: skip
        save_workers(self.run_dir, WorkersState(broker, tuple(records), env_digest))
        return records

    def _spawn(self, role: str, index: int, version: str, env: Mapping[str, str], broker: BrokerRecord) -> WorkerRecord:
        port = free_port(self.host)
        logs = self.run_dir / "logs"
        private_dir(logs)
        log_path = logs / f"canary-worker-{role}-{index}.log"
        app_log = log_path.with_suffix(".jsonl")
        if self.backend in CONTAINER_BACKENDS:
            from canary_harness.deploy.worker_containers import run_worker_container

            # The queue is the version's, as for a process: FRAGRANCE_QUEUE_KEY is never passed on.
            container_env = {key: value for key, value in env.items() if key != "FRAGRANCE_QUEUE_KEY"}
            container_id = run_worker_container(self.run_dir, role, index, version, port, broker.url, container_env,
                                                logs, app_log.name, self.host)  # fmt: skip
            return WorkerRecord(role, index, version, f"http://{self.host}:{port}", 0, None, log_path, app_log,
                                container_id)  # fmt: skip
        argv = [self._executable or find_executable(), "worker", role, "--host", self.host, "--port", str(port),
                "--version", version, "--redis-url", broker.url, "--log-file", str(app_log)]  # fmt: skip
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(env), **pids.marker_env(self.run_dir)}
        # The queue is the version's: a production worker (keyed by its own version) never sees these jobs.
        full_env.pop("FRAGRANCE_QUEUE_KEY", None)
        with os.fdopen(open_private_append(log_path), "ab") as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        env=full_env, start_new_session=True, close_fds=True)  # fmt: skip
            except OSError as exc:
                raise BackendError(f"worker {role} {version}: cannot run {argv[0]}: {exc}") from exc
        pids.track_child(proc)
        return WorkerRecord(role, index, version, f"http://{self.host}:{port}", proc.pid,
                            pids.process_start_time(proc.pid), log_path, app_log)  # fmt: skip

    def _wait_healthy(self, worker: WorkerRecord, timeout: float) -> None:
        def ready() -> bool:
            if worker.container_id:
                from canary_harness.deploy.worker_containers import container_state

                status, code = container_state(worker.container_id)
                if status != "running" and status != "created":
                    raise BackendError(f"container {worker.container_id[:12]} {status} (exit code {code})")
            elif not worker.is_running():
                raise BackendError("exited before becoming healthy")
            data = health(worker.url, timeout=1.0)
            if data is not None and data.get("version") != worker.version:
                raise BackendError(f"/health reports version {data.get('version')!r}, expected {worker.version!r}")
            return data is not None

        try:
            wait_until(ready, timeout, 0.05, f"{worker.url}/health")
        except (TimeoutError, BackendError) as exc:
            where = f"container {worker.container_id[:12]}" if worker.container_id else f"PID {worker.pid}"
            if worker.container_id:  # its output is in the log only once it is stopped
                worker.stop()
            raise BackendError(
                f"canary {worker.name} {worker.version} ({where}) did not become healthy: {exc}\n"
                f"--- last lines of {worker.log_path} ---\n{pids.tail(worker.log_path)}"
            ) from exc

    def describe(self) -> list[dict[str, str]]:
        """Name, base URL and structured log of each recorded worker (what a stage record keeps)."""
        return [{"name": w.name, "url": w.url, "log": str(w.app_log_path)} for w in self.state().workers]

    def stop(self, *, verify: bool = True) -> list[WorkerRecord]:
        """Stop every recorded worker by PID and forget them; with ``verify``, then check on the broker that no
        client of their queue is left (StackError naming them otherwise). Returns what was stopped."""
        state = self.state()
        errors: list[str] = []
        for worker in state.workers:
            try:
                worker.stop()
            except (OSError, BackendError) as exc:
                where = f"container {worker.container_id[:12]}" if worker.container_id else f"PID {worker.pid}"
                errors.append(f"{worker.name} ({where}): {exc}")
        if state.workers or state.env_digest:
            save_workers(self.run_dir, WorkersState(state.broker, (), None))
        if errors:
            raise StackError("could not stop the canary's workers: " + "; ".join(errors))
        if verify and state.workers and state.broker is not None and state.broker.is_running():
            queues = sorted({worker.version for worker in state.workers})
            left: list[str] = []

            def none_left() -> bool:
                left[:] = [name for queue in queues for name in consumers(state.broker.url, queue)]  # type: ignore[union-attr]
                return not left

            try:
                wait_until(none_left, STOP_VERIFY_S, 0.1, "the canary's workers to leave the broker")
            except TimeoutError as exc:
                raise StackError(
                    f"canary workers stopped but {len(left)} client(s) still consume the canary's queue on "
                    f"{state.broker.url}: {', '.join(left)}"
                ) from exc
        return list(state.workers)

    def down(self) -> None:
        """Stop the workers and the broker; forget both. Worker containers labelled with the run directory
        that ``workers.json`` lost are removed too (when a Docker engine answers).

        The broker is stopped even when a worker cannot be (e.g. the Docker engine went away under its
        container): a redis-server of the harness never outlives ``down``. The workers' error is raised
        afterwards, and a later ``down`` finds their containers again by label."""
        errors: list[CanaryError] = []
        try:
            self.stop(verify=False)
        except StackError as exc:
            errors.append(exc)
        try:
            remove_unrecorded_worker_containers(self.run_dir, required=self.backend in CONTAINER_BACKENDS)
        except BackendError as exc:
            errors.append(exc)
        state = self.state()
        if state.broker is not None:
            stop_broker(state.broker)
        (self.run_dir / WORKERS_FILE).unlink(missing_ok=True)
        raise_collected(errors)


def remove_unrecorded_worker_containers(run_dir: Path, *, required: bool = False) -> list[str]:
    """Stop and remove every worker container labelled with ``run_dir`` (a killed session's). Without a Docker
    engine: nothing to find, unless ``required`` (then the BackendError)."""
    try:
        from canary_harness.deploy.worker_containers import find_worker_containers, stop_worker_container

        found = find_worker_containers(run_dir)
    except BackendError:
        if required:
            raise
        return []
    for container_id in found:
        stop_worker_container(container_id, Path(run_dir) / "logs" / "canary-worker-unrecorded.log")
    return found
