"""histogram_quantile against values PromQL itself computes (Prometheus' histograms.test)."""

from __future__ import annotations

import math

import pytest

from canary_harness.errors import MetricsError
from canary_harness.metrics.histogram import bucket_edge_at_or_above, histogram_quantile

INF = math.inf
# testhistogram{start="positive"} at 50m: buckets 0.1 / 0.2 / 1 / +Inf = 50 / 70 / 110 / 120.
POSITIVE = ((0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 120.0))
# testhistogram{start="negative"}: -0.2 / -0.1 / 0.3 / +Inf = 10 / 20 / 20 / 30.
NEGATIVE = ((-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 30.0))
# testhistogram2: the 1/6, 1/2 and 5/6 quantiles sit in the middle of buckets.
MIDDLES = ((0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (INF, 3.0))
# testhistogram3{start="positive"}: nothing in the +Inf bucket.
NO_TAIL = ((0.0, 0.0), (0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 110.0))
# request_duration_seconds{job="job1", instance="ins1"}.
JOB1 = ((0.1, 10.0), (0.2, 30.0), (INF, 40.0))


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.0, POSITIVE, 0.0),
        (0.2, POSITIVE, 0.048),
        (0.5, POSITIVE, 0.15),
        (0.8, POSITIVE, 0.72),
        (1.0, POSITIVE, 1.0),  # rank in the +Inf bucket: the highest finite edge
        (0.0, NEGATIVE, -0.2),  # lowest bucket with an edge ≤ 0 returns that edge
        (0.2, NEGATIVE, -0.2),
        (0.5, NEGATIVE, -0.15),
        (0.8, NEGATIVE, 0.3),
        (1.0, NEGATIVE, 0.3),
        (1 / 6, MIDDLES, 1.0),
        (0.5, MIDDLES, 3.0),
        (5 / 6, MIDDLES, 5.0),
        (0.25, NO_TAIL, 0.055),
        (0.5, NO_TAIL, 0.125),
        (0.75, NO_TAIL, 0.45),
        (1.0, NO_TAIL, 1.0),
        (0.3, JOB1, 0.11),
        (0.5, JOB1, 0.15),
    ],
)
def test_matches_promql(q: float, buckets: tuple[tuple[float, float], ...], expected: float) -> None:
    assert histogram_quantile(q, buckets) == pytest.approx(expected, abs=1e-12)


def test_out_of_range_q_follows_promql() -> None:
    assert histogram_quantile(-0.1, POSITIVE) == -INF
    assert histogram_quantile(1.01, POSITIVE) == INF
    assert math.isnan(histogram_quantile(math.nan, POSITIVE))  # type: ignore[arg-type]


def test_no_observations_is_none_not_a_number() -> None:
    assert histogram_quantile(0.95, ((1.0, 0.0), (INF, 0.0))) is None
    assert histogram_quantile(0.95, ()) is None
    assert histogram_quantile(0.95, ((INF, 5.0),)) is None  # fewer than two buckets


def test_unsorted_duplicate_and_non_monotonic_buckets_are_cleaned_like_promql() -> None:
    # Same edge twice is summed; a dip in a cumulative count is lifted to the running maximum.
    messy = ((INF, 120.0), (1.0, 110.0), (0.1, 25.0), (0.1, 25.0), (0.2, 70.0))
    assert histogram_quantile(0.5, messy) == pytest.approx(0.15)
    dip = ((0.1, 50.0), (0.2, 40.0), (1.0, 110.0), (INF, 120.0))
    # Envelope: 0.2 becomes 50, so the median interpolates in (0.2, 1]: 0.2 + 0.8 * 10/60.
    assert histogram_quantile(0.5, dip) == pytest.approx(0.2 + 0.8 * 10 / 60)


def test_missing_inf_bucket_is_an_error() -> None:
    with pytest.raises(MetricsError, match=r"no \+Inf bucket"):
        histogram_quantile(0.5, ((0.1, 1.0), (0.2, 2.0)))


def test_bucket_edge_at_or_above() -> None:
    buckets = ((1.5, 1.0), (2.0, 2.0), (2.5, 3.0), (INF, 4.0))
    assert bucket_edge_at_or_above(2.1, buckets) == 2.5
    assert bucket_edge_at_or_above(2.0, buckets) == 2.0
    assert bucket_edge_at_or_above(0.3, buckets) == 1.5
    assert bucket_edge_at_or_above(9.0, buckets) == 2.5  # beyond the last finite edge
