"""One compliance suite for every load engine (``canary_harness.loadgen.run.LoadEngine``): builtin threads and locust.

Each engine sends the ``light`` profile (``/health`` and ``/metrics``) to a fake service (``FakeBackend``,
canary_harness.testing), which counts what it really served; the engine's stats are checked against that
count. A new engine joins by adding one ``EngineKind`` to ``KINDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary_harness.deploy import pids
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.loadgen.builtin import BuiltinEngine
from canary_harness.loadgen.locust_engine import LocustEngine, locust_available
from canary_harness.loadgen.run import LoadEngine
from canary_harness.loadgen.settings import LoadSettings
from canary_harness.testing import FakeBackend, FakeService, fake_service
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_port

pytestmark = pytest.mark.integration

DURATION_S = 20.0  # the run's own limit; every test stops it well before


@dataclass(frozen=True)
class EngineKind:
    """How to build one engine against a base URL."""

    name: str
    make: Callable[[str, float, LoadSettings, Path], LoadEngine]
    available: Callable[[], bool] = lambda: True


KINDS = [EngineKind("builtin", BuiltinEngine), EngineKind("locust", LocustEngine, locust_available)]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[FakeService]:
    """A fake v0.2.0 on a free port; stopped at teardown."""
    backend = FakeBackend()
    handle: ServiceHandle = backend.start(
        ServiceSpec(role="canary", version="v0.2.0", port=free_port(), log_path=tmp_path / "canary.log")
    )
    found = fake_service(handle.url)
    assert found is not None
    yield found
    backend.stop(handle)


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def engine(request: pytest.FixtureRequest, service: FakeService, tmp_path: Path) -> Iterator[LoadEngine]:
    """An engine of each kind, not started; stopped (and its processes reaped) at teardown."""
    kind: EngineKind = request.param
    if not kind.available():
        # scripts/install.sh installs every engine users run: a missing one is a broken set-up, not a skip.
        pytest.fail(f"load engine {kind.name} is not installed (scripts/install.sh installs it)")
    # The light profile paces each user at 1 request/s: 10 users bring the 20 requests the tests wait for in ~2 s.
    settings = LoadSettings(users=10, spawn_rate=10.0, profile="light", engine=kind.name, seed=7)
    made = kind.make(service.url, DURATION_S, settings, tmp_path / "stats")
    yield made
    made.stop(30.0)


def served(service: FakeService) -> int:
    """Requests the fake service answered on the light profile's routes."""
    return service.served("/health") + service.served("/metrics")


def test_start_returns_at_once_and_load_arrives(engine: LoadEngine, service: FakeService) -> None:
    started = time.monotonic()
    engine.start()
    assert time.monotonic() - started < 5.0, "start must not wait for the run"
    wait_until(lambda: served(service) >= 20, 30.0, 0.1, "20 requests at the fake service")
    assert engine.running()


def test_stop_returns_stats_that_match_what_was_served(engine: LoadEngine, service: FakeService) -> None:
    engine.start()
    wait_until(lambda: served(service) >= 20, 30.0, 0.1, "20 requests at the fake service")
    stats = engine.stop(30.0)
    seen = served(service)
    assert stats.engine == engine.name
    assert 0 < stats.requests <= seen, (stats.requests, seen)
    assert stats.failures == 0, stats.errors
    assert dict(stats.by_version) == {"v0.2.0": stats.requests}


def test_stop_leaves_nothing_running(engine: LoadEngine) -> None:
    engine.start()
    wait_until(engine.running, 30.0, 0.1, "the engine to run")
    started = engine.pids()
    engine.stop(30.0)
    assert not engine.running()
    assert [pid for pid in started if pids.is_alive(pid)] == []
