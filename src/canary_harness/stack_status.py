"""What a recorded stack runs now, measured: each process alive, healthy, at which version, and the split
its router reports; the canary's broker and workers (``workers.json``); the containers labelled with the run
directory that the record misses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from canary_harness.deploy.broker import ping
from canary_harness.deploy.health import health
from canary_harness.deploy.workers import load_workers
from canary_harness.errors import TrafficError
from canary_harness.stack_state import StackState

if TYPE_CHECKING:  # the stack module imports this one
    from canary_harness.stack import LocalStack


@dataclass(frozen=True)
class ComponentStatus:
    """One recorded process: is it alive, does it answer its health check, which version."""

    name: str
    pid: int | None
    url: str
    running: bool
    healthy: bool
    version: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class StackStatus:
    """What runs now, measured (PID alive, /health, the split NGINX reports)."""

    run_dir: Path
    components: tuple[ComponentStatus, ...]
    canary_weight: int | None
    production_weight: int | None
    generation: str | None
    # Stage 0: the share of production's requests NGINX copies to the canary (0: none).
    shadow_share: int = 0

    @property
    def ok(self) -> bool:
        """True if every recorded component runs and is healthy."""
        return bool(self.components) and all(c.running and c.healthy for c in self.components)


def measure_status(stack: LocalStack, state: StackState) -> StackStatus:
    """Measure what ``state`` records for ``stack``: each PID alive, each /health, and the split NGINX reports."""
    components: list[ComponentStatus] = []
    weights: tuple[int | None, int | None, str | None] = (None, None, None)
    shadow_share = 0
    if state.nginx is not None:
        controller = stack.controller_for(state.nginx)
        running = controller.is_running()
        detail = ""
        try:
            in_force = controller.weights_in_force()
            weights = (in_force.canary_weight, in_force.production_weight, in_force.generation)
            shadow_share = in_force.shadow_share
        except TrafficError as exc:
            detail = str(exc)
        components.append(
            ComponentStatus(
                "nginx", controller.pid or state.nginx.pid, controller.base_url, running,
                running and weights[0] is not None, None, detail,
            )
        )  # fmt: skip
    for handle in (state.production, state.canary):
        if handle is None:
            continue
        backend = stack.backend_of(handle)
        running = backend.is_running(handle)
        version = backend.version(handle) if running else None
        details = [f"container {handle.container_id[:12]}"] if handle.container_id else []
        if version is not None and version != handle.version:
            details.append(f"recorded version {handle.version}")
        components.append(
            ComponentStatus(
                handle.role, handle.pid, handle.url, running, version is not None, version, ", ".join(details)
            )
        )
    components += workers_status(stack.run_dir)
    for handle in stack.unrecorded_containers(state):
        assert handle.container_id is not None
        components.append(ComponentStatus(
            f"{handle.role}?", None, handle.url, stack.backend_of(handle).is_running(handle), False,
            handle.version, f"container {handle.container_id[:12]} labelled with this run dir but not "
            "recorded: `canary stack down` removes it",
        ))  # fmt: skip
    return StackStatus(stack.run_dir, tuple(components), *weights, shadow_share=shadow_share)


def workers_status(run_dir: Path) -> list[ComponentStatus]:
    """The recorded broker (answers PING) and each canary worker (alive, /health, version)."""
    recorded = load_workers(run_dir)
    found: list[ComponentStatus] = []
    broker = recorded.broker
    if broker is not None:
        running = broker.is_running()
        found.append(ComponentStatus("broker", broker.pid, broker.url, running, running and ping(broker.url)))
    for worker in recorded.workers:
        running = worker.is_running()
        data = health(worker.url) if running else None
        version = str(data["version"]) if data is not None and data.get("version") else None
        found.append(ComponentStatus(
            worker.name, None if worker.container_id else worker.pid, worker.url, running, data is not None,
            version, f"container {worker.container_id[:12]}" if worker.container_id else "",
        ))  # fmt: skip
    return found
