"""PrometheusSource on canned Prometheus JSON (no server), its query templates, the scrape config and
the Grafana dashboard's structure."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from canary_harness.errors import ConfigError, MetricsError, NoDataError
from canary_harness.metrics.prometheus import PrometheusSource
from canary_harness.metrics.prometheus_server import LocalPrometheus, render_config
from canary_harness.metrics.prometheus_settings import PrometheusSettings
from canary_harness.metrics.promql import (
    DEFAULT_QUERIES,
    FIGURE_QUERIES,
    SNAPSHOT_COUNTERS,
    promql_duration,
    queries_from_mapping,
    render,
)
from canary_harness.metrics.scrape import parse_exposition

ROOT = Path(__file__).resolve().parents[2]
URL = "http://127.0.0.1:9"
EDGES = ("0.5", "2.5", "+Inf")


# --------------------------------------------------------------------------- canned server
def vector(*series: tuple[Mapping[str, str], str], at: float = 1000.0) -> dict[str, Any]:
    """A successful instant-vector body."""
    result = [{"metric": dict(labels), "value": [at, value]} for labels, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def canned(answers: Mapping[str, dict[str, Any]], seen: list[dict[str, str]] | None = None) -> httpx.Client:
    """A client whose Prometheus answers each known query with its canned body (others: empty vector)."""

    def handle(request: httpx.Request) -> httpx.Response:
        params = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if seen is not None:
            seen.append(params)
        return httpx.Response(200, json=answers.get(params["query"], vector()))

    return httpx.Client(transport=httpx.MockTransport(handle))


def source_with(
    answers: Mapping[str, dict[str, Any]], seen: list[dict[str, str]] | None = None, **kwargs: Any
) -> PrometheusSource:
    """A PrometheusSource on the canned answers."""
    return PrometheusSource(URL, client=canned(answers, seen), **kwargs)


def q(name: str, role: str = "canary", **values: str) -> str:
    """The default query ``name`` rendered for ``role`` as the source renders it."""
    return render(DEFAULT_QUERIES[name], {"job": "fragrance-ai", "version": role, **values})


def healthy_answers(role: str = "canary") -> dict[str, dict[str, Any]]:
    """Answers that make a complete snapshot of ``role``: 97 requests, 5 errors, two modes of buckets."""
    buckets = [
        ({"mode": mode, "le": le}, count)
        for mode, counts in (("fast", ("80", "84", "94")), ("creative", ("1", "3", "3")))
        for le, count in zip(EDGES, counts, strict=True)
    ]
    return {
        q("present", role): vector(({"app_version": "v0.2.0"}, "9")),
        q("requests", role): vector(({}, "97")),
        q("errors_5xx", role): vector(({}, "5")),
        q("journeys", role): vector(({}, "97")),
        q("latency_buckets", role): vector(*buckets),
        q("briefs", role): vector(({}, "94")),
        q("schema_failures", role): vector(({}, "2")),
        q("rl_updates", role): vector(({}, "3")),
        q("rl_loss_sum", role): vector(({}, "1.5")),
    }


# --------------------------------------------------------------------------- snapshot
def test_snapshot_assembles_counters_and_buckets() -> None:
    snap = source_with(healthy_answers()).snapshot("canary")
    assert (snap.requests, snap.errors_5xx, snap.briefs, snap.schema_failures) == (97, 5, 94, 2)
    assert (snap.rl_updates, snap.rl_loss_sum, snap.version) == (3, 1.5, "v0.2.0")
    assert snap.latency_buckets["fast"] == ((0.5, 80.0), (2.5, 84.0), (math.inf, 94.0))
    assert snap.latency_count("creative") == 3
    assert snap.latency_over("fast", 2.5) == 10


def test_snapshot_equals_the_direct_reading_of_the_same_counters() -> None:
    exposition = (
        "\n".join(
            [
                "# TYPE http_requests_total counter",
                'http_requests_total{app_version="v0.2.0",method="GET",route="/health",status="200"} 9.0',
                'http_requests_total{app_version="v0.2.0",method="POST",route="/dna/create",status="200"} 92.0',
                'http_requests_total{app_version="v0.2.0",method="POST",route="/dna/create",status="500"} 5.0',
                "# TYPE http_request_duration_seconds histogram",
                *(
                    f'http_request_duration_seconds_bucket{{app_version="v0.2.0",le="{le}",method="POST",mode="{mode}",'
                    f'route="/dna/create",status="200"}} {count}'
                    for mode, counts in (("fast", ("80", "84", "94")), ("creative", ("1", "3", "3")))
                    for le, count in zip(EDGES, counts, strict=True)
                ),
                "# TYPE llm_brief_total counter",
                'llm_brief_total{app_version="v0.2.0",mode="fast"} 94.0',
                "# TYPE llm_brief_schema_failures_total counter",
                'llm_brief_schema_failures_total{app_version="v0.2.0",mode="fast"} 2.0',
                "# TYPE rl_update_loss summary",
                'rl_update_loss_count{app_version="v0.2.0"} 3.0',
                'rl_update_loss_sum{app_version="v0.2.0"} 1.5',
            ]
        )
        + "\n"
    )
    direct = parse_exposition(exposition, taken_at=0.0)
    through_prometheus = source_with(healthy_answers()).snapshot("canary")
    assert through_prometheus == replace(direct, taken_at=through_prometheus.taken_at)


def test_snapshot_evaluates_every_query_at_one_instant_for_the_right_target() -> None:
    seen: list[dict[str, str]] = []
    source_with(healthy_answers("production"), seen).snapshot("production")
    assert len({params["time"] for params in seen}) == 1
    assert all('version="production"' in params["query"] for params in seen)
    assert all('job="fragrance-ai"' in params["query"] for params in seen)


def test_missing_target_is_no_data_naming_url_and_query() -> None:
    with pytest.raises(NoDataError) as caught:
        source_with({}).snapshot("canary")
    message = str(caught.value)
    assert URL in message and 'version="canary"' in message and "not scraped yet" in message


def test_counter_without_series_is_zero_only_while_the_target_is_present() -> None:
    answers = healthy_answers()
    del answers[q("errors_5xx")]  # no 5xx series yet: legitimately 0
    assert source_with(answers).snapshot("canary").errors_5xx == 0


def test_several_series_for_a_counter_is_an_error() -> None:
    answers = healthy_answers()
    answers[q("requests")] = vector(({"route": "/a"}, "1"), ({"route": "/b"}, "2"))
    with pytest.raises(MetricsError, match=r"2 series where one was expected.*route=\"/a\""):
        source_with(answers).snapshot("canary")


def test_several_app_versions_for_one_target_is_an_error() -> None:
    answers = healthy_answers()
    answers[q("present")] = vector(({"app_version": "v0.1.0"}, "3"), ({"app_version": "v0.2.0"}, "3"))
    with pytest.raises(MetricsError, match="several app_version labels"):
        source_with(answers).snapshot("canary")


@pytest.mark.parametrize("value", ["NaN", "+Inf"])
def test_nan_or_infinite_counter_is_an_error(value: str) -> None:
    answers = healthy_answers()
    answers[q("rl_updates")] = vector(({}, value))
    with pytest.raises(MetricsError, match=r"rl_update_loss_count.*returned"):
        source_with(answers).snapshot("canary")


def test_negative_counter_is_an_error_naming_the_query() -> None:
    answers = healthy_answers()
    answers[q("errors_5xx")] = vector(({}, "-3"))
    with pytest.raises(MetricsError, match=r"counter errors_5xx is negative \(-3\)"):
        source_with(answers).snapshot("canary")


@pytest.mark.parametrize("value", ["NaN", "+Inf"])
def test_a_non_finite_loss_sum_reaches_the_judge(value: str) -> None:
    """The loss is the service's own figure: a NaN there is a finding the judges FAIL, not a read error."""
    answers = healthy_answers()
    answers[q("rl_loss_sum")] = vector(({}, value))
    snap = source_with(answers).snapshot("canary")
    assert not math.isfinite(snap.rl_loss_sum) and snap.rl_updates == 3


