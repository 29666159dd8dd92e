"""Histograms, tallies and LoadStats built from canned locust JSON and tally documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from canary_harness.errors import LoadError
from canary_harness.loadgen import LoadStats
from canary_harness.loadgen.stats import build_stats
from canary_harness.loadgen.tally import MAX_ERROR_KINDS, OTHER_ERRORS, Histogram, Tally, percentile_ms, round_ms


@pytest.mark.parametrize(("ms", "rounded"), [(42.4, 42), (99.6, 100), (147, 150), (3432, 3400), (58760, 59000)])
def test_round_ms_keeps_two_significant_digits_like_locust(ms: float, rounded: int) -> None:
    assert round_ms(ms) == rounded and isinstance(round_ms(ms), int)


def test_percentile_of_a_histogram_follows_locust() -> None:
    # Locust's rule: the smallest value with at most int(n * q) requests above it.
    times = {10: 50, 20: 40, 500: 9, 2000: 1}
    assert percentile_ms(times, 100, 0.49) == 10
    assert percentile_ms(times, 100, 0.50) == 20
    assert percentile_ms(times, 100, 0.95) == 500
    assert percentile_ms(times, 100, 0.99) == 2000
    assert percentile_ms(times, 100, 0.98) == 500
    assert percentile_ms({}, 0, 0.95) == 0


def test_histogram_merges_its_json_form() -> None:
    first = Histogram()
    for ms, failed in ((10, False), (12, True), (1500, False)):
        first.record(ms, failed)
    merged = Histogram()
    merged.merge(json.loads(json.dumps(first.to_dict())))  # JSON turns the integer keys into strings
    merged.merge(first.to_dict())
    assert (merged.requests, merged.failures, merged.max_ms) == (6, 2, 1500)
    assert merged.response_times == {10: 2, 12: 2, 1500: 2}


def test_tally_drain_and_merge_carry_versions_modes_errors_and_sources() -> None:
    worker = Tally()
    worker.journey_started("fast")
    worker.record("v2", 30.0, None)
    worker.record("v2", 40.0, "/dna/create [fast]: HTTP 500")
    worker.record("unknown", 5.0, "/dna/create [fast]: no response (connection error or timeout)")
    report = worker.drain()
    assert worker.to_dict()["versions"] == {} and worker.completed == 3  # drained, count kept for the cap

    master = Tally()
    master.merge(report, source="worker-0")
    master.merge(report, source="worker-1")
    data = master.to_dict()
    assert data["versions"]["v2"]["requests"] == 4 and data["versions"]["v2"]["failures"] == 2
    assert data["modes"] == {"fast": 2} and data["sources"] == {"worker-0": 3, "worker-1": 3}
    assert data["errors"]["/dna/create [fast]: HTTP 500"] == 2


def test_tally_bounds_the_number_of_failure_reasons() -> None:
    tally = Tally()
    for index in range(MAX_ERROR_KINDS + 10):
        tally.record("v1", 1.0, f"reason {index}")
    errors = tally.to_dict()["errors"]
    assert len(errors) == MAX_ERROR_KINDS + 1 and errors[OTHER_ERRORS] == 10


def _entry(name: str, requests: int, failures: int, times: dict[str, int], method: str = "POST") -> dict[str, Any]:
    return {
        "name": name,
        "method": method,
        "num_requests": requests,
        "num_failures": failures,
        "total_response_time": sum(int(k) * v for k, v in times.items()),
        "max_response_time": max(int(k) for k in times),
        "response_times": times,
        "start_time": 1000.0,
        "last_request_timestamp": 1009.0,
    }


ENTRIES = [
    _entry("/dna/create [fast]", 60, 3, {"10": 50, "200": 10}),
    _entry("/dna/create [creative]", 40, 0, {"30": 40}),
]
TALLY = {
    "started": 1000.0,
    "stopped": 1010.0,
    "target_rps": 10,
    "workers": 2,
    "users": 5,
    "client": "fast",
    "versions": {
        "v2": {"requests": 70, "failures": 3, "response_times": {"10": 60, "200": 10}},
        "v1": {"requests": 30, "failures": 0, "response_times": {"30": 30}},
    },
    "modes": {"creative": 40, "fast": 60},
    "errors": {"/dna/create [fast]: HTTP 500": 3},
    "sources": {"worker-1": 45, "worker-0": 55},
}


def test_build_stats_totals_names_versions_and_modes() -> None:
    stats = build_stats("locust", ENTRIES, TALLY)
    assert (stats.requests, stats.failures, stats.duration_s) == (100, 3, 10.0)
    assert stats.rps == pytest.approx(10.0) and stats.target_rps == 10.0
    assert stats.failure_ratio == pytest.approx(0.03)
    fast = stats.by_name["/dna/create [fast]"]
    assert (fast.requests, fast.failures, fast.p50_ms, fast.p95_ms) == (60, 3, 10.0, 200.0)
    assert fast.rps == pytest.approx(6.0)
    assert stats.by_version == {"v1": 30, "v2": 70}
    assert stats.version_stats["v2"].p95_ms == 200.0 and stats.version_stats["v1"].failures == 0
    assert list(stats.by_mode) == ["fast", "creative"]  # MODES order, not file order
    assert stats.by_worker == {"worker-0": 55, "worker-1": 45}
    assert stats.total is not None and stats.total.requests == 100 and stats.total.p50_ms == 30.0
    assert (stats.users, stats.workers, stats.client) == (5, 2, "fast")


def test_build_stats_without_tally_times_uses_the_entries_span() -> None:
    stats = build_stats("builtin", ENTRIES, {})
    assert stats.duration_s == pytest.approx(9.0) and stats.by_version == {} and stats.target_rps is None


def test_build_stats_refuses_malformed_documents() -> None:
    with pytest.raises(LoadError, match="malformed"):
        build_stats("locust", [{"name": "x"}], TALLY)
    with pytest.raises(LoadError, match="malformed"):
        build_stats("locust", ENTRIES, {"versions": {"v1": {"requests": "many"}}})


def test_to_dict_is_json_and_format_table_names_everything() -> None:
    stats = build_stats("locust", ENTRIES, TALLY)
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["requests"] == 100 and data["by_name"]["/dna/create [creative]"]["requests"] == 40
    assert data["failure_ratio"] == pytest.approx(0.03)
    table = stats.format_table()
    for fragment in (
        "locust/fast",
        "100 requests",
        "3 failures",
        "of 10 target",
        "/dna/create [creative]",
        "v2 70 reqs",
        "fast 60",
        "worker-0 55",
        "HTTP 500",
    ):
        assert fragment in table


def test_empty_stats() -> None:
    stats = LoadStats.empty("locust")
    assert stats.requests == 0 and stats.failure_ratio == 0.0 and "0 requests" in stats.format_table()
