"""One compliance suite for every Backend: the same contract, checked against real services.

The ``kind`` fixture is parametrized over the backends (``process``, ``docker``, and ``fake``, the
in-thread test double of ``canary_harness.testing``); a new backend joins by adding one ``BackendKind``
to ``KINDS``. Each test starts real fragrance-ai instances (subprocesses or containers of
``fragrance-ai-app:<version>``; tiny HTTP services for ``fake``) on free loopback ports; everything is
stopped at teardown, also when a test fails, and the docker kind also removes any container labelled
with the test's run dir.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from canary_harness.deploy import pids
from canary_harness.deploy.docker import DockerBackend
from canary_harness.deploy.process import ProcessBackend
from canary_harness.deploy.protocol import Backend, ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError
from canary_harness.logs import read_events
from canary_harness.testing import FakeBackend
from tests.integration.stackfixtures import FAST_ENV, free_port

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BackendKind:
    """How to build one backend and how to see what it left behind, independently of the backend."""

    name: str
    make: Callable[[], Backend]
    leftovers: Callable[[Path, list[ServiceHandle]], list[str]]
    # The environment that makes a start fail, and the text its error must quote from the service's log.
    failing_env: tuple[dict[str, str], str] = ({"FRAGRANCE_FAULTS": "no_such_fault=1"}, "unknown fault 'no_such_fault'")
    # The service writes fragrance-ai's structured log (a startup event with its settings).
    app_log: bool = True
    # It calls ``on_spawn`` (containers are found by label instead).
    spawn_hook: bool = True


def _process_leftovers(_run_dir: Path, handles: list[ServiceHandle]) -> list[str]:
    return [f"PID {h.pid}" for h in handles if h.pid is not None and pids.is_alive(h.pid, h.pid_start_time)]


def _fake_leftovers(_run_dir: Path, handles: list[ServiceHandle]) -> list[str]:
    return [f"fake service {h.url}" for h in handles if FakeBackend().is_running(h)]


def _docker_leftovers(run_dir: Path, _handles: list[ServiceHandle]) -> list[str]:
    # By label, not through the handles: a container the backend lost track of counts too.
    return [f"container {h.container_id}" for h in DockerBackend().find_containers(run_dir)]


KINDS = [
    BackendKind("process", ProcessBackend, _process_leftovers),
    BackendKind("docker", DockerBackend, _docker_leftovers, spawn_hook=False),
    BackendKind(
        "fake",
        FakeBackend,
        _fake_leftovers,
        app_log=False,
        failing_env=({"FAKE_START_ERROR": "boom at start"}, "boom at start"),
    ),
]


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def kind(request: pytest.FixtureRequest) -> BackendKind:
    """The backend under test."""
    return request.param


@dataclass
class Harness:
    """Starts services with one backend in one run dir and stops every one of them at teardown."""

    kind: BackendKind
    backend: Backend
    run_dir: Path
    handles: list[ServiceHandle]

    def spec(
        self,
        version: str = "v0.2.0",
        *,
        role: str = "canary",
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> ServiceSpec:
        """A spec on a free port (unless given), logging into the run dir."""
        return ServiceSpec(
            role=role,
            version=version,
            port=port or free_port(),
            env={**FAST_ENV, **(env or {})},
            log_path=self.run_dir / "logs" / f"{role}.log",
            run_dir=self.run_dir,
        )

    def start(self, spec: ServiceSpec) -> ServiceHandle:
        """Start ``spec`` and remember the handle for teardown."""
        handle = self.backend.start(spec, timeout=START_TIMEOUT_S)
        self.handles.append(handle)
        return handle

    def leftovers(self) -> list[str]:
        """What still runs (or, for containers, still exists) of this run dir."""
        return self.kind.leftovers(self.run_dir, self.handles)


@pytest.fixture
def harness(kind: BackendKind, tmp_path: Path) -> Iterator[Harness]:
    """A backend of ``kind`` with a run dir in tmp_path; stops what it started, then checks by label."""
    run_dir = tmp_path / "run"
    harness = Harness(kind, kind.make(), run_dir, [])
    yield harness
    for handle in harness.handles:
        harness.backend.stop(handle, timeout=5)
    if kind.name == "docker":
        for handle in DockerBackend().find_containers(run_dir):
            DockerBackend().stop(handle, timeout=5)


def test_backend_satisfies_the_protocol(harness: Harness) -> None:
    assert isinstance(harness.backend, Backend)


def test_start_is_healthy_and_serves_its_version(harness: Harness) -> None:
    handle = harness.start(harness.spec("v0.2.0"))
    response = httpx.get(handle.url + "/health", timeout=5)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["version"]) == ("healthy", "v0.2.0")
    assert response.headers["X-App-Version"] == "v0.2.0"
    assert handle.backend == harness.kind.name and handle.version == "v0.2.0"
    assert harness.backend.is_running(handle) and harness.backend.is_healthy(handle)


# Only the backends that run fragrance-ai itself: the fake backend writes no structured startup log.
APP_LOG_KINDS = [kind for kind in KINDS if kind.app_log]


@pytest.mark.parametrize("kind", APP_LOG_KINDS, ids=[kind.name for kind in APP_LOG_KINDS])
def test_environment_reaches_the_service_and_its_log_is_readable(harness: Harness) -> None:
    handle = harness.start(harness.spec(env={"FRAGRANCE_SEED": "4242", "FRAGRANCE_PPO_BATCH_SIZE": "3"}))
    assert handle.app_log_path is not None
    startups = list(read_events(handle.app_log_path, "startup"))
    assert startups, f"no startup event in {handle.app_log_path}"
    assert (startups[-1]["seed"], startups[-1]["ppo_batch_size"]) == (4242, 3)
    assert startups[-1]["version"] == "v0.2.0"


def test_stop_is_idempotent_and_leaves_nothing_running(harness: Harness) -> None:
    handle = harness.start(harness.spec())
    harness.backend.stop(handle, timeout=10)
    assert harness.leftovers() == []
    assert not harness.backend.is_running(handle)
    assert not harness.backend.is_healthy(handle)
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url + "/health", timeout=2)
    harness.backend.stop(handle)  # a second stop is a no-op
    assert handle.log_path.exists(), "the service's stdout/stderr must be kept after it stops"


def test_start_failure_reports_log_lines_and_leaves_nothing(harness: Harness) -> None:
    env, quoted = harness.kind.failing_env
    spec = harness.spec(env=env)
    with pytest.raises(BackendError) as caught:
        harness.backend.start(spec, timeout=START_TIMEOUT_S)
    message = str(caught.value)
    assert "did not become healthy" in message
    assert quoted in message, message
    assert harness.leftovers() == []


def test_busy_port_is_refused_and_nothing_starts(harness: Harness) -> None:
    running = harness.start(harness.spec(role="production", version="v0.1.0"))
    port = int(running.url.rsplit(":", 1)[1])
    with pytest.raises(BackendError, match=f"127.0.0.1:{port} is already in use"):
        harness.backend.start(harness.spec(role="canary", port=port), timeout=START_TIMEOUT_S)
    assert len(harness.leftovers()) == 1  # only the one that holds the port
    assert httpx.get(running.url + "/health", timeout=5).json()["version"] == "v0.1.0"


def test_version_is_what_health_reports_while_it_runs(harness: Harness) -> None:
    handle = harness.start(harness.spec("v0.2.0"))
    assert harness.backend.version(handle) == "v0.2.0"
    harness.backend.stop(handle, timeout=10)
    assert harness.backend.version(handle) is None


def test_on_spawn_sees_the_handle_before_start_returns(harness: Harness) -> None:
    """``on_spawn`` gets the service before ``start`` returns (the stack records it then), or is never called
    by a backend that finds its services by label."""
    seen: list[ServiceHandle] = []
    harness.backend.on_spawn = seen.append
    handle = harness.start(harness.spec())
    expected = [(handle.role, handle.version, handle.url)] if harness.kind.spawn_hook else []
    assert [(h.role, h.version, h.url) for h in seen] == expected


def test_handle_round_trips_through_json(harness: Harness) -> None:
    handle = harness.start(harness.spec())
    data = json.loads(json.dumps(handle.to_json()))
    again = ServiceHandle.from_json(data)
    assert again == handle
    assert harness.backend.is_healthy(again), "a handle read back from JSON must still reach the service"