def test_buckets_without_mode_label_or_inf_edge_are_errors() -> None:
    answers = healthy_answers()
    answers[q("latency_buckets")] = vector(({"le": "+Inf"}, "3"))
    with pytest.raises(MetricsError, match="lacks the 'mode' or 'le' label"):
        source_with(answers).snapshot("canary")
    answers[q("latency_buckets")] = vector(({"mode": "fast", "le": "0.5"}, "3"))
    with pytest.raises(MetricsError, match="no \\+Inf bucket"):
        source_with(answers).snapshot("canary")


def test_prometheus_error_json_is_reported_with_its_message() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = {"status": "error", "errorType": "bad_data", "error": 'parse error at char 5: unexpected "}"'}
        return httpx.Response(400, json=body)

    source = PrometheusSource(URL, client=httpx.Client(transport=httpx.MockTransport(handle)))
    with pytest.raises(MetricsError, match=r"HTTP 400, bad_data\): parse error at char 5") as caught:
        source.snapshot("canary")
    assert f"{URL}/api/v1/query" in str(caught.value)


def test_non_json_answer_is_an_error() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda _r: httpx.Response(502, text="bad gateway")))
    with pytest.raises(MetricsError, match="HTTP 502 with a non-JSON body.*bad gateway"):
        PrometheusSource(URL, client=client).snapshot("canary")


