"""Any HTTP service: examples/hello_service.py (no /metrics, no structured log, its own paths) gated through
its target profile on the real stack, with metrics from NGINX's access log only."""

from __future__ import annotations

import tomllib

import pytest

from canary_harness.deploy import pids
from canary_harness.smoke import journey_from
from canary_harness.stack_state import load_state
from canary_harness.waiting import wait_until
from tests.integration.stagefixtures import CANARY_VERSION, REPO, StageRun, StageRunner
from tests.integration.test_stage_session import GATES, assert_no_canary_traffic, failed_checks

pytest_plugins = ("tests.integration.stagefixtures",)

pytestmark = pytest.mark.integration

TARGET = ("--canary-target", "examples/hello-service.toml")
# Paths hello-service never fails (examples/hello_service.py's faults skip them).
NO_FAULT_PATHS = frozenset({"/health", "/metrics"})


def smoke_api_requests(profile: str = TARGET[1]) -> int:
    """How many requests of the profile's preflight smoke reach hello-service's 5xx fault.

    The stage walks that smoke against the canary before any traffic moves, and a 500 there ends the stage
    in preflight, before the judge sees a request: with 5 % random 500s the smoke's two API requests would
    stop about one bad-release run in ten there. The tests of the judge spare exactly these answers
    (HELLO_ERROR_AFTER): the release passes its smoke and must be caught under traffic.
    """
    journey = journey_from(tomllib.loads((REPO / profile).read_text(encoding="utf-8")), profile)
    return sum(step.path not in NO_FAULT_PATHS for step in journey.steps)


# A release answering 5 % 500s to users, but not to the preflight smoke.
ERRORS_UNDER_TRAFFIC = (
    "--canary-env",
    "HELLO_ERROR_RATE=0.05",
    "--canary-env",
    f"HELLO_ERROR_AFTER={smoke_api_requests()}",
)


def test_a_healthy_release_of_the_example_service_passes(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, 20, *TARGET)
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert "reading metrics from NGINX's access log" in run.output
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "PASS", verdict
    states = {check["name"]: check["state"] for check in verdict["checks"]}
    assert states["p95_latency[all]"] == "PASS" and states["error_rate"] == "PASS", states
    assert states["schema_failures"] == "N/A" and states["rl_loss"] == "N/A"
    outcomes = run.outcomes()
    assert outcomes[GATES + "test_p95_latency[all]"].outcome == "passed"
    journeys = [key for key in outcomes if "test_declared_journey" in key]
    assert len(journeys) == 2 and all(outcomes[key].outcome == "passed" for key in journeys)
    own = outcomes["test_metrics_exposed::test_series_present[http_requests_total]"]
    assert own.outcome == "skipped" and "the target released is hello-service" in own.message
    state = load_state(stage_runner.run_dir)
    assert state is not None and state.canary is not None and state.canary.probe.version_header == "X-App-Version"


@pytest.mark.parametrize(
    ("fault", "check", "metric"),
    [
        pytest.param(ERRORS_UNDER_TRAFFIC, "error_rate", "5xx rate", id="5xx"),
        pytest.param(("--canary-env", "HELLO_DELAY_MS=1000"), "p95_latency[all]", "p95 latency (all)", id="latency"),
    ],
)
def test_a_bad_release_of_the_example_service_is_rolled_back(
    stage_runner: StageRunner, fault: tuple[str, ...], check: str, metric: str
) -> None:
    run = stage_runner.run(25, 60, *TARGET, *fault)
    assert_caught_under_traffic(run, check)
    assert_rolled_back(stage_runner, run, metric)


def assert_caught_under_traffic(run: StageRun, check: str) -> None:
    """The stage failed on ``check`` alone after a clean preflight: caught by the judge, not the smoke."""
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    preflight = run.record().preflight
    assert preflight and all(step["ok"] for step in preflight), run.describe()
    assert failed_checks(run) == {check}, run.record().verdict


def assert_rollback_recorded(runner: StageRunner, run: StageRun, reason: str) -> None:
    """One rollback naming ``reason`` that stopped the canary, weight 0 by traffic, no canary recorded."""
    [rollback] = run.events("rollback")
    assert reason in rollback.reason and rollback.details["canary_stopped"] is True, rollback
    assert_no_canary_traffic(runner)
    state = load_state(runner.run_dir)
    assert state is not None and state.canary is None


def assert_rolled_back(runner: StageRunner, run: StageRun, reason: str) -> None:
    """``assert_rollback_recorded``, and the canary process gone (it writes no log the fragrance-ai helpers
    read: found by the harness's marker and its --release argument)."""
    assert_rollback_recorded(runner, run, reason)

    def canary_processes() -> list[int]:
        marked = pids.marked_processes(runner.run_dir)
        return [pid for pid, _ in marked if f"--release {CANARY_VERSION}" in pids.cmdline(pid)]

    wait_until(lambda: not canary_processes(), 10.0, describe="the example canary's process to be gone")
