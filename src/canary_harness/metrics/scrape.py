"""Direct reading of each instance's ``/metrics`` (the embedded default source).

Turns the Prometheus text exposition of fragrance-ai into a MetricsSnapshot. The API request count
excludes /health and /metrics so that probes and scrapes do not dilute the error rate.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

from canary_harness.errors import MetricsError, NoDataError
from canary_harness.metrics.counters import CounterSelector, counter_sums
from canary_harness.metrics.types import Buckets, MetricsSnapshot

NON_API_ROUTES = frozenset({"/health", "/metrics"})
JOURNEY_ROUTE = "/dna/create"
NO_MODE = "none"
# Samples that count something: NaN, ±Inf or a negative value there is garbage, refused with the series
# named. rl_update_loss_sum is not among them: a non-finite loss is the canary's own defect, which the
# judges FAIL (a loss sum may also be negative).
COUNTER_SAMPLES = frozenset(
    {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "llm_brief_total",
        "llm_brief_schema_failures_total",
        "rl_update_loss_count",
    }
)


def parse_exposition(text: str, *, taken_at: float | None = None) -> MetricsSnapshot:
    """Parse fragrance-ai's exposition text into cumulative counters (pure; canned text in unit tests)."""
    requests = errors = journeys = briefs = schema = updates = loss_sum = 0.0
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    versions: set[str] = set()
    seen_requests = False
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise MetricsError(f"unparseable metrics exposition: {exc}") from exc
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            if "app_version" in labels:
                versions.add(labels["app_version"])
            name = sample.name
            if name in COUNTER_SAMPLES and not (math.isfinite(sample.value) and sample.value >= 0):
                raise MetricsError(
                    f"counter {name}{_labels(labels)} has value {sample.value}: a count must be finite and >= 0"
                )
            if name == "http_requests_total":
                seen_requests = True
                if labels.get("route") in NON_API_ROUTES:
                    continue
                requests += sample.value
                if labels.get("route") == JOURNEY_ROUTE:
                    journeys += sample.value
                if labels.get("status", "").startswith("5"):
                    errors += sample.value
            elif name == "http_request_duration_seconds_bucket":
                mode = labels.get("mode", NO_MODE)
                if mode != NO_MODE:
                    buckets[mode][float(labels["le"])] += sample.value
            elif name == "llm_brief_total":
                briefs += sample.value
            elif name == "llm_brief_schema_failures_total":
                schema += sample.value
            elif name == "rl_update_loss_count":
                updates += sample.value
            elif name == "rl_update_loss_sum":
                loss_sum += sample.value
    if not seen_requests:
        raise NoDataError("metrics exposition has no http_requests_total series: is this fragrance-ai?")
    if len(versions) > 1:
        raise MetricsError(f"one instance exposes several app_version labels: {sorted(versions)}")
    return MetricsSnapshot(
        taken_at=time.time() if taken_at is None else taken_at,
        requests=requests,
        errors_5xx=errors,
        journeys=journeys,
        latency_buckets={mode: _sorted_buckets(edges) for mode, edges in buckets.items()},
        briefs=briefs,
        schema_failures=schema,
        rl_updates=updates,
        rl_loss_sum=loss_sum,
        version=next(iter(versions), None),
    )


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"


def _sorted_buckets(edges: Mapping[float, float]) -> Buckets:
    ordered = tuple(sorted(edges.items()))
    if not ordered or not math.isinf(ordered[-1][0]):
        raise MetricsError("latency histogram has no +Inf bucket")
    return ordered


def combine(parts: Sequence[MetricsSnapshot]) -> MetricsSnapshot:
    """One arm made of several processes (the API and its workers): counters and buckets summed (pure)."""
    first = parts[0]
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for part in parts:
        for mode, edges in part.latency_buckets.items():
            for edge, count in edges:
                buckets[mode][edge] += count
    return MetricsSnapshot(
        taken_at=max(part.taken_at for part in parts),
        requests=sum(part.requests for part in parts),
        errors_5xx=sum(part.errors_5xx for part in parts),
        journeys=sum(part.journeys for part in parts),
        latency_buckets={mode: _sorted_buckets(edges) for mode, edges in buckets.items()},
        briefs=sum(part.briefs for part in parts),
        schema_failures=sum(part.schema_failures for part in parts),
        rl_updates=sum(part.rl_updates for part in parts),
        rl_loss_sum=sum(part.rl_loss_sum for part in parts),
        version=first.version,
        counters={name: sum(part.counters.get(name, 0.0) for part in parts) for name in first.counters},
    )


class ScrapeSource:
    """MetricsSource that GETs ``<base_url>/metrics`` of each arm with an injected HTTP client; an arm given
    several URLs (an API and its workers) is their sum. ``counters`` (the ratio checks' counters) are read
    from each arm's first URL, the instance users talk to (its workers need not declare them)."""

    def __init__(
        self,
        urls: Mapping[str, str | Sequence[str]],
        *,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        counters: Sequence[CounterSelector] = (),
    ):
        self._urls = {role: [value] if isinstance(value, str) else list(value) for role, value in urls.items()}
        self._counters = tuple(counters)
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None

    def snapshot(self, role: str) -> MetricsSnapshot:
        """Scrape the arm now; MetricsError names the URL and what went wrong."""
        if role not in self._urls:
            raise MetricsError(f"no URL configured for arm {role!r}")
        parts = [
            self._read(role, base, self._counters if index == 0 else ()) for index, base in enumerate(self._urls[role])
        ]
        return parts[0] if len(parts) == 1 else combine(parts)

    def _read(self, role: str, base: str, counters: Sequence[CounterSelector] = ()) -> MetricsSnapshot:
        url = base.rstrip("/") + "/metrics"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise MetricsError(f"{role} metrics at {url} unreachable: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code != 200:
            raise MetricsError(f"{role} metrics at {url} answered HTTP {response.status_code}")
        try:
            snapshot = parse_exposition(response.text)
            return (
                dataclasses.replace(snapshot, counters=counter_sums(response.text, counters)) if counters else snapshot
            )
        except MetricsError as exc:
            raise type(exc)(f"{role} metrics at {url}: {exc}") from exc

    def snapshots(self, roles: Sequence[str]) -> dict[str, MetricsSnapshot]:
        """Each arm scraped now, one after the other (milliseconds apart)."""
        return {role: self.snapshot(role) for role in roles}

    def close(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_client:
            self._client.close()