def test_unreachable_server_is_an_error_naming_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(MetricsError, match=re.escape(f"Prometheus at {URL} unreachable")):
        PrometheusSource(URL, client=client).snapshot("production")


def test_unknown_arm_is_an_error() -> None:
    with pytest.raises(MetricsError, match="arm 'staging'"):
        source_with(healthy_answers()).snapshot("staging")


def test_scalar_results_are_accepted() -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [5.0, "42"]}}
    samples = source_with({"scalar(1)": body}).query("scalar(1)")
    assert [(s.labels, s.value, s.at) for s in samples] == [({}, 42.0, 5.0)]


def test_instant_query_refuses_a_matrix() -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(MetricsError, match="expected an instant vector"):
        source_with({"up[1m]": body}).query("up[1m]")


# --------------------------------------------------------------------------- figures and history
def test_figures_keys_values_and_no_data_as_none() -> None:
    window = {"window": "30s"}
    answers = {
        q("request_rate", **window): vector(({}, "12.5")),
        q("error_rate", **window): vector(({}, "0.2")),
        q("p95", mode="fast", **window): vector(({}, "0.04")),
        q("p95", mode="balanced", **window): vector(({}, "NaN")),  # 0/0: no balanced request in the window
        q("schema_failures_increase", **window): vector(({}, "0")),
    }  # rl_loss_mean and p95 creative: empty results
    figures = source_with(answers).figures("canary", 30)
    assert figures == {
        "request_rate": 12.5,
        "error_rate": 0.2,
        "p95_fast": 0.04,
        "p95_balanced": None,
        "p95_creative": None,
        "schema_failures_increase": 0.0,
        "rl_loss_mean": None,
    }


def test_figures_with_several_series_is_an_error() -> None:
    answers = {q("error_rate", window="60s"): vector(({"a": "1"}, "0.1"), ({"a": "2"}, "0.2"))}
    with pytest.raises(MetricsError, match="2 series where one was expected"):
        source_with(answers).figures("canary", 60)


