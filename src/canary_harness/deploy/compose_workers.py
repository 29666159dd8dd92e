"""The canary's workers on the compose backend: the runbook's ``canary-workers`` profile
(``worker-llm-canary``, ``worker-rl-canary`` of compose/docker-compose.canary.yml), started the way an
operator would, in the canary's compose project:

    docker-compose -p P -f production -f canary -f logs/canary-workers.compose.yml \
        --profile canary-workers up -d --no-build --no-deps worker-llm-canary worker-rl-canary

with ``LLM_WORKER_CANARY_REPLICAS`` / ``RL_WORKER_CANARY_REPLICAS`` (the files' ``scale``), a free base port
per role, ``CANARY_REDIS_URL`` (the stack's broker) and the canary's image. The harness's extra file adds
the canary's environment (names only, as for the API), the run directory's ``logs/`` mounted as the invoking
user, and the run-directory label. Each replica records the port it took in /tmp/worker.port
(compose/workers/run_worker.py), read here to build its URL; its JSON log is
``logs/canary-worker-<role>-<port>.jsonl``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from canary_harness.deploy.compose import ComposeBackend, _escape, image_name, override_path
from canary_harness.deploy.container_target import CONTAINER_LOG_DIR
from canary_harness.deploy.docker import LABEL_RUN_DIR, DockerBackend, engine_errors
from canary_harness.deploy.health import health
from canary_harness.errors import BackendError
from canary_harness.ports import free_port
from canary_harness.waiting import wait_until

PROFILE = "canary-workers"
SERVICES = {"llm": "worker-llm-canary", "rl": "worker-rl-canary"}
PORT_FILE = "/tmp/worker.port"
ANCHOR_LOG = "canary-workers.log"  # its override file is canary-workers.compose.yml
PORT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ComposeWorker:
    """One replica the profile started."""

    role: str
    index: int
    container_id: str
    port: int
    app_log_name: str


def render_workers_override(roles: tuple[str, ...], env: Mapping[str, str], run_dir: Path) -> str:
    """The harness's compose file for the worker services of ``roles`` (JSON, which is YAML)."""
    logs = (Path(run_dir) / "logs").resolve()
    body = {
        "services": {
            SERVICES[role]: {
                # Names only: docker-compose takes each value from its own environment, never from a file.
                "environment": [*sorted(env), f"WORKER_LOG_DIR={CONTAINER_LOG_DIR}"],
                "volumes": [f"{logs}:{CONTAINER_LOG_DIR}"],
                "user": f"{os.getuid()}:{os.getgid()}",
                "labels": {LABEL_RUN_DIR: _escape(str(Path(run_dir).resolve())), "canary-harness.backend": "compose"},
            }
            for role in roles
        }
    }
    return json.dumps(body, indent=2) + "\n"


def start_compose_workers(
    run_dir: Path, version: str, replicas: Mapping[str, int], broker_url: str, env: Mapping[str, str],
    host: str = "127.0.0.1",
) -> list[ComposeWorker]:  # fmt: skip
    """``up`` the profile's services with ``replicas`` per role; returns each replica once it has a port (its
    health is the caller's to wait for). BackendError with docker-compose's output on failure."""
    roles = tuple(role for role in SERVICES if replicas.get(role, 0) > 0)
    anchor = Path(run_dir).resolve() / "logs" / ANCHOR_LOG
    anchor.parent.mkdir(parents=True, exist_ok=True)
    override_path(anchor).write_text(render_workers_override(roles, env, run_dir))
    variables = {
        "CANARY_VERSION": version,
        "CANARY_IMAGE": image_name(version),
        "CANARY_REDIS_URL": broker_url,
        **{f"{role.upper()}_WORKER_CANARY_REPLICAS": str(replicas.get(role, 0)) for role in SERVICES},
        **{f"{role.upper()}_WORKER_CANARY_PORT": str(free_port(host)) for role in roles},
    }
    compose = ComposeBackend()
    services = [SERVICES[role] for role in roles]
    values = {**{key: str(value) for key, value in env.items()}, **variables}
    compose._run(  # noqa: SLF001 - the backend's own runner: same error translation
        compose.compose_argv(anchor, "--profile", PROFILE, "up", "-d", "--no-build", "--no-deps", *services),
        f"canary workers {version}: start profile {PROFILE}", values,
    )  # fmt: skip
    started: list[ComposeWorker] = []
    for role in roles:
        out = compose._run(compose.compose_argv(anchor, "ps", "-q", SERVICES[role]), f"{SERVICES[role]}: list", values)  # noqa: SLF001
        ids = sorted(out.split())
        if len(ids) != replicas[role]:
            raise BackendError(f"{SERVICES[role]}: {len(ids)} container(s) after up, expected {replicas[role]}")
        for index, container_id in enumerate(ids, start=1):
            port = _port_of(container_id)
            started.append(ComposeWorker(role, index, container_id, port, f"canary-worker-{role}-{port}.jsonl"))
    return started


def _port_of(container_id: str) -> int:
    """The port the replica took (its /tmp/worker.port), waited for; BackendError if it never appears."""
    client = DockerBackend().client

    def read() -> int | None:
        with engine_errors(f"worker container {container_id[:12]}"):
            container = client.containers.get(container_id)
            if container.status in ("exited", "dead"):
                raise BackendError(f"container {container_id[:12]} {container.status} before taking a port")
            code, output = container.exec_run(["cat", PORT_FILE])
        text = output.decode(errors="replace").strip() if code == 0 else ""
        # Only once /health answers there: a replica that lost its port to another moves to the next one.
        return int(text) if text.isdigit() and health(f"http://127.0.0.1:{text}", timeout=1.0) is not None else None

    try:
        port = wait_until(read, PORT_TIMEOUT_S, 0.1, f"{PORT_FILE} in container {container_id[:12]}")
    except TimeoutError as exc:
        raise BackendError(f"worker container {container_id[:12]}: no port recorded: {exc}") from exc
    if port is None:  # wait_until returns only a truthy value; this narrows the type
        raise BackendError(f"worker container {container_id[:12]}: no port recorded")
    return port
