"""Prometheus as the metrics source: readable PromQL templates run over the HTTP API.

Each arm is the scrape target labelled ``version="production"`` or ``version="canary"`` (a target
label, so it never clashes with the service's own ``app_version`` label) in the job ``fragrance-ai``.
Templates name their holes ``{job}``, ``{version}``, ``{window}`` and ``{mode}``; PromQL's own braces
(label matchers) are left alone, because a matcher always has an operator and a hole never has one.

Two uses:

- :meth:`PrometheusSource.snapshot` runs instant queries of the cumulative counters, all at one
  evaluation time, and returns the same :class:`MetricsSnapshot` as the direct ``/metrics`` reading
  (:mod:`canary_harness.metrics.scrape`) of the same instance, modulo scrape lag.
- :meth:`PrometheusSource.figures` runs the classic dashboard checks (p95 per mode from
  ``histogram_quantile``, the 5xx ``rate()`` ratio, schema failures, mean RL loss) over a window.

The "no data" rule of snapshot(): the ``present`` query (any ``http_requests_total`` series of the
target) must return a series, otherwise :class:`NoDataError`: the target is not scraped yet, is down
(its series went stale) or is labelled differently. Once the target is present, a counter query with
no series is 0: the service creates a labelled counter on its first increment, so "no 5xx series"
while requests are counted means no 5xx response yet, which is what the direct reading reports too.
Several series where one was expected, NaN or an infinite value raise :class:`MetricsError`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx

from canary_harness.config import MODES, parse_positive_float
from canary_harness.errors import ConfigError, MetricsError, NoDataError
from canary_harness.metrics.types import Buckets, MetricsSnapshot
from canary_harness.waiting import wait_until

JOB = "fragrance-ai"
DEFAULT_VERSION_LABELS: Mapping[str, str] = MappingProxyType({"production": "production", "canary": "canary"})
DEFAULT_WINDOW_S = 60.0

_TARGET = 'job="{job}",version="{version}"'
_API = _TARGET + ',route!~"/health|/metrics"'

DEFAULT_QUERIES: Mapping[str, str] = MappingProxyType({
    # snapshot(): cumulative counters of one arm at one instant
    "present": f"count by (app_version) (http_requests_total{{{_TARGET}}})",
    "requests": f"sum(http_requests_total{{{_API}}})",
    "errors_5xx": f'sum(http_requests_total{{{_API},status=~"5.."}})',
    "journeys": f'sum(http_requests_total{{{_TARGET},route="/dna/create"}})',
    "latency_buckets": f'sum by (mode, le) (http_request_duration_seconds_bucket{{{_TARGET},mode!="none"}})',
    "briefs": f"sum(llm_brief_total{{{_TARGET}}})",
    "schema_failures": f"sum(llm_brief_schema_failures_total{{{_TARGET}}})",
    "rl_updates": f"sum(rl_update_loss_count{{{_TARGET}}})",
    "rl_loss_sum": f"sum(rl_update_loss_sum{{{_TARGET}}})",
    # last_scrape(): start of the arm's latest successful scrape (unix seconds)
    "last_scrape": f"max(timestamp(up{{{_TARGET}}}) and up{{{_TARGET}}} == 1)",
    # figures(): the classic checks over {window}
    "request_rate": f"sum(rate(http_requests_total{{{_API}}}[{{window}}]))",
    "error_rate": (
        f'(sum(rate(http_requests_total{{{_API},status=~"5.."}}[{{window}}])) or vector(0))'
        f" / sum(rate(http_requests_total{{{_API}}}[{{window}}]))"
    ),
    "p95": (
        "histogram_quantile(0.95, sum by (le) "
        f'(rate(http_request_duration_seconds_bucket{{{_TARGET},mode="{{mode}}"}}[{{window}}])))'
    ),
    # "or vector(0)" only while the target is present: a dead target gives no data, never 0.
    "schema_failures_increase": (
        f"(sum(increase(llm_brief_schema_failures_total{{{_TARGET}}}[{{window}}])) or vector(0))"
        f" and on() count(http_requests_total{{{_TARGET}}})"
    ),
    "rl_loss_mean": (
        f"sum(increase(rl_update_loss_sum{{{_TARGET}}}[{{window}}]))"
        f" / sum(increase(rl_update_loss_count{{{_TARGET}}}[{{window}}]))"
    ),
})  # fmt: skip

SNAPSHOT_COUNTERS: tuple[str, ...] = (
    "requests", "errors_5xx", "journeys", "briefs", "schema_failures", "rl_updates", "rl_loss_sum",
)  # fmt: skip
FIGURE_QUERIES: tuple[str, ...] = (
    "request_rate", "error_rate", "p95", "schema_failures_increase", "rl_loss_mean",
)  # fmt: skip
PLACEHOLDERS: tuple[str, ...] = ("job", "version", "window", "mode")

_HOLE_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,128}$")


# --------------------------------------------------------------------------- templates
def _placeholder_rules(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """(required, allowed) holes of the query ``name``."""
    required = {"version"}
    if name in FIGURE_QUERIES:
        required.add("window")
    if name == "p95":
        required.add("mode")
    return frozenset(required), frozenset(required | {"job"})


def check_template(name: str, template: object, source: str) -> str:
    """A query template after checking its name and holes; ConfigError naming ``source`` otherwise."""
    if name not in DEFAULT_QUERIES:
        raise ConfigError(
            f"unknown Prometheus query {name!r} ({source}); known queries: {', '.join(DEFAULT_QUERIES)}"
        )
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"Prometheus query {name!r} = {template!r} ({source}): must be a non-empty string")
    required, allowed = _placeholder_rules(name)
    holes = set(_HOLE_RE.findall(template))
    unknown = holes - allowed
    if unknown:
        raise ConfigError(
            f"Prometheus query {name!r} ({source}) uses unknown placeholder(s) "
            f"{', '.join('{' + hole + '}' for hole in sorted(unknown))}; "
            f"this query may use {', '.join('{' + hole + '}' for hole in sorted(allowed))}"
        )
    missing = required - holes
    if missing:
        raise ConfigError(
            f"Prometheus query {name!r} ({source}) lacks placeholder(s) "
            f"{', '.join('{' + hole + '}' for hole in sorted(missing))}: without them it would not "
            "select one arm (or one window / mode)"
        )
    return template


def queries_from_mapping(data: Mapping[str, Any], source: str) -> dict[str, str]:
    """DEFAULT_QUERIES with the overrides of a canary.toml ``[prometheus.queries]`` table applied.

    Every name must be a known query and every template must use exactly the placeholders its
    query allows ({version} always; {window} in figure queries; {mode} in p95; {job} optionally).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"Prometheus queries ({source}): must be a table of name = PromQL, got {data!r}")
    merged = dict(DEFAULT_QUERIES)
    for name, template in data.items():
        merged[str(name)] = check_template(str(name), template, f"{source}, key {name!r}")
    return merged


