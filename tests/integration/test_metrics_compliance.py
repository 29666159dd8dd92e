"""One compliance suite for every MetricsSource: what the observation loop relies on, checked the same way.

Parametrized over the direct ``/metrics`` reading (``ScrapeSource``), PromQL through a local Prometheus
(``PrometheusSource`` with ``LocalPrometheus``, the real binary) and ``CannedMetricsSource``
(canary_harness.testing). The two reading sources read two fake services (``FakeBackend``) whose synthetic
counters grow by themselves: production clean, the canary with half its requests answered 5xx. A new
source joins by adding one ``SourceKind`` to ``KINDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import MetricsError
from canary_harness.metrics.counters import CounterSelector
from canary_harness.metrics.prometheus import PrometheusSource
from canary_harness.metrics.prometheus_server import LocalPrometheus
from canary_harness.metrics.prometheus_settings import PrometheusSettings
from canary_harness.metrics.protocol import MetricsSource
from canary_harness.metrics.scrape import ScrapeSource
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.testing import ArmRates, CannedMetricsSource, FakeBackend
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_port

pytestmark = pytest.mark.integration

VERSIONS = {"production": "v0.1.0", "canary": "v0.2.0"}
CANARY_ERRORS = 0.5
# A ratio check's counters over the fake services' own request counter: the arm's 5xx share, read as named
# counters (the sources that can read a service's counters fill them; none else is asked to).
FAILED = CounterSelector.parse('http_requests_total{status=~"5.."}', "compliance")
ALL = CounterSelector.parse("http_requests_total", "compliance")


@dataclass
class Arms:
    """The two fake services a reading source reads, and how to take one away."""

    handles: dict[str, ServiceHandle]
    backend: FakeBackend

    def urls(self) -> dict[str, str]:
        """Each arm's base URL."""
        return {role: handle.url for role, handle in self.handles.items()}

    def stop(self, role: str) -> None:
        """The arm stops answering."""
        self.backend.stop(self.handles[role])


def _scrape(arms: Arms, _stack: ExitStack, _tmp: Path) -> tuple[MetricsSource, Callable[[str], None]]:
    return ScrapeSource(arms.urls(), counters=(FAILED, ALL)), arms.stop


def _prometheus(arms: Arms, stack: ExitStack, tmp: Path) -> tuple[MetricsSource, Callable[[str], None]]:
    targets = {role: url.split("://", 1)[1] for role, url in arms.urls().items()}
    server = stack.enter_context(LocalPrometheus(targets, run_dir=tmp / "prometheus", scrape_interval_s=0.5))
    server.wait_for_targets_up(20.0)
    source = PrometheusSource.from_settings(PrometheusSettings(), server.url, counters=(FAILED, ALL))
    for role in targets:
        source.wait_for_scrape(role, time.time(), 20.0)
    return source, arms.stop


def _canned(_arms: Arms, _stack: ExitStack, _tmp: Path) -> tuple[MetricsSource, Callable[[str], None]]:
    source = CannedMetricsSource(
        {
            "production": ArmRates(rps=100, version=VERSIONS["production"], ratios=((FAILED.text, ALL.text, 0.0),)),
            "canary": ArmRates(
                rps=100,
                error_rate=CANARY_ERRORS,
                version=VERSIONS["canary"],
                ratios=((FAILED.text, ALL.text, CANARY_ERRORS),),
            ),
        }
    )
    return source, lambda role: source.fail_next(role, MetricsError(f"{role}: programmed failure"))


@dataclass(frozen=True)
class SourceKind:
    """How to build one source over the two arms; it returns the source and how to make an arm unreadable."""

    name: str
    make: Callable[[Arms, ExitStack, Path], tuple[MetricsSource, Callable[[str], None]]]


KINDS = [SourceKind("scrape", _scrape), SourceKind("prometheus", _prometheus), SourceKind("canned", _canned)]


@contextmanager
def _arms(tmp: Path) -> Iterator[Arms]:
    """Production and canary fake services on free ports; stopped on leaving."""
    backend = FakeBackend()
    handles = {}
    try:
        for role, version in VERSIONS.items():
            env = {"FAKE_RPS": "100", "FAKE_ERROR_RATE": str(CANARY_ERRORS if role == "canary" else 0)}
            spec = ServiceSpec(
                role=role, version=version, port=free_port(), env=env, log_path=tmp / "logs" / f"{role}.log"
            )
            handles[role] = backend.start(spec)
        yield Arms(handles, backend)
    finally:
        for handle in handles.values():
            backend.stop(handle)


