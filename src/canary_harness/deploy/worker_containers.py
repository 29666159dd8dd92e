"""The canary's workers as containers (``--canary-backend docker``): the release's image
``fragrance-ai-app:<version>`` running ``fragrance-ai worker llm|rl``, on the host network, bound to a
loopback port, on the stack's broker (a ``redis-server`` on the host, reached at 127.0.0.1).

Like the API's containers (``deploy.docker``) they run as the host user with the run directory's ``logs/``
bind-mounted, so a worker's structured log is written where a process would write it, and they carry the
``canary-harness.*`` labels (role ``canary-worker``, ``component`` ``worker-llm``/``worker-rl``, version,
run directory, port), by which ``find_worker_containers`` finds them when ``workers.json`` is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from canary_harness.deploy.docker import (
    CONTAINER_LOG_DIR,
    LABEL_PORT,
    LABEL_PREFIX,
    LABEL_ROLE,
    LABEL_RUN_DIR,
    LABEL_VERSION,
    DockerBackend,
    _docker_module,
    _save_output,
    container_name,
    engine_errors,
)
from canary_harness.deploy.protocol import ServiceSpec

ROLE = "canary-worker"  # not an API role: deploy.docker's discovery of production/canary skips these
LABEL_COMPONENT = LABEL_PREFIX + "component"


def worker_labels(run_dir: Path, role: str, index: int, version: str, port: int) -> dict[str, str]:
    """The labels of one worker container."""
    return {
        LABEL_ROLE: ROLE,
        LABEL_COMPONENT: f"worker-{role}",
        LABEL_PREFIX + "replica": str(index),
        LABEL_VERSION: version,
        LABEL_RUN_DIR: str(Path(run_dir).resolve()),
        LABEL_PORT: str(port),
    }


def run_worker_container(
    run_dir: Path, role: str, index: int, version: str, port: int, broker_url: str, env: Mapping[str, str],
    log_dir: Path, app_log_name: str, host: str = "127.0.0.1",
) -> str:  # fmt: skip
    """Start one worker container (detached; the caller waits for its /health). Returns its id.

    BackendError naming ``canary images build`` when the image is absent, or the engine's error."""
    backend = DockerBackend()
    image = backend.require_image(ServiceSpec(role="canary", version=version, host=host, port=port))
    name = f"{container_name(run_dir, 'worker')}-{role}-{index}"
    remove_container_named(backend, name)
    # The image's entrypoint starts the API with its own --host: a worker is another subcommand.
    command = ["worker", role, "--host", host, "--port", str(port), "--version", version,
               "--redis-url", broker_url, "--log-file", f"{CONTAINER_LOG_DIR}/{app_log_name}"]  # fmt: skip
    with engine_errors(f"canary worker-{role}-{index} {version}"):
        container = backend.run_container(
            image, command, name=name, role=f"worker-{role}", environment=env,
            labels=worker_labels(run_dir, role, index, version, port), log_dir=Path(log_dir).resolve(),
            entrypoint=["fragrance-ai"],
        )  # fmt: skip
    return str(container.id)


def remove_container_named(backend: DockerBackend, name: str) -> None:
    """Remove a stopped leftover of a killed session that would block ``name``."""
    docker = _docker_module()
    with engine_errors(f"container {name}"):
        try:
            backend.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            return


def _get(container_id: str) -> Any | None:
    docker = _docker_module()
    with engine_errors(f"worker container {container_id[:12]}"):
        try:
            return DockerBackend().client.containers.get(container_id)
        except docker.errors.NotFound:
            return None


def container_state(container_id: str) -> tuple[str, int | None]:
    """(status, exit code) of a container; ("gone", None) once it is removed."""
    container = _get(container_id)
    if container is None:
        return "gone", None
    return str(container.status), container.attrs.get("State", {}).get("ExitCode")


def stop_worker_container(container_id: str, log_path: Path, timeout: float = 10.0) -> None:
    """SIGTERM, SIGKILL after ``timeout``, output appended to ``log_path``, then removed. Idempotent."""
    container = _get(container_id)
    if container is None:
        return
    docker = _docker_module()
    with engine_errors(f"worker container {container.short_id}"):
        try:
            container.stop(timeout=max(1, round(timeout)))
            _save_output(container, log_path)
            container.remove(force=True)
        except docker.errors.NotFound:
            return


def find_worker_containers(run_dir: Path) -> list[str]:
    """Ids of every worker container (running or not) labelled with ``run_dir``."""
    with engine_errors(f"worker containers of {run_dir}"):
        found = DockerBackend().client.containers.list(
            all=True, filters={"label": [f"{LABEL_RUN_DIR}={Path(run_dir).resolve()}", f"{LABEL_ROLE}={ROLE}"]}
        )
    return [str(container.id) for container in found]