def check_label_value(value: object, what: str, source: str) -> str:
    """A label value safe to put inside a PromQL double-quoted string (no quotes, no backslashes)."""
    text = str(value)
    if not _LABEL_VALUE_RE.match(text):
        raise ConfigError(
            f"{what} {value!r} ({source}): must be 1-128 letters, digits or '_.:+-' "
            "(it is placed inside a PromQL label matcher)"
        )
    return text


def promql_duration(seconds: float) -> str:
    """A PromQL range duration for ``seconds``: whole seconds as ``60s``, otherwise milliseconds."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"window {seconds!r}: must be a positive number of seconds")
    millis = round(seconds * 1000)
    if millis < 1:
        raise ConfigError(f"window {seconds!r}: must be at least one millisecond")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill the ``{hole}`` placeholders of ``template`` (PromQL label-matcher braces are untouched)."""

    def fill(match: re.Match[str]) -> str:
        hole = match.group(1)
        if hole not in values:
            raise ConfigError(f"query {template!r}: no value for placeholder {{{hole}}}")
        return values[hole]

    return _HOLE_RE.sub(fill, template)


# --------------------------------------------------------------------------- API results
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


def _describe(samples: Sequence[Sample]) -> str:
    return "; ".join("{" + ", ".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}"
                     for s in samples[:5]) + (" ..." if len(samples) > 5 else "")