@contextmanager
def _source_of(kind: SourceKind, tmp: Path) -> Iterator[tuple[MetricsSource, Callable[[str], None]]]:
    """A source of ``kind`` over two fresh arms; closed (its Prometheus stopped, the arms too) on leaving."""
    with _arms(tmp) as arms, ExitStack() as stack:
        made, break_arm = kind.make(arms, stack, tmp)
        stack.enter_context(closing(made))
        yield made, break_arm


@pytest.fixture(scope="module", params=KINDS, ids=[kind.name for kind in KINDS])
def source(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MetricsSource, Callable[[str], None]]]:
    """A source of each kind, shared by the tests that only read it: a local Prometheus takes ~5 s to
    scrape its first targets (its scrape manager applies new targets every 5 s)."""
    with _source_of(request.param, tmp_path_factory.mktemp(request.param.name)) as made:
        yield made


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def own_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[MetricsSource, Callable[[str], None]]]:
    """A source of each kind for one test alone: for a test that takes an arm away."""
    with _source_of(request.param, tmp_path) as made:
        yield made


def grown(source: MetricsSource, role: str, since: MetricsSnapshot, by: float = 60.0) -> MetricsSnapshot:
    """The arm's next snapshot with ``by`` more requests than ``since`` (waited for, bounded): enough
    that whole-count rounding cannot hide the arm's error share."""
    latest: list[MetricsSnapshot] = []

    def more() -> bool:
        latest[:] = [source.snapshot(role)]
        return latest[0].requests >= since.requests + by

    wait_until(more, 15.0, 0.2, f"{role}'s request counter to grow by {by:g} past {since.requests}")
    return latest[0]


def test_snapshots_name_the_arm_version_and_its_error_share(
    source: tuple[MetricsSource, Callable[[str], None]],
) -> None:
    reader, _ = source
    for role, share in (("production", 0.0), ("canary", CANARY_ERRORS)):
        first = reader.snapshot(role)
        later = grown(reader, role, first)
        assert later.version == VERSIONS[role]
        delta = later.minus(first)
        assert delta.requests > 0 and delta.errors_5xx >= 0
        total = later.requests
        assert abs(later.errors_5xx / total - share) <= 0.1, (role, later)
        assert later.latency_count("creative") > 0


def test_named_counters_give_each_arms_share(source: tuple[MetricsSource, Callable[[str], None]]) -> None:
    # What a ratio check divides: the named counters' deltas, numerator a subset of the denominator.
    reader, _ = source
    for role, share in (("production", 0.0), ("canary", CANARY_ERRORS)):
        first = reader.snapshot(role)
        delta = grown(reader, role, first).minus(first)
        failed, total = delta.counters[FAILED.text], delta.counters[ALL.text]
        assert total > 0 and 0 <= failed <= total, (role, delta.counters)
        assert abs(failed / total - share) <= 0.1, (role, delta.counters)


def test_counters_are_cumulative(source: tuple[MetricsSource, Callable[[str], None]]) -> None:
    reader, _ = source
    first = reader.snapshot("canary")
    later = grown(reader, "canary", first)
    delta = later.minus(first)  # raises CounterResetError if anything went down
    assert delta.requests > 0 and delta.journeys >= 0 and delta.briefs >= 0


def test_unknown_arm_is_a_metrics_error(source: tuple[MetricsSource, Callable[[str], None]]) -> None:
    reader, _ = source
    with pytest.raises(MetricsError):
        reader.snapshot("staging")


def test_unreadable_arm_is_a_metrics_error_never_made_up_zeros(
    own_source: tuple[MetricsSource, Callable[[str], None]],
) -> None:
    reader, break_arm = own_source
    reader.snapshot("canary")
    break_arm("canary")

    def refused() -> bool:
        try:
            reader.snapshot("canary")
        except MetricsError:
            return True
        return False

    # Prometheus marks the series of a target that stopped answering stale at its next scrape.
    wait_until(refused, 15.0, 0.2, "the stopped canary's snapshot to raise MetricsError")
    assert reader.snapshot("production").version == VERSIONS["production"]


def test_both_arms_are_read_at_one_instant(source: tuple[MetricsSource, Callable[[str], None]]) -> None:
    # Both fake arms count 100 requests/s; read together, they must have grown by the same amount
    # (a source that reads each arm as of a different moment, e.g. Prometheus scrapes 0.5 s apart,
    # would show up to 50 requests of difference).
    reader, _ = source
    first = reader.snapshots(("canary", "production"))
    later: dict[str, MetricsSnapshot] = {}

    def grown_both() -> bool:
        later.update(reader.snapshots(("canary", "production")))
        return all(later[role].requests - first[role].requests >= 300 for role in first)

    wait_until(grown_both, 20.0, 0.2, "both arms' request counters to grow by 300")
    growth = {role: later[role].requests - first[role].requests for role in first}
    assert abs(growth["canary"] - growth["production"]) <= max(6.0, 0.02 * growth["production"]), growth