def test_history_reads_a_range_query_and_drops_nan_points() -> None:
    seen: list[dict[str, str]] = []
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {}, "values": [[10, "0.1"], [11, "NaN"], [12, "0.3"]]},
            ],
        },
    }
    source = source_with({q("error_rate", window="5s"): body}, seen)
    points = source.history("canary", "error_rate", start=10, end=12, step=1, window_s=5)
    assert points == [(10.0, 0.1), (12.0, 0.3)]
    assert (seen[0]["start"], seen[0]["end"], seen[0]["step"]) == ("10.000", "12.000", "1")


def test_wait_for_scrape_times_out_as_no_data() -> None:
    answers = {q("last_scrape"): vector(({}, "100"))}
    expected = "no scrape of canary .* after 200.000 within 0.2s .last scrape: 100"
    with pytest.raises(NoDataError, match=expected):
        source_with(answers).wait_for_scrape("canary", 200.0, 0.2)
    assert source_with(answers).wait_for_scrape("canary", 99.0, 0.2) == 100.0


# --------------------------------------------------------------------------- templates and settings
def test_render_fills_holes_and_leaves_label_matchers() -> None:
    values = {"job": "j", "version": "v", "window": "5s"}
    text = render('sum(x{job="{job}",version="{version}"}[{window}])', values)
    assert text == 'sum(x{job="j",version="v"}[5s])'


def test_default_queries_use_only_their_placeholders() -> None:
    assert queries_from_mapping({}, "test") == dict(DEFAULT_QUERIES)
    for name in (*SNAPSHOT_COUNTERS, *FIGURE_QUERIES, "present", "latency_buckets", "last_scrape"):
        assert "{version}" in DEFAULT_QUERIES[name]


def test_query_override_is_applied() -> None:
    custom = 'sum(my_requests_total{version="{version}"})'
    assert queries_from_mapping({"requests": custom}, "canary.toml")["requests"] == custom


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reqests": "sum(x)"}, r"unknown Prometheus query 'reqests' \(canary.toml, key 'reqests'\)"),
        ({"requests": "sum(x)"}, r"lacks placeholder\(s\) \{version\}"),
        ({"requests": 'sum(x{version="{versoin}"})'}, r"unknown placeholder\(s\) \{versoin\}"),
        ({"requests": 'sum(x{version="{version}",mode="{mode}"})'}, r"unknown placeholder\(s\) \{mode\}"),
        ({"p95": 'histogram_quantile(0.95, x{version="{version}"}[{window}])'}, r"lacks placeholder\(s\) \{mode\}"),
        ({"requests": ""}, "must be a non-empty string"),
        ({"requests": 3}, "must be a non-empty string"),
    ],
)
def test_bad_query_overrides_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        queries_from_mapping(data, "canary.toml")


def test_constructor_checks_queries_url_and_labels() -> None:
    with pytest.raises(ConfigError, match=r"PrometheusSource\(queries=...\)"):
        PrometheusSource(URL, queries={"nope": "x"})
    with pytest.raises(ConfigError, match="Prometheus URL 'localhost:9090'"):
        PrometheusSource("localhost:9090")
    with pytest.raises(ConfigError, match="version label of canary 'can\"ary'"):
        PrometheusSource(URL, versions={"canary": 'can"ary'})


def test_settings_from_mapping() -> None:
    settings = PrometheusSettings.from_mapping(
        {
            "url": "http://127.0.0.1:9090/",
            "job": "fa",
            "versions": {"canary": "green"},
            "window": 30,
            "queries": {"requests": 'sum(r{version="{version}"})'},
        },
        "canary.toml",
    )
    assert settings.url == "http://127.0.0.1:9090"
    assert settings.versions == {"production": "production", "canary": "green"}
    assert settings.window_s == 30.0 and settings.queries["requests"] == 'sum(r{version="{version}"})'
    source = PrometheusSource.from_settings(settings)
    assert source.render("requests", "canary") == 'sum(r{version="green"})'
    assert 'job="fa"' in source.render("briefs", "production")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"urll": "x"}, "unknown \\[prometheus\\] key 'urll'"),
        ({"url": "ftp://x"}, "Prometheus URL 'ftp://x' \\(canary.toml, key 'url'\\)"),
        ({"window": -5}, "value -5 \\(canary.toml, key 'window'\\)"),
        ({"versions": {"staging": "s"}}, "versions\\] key 'staging'"),
        ({"job": "a b"}, "job 'a b'"),
    ],
)
def test_bad_settings_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PrometheusSettings.from_mapping(data, "canary.toml")


