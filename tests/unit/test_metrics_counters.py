"""Named counters for ratio checks: selectors, sums over an exposition, snapshot arithmetic, and every source
filling them (the scrape source and the /metrics overlay on canned HTTP, Prometheus on canned answers)."""

from __future__ import annotations

import math

import httpx
import pytest

from canary_harness.errors import ConfigError, CounterResetError, MetricsError
from canary_harness.metrics.counters import CounterSelector, WithCounters, counter_sums
from canary_harness.metrics.scrape import ScrapeSource, combine
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.testing.metrics import ArmRates, CannedMetricsSource
from tests.unit.test_prometheus_source import healthy_answers, source_with, vector
from tests.unit.test_scrape import EXPOSITION

SHOP = """\
# HELP orders_total Orders by outcome
# TYPE orders_total counter
orders_total{outcome="ok",region="eu"} 90.0
orders_total{outcome="failed",region="eu"} 4.0
orders_total{outcome="failed",region="us"} 1.0
orders_created{outcome="ok",region="eu"} 1.7e9
# HELP refunds_total Refunds
# TYPE refunds_total counter
# HELP queue_depth Orders waiting
# TYPE queue_depth gauge
queue_depth 3.0
"""
FAILED = CounterSelector.parse('orders_total{outcome="failed"}', "t")
ALL = CounterSelector.parse("orders_total", "t")


def sel(text: str) -> CounterSelector:
    return CounterSelector.parse(text, "test numerator")


# --------------------------------------------------------------------------- selectors and sums
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("orders_total", 95.0),
        ('orders_total{outcome="failed"}', 5.0),
        ('orders_total{outcome!="failed"}', 90.0),
        ('orders_total{outcome="failed", region="eu"}', 4.0),
        ('orders_total{region=~"e.*"}', 94.0),
        ('orders_total{region!~"e.*"}', 1.0),
        ('orders_total{missing=""}', 95.0),  # an absent label is "", as in PromQL
        ("refunds_total", 0.0),  # declared, no series yet: nothing counted
    ],
)
def test_a_selector_sums_the_matching_series(text: str, expected: float) -> None:
    assert counter_sums(SHOP, [sel(text)]) == {sel(text).text: expected}


def test_a_counter_not_exposed_or_a_gauge_is_an_error_naming_it() -> None:
    with pytest.raises(MetricsError, match=r"counter hello_orders_total is not exposed"):
        counter_sums(SHOP, [sel("hello_orders_total")])
    with pytest.raises(MetricsError, match=r"metric queue_depth is a gauge, not a counter"):
        counter_sums(SHOP, [sel("queue_depth")])
    with pytest.raises(MetricsError, match=r"count must be finite"):
        counter_sums("# TYPE x_total counter\nx_total -1\n", [sel("x_total")])


def test_the_canonical_text_and_promql_of_a_selector() -> None:
    selector = sel(' orders_total{ outcome = "failed" , region!~"us|ca" } ')
    assert selector.text == 'orders_total{outcome="failed",region!~"us|ca"}'
    assert selector.promql('job="shop",version="canary"') == (
        'sum(orders_total{job="shop",version="canary",outcome="failed",region!~"us|ca"})'
    )
    assert sel('a{b="x,y"}').matchers == (("b", "=", "x,y"),)
    with pytest.raises(ConfigError, match=r"test numerator = '\{a=\"b\"\}': must start with a metric name"):
        sel('{a="b"}')


# --------------------------------------------------------------------------- snapshot arithmetic
def test_counters_are_subtracted_interpolated_combined_and_resets_detected() -> None:
    early = MetricsSnapshot(taken_at=0.0, counters={"a": 10.0, "b": 100.0})
    late = MetricsSnapshot(taken_at=2.0, counters={"a": 14.0, "b": 120.0})
    assert late.minus(early).counters == {"a": 4.0, "b": 20.0}
    assert late.minus(MetricsSnapshot(taken_at=0.0)).counters == {"a": 14.0, "b": 120.0}
    assert early.towards(late, 0.5, 1.0).counters == {"a": 12.0, "b": 110.0}
    assert combine([late, early]).counters == {"a": 24.0, "b": 220.0}
    with pytest.raises(CounterResetError, match=r"counter a went down \(14.0 -> 10.0\)"):
        early.minus(late)
    # A reset between two scrapes: the earlier snapshot is kept (the next read reports the reset).
    assert late.towards(early, 0.5, 1.0) is late


