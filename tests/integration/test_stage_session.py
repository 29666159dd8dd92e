"""The stage session on the real stack: `pytest --canary-version v0.2.0 --stage N` as a user runs it.

Real NGINX, real fragrance-ai processes, real locust (and a real Prometheus where asked), each session a
subprocess on free ports with its own run directory. Faulty canaries get FRAGRANCE_FAULTS; every check of
a rollback is made from outside the session: the weight NGINX reports, requests sent through NGINX, the
recorded state, the canary's PID, the journal.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary_harness import journal
from canary_harness.deploy import pids
from canary_harness.logs import read_events
from canary_harness.stack_state import load_state
from canary_harness.traffic.probe import probe_split
from canary_harness.waiting import wait_until
from tests.integration.stagefixtures import (
    StageRun,
    StageRunner,
    binomial_bounds,
    processes_naming,
)

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATES = "test_release_gates::"
# Observation period of the sessions expected to pass: long enough for every check to see traffic.
SHORT_PERIOD_S = 4.0
# Requests sent through NGINX to check a weight from outside.
PROBE_REQUESTS = 1000
ROLLBACK_PROBE_REQUESTS = 300
PROGRESS_LINE = r"\[stage\s+{stage}% t="  # the observation loop's first tick
PPO_FAST = ("--canary-env", "FRAGRANCE_PPO_BATCH_SIZE=4", "--production-env", "FRAGRANCE_PPO_BATCH_SIZE=4")


def failed_checks(run: StageRun) -> set[str]:
    """Names of the verdict's checks in state FAIL."""
    verdict = run.record().verdict
    assert verdict is not None, f"the stage reached no verdict\n{run.describe()}"
    return {check["name"] for check in verdict["checks"] if check["state"] == "FAIL"}


def assert_weight_by_traffic(runner: StageRunner, weight: int) -> None:
    """NGINX reports ``weight`` and real requests through it reach the canary at that share."""
    assert runner.stack.traffic().canary_weight() == weight
    split = probe_split(runner.base_url, PROBE_REQUESTS, concurrency=4)
    low, high = binomial_bounds(PROBE_REQUESTS, weight / 100)
    assert split.failures == 0, split.errors
    assert low <= split.canary <= high, f"{split.canary} of {split.total} reached the canary at {weight} %"


def assert_no_canary_traffic(runner: StageRunner) -> None:
    """Weight 0 in force and not one request through NGINX reaching the canary."""
    assert runner.stack.traffic().canary_weight() == 0
    split = probe_split(runner.base_url, ROLLBACK_PROBE_REQUESTS, concurrency=3)
    assert (split.canary, split.production, split.failures) == (0, ROLLBACK_PROBE_REQUESTS, 0), split.to_dict()


def assert_rolled_back(runner: StageRunner, run: StageRun, reason: str) -> None:
    """Weight 0 in force and by traffic, the canary stopped (state and PID), one rollback entry."""
    canary_pid = run.canary_pid()
    rollbacks = run.events("rollback")
    assert len(rollbacks) == 1, f"rollback entries: {rollbacks}\n{run.describe()}"
    entry = rollbacks[0]
    assert reason in entry.reason, f"rollback reason {entry.reason!r} does not mention {reason!r}"
    assert entry.stage == run.record().stage and entry.details["weight_after"] == 0
    assert entry.details["canary_stopped"] is True
    assert_no_canary_traffic(runner)
    state = load_state(runner.run_dir)
    assert state is not None and state.canary is None, "the canary is still recorded after the rollback"
    wait_until(lambda: not pids.is_alive(canary_pid), 10.0, describe=f"canary PID {canary_pid} to be gone")


def test_healthy_canary_passes_stage_5(stage_runner: StageRunner) -> None:
    run = stage_runner.run(5, SHORT_PERIOD_S)
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    outcomes = run.outcomes()
    assert len(outcomes) >= 20 and not run.not_passed(), run.describe()
    assert all(item.outcome == "passed" for key, item in outcomes.items() if key.startswith(GATES))
    record = run.record()
    assert record.weight_in_force == 5 and record.verdict is not None and record.verdict["state"] == "PASS"
    assert_weight_by_traffic(stage_runner, 5)
    [weight] = run.events("weight")
    assert (weight.stage, weight.details["weight"], weight.version) == (5, 5, "v0.2.0")
    [verdict] = run.events("stage_verdict")
    assert verdict.details["passed"] is True and verdict.stage == 5
    assert not run.events("rollback")
    state = load_state(stage_runner.run_dir)
    assert state is not None and state.canary is not None and pids.is_alive(run.canary_pid())


@dataclass(frozen=True)
class Fault:
    """A bad release and what must catch it: the verdict's check, the release check, the metric named."""

    faults: str
    stage: int
    check: str
    test: str
    metric: str
    extra: tuple[str, ...] = ()


