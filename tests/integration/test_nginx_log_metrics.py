"""Metrics from NGINX's own access log (``[metrics] source = "nginx-log"``) on the real stack: the counts
match the services' own counters, and a stage judged from the log catches a 5xx canary and rolls it back."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from canary_harness.metrics.nginx_log import NginxLogSource
from canary_harness.metrics.scrape import ScrapeSource
from canary_harness.stack import LocalStack
from canary_harness.waiting import wait_until
from tests.integration.stagefixtures import StageRunner
from tests.integration.test_stage_session import GATES, assert_rolled_back, failed_checks

pytest_plugins = ("tests.integration.stackfixtures", "tests.integration.stagefixtures")

pytestmark = pytest.mark.integration

REQUESTS = 240
MODES = ("fast", "balanced", "creative")
ARMS = ("canary", "production")


def test_log_counts_match_the_services_own_counters(canary_stack_at_zero: LocalStack) -> None:
    stack = canary_stack_at_zero
    state = stack.state()
    assert state.nginx is not None and state.canary is not None and state.production is not None
    urls = {"canary": state.canary.url, "production": state.production.url}
    from_log = NginxLogSource(
        state.nginx.dir / "logs" / "access.jsonl",
        {state.canary.address: "canary", state.production.address: "production"},
    )
    direct = ScrapeSource(urls)
    stack.traffic().set_canary_weight(50, reason="nginx-log test")
    before = {"log": from_log.snapshots(ARMS), "direct": direct.snapshots(ARMS)}
    with httpx.Client(base_url=stack.traffic().base_url, timeout=30.0) as client:
        for _, mode in zip(range(REQUESTS), itertools.cycle(MODES), strict=False):
            answer = client.post("/dna/create", json={"brief": "Cedar and smoke for a long night", "mode": mode})
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-LLM-Mode"] == mode
        assert client.get("/health").status_code == 200  # a probe: counted by neither

    def logged_all() -> bool:
        # Journeys are counted by start time once the slowest request could have ended (about 1 s later).
        seen = [from_log.snapshot(arm).minus(before["log"][arm]) for arm in ARMS]
        return sum(item.requests for item in seen) >= REQUESTS and sum(item.journeys for item in seen) >= REQUESTS

    wait_until(logged_all, 15.0, 0.1, f"{REQUESTS} requests and journeys in NGINX's access log")
    after = {"log": from_log.snapshots(ARMS), "direct": direct.snapshots(ARMS)}
    for arm in ARMS:
        seen = {kind: after[kind][arm].minus(before[kind][arm]) for kind in after}
        assert seen["log"].requests == seen["direct"].requests > 0, (arm, seen)
        assert seen["log"].journeys == seen["direct"].journeys == seen["direct"].requests
        assert seen["log"].errors_5xx == seen["direct"].errors_5xx == 0
        for mode in MODES:
            assert seen["log"].latency_count(mode) == seen["direct"].latency_count(mode) > 0, (arm, mode)
    canary_share = after["log"]["canary"].minus(before["log"]["canary"]).requests / REQUESTS
    assert 0.3 < canary_share < 0.7, canary_share
    direct.close()


def test_a_5xx_canary_judged_from_the_log_fails_the_stage_and_rolls_back(
    stage_runner: StageRunner, tmp_path: Path
) -> None:
    config = tmp_path / "canary.toml"
    config.write_text('[metrics]\nsource = "nginx-log"\n')
    run = stage_runner.run(25, 60, f"--canary-config={config}", faults="error_rate=0.2")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert "reading metrics from NGINX's access log" in run.output
    assert failed_checks(run) == {"error_rate"}, run.record().verdict
    assert run.not_passed(GATES)[GATES + "test_5xx_error_rate"].outcome == "failed"
    assert_rolled_back(stage_runner, run, "5xx rate")


def test_nginx_log_with_prometheus_is_a_usage_error(stage_runner: StageRunner, tmp_path: Path) -> None:
    config = tmp_path / "canary.toml"
    config.write_text('[metrics]\nsource = "nginx-log"\n')
    run = stage_runner.run(25, 5, f"--canary-config={config}", "--prometheus", "local")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.describe()
    assert 'source = "nginx-log" reads NGINX\'s log, not Prometheus' in run.output
    assert not stage_runner.run_dir.joinpath("state.json").exists()
