"""A real Prometheus scraping two real fragrance-ai instances: queries, cross-check, dashboard, failures.

One module-wide setup: production v0.1.0 (healthy) and a bad canary v0.2.0 (20 % injected 5xx, slower
creative mode, 3x RL loss) on free ports, a local Prometheus scraping both every second, and one
bounded burst of user journeys to each arm between two snapshots taken through both sources.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from canary_harness.deploy import pids
from canary_harness.deploy.process import ProcessBackend
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import MetricsError, NoDataError
from canary_harness.judge import JudgeSettings, make_judge
from canary_harness.metrics.histogram import histogram_quantile
from canary_harness.metrics.prometheus import PrometheusSource
from canary_harness.metrics.prometheus_server import LocalPrometheus, promtool_check_config
from canary_harness.metrics.promql import DEFAULT_QUERIES, FIGURE_QUERIES
from canary_harness.metrics.scrape import ScrapeSource
from canary_harness.metrics.types import Buckets, MetricsSnapshot
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("production", "canary")
MODES = ("fast", "balanced", "creative")
VERSIONS = {"production": "v0.1.0", "canary": "v0.2.0"}
ENV = {
    "production": {"FRAGRANCE_LATENCY_SCALE": "0.02"},
    "canary": {
        "FRAGRANCE_LATENCY_SCALE": "0.02",
        "FRAGRANCE_FAULTS": "error_rate=0.2,latency_add_ms.creative=100,loss_factor=3",
    },
}
JOURNEYS_PER_ARM = 80  # create + evolve + feedback each: ~200 API requests per arm
BURST_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Stage:
    """Both arms read through both sources before and after the burst."""

    prometheus: LocalPrometheus
    source: PrometheusSource
    direct: ScrapeSource
    arms: Mapping[str, ServiceHandle]
    started_at: float
    before: Mapping[str, Mapping[str, MetricsSnapshot]]  # source name -> role -> snapshot
    after: Mapping[str, Mapping[str, MetricsSnapshot]]

    def delta(self, source: str, role: str) -> MetricsSnapshot:
        """Counter deltas of the burst for ``role`` as ``source`` ("prometheus" | "direct") saw them."""
        return self.after[source][role].minus(self.before[source][role])


# --------------------------------------------------------------------------- traffic
def journey(client: httpx.Client, url: str, mode: str) -> None:
    """One user journey: create a DNA, ask for variations, rate one (steps after a 5xx are skipped)."""
    created = client.post(f"{url}/dna/create", json={"brief": "fresh citrus with cedar", "mode": mode})
    if created.status_code != 200:
        return
    dna_id = created.json()["dna_id"]
    options = client.post(f"{url}/evolve/options", json={"dna_id": dna_id, "brief": "warmer", "mode": mode})
    if options.status_code != 200:
        return
    body = options.json()
    rating = {"experiment_id": body["experiment_id"], "chosen_id": body["options"][0]["id"], "rating": 4}
    client.post(f"{url}/evolve/feedback", json=rating)


def burst(url: str, count: int, deadline_s: float) -> int:
    """``count`` journeys over the LLM modes on 4 threads, none started after the deadline; journeys run."""
    stop_at = time.monotonic() + deadline_s
    with httpx.Client(timeout=5.0) as client:

        def run(index: int) -> bool:
            if time.monotonic() > stop_at:
                return False
            journey(client, url, MODES[index % len(MODES)])
            return True

        with ThreadPoolExecutor(max_workers=4) as pool:
            return sum(pool.map(run, range(count)))


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceHandle]]:
    """Production v0.1.0 and the bad canary v0.2.0 on free ports, stopped by PID at the end."""
    logs = tmp_path_factory.mktemp("arms")
    backend = ProcessBackend()
    specs = [
        ServiceSpec(role=role, version=VERSIONS[role], port=free_port(), env=ENV[role], log_path=logs / f"{role}.log")
        for role in ROLES
    ]
    started: dict[str, ServiceHandle] = {}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for handle in pool.map(lambda spec: backend.start(spec, timeout=30.0), specs):
                started[handle.role] = handle
        yield started
    finally:
        for handle in started.values():
            backend.stop(handle, timeout=5.0)


def targets_of(arms: Mapping[str, ServiceHandle]) -> dict[str, str]:
    """Scrape targets (host:port) of the arms."""
    return {role: handle.url.removeprefix("http://") for role, handle in arms.items()}


@pytest.fixture(scope="module")
def prometheus(arms: dict[str, ServiceHandle], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    """A local Prometheus scraping both arms every second, with both targets up."""
    with LocalPrometheus(targets_of(arms), run_dir=tmp_path_factory.mktemp("prometheus")) as server:
        server.wait_for_targets_up(timeout=20.0)
        yield server


@pytest.fixture(scope="module")
def stage(prometheus: LocalPrometheus, arms: dict[str, ServiceHandle]) -> Iterator[Stage]:
    """Snapshots through both sources, a burst to each arm, and both snapshots again after a scrape."""
    source = PrometheusSource(prometheus.url)
    direct = ScrapeSource({role: handle.url for role, handle in arms.items()})

    def read_both(after: float) -> dict[str, dict[str, MetricsSnapshot]]:
        for role in ROLES:  # a scrape that started after `after` covers everything counted before it
            source.wait_for_scrape(role, after, timeout=10.0)
        return {
            "prometheus": {role: source.snapshot(role) for role in ROLES},
            "direct": {role: direct.snapshot(role) for role in ROLES},
        }

    started_at = time.time()
    before = read_both(started_at)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda role: burst(arms[role].url, JOURNEYS_PER_ARM, BURST_DEADLINE_S), ROLES))
    assert done == [JOURNEYS_PER_ARM] * 2, f"burst cut short by its deadline: {done}"
    after = read_both(time.time())
    yield Stage(prometheus, source, direct, arms, started_at, before, after)
    source.close()
    direct.close()


# --------------------------------------------------------------------------- queries
def test_every_default_query_returns_the_expected_series(stage: Stage) -> None:
    source = stage.source
    window = time.time() - stage.started_at + 5
    for role in ROLES:
        for name in DEFAULT_QUERIES:
            modes = MODES if name == "p95" else (None,)
            if name == "scrapes":
                [points] = source.scrape_history(role, time.time() - window, time.time())
                scrapes = [when for when, up in points if up == 1]
                assert len(scrapes) >= 2 and scrapes == sorted(scrapes), scrapes
                continue
            for mode in modes:
                windowed = window if name in FIGURE_QUERIES else None
                promql = source.render(name, role, window_s=windowed, mode=mode)
                samples = source.query(promql)
                if name == "latency_buckets":
                    assert {s.labels["mode"] for s in samples} == set(MODES), promql
                    assert len(samples) == 3 * 24, promql  # 23 finite edges + Inf per mode
                    continue
                assert len(samples) == 1, f"{promql}: {samples}"
                value = samples[0].value
                assert math.isfinite(value), promql
                if name == "present":
                    assert samples[0].labels == {"app_version": VERSIONS[role]}
                elif name in ("requests", "briefs", "rl_updates", "request_rate", "p95", "rl_loss_mean"):
                    assert value > 0, f"{promql} = {value}"


def test_error_json_of_a_real_prometheus_is_reported(stage: Stage) -> None:
    expected = r"rejected 'sum\(rate\(up\[1m\]\)' \(HTTP 400, bad_data\): .*parse error"
    with pytest.raises(MetricsError, match=expected):
        stage.source.query("sum(rate(up[1m])")


# --------------------------------------------------------------------------- cross-check
def _without_time(snapshot: MetricsSnapshot) -> MetricsSnapshot:
    return replace(snapshot, taken_at=0.0)


def test_snapshot_equals_the_direct_reading(stage: Stage) -> None:
    for moment in (stage.before, stage.after):
        for role in ROLES:
            assert _without_time(moment["prometheus"][role]) == _without_time(moment["direct"][role]), role
    canary = stage.delta("prometheus", "canary")
    assert canary.requests >= 2 * JOURNEYS_PER_ARM * 0.8  # a real burst was seen, with injected errors
    assert 0.1 < canary.errors_5xx / canary.requests < 0.3


def _bucket_width_at(value: float, buckets: Buckets) -> float:
    edges = [0.0] + [edge for edge, _ in buckets if math.isfinite(edge)]
    for lower, upper in zip(edges, edges[1:], strict=False):
        if lower <= value <= upper:
            return upper - lower
    raise AssertionError(f"{value} lies outside the finite buckets")


def test_promql_figures_agree_with_the_direct_reading(stage: Stage) -> None:
    window = time.time() - stage.started_at + 2  # covers the scrape before the burst
    figures = {role: stage.source.figures(role, window) for role in ROLES}
    direct = {role: stage.delta("direct", role) for role in ROLES}
    assert all(value is not None for role in ROLES for value in figures[role].values()), figures
    for role in ROLES:
        for mode in MODES:
            buckets = direct[role].latency_buckets[mode]
            ours = histogram_quantile(0.95, buckets)
            theirs = figures[role][f"p95_{mode}"]
            assert ours is not None and theirs is not None
            resolution = _bucket_width_at(ours, buckets)
            assert abs(theirs - ours) <= resolution, f"{role} {mode}: PromQL {theirs} vs direct {ours}"
        ratio = direct[role].errors_5xx / direct[role].requests
        assert figures[role]["error_rate"] == pytest.approx(ratio, abs=0.01), role
        assert figures[role]["schema_failures_increase"] == 0.0
    assert figures["production"]["error_rate"] == 0.0  # no 5xx at all: 0 by the "or vector(0)" rule
    loss = {role: direct[role].rl_loss_sum / direct[role].rl_updates for role in ROLES}
    value = {role: {key: float(number or 0.0) for key, number in figures[role].items()} for role in ROLES}
    assert value["canary"]["rl_loss_mean"] / value["production"]["rl_loss_mean"] == pytest.approx(
        loss["canary"] / loss["production"], rel=0.02
    )
    assert value["canary"]["p95_creative"] > value["production"]["p95_creative"] + 0.05  # +100 ms injected


def test_history_is_a_range_query_over_the_stage(stage: Stage) -> None:
    end = time.time()
    points = stage.source.history("canary", "request_rate", start=stage.started_at, end=end, step=1, window_s=5)
    assert len(points) >= 3
    assert max(value for _, value in points) > 0


def test_bad_canary_is_judged_the_same_through_either_source(stage: Stage) -> None:
    settings = JudgeSettings(min_soak_s=1.0)
    for kind in ("fixed", "sequential"):
        verdicts = []
        for source in ("prometheus", "direct"):
            judge = make_judge(kind, settings)
            verdicts.append(
                judge.conclude(60.0, stage.delta(source, "canary"), stage.delta(source, "production"), 50).to_dict()
            )
        assert verdicts[0] == verdicts[1], kind
        assert verdicts[0]["state"] == "FAIL", verdicts[0]["reason"]
        failed = {check["name"] for check in verdicts[0]["checks"] if check["state"] == "FAIL"}
        assert "error_rate" in failed, verdicts[0]["reason"]


# --------------------------------------------------------------------------- dashboard
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__range": "5m", "$__interval": "1s", "$job": "fragrance-ai"}


def _dashboard_exprs() -> list[tuple[str, str]]:
    data = json.loads((ROOT / "compose/grafana/dashboards/canary-vs-production.json").read_text())
    found = []
    for panel in data["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((panel["title"], expr))
    return found


def test_every_dashboard_query_runs_on_prometheus(stage: Stage) -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    for title, expr in exprs:
        assert "$" not in expr, f"{title}: unknown Grafana variable in {expr}"
        samples = stage.source.query(expr)  # MetricsError with Prometheus's message if it does not parse
        if "by (version" in expr and "rl_" not in expr:
            assert {s.labels.get("version") for s in samples} == set(ROLES), f"{title}: {samples}"


# --------------------------------------------------------------------------- the local server
def test_compose_config_passes_promtool(tmp_path: Path) -> None:
    output = promtool_check_config(ROOT / "compose" / "prometheus.yml")  # None would mean promtool is missing
    assert output is not None and "SUCCESS" in output
    broken = tmp_path / "broken.yml"
    broken.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 5s\n")
    with pytest.raises(MetricsError, match="promtool rejected"):
        promtool_check_config(broken)


def test_down_target_is_no_data_and_stopped_prometheus_is_a_metrics_error(
    arms: dict[str, ServiceHandle],
) -> None:
    ghost = f"127.0.0.1:{free_port()}"  # nothing listens there: a target that is down
    server = LocalPrometheus({**targets_of(arms), "ghost": ghost}).start()
    try:
        directory, pid, url = server.dir, server.pid, server.url
        assert directory is not None and pid is not None
        source = PrometheusSource(url, versions={"ghost": "ghost"})
        source.wait_for_scrape("canary", time.time(), timeout=15.0)
        assert source.snapshot("canary").version == VERSIONS["canary"]
        wait_until(lambda: server.targets_health()[ghost]["health"] == "down", 10.0, 0.1, "ghost scraped")
        with pytest.raises(NoDataError, match=r'no data for ghost \(job="fragrance-ai", version="ghost"\)'):
            source.snapshot("ghost")
    finally:
        server.stop()
    assert not pids.is_alive(pid) and not directory.exists()
    with pytest.raises(MetricsError, match=re.escape(f"Prometheus at {url} unreachable")):
        source.snapshot("canary")
    source.close()


def test_start_failures_are_reported_and_cleaned_up(arms: dict[str, ServiceHandle], tmp_path: Path) -> None:
    with pytest.raises(MetricsError, match="exited with code 1 before becoming ready"):
        LocalPrometheus(targets_of(arms), run_dir=tmp_path / "false", binary="false").start()
    with pytest.raises(MetricsError, match="prometheus executable 'no-such-prometheus' not found"):
        LocalPrometheus(targets_of(arms), run_dir=tmp_path / "missing", binary="no-such-prometheus").start()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MetricsError, match=f"127.0.0.1:{port} is already in use"):
            LocalPrometheus(targets_of(arms), port=port).start()
