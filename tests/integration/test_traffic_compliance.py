"""One compliance suite for every TrafficController the stack can run: the same contract, checked the same way.

Parametrized over the managed NGINX (the real binary) and the in-memory router of ``canary_harness.testing``;
both route to two fake services (``FakeBackend``: tiny in-thread HTTP servers answering with their version),
so the split is measured with real requests through the controller's ``base_url``. A new router joins by
adding one ``RouterKind`` to ``KINDS``. The external NGINX (the user's, in a container) keeps its own
suite, tests/integration/test_external_nginx.py: it needs the shared compose NGINX.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import TrafficError
from canary_harness.pytest_plugin.session import binomial_interval
from canary_harness.testing import FakeBackend, MemoryTrafficController
from canary_harness.testing.backend import fake_service
from canary_harness.traffic.nginx import NginxTrafficController
from canary_harness.traffic.probe import probe_split
from canary_harness.traffic.protocol import ManagedTrafficController, TrafficController
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_port

pytestmark = pytest.mark.integration

PROBE = 200


def _make_nginx(directory: Path, production: str, canary: str) -> ManagedTrafficController:
    return NginxTrafficController(
        directory, listen_port=free_port(), production=production, canary=canary, worker_processes="1"
    )


def _make_memory(directory: Path, production: str, canary: str) -> ManagedTrafficController:
    return MemoryTrafficController(directory, port=free_port(), production=production, canary=canary)


def _refuse_nginx(controller: ManagedTrafficController) -> None:
    assert isinstance(controller, NginxTrafficController)
    # A template NGINX refuses (nginx -t): the change must not reach the live configuration.
    controller.upstream_template.write_text(controller.upstream_template.read_text() + "\nthis is not nginx;\n")


def _refuse_memory(controller: ManagedTrafficController) -> None:
    assert isinstance(controller, MemoryTrafficController)
    controller.refuse(1, "programmed refusal")


@dataclass(frozen=True)
class RouterKind:
    """How to build one router over two upstream addresses, and how to make its next change fail."""

    name: str
    make: Callable[[Path, str, str], ManagedTrafficController]
    refuse_next: Callable[[ManagedTrafficController], None]


KINDS = [RouterKind("nginx", _make_nginx, _refuse_nginx), RouterKind("memory", _make_memory, _refuse_memory)]


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[tuple[ServiceHandle, ServiceHandle]]:
    """Production v0.1.0 and canary v0.2.0 as fake services on free ports; stopped at teardown."""
    backend = FakeBackend()
    handles = [
        backend.start(
            ServiceSpec(role=role, version=version, port=free_port(), log_path=tmp_path / "logs" / f"{role}.log")
        )
        for role, version in (("production", "v0.1.0"), ("canary", "v0.2.0"))
    ]
    yield handles[0], handles[1]
    for handle in handles:
        backend.stop(handle)


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def router(
    request: pytest.FixtureRequest, tmp_path: Path, upstreams: tuple[ServiceHandle, ServiceHandle]
) -> Iterator[tuple[RouterKind, ManagedTrafficController]]:
    """A started router of each kind at canary weight 0; stopped at teardown."""
    kind: RouterKind = request.param
    production, canary = upstreams
    controller = kind.make(tmp_path / kind.name, production.address, canary.address)
    controller.start(0)
    yield kind, controller
    controller.stop()


def test_satisfies_the_protocols(router: tuple[RouterKind, ManagedTrafficController]) -> None:
    _, controller = router
    assert isinstance(controller, TrafficController) and isinstance(controller, ManagedTrafficController)
    assert controller.is_running() and controller.base_url.startswith("http://")


def test_weight_change_is_in_force_and_splits_real_requests(
    router: tuple[RouterKind, ManagedTrafficController],
) -> None:
    _, controller = router
    before = controller.weights_in_force().generation
    controller.set_canary_weight(25, reason="compliance")
    in_force = controller.weights_in_force()
    assert (controller.canary_weight(), in_force.canary_weight, in_force.production_weight) == (25, 25, 75)
    assert in_force.generation != before, "a change must show a new generation"
    assert controller.configured_canary_weight() in (25, None)
    assert controller.config_text() is None or "25" in str(controller.config_text())
    split = probe_split(controller.base_url, PROBE)
    low, high = binomial_interval(PROBE, 0.25)
    assert low <= split.canary <= high and split.canary + split.production == PROBE, split.to_dict()
    assert set(split.by_version) == {"v0.1.0", "v0.2.0"}


def test_weight_zero_sends_nothing_to_the_canary(router: tuple[RouterKind, ManagedTrafficController]) -> None:
    _, controller = router
    controller.set_canary_weight(50)
    controller.set_canary_weight(0, reason="rollback")
    split = probe_split(controller.base_url, PROBE)
    assert (controller.canary_weight(), split.canary, split.production, split.ok) == (0, 0, PROBE, PROBE)


@pytest.mark.parametrize("bad", [101, -1, True, "5", 2.5])
def test_bad_weight_is_refused_and_changes_nothing(
    router: tuple[RouterKind, ManagedTrafficController], bad: object
) -> None:
    _, controller = router
    controller.set_canary_weight(10)
    generation = controller.weights_in_force().generation
    with pytest.raises(TrafficError, match=r"must be an integer in 0\.\.100"):
        controller.set_canary_weight(bad)  # type: ignore[arg-type]
    assert (controller.canary_weight(), controller.weights_in_force().generation) == (10, generation)


def test_refused_change_leaves_the_previous_split(router: tuple[RouterKind, ManagedTrafficController]) -> None:
    kind, controller = router
    controller.set_canary_weight(10)
    kind.refuse_next(controller)
    with pytest.raises(TrafficError):
        controller.set_canary_weight(60)
    assert controller.canary_weight() == 10
    split = probe_split(controller.base_url, 100)
    assert split.canary < 40, split.to_dict()


def test_stop_is_idempotent_and_reading_a_stopped_router_fails(
    router: tuple[RouterKind, ManagedTrafficController],
) -> None:
    _, controller = router
    controller.stop()
    controller.stop()
    assert not controller.is_running()
    with pytest.raises(TrafficError):
        controller.canary_weight()
    with pytest.raises(TrafficError):
        controller.set_canary_weight(5)


# ---------------------------------------------------------------------- stage 0 (shadow)
def _canary_served(upstreams: tuple[ServiceHandle, ServiceHandle], path: str) -> int:
    service = fake_service(f"http://{upstreams[1].address}")
    assert service is not None
    return service.served(path)


@pytest.mark.parametrize("share", [100, 30])
def test_shadow_serves_users_from_production_and_copies_the_share(
    router: tuple[RouterKind, ManagedTrafficController], upstreams: tuple[ServiceHandle, ServiceHandle], share: int
) -> None:
    _, controller = router
    controller.set_canary_weight(20)
    before = _canary_served(upstreams, "/health")
    controller.set_shadow(share, reason="stage 0")
    in_force = controller.weights_in_force()
    assert (controller.shadow_share(), in_force.shadow_share, in_force.canary_weight) == (share, share, 0)
    split = probe_split(controller.base_url, PROBE)
    assert (split.canary, split.production, split.ok) == (0, PROBE, PROBE), split.to_dict()
    low, high = (PROBE, PROBE) if share == 100 else binomial_interval(PROBE, share / 100)
    # The copies run beside the answers: wait for them, then check that no more arrive.
    wait_until(lambda: _canary_served(upstreams, "/health") - before >= low, 10.0, 0.05, f"{low} copies")
    copies = _canary_served(upstreams, "/health") - before
    assert low <= copies <= high, f"{copies} copies of {PROBE} requests at {share} %"


def test_shadow_drop_routes_are_never_copied(
    router: tuple[RouterKind, ManagedTrafficController], upstreams: tuple[ServiceHandle, ServiceHandle]
) -> None:
    _, controller = router
    controller.set_shadow(100, drop=("/evolve/feedback",), reason="stage 0")
    with httpx.Client(base_url=controller.base_url, timeout=10.0) as client:
        for _ in range(20):
            assert client.post("/evolve/feedback", json={}).headers["X-Upstream"] == "production"
            assert client.post("/dna/create", json={}).headers["X-Upstream"] == "production"
    wait_until(lambda: _canary_served(upstreams, "/dna/create") >= 20, 10.0, 0.05, "20 copies of /dna/create")
    assert _canary_served(upstreams, "/evolve/feedback") == 0


def test_weight_change_ends_the_shadow(
    router: tuple[RouterKind, ManagedTrafficController], upstreams: tuple[ServiceHandle, ServiceHandle]
) -> None:
    _, controller = router
    controller.set_shadow(100, reason="stage 0")
    controller.set_canary_weight(0, reason="rollback")
    assert (controller.shadow_share(), controller.canary_weight()) == (0, 0)
    before = _canary_served(upstreams, "/health")
    split = probe_split(controller.base_url, PROBE)
    assert split.production == PROBE
    # A copy would have been sent during the probe; the probe's answers are back, so would the copies be
    # within the relay's timeouts: give them that long to show up, then there must be none.
    with pytest.raises(TimeoutError):
        wait_until(lambda: _canary_served(upstreams, "/health") > before, 1.5, 0.05, "a copy after the rollback")


@pytest.mark.parametrize("bad", [0, 101, True, "50"])
def test_bad_shadow_share_is_refused_and_changes_nothing(
    router: tuple[RouterKind, ManagedTrafficController], bad: object
) -> None:
    _, controller = router
    controller.set_canary_weight(10)
    generation = controller.weights_in_force().generation
    with pytest.raises(TrafficError, match=r"shadow share .* must be an integer percentage in 1\.\.100"):
        controller.set_shadow(bad)  # type: ignore[arg-type]
    assert (controller.canary_weight(), controller.shadow_share(), controller.weights_in_force().generation) == (
        10,
        0,
        generation,
    )


def test_refused_shadow_leaves_the_previous_split(router: tuple[RouterKind, ManagedTrafficController]) -> None:
    kind, controller = router
    controller.set_canary_weight(10)
    kind.refuse_next(controller)
    with pytest.raises(TrafficError):
        controller.set_shadow(100)
    assert (controller.canary_weight(), controller.shadow_share()) == (10, 0)