def single_value(samples: Sequence[Sample], query: str, *, finite: bool = True) -> float | None:
    """The one finite value of a result, None if empty; MetricsError for several series, NaN or ±Inf
    (unless ``finite`` is False: a service's own figure, such as its RL loss, which the judge rates)."""
    if not samples:
        return None
    if len(samples) > 1:
        raise MetricsError(
            f"query {query!r} returned {len(samples)} series where one was expected: {_describe(samples)} "
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
                f"query {query!r}: series {_describe([sample])} lacks the 'mode' or 'le' label "
                "(the query must keep them: sum by (mode, le))"
            )
        try:
            edge = float(le)
        except ValueError:
            raise MetricsError(f"query {query!r}: bucket edge le={le!r} is not a number") from None
        if not math.isfinite(sample.value) or sample.value < 0:
            raise MetricsError(f"query {query!r}: bucket {_describe([sample])} has value {sample.value}")
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


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class PrometheusSettings:
    """The canary.toml ``[prometheus]`` table: where, which job and version labels, which queries.

    ``url`` (None: no external Prometheus), ``job``, ``versions`` (arm -> value of the ``version``
    target label), ``window_s`` (window of the figures), ``timeout_s`` (per HTTP request) and
    ``queries`` (DEFAULT_QUERIES with ``[prometheus.queries]`` applied).
    """

    url: str | None = None
    job: str = JOB
    versions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_VERSION_LABELS))
    window_s: float = DEFAULT_WINDOW_S
    timeout_s: float = 5.0
    queries: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_QUERIES))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> PrometheusSettings:
        """Settings from a ``[prometheus]`` table; ConfigError names the key, its value and ``source``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"[prometheus] ({source}): must be a table, got {data!r}")
        known = ("url", "job", "versions", "window", "timeout", "queries")
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"unknown [prometheus] key {key!r} ({source}); known keys: {', '.join(known)}"
                )
        base = cls()
        url = base.url if "url" not in data else check_base_url(data["url"], f"{source}, key 'url'")
        job = check_label_value(data.get("job", base.job), "job", f"{source}, key 'job'")
        versions = dict(base.versions)
        raw_versions = data.get("versions", {})
        if not isinstance(raw_versions, Mapping):
            raise ConfigError(f"[prometheus.versions] ({source}): must be a table, got {raw_versions!r}")
        for role, label in raw_versions.items():
            if role not in DEFAULT_VERSION_LABELS:
                raise ConfigError(
                    f"[prometheus.versions] key {role!r} ({source}): "
                    f"must be one of {', '.join(DEFAULT_VERSION_LABELS)}"
                )
            where = f"{source}, versions.{role}"
            versions[role] = check_label_value(label, f"version label of {role}", where)
        window = parse_positive_float(data.get("window", base.window_s), f"{source}, key 'window'")
        timeout = parse_positive_float(data.get("timeout", base.timeout_s), f"{source}, key 'timeout'")
        queries = queries_from_mapping(data.get("queries", {}), f"{source} [prometheus.queries]")
        return cls(url=url, job=job, versions=versions, window_s=window, timeout_s=timeout, queries=queries)


def check_base_url(raw: object, source: str) -> str:
    """A Prometheus base URL (``http(s)://host:port[/prefix]``), without a trailing slash."""
    text = str(raw).strip()
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", text):
        raise ConfigError(f"Prometheus URL {raw!r} ({source}): must look like http://127.0.0.1:9090")
    return text.rstrip("/")


# --------------------------------------------------------------------------- the source
class PrometheusSource:
    """MetricsSource that reads each arm from a Prometheus server's HTTP API (``/api/v1``).

    ``queries`` overrides templates by name (checked like canary.toml's ``[prometheus.queries]``);
    ``job`` and ``versions`` (arm -> ``version`` label value) fill the ``{job}``/``{version}`` holes.
    The HTTP client is injectable; one created here is closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        queries: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        job: str = JOB,
        versions: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url, "PrometheusSource(base_url=...)")
        self.queries = queries_from_mapping(queries or {}, "PrometheusSource(queries=...)")
        self.job = check_label_value(job, "job", "PrometheusSource(job=...)")
        self.versions = {
            role: check_label_value(label, f"version label of {role}", "PrometheusSource(versions=...)")
            for role, label in {**DEFAULT_VERSION_LABELS, **(versions or {})}.items()
        }
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None

    @classmethod
    def from_settings(
        cls, settings: PrometheusSettings, base_url: str | None = None, *, client: httpx.Client | None = None
    ) -> PrometheusSource:
        """A source for ``base_url`` (default: ``settings.url``) with the job, labels and queries set."""
        url = base_url or settings.url
        if url is None:
            raise ConfigError("no Prometheus URL: give --prometheus-url or [prometheus] url in canary.toml")
        return cls(url, queries=settings.queries, client=client, timeout=settings.timeout_s,
                   job=settings.job, versions=settings.versions)

    # ------------------------------------------------------------------ raw API
    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Instant query (``/api/v1/query``) evaluated at ``at`` (unix seconds; default: now)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return parse_instant(self._api("query", params), promql)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """Range query (``/api/v1/query_range``) from ``start`` to ``end`` every ``step`` seconds."""
        if not step > 0 or end < start:
            raise MetricsError(f"range query {promql!r}: need start <= end and step > 0 "
                               f"(start={start}, end={end}, step={step})")
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return parse_range(self._api("query_range", params), promql)

    def _api(self, endpoint: str, params: Mapping[str, str]) -> Any:
        url = f"{self.base_url}/api/v1/{endpoint}"
        query = params["query"]
        try:
            # POST keeps long queries out of the URL; Prometheus accepts form-encoded parameters.
            response = self._client.post(url, data=dict(params))
        except httpx.HTTPError as exc:
            raise MetricsError(
                f"Prometheus at {self.base_url} unreachable ({endpoint} {query!r}): "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            raise MetricsError(
                f"Prometheus at {url} answered HTTP {response.status_code} with a non-JSON body "
                f"for {query!r}: {response.text[:200]!r}"
            ) from None
        if not isinstance(body, Mapping):
            raise MetricsError(f"Prometheus at {url} answered {body!r} for {query!r}")
        if body.get("status") != "success":
            raise MetricsError(
                f"Prometheus at {url} rejected {query!r} (HTTP {response.status_code}, "
                f"{body.get('errorType', 'error')}): {body.get('error', body)}"
            )
        if response.status_code != 200:
            raise MetricsError(f"Prometheus at {url} answered HTTP {response.status_code} for {query!r}")
        return body.get("data")

    # ------------------------------------------------------------------ templates
    def render(self, name: str, role: str, *, window_s: float | None = None, mode: str | None = None) -> str:
        """The PromQL of query ``name`` for arm ``role`` (and window / mode where the query has them)."""
        if name not in self.queries:
            raise ConfigError(f"unknown Prometheus query {name!r}; known queries: {', '.join(self.queries)}")
        values = {"job": self.job, "version": self._label(role)}
        if window_s is not None:
            values["window"] = promql_duration(window_s)
        if mode is not None:
            values["mode"] = check_label_value(mode, "mode", "PrometheusSource.render")
        return render(self.queries[name], values)

    def _label(self, role: str) -> str:
        if role not in self.versions:
            known = ", ".join(self.versions)
            raise MetricsError(f"no Prometheus version label for arm {role!r}; arms: {known}")
        return self.versions[role]

    def _where(self, role: str) -> str:
        return f'{role} (job="{self.job}", version="{self._label(role)}") in Prometheus at {self.base_url}'

    # ------------------------------------------------------------------ MetricsSource
    def snapshot(self, role: str) -> MetricsSnapshot:
        """The arm's cumulative counters, every query evaluated at the same instant.

        NoDataError if Prometheus holds no current series of the arm; MetricsError if it cannot be
        reached, rejects a query or returns several series / NaN where one number was expected.
        """
        at = time.time()
        present_query = self.render("present", role)
        present = self.query(present_query, at)
        if not present:
            raise NoDataError(
                f"no data for {self._where(role)}: {present_query!r} is empty "
                "(target not scraped yet, down, or labelled differently)"
            )
        if len(present) > 1:
            raise MetricsError(
                f"{self._where(role)} exposes several app_version labels at once: {_describe(present)}"
            )
        counters: dict[str, float] = {}
        for name in SNAPSHOT_COUNTERS:
            promql = self.render(name, role)
            try:
                # A NaN loss sum is the service's own finding (the judge FAILs it); a count never is.
                value = single_value(self.query(promql, at), promql, finite=name != "rl_loss_sum")
            except MetricsError as exc:
                raise MetricsError(f"{self._where(role)}: {exc}") from exc
            if name != "rl_loss_sum" and value is not None and value < 0:
                raise MetricsError(f"{self._where(role)}: counter {name} is negative ({value:g}) in {promql!r}")
            counters[name] = 0.0 if value is None else value  # present target: no series = not counted yet
        buckets_query = self.render("latency_buckets", role)
        try:
            buckets = buckets_from_samples(self.query(buckets_query, at), buckets_query)
        except MetricsError as exc:
            raise MetricsError(f"{self._where(role)}: {exc}") from exc
        return MetricsSnapshot(
            taken_at=at,
            requests=counters["requests"],
            errors_5xx=counters["errors_5xx"],
            journeys=counters["journeys"],
            latency_buckets=buckets,
            briefs=counters["briefs"],
            schema_failures=counters["schema_failures"],
            rl_updates=counters["rl_updates"],
            rl_loss_sum=counters["rl_loss_sum"],
            version=present[0].labels.get("app_version"),
        )

    def close(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._owns_client:
            self._client.close()

    # ------------------------------------------------------------------ reports
    def figures(
        self, role: str, window_s: float = DEFAULT_WINDOW_S, *, modes: Sequence[str] = MODES
    ) -> dict[str, float | None]:
        """The classic PromQL checks of the arm over the last ``window_s`` seconds, for reports.

        Keys: ``request_rate`` (API requests/s), ``error_rate`` (5xx share), ``p95_<mode>`` (seconds,
        ``histogram_quantile`` of the bucket rates), ``schema_failures_increase``, ``rl_loss_mean``
        (mean loss per RL update). A value is None when the window holds no data for it: an empty
        result, or NaN, which is how PromQL spells 0/0 (no request of that mode, no RL update).
        """
        at = time.time()
        result: dict[str, float | None] = {}
        for name in FIGURE_QUERIES:
            for mode in (modes if name == "p95" else (None,)):
                key = name if mode is None else f"p95_{mode}"
                promql = self.render(name, role, window_s=window_s, mode=mode)
                result[key] = self._figure(promql, at, role)
        return result

    def _figure(self, promql: str, at: float, role: str) -> float | None:
        samples = [s for s in self.query(promql, at) if not math.isnan(s.value)]
        try:
            return single_value(samples, promql)
        except MetricsError as exc:
            raise MetricsError(f"{self._where(role)}: {exc}") from exc

    def history(
        self,
        role: str,
        name: str,
        *,
        start: float,
        end: float,
        step: float,
        window_s: float = DEFAULT_WINDOW_S,
        mode: str | None = None,
    ) -> list[tuple[float, float]]:
        """The figure ``name`` of the arm as a time series (range query), e.g. error_rate over a stage.

        Points where the figure has no data (NaN: nothing in the window) are left out; several
        series raise MetricsError.
        """
        if name not in FIGURE_QUERIES:
            raise ConfigError(f"history of {name!r}: must be one of {', '.join(FIGURE_QUERIES)}")
        promql = self.render(name, role, window_s=window_s, mode=mode)
        series = self.query_range(promql, start, end, step)
        if len(series) > 1:
            raise MetricsError(
                f"{self._where(role)}: query {promql!r} returned {len(series)} series where one was expected"
            )
        return [point for point in (series[0].points if series else ()) if not math.isnan(point[1])]

    def last_scrape(self, role: str) -> float | None:
        """Unix time at which Prometheus started the arm's last successful scrape; None if none."""
        promql = self.render("last_scrape", role)
        samples = [s for s in self.query(promql) if not math.isnan(s.value)]
        return single_value(samples, promql)

    def wait_for_scrape(self, role: str, after: float, timeout: float) -> float:
        """Wait until a successful scrape of the arm started after ``after`` (unix seconds); its time.

        Call it before a snapshot that must include everything the arm counted up to ``after``.
        """
        last: list[float | None] = [None]

        def fresh() -> bool:
            last[0] = self.last_scrape(role)
            return last[0] is not None and last[0] > after

        try:
            wait_until(fresh, timeout, 0.1, f"a scrape of {role} after {after:.3f}")
        except TimeoutError:
            seen = "never" if last[0] is None else f"{last[0]:.3f}"
            raise NoDataError(
                f"no scrape of {self._where(role)} after {after:.3f} within {timeout:g}s "
                f"(last scrape: {seen})"
            ) from None
        assert last[0] is not None
        return last[0]