FAULTS = [
    pytest.param(Fault("error_rate=0.2", 25, "error_rate", "test_5xx_error_rate", "5xx rate"), id="5xx"),
    # Slow canary journeys hold users (closed loop) and finish late: the split check must not take that
    # for a broken traffic split and mask the latency regression.
    pytest.param(
        Fault(
            "latency_add_ms.creative=5000",
            25,
            "p95_latency[creative]",
            "test_p95_latency[creative]",
            "p95 latency (creative)",
        ),
        id="creative-latency",
    ),
    pytest.param(
        Fault("schema_rate=0.5", 25, "schema_failures", "test_zero_schema_failures", "schema failures"), id="schema"
    ),
    pytest.param(
        Fault("loss_factor=5", 50, "rl_loss", "test_rl_loss_against_production_baseline", "RL loss", PPO_FAST),
        id="rl-loss",
    ),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_fails_its_check_and_rolls_back(stage_runner: StageRunner, fault: Fault) -> None:
    run = stage_runner.run(fault.stage, 60, *fault.extra, faults=fault.faults)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert failed_checks(run) == {fault.check}, run.record().verdict
    failing = run.not_passed(GATES)
    assert set(failing) == {GATES + fault.test}, f"failing release gates: {sorted(failing)}\n{run.describe()}"
    assert failing[GATES + fault.test].outcome == "failed"
    assert fault.metric in failing[GATES + fault.test].message
    assert_rolled_back(stage_runner, run, fault.metric)


def test_canary_crash_mid_stage_is_reported_and_rolled_back(stage_runner: StageRunner) -> None:
    # 10 s after its start the canary exits: well into the observation, which begins ~3-5 s in.
    run = stage_runner.run(25, 60, faults="crash_after_s=10")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    unreachable = f"canary metrics at http://127.0.0.1:{stage_runner.canary_port}/metrics unreachable"
    record = run.record()
    assert record.error is not None and record.error.startswith("observation: ") and unreachable in record.error
    gate = run.outcomes()[GATES + "test_5xx_error_rate"]
    assert gate.outcome == "error" and "ended before a verdict" in gate.message and unreachable in gate.message
    assert record.canary_log is not None
    crashes = list(read_events(Path(record.canary_log), "crash"))
    assert crashes and crashes[-1]["exit_code"] == 70, "the canary did not exit through its crash fault"
    assert_rolled_back(stage_runner, run, "unreachable")


def test_sequential_judge_rolls_back_long_before_the_period_ends(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, 120, faults="error_rate=0.05")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert run.duration_s < 60, f"the session took {run.duration_s:.0f} s of a 120 s observation period"
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "FAIL" and verdict["elapsed_s"] < 60
    assert failed_checks(run) == {"error_rate"}
    assert_rolled_back(stage_runner, run, "5xx rate")


def test_ctrl_c_during_observation_rolls_back(stage_runner: StageRunner) -> None:
    running = stage_runner.start(25, 60)
    wait_until(
        lambda: any(entry.event == "weight" for entry in journal.read(stage_runner.run_dir)),
        90.0,
        0.1,
        "the stage's weight entry in the journal",
    )
    stage_runner.wait_for_output(running, PROGRESS_LINE.format(stage=25), 30.0)
    assert processes_naming(stage_runner.run_dir / "load"), "no load running during the observation"
    running.interrupt()
    run = stage_runner.wait(running, 60.0)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, run.describe()
    assert run.record().error == "observation: interrupted by SIGINT"
    assert_rolled_back(stage_runner, run, "interrupted")
    assert not processes_naming(stage_runner.run_dir / "load"), "load processes outlived the session"


def test_xdist_runs_the_stage_once_and_the_checks_on_workers(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, SHORT_PERIOD_S, "-n", "2", "-vv")
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert len(run.events("weight")) == 1 and len(run.events("stage_verdict")) == 1, run.journal()
    assert len(run.record_files()) == 1, run.record_files()
    workers = set(re.findall(r"\[(gw\d+)\] \[\s*\d+%\] PASSED canary_tests/", run.output))
    assert workers == {"gw0", "gw1"}, f"release checks passed on {workers}\n{run.describe()}"
    outcomes = run.outcomes()
    assert len(outcomes) >= 20 and not run.not_passed()
    assert_weight_by_traffic(stage_runner, 25)


def test_local_prometheus_stage_passes(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, SHORT_PERIOD_S, "--prometheus", "local")
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    _url, pid = run.prometheus()
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "PASS"
    split = next(check for check in verdict["checks"] if check["name"] == "traffic_split")
    assert split["sample_size"] > 0, "no request counted through Prometheus"
    wait_until(lambda: not pids.is_alive(pid), 10.0, describe=f"local Prometheus PID {pid} to be stopped")
    assert_weight_by_traffic(stage_runner, 25)


def test_killing_local_prometheus_mid_stage_rolls_back(stage_runner: StageRunner) -> None:
    running = stage_runner.start(25, 60, "--prometheus", "local")
    match = stage_runner.wait_for_output(running, r"local Prometheus (http://\S+) \(pid (\d+)\)", 90.0)
    url, pid = match.group(1), int(match.group(2))
    stage_runner.wait_for_output(running, PROGRESS_LINE.format(stage=25), 30.0)
    command = pids.cmdline(pid)
    assert "prometheus" in command and str(stage_runner.run_dir) in command, command
    pids.terminate(pid, start_time=pids.process_start_time(pid), term_signal=signal.SIGKILL)
    run = stage_runner.wait(running, 90.0)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    record = run.record()
    assert record.error is not None and record.error.startswith(f"observation: Prometheus at {url} unreachable")
    gate = run.outcomes()[GATES + "test_5xx_error_rate"]
    assert gate.outcome == "error" and f"Prometheus at {url} unreachable" in gate.message
    assert_rolled_back(stage_runner, run, "Prometheus")


def test_dry_run_moves_no_traffic_and_still_judges(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, SHORT_PERIOD_S, "--dry-run")
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    record = run.record()
    assert record.dry_run and record.weight_in_force is None
    assert record.verdict is not None and record.verdict["state"] == "PASS"
    split = next(check for check in record.verdict["checks"] if check["name"] == "traffic_split")
    assert split["sample_size"] > 0 and split["state"] == "PASS", split
    assert_no_canary_traffic(stage_runner)
    assert not run.events("weight") and not run.events("rollback")
    [verdict] = run.events("stage_verdict")
    assert verdict.details["dry_run"] is True and verdict.details["passed"] is True