# --------------------------------------------------------------------------- sources fill them
def served(pages: dict[str, str]) -> httpx.Client:
    """A client answering GET <base>/metrics from ``pages`` (by base URL), 404 otherwise."""

    def handle(request: httpx.Request) -> httpx.Response:
        base = str(request.url).removesuffix("/metrics")
        return httpx.Response(200, text=pages[base]) if base in pages else httpx.Response(404)

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_the_scrape_source_reads_counters_from_each_arms_instance_only() -> None:
    pages = {"http://c": EXPOSITION + SHOP, "http://w": EXPOSITION, "http://p": EXPOSITION + SHOP}
    source = ScrapeSource(
        {"canary": ["http://c", "http://w"], "production": "http://p"}, client=served(pages), counters=(FAILED, ALL)
    )
    arms = source.snapshots(["canary", "production"])
    # The worker (http://w) does not declare the shop's counters: the instance's are the arm's.
    assert arms["canary"].counters == {FAILED.text: 5.0, ALL.text: 95.0}
    assert arms["canary"].requests == 2 * arms["production"].requests
    assert ScrapeSource({"canary": "http://p"}, client=served(pages)).snapshot("canary").counters == {}


def test_the_overlay_adds_the_services_counters_to_a_source_without_them() -> None:
    inner = CannedMetricsSource({"canary": ArmRates(), "production": ArmRates()}, clock=lambda: 10.0)
    pages = {"http://c": SHOP, "http://p": SHOP.replace(" 4.0", " 0.0")}
    source = WithCounters(inner, {"canary": "http://c", "production": "http://p"}, [FAILED], client=served(pages))
    arms = source.snapshots(["canary", "production"])
    assert arms["canary"].counters == {FAILED.text: 5.0} and arms["production"].counters == {FAILED.text: 1.0}
    assert arms["canary"].requests == 200  # the inner source's figures are kept
    gone = WithCounters(inner, {"canary": "http://elsewhere"}, [FAILED], client=served(pages))
    with pytest.raises(MetricsError, match=r"canary counters at http://elsewhere/metrics: HTTP 404"):
        gone.snapshot("canary")
    gauge = WithCounters(inner, {"canary": "http://c"}, [sel("queue_depth")], client=served(pages))
    with pytest.raises(MetricsError, match=r"canary metrics at http://c/metrics: metric queue_depth is a gauge"):
        gauge.snapshot("canary")
    source.close()
    assert inner.closed


def test_the_prometheus_source_sums_each_counter_per_arm_at_the_snapshot_instant() -> None:
    seen: list[dict[str, str]] = []
    answers = healthy_answers()
    answers['sum(orders_total{job="fragrance-ai",version="canary",outcome="failed"})'] = vector(({}, "7"))
    snap = source_with(answers, seen, counters=(FAILED, ALL)).snapshot("canary")
    assert snap.counters == {FAILED.text: 7.0, ALL.text: 0.0}  # no series yet: 0, like the other counters
    asked = [params for params in seen if params["query"].startswith("sum(orders_total")]
    assert len(asked) == 2 and len({params["time"] for params in seen}) == 1
    answers['sum(orders_total{job="fragrance-ai",version="canary"})'] = vector(({}, "NaN"))
    with pytest.raises(MetricsError, match=r"canary \(job=\"fragrance-ai\", version=\"canary\"\)"):
        source_with(answers, counters=(ALL,)).snapshot("canary")
    assert math.isfinite(snap.counters[FAILED.text])
