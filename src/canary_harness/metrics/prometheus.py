"""Prometheus as the metrics source: :class:`PrometheusSource`, configured by the ``[prometheus]`` settings
(:mod:`canary_harness.metrics.prometheus_settings`), runs the PromQL templates of
:mod:`canary_harness.metrics.promql` over the HTTP API (answers parsed by
:mod:`canary_harness.metrics.prometheus_api`).

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
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from canary_harness.config import MODES
from canary_harness.errors import ConfigError, MetricsError, NoDataError
from canary_harness.metrics.counters import CounterSelector
from canary_harness.metrics.prometheus_api import (
    Sample,
    Series,
    buckets_from_samples,
    describe,
    parse_instant,
    parse_range,
    single_value,
)
from canary_harness.metrics.prometheus_settings import PrometheusSettings, check_base_url
from canary_harness.metrics.promql import (
    DEFAULT_VERSION_LABELS,
    DEFAULT_WINDOW_S,
    FIGURE_QUERIES,
    JOB,
    SNAPSHOT_COUNTERS,
    check_label_value,
    promql_duration,
    queries_from_mapping,
    render,
)
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.waiting import wait_until

# How far before the aligned instant the arms' raw scrapes are read: more than any scrape interval.
SCRAPE_LOOKBACK_S = 60.0


# --------------------------------------------------------------------------- the source
def _scraped_still(points: Sequence[tuple[float, float]], until: float) -> bool:
    """Whether a target's scrapes (ascending) go on up to ``until``: its last one no more than two of its
    own intervals earlier. A target gone from Prometheus's configuration would hold the instant back."""
    if not points:
        return False
    if len(points) < 2:
        return True
    return until - points[-1][0] <= 2 * (points[-1][0] - points[-2][0])


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
        counters: Sequence[CounterSelector] = (),
    ) -> None:
        self.counters = tuple(counters)  # the ratio checks' counters: sum(name{job, version, matchers}) per arm
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
        cls,
        settings: PrometheusSettings,
        base_url: str | None = None,
        *,
        client: httpx.Client | None = None,
        counters: Sequence[CounterSelector] = (),
    ) -> PrometheusSource:
        """A source for ``base_url`` (default: ``settings.url``) with the job, labels and queries set."""
        url = base_url or settings.url
        if url is None:
            raise ConfigError("no Prometheus URL: give --prometheus-url or [prometheus] url in canary.toml")
        return cls(
            url,
            queries=settings.queries,
            client=client,
            timeout=settings.timeout_s,
            job=settings.job,
            versions=settings.versions,
            counters=counters,
        )

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
            raise MetricsError(
                f"range query {promql!r}: need start <= end and step > 0 (start={start}, end={end}, step={step})"
            )
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
                f"Prometheus at {self.base_url} unreachable ({endpoint} {query!r}): {exc.__class__.__name__}: {exc}"
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
        """The arm's cumulative counters as of its latest scrape, every query evaluated at the same instant.

        NoDataError if Prometheus holds no current series of the arm; MetricsError if it cannot be
        reached, rejects a query or returns several series / NaN where one number was expected.
        """
        return self._read(role, time.time())

    def snapshots(self, roles: Sequence[str]) -> dict[str, MetricsSnapshot]:
        """Every arm's counters at one instant t: the latest scrape of the target scraped least recently.

        Prometheus scrapes each target on its own schedule, so "now" holds each target as of a different
        scrape, up to one scrape interval apart. Early in a stage that gap alone skews the canary's share
        of the traffic (a false sample-ratio mismatch), so every arm is read at t, each of its targets
        exactly or linearly between its own scrapes around t. A target that is down (its scrapes fail) is
        still scraped on schedule, so it never holds t back.
        """
        latest = {role: self._latest_scrape(role) for role in roles}
        until = max(latest.values())
        history = {role: self.scrape_history(role, until - SCRAPE_LOOKBACK_S, until) for role in roles}
        attempts = [
            points[-1][0] for targets in history.values() for points in targets if _scraped_still(points, until)
        ]
        at = min([*latest.values(), *attempts])
        return {role: self._read_aligned(role, at, history[role]) for role in roles}

    def _latest_scrape(self, role: str) -> float:
        latest = self.last_scrape(role)
        if latest is None:
            raise NoDataError(
                f"no data for {self._where(role)}: no successful scrape in {self.render('last_scrape', role)!r} "
                "(target not scraped yet, down, or labelled differently)"
            )
        return latest

    def _read_aligned(self, role: str, at: float, history: Sequence[Sequence[tuple[float, float]]]) -> MetricsSnapshot:
        """The arm at ``at``, each of its targets interpolated between its own successful scrapes around ``at``.

        A PromQL sum at ``at`` holds every target as of its last scrape at or before ``at``. Each target's
        next scrape after ``at`` comes within one scrape interval, so in that span every target is scraped
        once: reading the arm at those scrapes in turn isolates each target's step, which is then weighted
        by how far ``at`` lies between the target's scrapes.
        """
        steps: list[tuple[float, float]] = []
        for points in history:
            times = [when for when, up in points if up == 1]
            before = [when for when in times if when <= at]
            after = [when for when in times if when > at]
            if after and not before:
                return self._read(role, at)  # a target first scraped after ``at``: its first count is no step
            if before and after:
                steps.append((max(before), min(after)))
        reading = step_start = self._read(role, at)
        for previous, following in sorted(steps, key=lambda step: step[1]):
            step_end = self._read(role, following)
            reading = reading.advanced(step_start, step_end, (at - previous) / (following - previous), at)
            step_start = step_end
        return reading

    def scrape_history(self, role: str, since: float, until: float) -> list[tuple[tuple[float, float], ...]]:
        """Per scrape target of the arm, its scrapes in (since, until]: (start time, 1 if it succeeded else 0)."""
        promql = self.render("scrapes", role, window_s=until - since)
        return [
            target.points
            for target in parse_range(self._api("query", {"query": promql, "time": f"{until:.3f}"}), promql)
        ]

    def _read(self, role: str, at: float) -> MetricsSnapshot:
        present_query = self.render("present", role)
        present = self.query(present_query, at)
        if not present:
            raise NoDataError(
                f"no data for {self._where(role)}: {present_query!r} is empty "
                "(target not scraped yet, down, or labelled differently)"
            )
        if len(present) > 1:
            raise MetricsError(f"{self._where(role)} exposes several app_version labels at once: {describe(present)}")
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
            counters=self._counters(role, at),
        )

    def _counters(self, role: str, at: float) -> dict[str, float]:
        """The ratio checks' counters of the arm at ``at``: no series (not incremented yet) is 0, like the others."""
        target = f'job="{self.job}",version="{self._label(role)}"'
        values: dict[str, float] = {}
        for selector in self.counters:
            promql = selector.promql(target)
            try:
                value = single_value(self.query(promql, at), promql, finite=True)
            except MetricsError as exc:
                raise MetricsError(f"{self._where(role)}: {exc}") from exc
            if value is not None and value < 0:
                raise MetricsError(
                    f"{self._where(role)}: counter {selector.text} is negative ({value:g}) in {promql!r}"
                )
            values[selector.text] = 0.0 if value is None else value
        return values

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
            for mode in modes if name == "p95" else (None,):
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
                f"no scrape of {self._where(role)} after {after:.3f} within {timeout:g}s (last scrape: {seen})"
            ) from None
        assert last[0] is not None
        return last[0]
