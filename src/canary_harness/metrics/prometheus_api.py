"""Parsing the answers of the Prometheus HTTP API (``/api/v1/query`` and ``query_range``) into samples,
series, single values and latency buckets, with a MetricsError naming the query for anything malformed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canary_harness.errors import MetricsError
from canary_harness.metrics.types import Buckets


@dataclass(frozen=True)
class Sample:
    """One element of an instant-query result: the series' labels, its value and evaluation time."""

    labels: Mapping[str, str]
    value: float
    at: float


@dataclass(frozen=True)
class Series:
    """One series of a range-query result: labels and ``(unix seconds, value)`` points."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def _number(raw: Any, query: str) -> float:
    # Prometheus sends sample values as strings ("1", "NaN", "+Inf") to keep them exact.
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise MetricsError(f"query {query!r}: value {raw!r} is not a number") from None


def _point(raw: Any, query: str) -> tuple[float, float]:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise MetricsError(f"query {query!r}: malformed sample {raw!r} (expected [time, value])")
    return _number(raw[0], query), _number(raw[1], query)


def _labels(raw: Any, query: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise MetricsError(f"query {query!r}: malformed series labels {raw!r}")
    return {str(key): str(value) for key, value in raw.items()}


def parse_instant(data: Any, query: str) -> list[Sample]:
    """The samples of an instant query's ``data`` object (vector or scalar result)."""
    if not isinstance(data, Mapping):
        raise MetricsError(f"query {query!r}: malformed response data {data!r}")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        at, value = _point(result, query)
        return [Sample({}, value, at)]
    if kind != "vector" or not isinstance(result, list):
        raise MetricsError(f"query {query!r}: expected an instant vector, got result type {kind!r}")
    samples = []
    for item in result:
        if not isinstance(item, Mapping):
            raise MetricsError(f"query {query!r}: malformed vector element {item!r}")
        at, value = _point(item.get("value"), query)
        samples.append(Sample(_labels(item.get("metric", {}), query), value, at))
    return samples


def parse_range(data: Any, query: str) -> list[Series]:
    """The series of a range query's ``data`` object (matrix result)."""
    if not isinstance(data, Mapping):
        raise MetricsError(f"query {query!r}: malformed response data {data!r}")
    kind, result = data.get("resultType"), data.get("result")
    if kind != "matrix" or not isinstance(result, list):
        raise MetricsError(f"query {query!r}: expected a range vector (matrix), got result type {kind!r}")
    series = []
    for item in result:
        if not isinstance(item, Mapping) or not isinstance(item.get("values"), list):
            raise MetricsError(f"query {query!r}: malformed matrix element {item!r}")
        points = tuple(_point(raw, query) for raw in item["values"])
        series.append(Series(_labels(item.get("metric", {}), query), points))
    return series


def describe(samples: Sequence[Sample]) -> str:
    """The label sets of (at most five of) ``samples``, for an error message."""
    return "; ".join("{" + ", ".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}" for s in samples[:5]) + (
        " ..." if len(samples) > 5 else ""
    )


def single_value(samples: Sequence[Sample], query: str, *, finite: bool = True) -> float | None:
    """The one finite value of a result, None if empty; MetricsError for several series, NaN or ±Inf
    (unless ``finite`` is False: a service's own figure, such as its RL loss, which the judge rates)."""
    if not samples:
        return None
    if len(samples) > 1:
        raise MetricsError(
            f"query {query!r} returned {len(samples)} series where one was expected: {describe(samples)} "
            "(aggregate it with sum() or narrow its label matchers)"
        )
    value = samples[0].value
    if not finite:
        return value
    if math.isnan(value):
        raise MetricsError(f"query {query!r} returned NaN")
    if math.isinf(value):
        raise MetricsError(f"query {query!r} returned {value}")
    return value


def buckets_from_samples(samples: Sequence[Sample], query: str) -> dict[str, Buckets]:
    """Per-mode cumulative buckets from a ``sum by (mode, le)`` result."""
    per_mode: dict[str, dict[float, float]] = {}
    for sample in samples:
        mode, le = sample.labels.get("mode"), sample.labels.get("le")
        if mode is None or le is None:
            raise MetricsError(
                f"query {query!r}: series {describe([sample])} lacks the 'mode' or 'le' label "
                "(the query must keep them: sum by (mode, le))"
            )
        try:
            edge = float(le)
        except ValueError:
            raise MetricsError(f"query {query!r}: bucket edge le={le!r} is not a number") from None
        if not math.isfinite(sample.value) or sample.value < 0:
            raise MetricsError(f"query {query!r}: bucket {describe([sample])} has value {sample.value}")
        edges = per_mode.setdefault(mode, {})
        if edge in edges:
            raise MetricsError(f"query {query!r}: several series for mode={mode!r} le={le!r}")
        edges[edge] = sample.value
    result: dict[str, Buckets] = {}
    for mode, edges in per_mode.items():
        ordered = tuple(sorted(edges.items()))
        if not math.isinf(ordered[-1][0]):
            raise MetricsError(f"query {query!r}: mode {mode!r} has no +Inf bucket")
        result[mode] = ordered
    return result