def test_promql_duration() -> None:
    assert (promql_duration(60), promql_duration(1.5), promql_duration(0.25)) == ("60s", "1500ms", "250ms")
    with pytest.raises(ConfigError, match="window 0"):
        promql_duration(0)


# --------------------------------------------------------------------------- scrape config
def _without_comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_compose_config_has_the_rendered_shape() -> None:
    compose = (ROOT / "compose" / "prometheus.yml").read_text()
    rendered = render_config({"production": "127.0.0.1:8000", "canary": "127.0.0.1:8001"})
    assert _without_comments(compose) == _without_comments(rendered)


def test_rendered_config_labels_targets_and_bounds_the_scrape_timeout() -> None:
    text = render_config({"production": "127.0.0.1:1234", "canary": "127.0.0.1:1235"}, scrape_interval_s=0.5)
    assert "scrape_interval: 500ms" in text and "scrape_timeout: 500ms" in text
    assert '- targets: ["127.0.0.1:1235"]\n        labels: {version: "canary"}' in text
    assert 'job_name: "fragrance-ai"' in text


def test_an_arm_of_several_targets_is_one_group_with_its_label() -> None:
    text = render_config({"production": "127.0.0.1:1234", "canary": ["127.0.0.1:1235", "127.0.0.1:1236"]})
    assert '- targets: ["127.0.0.1:1235", "127.0.0.1:1236"]\n        labels: {version: "canary"}' in text
    with pytest.raises(ConfigError, match=r"scrape target 'x:1:2' \(target of canary\)"):
        render_config({"canary": ["127.0.0.1:1235", "x:1:2"]})
    with pytest.raises(ConfigError, match="no scrape target for canary"):
        render_config({"production": "127.0.0.1:1234", "canary": []})


@pytest.mark.parametrize("target", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "http://127.0.0.1:80", "a b:1"])
def test_bad_targets_are_refused_before_anything_starts(target: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(target))):
        LocalPrometheus({"canary": target}, run_dir=tmp_path / "prom")
    assert not (tmp_path / "prom").exists()


# --------------------------------------------------------------------------- Grafana
def _dashboard() -> dict[str, Any]:
    path = ROOT / "compose" / "grafana" / "dashboards" / "canary-vs-production.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_dashboard_has_the_comparison_panels_with_promql() -> None:
    panels = [p for p in _dashboard()["panels"] if p["type"] != "row"]
    titles = " | ".join(p["title"] for p in panels).lower()
    for topic in (
        "request rate",
        "share",
        "5xx",
        "p95 latency: fast",
        "p95 latency: balanced",
        "p95 latency: creative",
        "schema failures",
        "rl loss",
    ):
        assert topic in titles, topic
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'job="$job"' in target["expr"], panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
    assert len({p["id"] for p in _dashboard()["panels"]}) == len(_dashboard()["panels"])


def test_dashboard_provisioning_points_at_the_dashboard_folder_and_datasource() -> None:
    grafana = ROOT / "compose" / "grafana"
    datasource = (grafana / "provisioning/datasources/prometheus.yml").read_text()
    provider = (grafana / "provisioning/dashboards/dashboards.yml").read_text()
    assert re.search(r"^\s+type: prometheus$", datasource, re.M)
    uid = re.search(r"^\s+uid: (\S+)$", datasource, re.M)
    assert uid is not None
    current = next(v for v in _dashboard()["templating"]["list"] if v["name"] == "datasource")["current"]
    assert current["value"] == uid.group(1)
    assert re.search(r"^\s+path: /var/lib/grafana/dashboards$", provider, re.M)
