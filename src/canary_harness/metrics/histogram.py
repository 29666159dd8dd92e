"""Quantiles from cumulative histogram buckets, with PromQL ``histogram_quantile`` semantics.

The stage figures (p95 per LLM mode) are computed from counter deltas of the service's
``http_request_duration_seconds`` histogram, so they must equal what a Prometheus query
``histogram_quantile(0.95, increase(...[stage]))`` shows on a dashboard. The rules, as PromQL:

- buckets are sorted by upper edge; buckets with the same edge are added together; counts that are
  equal up to a relative 1e-12 are made equal and any decrease is lifted to the running maximum
  (PromQL's precision fix and monotonic envelope);
- rank = q × count of the +Inf bucket; the answer lies in the first bucket whose cumulative count
  is ≥ rank and is interpolated linearly inside it; the lowest bucket starts at 0 (unless its edge
  is ≤ 0, then that edge is returned);
- a rank in the +Inf bucket returns the highest finite edge (a lower bound of the true quantile);
- q < 0 gives −inf, q > 1 gives +inf, q NaN gives NaN.

Where PromQL returns NaN because there is no data (no observations, or fewer than two buckets),
this function returns ``None``: "no data" must never compare as a number. Buckets without a +Inf
edge are malformed input and raise MetricsError rather than PromQL's silent NaN.
"""

from __future__ import annotations

import math

from canary_harness.errors import MetricsError
from canary_harness.metrics.types import Buckets

_PRECISION = 1e-12


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile of cumulative ``(le, count)`` buckets; None when there is no observation."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if not buckets:
        return None
    ordered = _normalised(buckets)
    if len(ordered) < 2:
        return None
    observations = ordered[-1][1]
    if observations == 0:
        return None
    rank = q * observations
    index = next((i for i, (_, count) in enumerate(ordered[:-1]) if count >= rank), len(ordered) - 1)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    if index == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start = 0.0
    end, count = ordered[index]
    if index > 0:
        start = ordered[index - 1][0]
        count -= ordered[index - 1][1]
        rank -= ordered[index - 1][1]
    return start + (end - start) * (rank / count)


def bucket_edge_at_or_above(value: float, buckets: Buckets) -> float:
    """The smallest finite bucket edge ≥ ``value`` (the highest finite edge if none is).

    Used to round an estimated quantile up to an edge so that exceedances of it can be counted
    exactly as ``count − bucket{le=edge}``.
    """
    finite = sorted(edge for edge, _ in buckets if not math.isinf(edge))
    if not finite:
        raise MetricsError("histogram has no finite bucket edge")
    for edge in finite:
        if edge >= value or math.isclose(edge, value, rel_tol=1e-9):
            return edge
    return finite[-1]


def _normalised(buckets: Buckets) -> list[tuple[float, float]]:
    """Sorted, coalesced, precision-fixed and monotonic buckets (PromQL's clean-up steps)."""
    ordered = sorted((float(edge), float(count)) for edge, count in buckets)
    if not (math.isinf(ordered[-1][0]) and ordered[-1][0] > 0):
        edges = ", ".join(str(edge) for edge, _ in ordered)
        raise MetricsError(f"histogram buckets have no +Inf bucket (edges: {edges})")
    coalesced: list[list[float]] = []
    for edge, count in ordered:
        if coalesced and coalesced[-1][0] == edge:
            coalesced[-1][1] += count
        else:
            coalesced.append([edge, count])
    previous = coalesced[0][1]
    for item in coalesced[1:]:
        current = item[1]
        delta = abs(current - previous)
        if delta == 0:
            continue
        if current != 0 and delta / current <= _PRECISION:
            item[1] = previous
        else:
            previous = current
    highest = coalesced[0][1]
    for item in coalesced[1:]:
        highest = max(highest, item[1])
        item[1] = highest
    return [(edge, count) for edge, count in coalesced]
