"""Counter-ratio checks on the real stack: examples/hello_service.py's requests and latency come from NGINX's
access log, its business counter ``hello_orders_total`` from its own /metrics, and ``ratio[order_failures]``
gates a release whose failed orders are answered 201 (no 5xx at all)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from canary_harness.stack_state import load_state
from canary_harness.target import profile_path
from tests.integration.stagefixtures import StageRunner
from tests.integration.test_generic_target import assert_rolled_back
from tests.integration.test_stage_session import GATES, failed_checks

pytest_plugins = ("tests.integration.stagefixtures",)

pytestmark = pytest.mark.integration

TARGET = ("--canary-target", "examples/hello-service-counters.toml")
CHECK = "ratio[order_failures]"
RATIO_TABLE = """
[[judge.ratios]]
name = "order_failures"
numerator = 'hello_orders_total{outcome="failed"}'
denominator = "hello_orders_total"
max = 0.02
"""
LABEL = 'hello_orders_total{outcome="failed"} / hello_orders_total'


def test_a_healthy_release_passes_the_ratio_check(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, 30, *TARGET)
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert "reading metrics from NGINX's access log" in run.output
    assert "from each instance's /metrics" in run.output
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "PASS", verdict
    [check] = [check for check in verdict["checks"] if check["name"] == CHECK]
    assert check["state"] == "PASS", check
    evidence = check["evidence"]
    # The counters moved on both arms: the check judged orders, not an empty series.
    assert evidence["canary_trials"] > 0 and evidence["production_trials"] > 0, evidence
    assert evidence["canary_events"] == 0, evidence
    # The release checks have a gate per ratio check, as they have per latency group.
    assert run.outcomes()[f"{GATES}test_counter_ratio[{CHECK}]"].outcome == "passed"


def test_failed_orders_answered_201_roll_the_canary_back(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, 60, *TARGET, "--canary-env", "HELLO_ORDER_FAILURE_RATE=0.05")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    verdict = run.record().verdict
    assert failed_checks(run) == {CHECK}, verdict
    assert verdict is not None
    states = {check["name"]: check["state"] for check in verdict["checks"]}
    assert states["error_rate"] != "FAIL", states  # every order was answered 201: no 5xx to see
    [check] = [check for check in verdict["checks"] if check["name"] == CHECK]
    assert check["evidence"]["canary_events"] > 0, check
    assert check["message"].startswith(LABEL), check
    gate = run.outcomes()[f"{GATES}test_counter_ratio[{CHECK}]"]
    assert gate.outcome == "failed" and LABEL in gate.message, gate
    assert_rolled_back(stage_runner, run, LABEL)


def test_a_ratio_check_on_a_service_without_counters_is_refused_before_anything_starts(
    stage_runner: StageRunner, tmp_path: Path
) -> None:
    # The generic profile says the service exposes no counters ([metrics] counters = "none").
    profile = tmp_path / "no-counters.toml"
    generic = profile_path("generic-http", "test").read_text(encoding="utf-8")
    profile.write_text(
        generic.replace("[load]", RATIO_TABLE + "\n[load]").replace(
            'checks = ["error_rate"', 'checks = ["ratio", "error_rate"'
        ),
        encoding="utf-8",
    )
    run = stage_runner.run(25, 5, "--canary-target", str(profile))
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.describe()
    assert "[[judge.ratios]] 'order_failures' divides counters, but [metrics] counters = \"none\"" in run.output
    assert load_state(stage_runner.run_dir) is None  # nothing was started


def test_a_counter_the_canary_does_not_expose_fails_the_stage_naming_metric_and_url(
    stage_runner: StageRunner, tmp_path: Path
) -> None:
    profile = tmp_path / "typo.toml"
    counters = (Path(__file__).resolve().parents[2] / TARGET[1]).read_text(encoding="utf-8")
    profile.write_text(counters.replace('denominator = "hello_orders_total"', 'denominator = "hello_order_total"'))
    run = stage_runner.run(25, 10, "--canary-target", str(profile))
    assert run.returncode != pytest.ExitCode.OK, run.describe()
    found = re.search(
        r"canary metrics at http://127\.0\.0\.1:\d+/metrics: counter hello_order_total is not exposed", run.output
    )
    assert found, run.output[-3000:]
    assert run.record().verdict is None or failed_checks(run) == set()  # no verdict from a metric that is not there
