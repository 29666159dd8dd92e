# ruff: noqa: E501  (canned exposition lines are as long as the service writes them)
"""Parsing fragrance-ai's exposition into cumulative counters (canned text, no I/O)."""

from __future__ import annotations

import math

import pytest

from canary_harness.errors import MetricsError, NoDataError
from canary_harness.metrics.scrape import combine, parse_exposition
from canary_harness.metrics.types import MetricsSnapshot

EXPOSITION = """\
# TYPE http_requests_total counter
http_requests_total{app_version="v0.2.0",method="GET",route="/health",status="200"} 50.0
http_requests_total{app_version="v0.2.0",method="GET",route="/metrics",status="200"} 7.0
http_requests_total{app_version="v0.2.0",method="POST",route="/dna/create",status="200"} 90.0
http_requests_total{app_version="v0.2.0",method="POST",route="/dna/create",status="500"} 4.0
http_requests_total{app_version="v0.2.0",method="POST",route="/evolve/options",status="503"} 1.0
http_requests_total{app_version="v0.2.0",method="POST",route="/evolve/options",status="404"} 2.0
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{app_version="v0.2.0",le="2.5",method="POST",mode="fast",route="/dna/create",status="200"} 80.0
http_request_duration_seconds_bucket{app_version="v0.2.0",le="+Inf",method="POST",mode="fast",route="/dna/create",status="200"} 90.0
http_request_duration_seconds_bucket{app_version="v0.2.0",le="2.5",method="POST",mode="fast",route="/dna/create",status="500"} 4.0
http_request_duration_seconds_bucket{app_version="v0.2.0",le="+Inf",method="POST",mode="fast",route="/dna/create",status="500"} 4.0
http_request_duration_seconds_bucket{app_version="v0.2.0",le="2.5",method="GET",mode="none",route="/health",status="200"} 50.0
http_request_duration_seconds_bucket{app_version="v0.2.0",le="+Inf",method="GET",mode="none",route="/health",status="200"} 50.0
http_request_duration_seconds_count{app_version="v0.2.0",method="POST",mode="fast",route="/dna/create",status="200"} 90.0
http_request_duration_seconds_sum{app_version="v0.2.0",method="POST",mode="fast",route="/dna/create",status="200"} 99.0
# TYPE llm_brief_total counter
llm_brief_total{app_version="v0.2.0",mode="fast"} 94.0
# TYPE llm_brief_schema_failures_total counter
llm_brief_schema_failures_total{app_version="v0.2.0",mode="fast"} 2.0
# TYPE rl_update_loss summary
rl_update_loss_count{app_version="v0.2.0"} 3.0
rl_update_loss_sum{app_version="v0.2.0"} 1.5
"""


def test_counts_api_requests_only_and_5xx() -> None:
    snap = parse_exposition(EXPOSITION, taken_at=1.0)
    assert snap.requests == 97  # 90 + 4 + 1 + 2: /health and /metrics excluded
    assert snap.errors_5xx == 5
    assert snap.version == "v0.2.0"


def test_latency_buckets_sum_statuses_per_mode_and_skip_modeless_routes() -> None:
    snap = parse_exposition(EXPOSITION, taken_at=1.0)
    assert set(snap.latency_buckets) == {"fast"}
    assert snap.latency_buckets["fast"][0] == (2.5, 84.0)
    assert math.isinf(snap.latency_buckets["fast"][-1][0])
    assert snap.latency_count("fast") == 94
    assert snap.latency_over("fast", 2.5) == 10


def test_briefs_schema_and_loss() -> None:
    snap = parse_exposition(EXPOSITION, taken_at=1.0)
    assert (snap.briefs, snap.schema_failures, snap.rl_updates, snap.rl_loss_sum) == (94, 2, 3, 1.5)


def test_threshold_that_is_not_a_bucket_edge_is_an_error() -> None:
    snap = parse_exposition(EXPOSITION, taken_at=1.0)
    with pytest.raises(MetricsError, match="not a histogram bucket edge"):
        snap.latency_over("fast", 2.4)


def test_foreign_exposition_is_no_data() -> None:
    with pytest.raises(NoDataError, match="http_requests_total"):
        parse_exposition("# TYPE up gauge\nup 1\n")


def test_delta_since_baseline_and_restart_detection() -> None:
    later = parse_exposition(EXPOSITION, taken_at=2.0)
    base = MetricsSnapshot(
        taken_at=1.0,
        requests=7,
        errors_5xx=1,
        latency_buckets={"fast": ((2.5, 4.0), (math.inf, 4.0))},
        version="v0.2.0",
    )
    delta = later.minus(base)
    assert (delta.requests, delta.errors_5xx) == (90, 4)
    assert delta.latency_buckets["fast"] == ((2.5, 80.0), (math.inf, 90.0))
    with pytest.raises(MetricsError, match="restarted"):
        base.minus(later)


WORKER_EXPOSITION = """\
# TYPE http_requests_total counter
http_requests_total{app_version="v0.2.0",component="worker-rl",method="GET",route="/health",status="200"} 3.0
# TYPE rl_update_loss summary
rl_update_loss_count{app_version="v0.2.0",component="worker-rl"} 4.0
rl_update_loss_sum{app_version="v0.2.0",component="worker-rl"} 8.5
"""


def test_an_arm_of_api_and_worker_sums_their_counters() -> None:
    api, worker = parse_exposition(EXPOSITION, taken_at=1.0), parse_exposition(WORKER_EXPOSITION, taken_at=2.0)
    arm = combine([api, worker])
    assert (arm.requests, arm.errors_5xx, arm.briefs) == (97, 5, 94)  # the worker serves no API route
    assert (arm.rl_updates, arm.rl_loss_sum) == (7, 10.0)
    assert arm.latency_buckets == api.latency_buckets and arm.taken_at == 2.0 and arm.version == "v0.2.0"
    assert combine([api, api]).latency_over("fast", 2.5) == 20
