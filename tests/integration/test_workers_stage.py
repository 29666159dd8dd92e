"""Releases with workers on the real stack: the canary's LLM and RL workers start with it, count in its arm,
fail its stage when they misbehave or die, and are stopped with it.

Real NGINX, real fragrance-ai API and worker processes, a real redis-server; each stage session a subprocess
(``tests.integration.stagefixtures``) with LLM_WORKER_CANARY_REPLICAS / RL_WORKER_CANARY_REPLICAS set.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from canary_harness.cli import main
from canary_harness.deploy import pids
from canary_harness.deploy.workers import WorkerRecord, WorkersState, consumers, load_workers
from canary_harness.logs import read_events
from canary_harness.waiting import wait_until
from tests.integration.rolloutfixtures import RolloutCli, describe, rollout_args, rollout_cli_in
from tests.integration.stagefixtures import StageRun, StageRunner
from tests.integration.test_stage_session import GATES, PPO_FAST, PROGRESS_LINE, assert_rolled_back, failed_checks

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

CANARY = "v0.2.0"


@pytest.fixture
def worker_runner(stage_runner: StageRunner) -> StageRunner:
    """The stage runner, its sessions starting the canary with one LLM and one RL worker."""
    plain = stage_runner.environ

    def environ() -> dict[str, str]:
        return {**plain(), "LLM_WORKER_CANARY_REPLICAS": "1", "RL_WORKER_CANARY_REPLICAS": "1"}

    stage_runner.environ = environ  # type: ignore[method-assign]
    return stage_runner


def recorded_workers(run_dir: Path) -> tuple[str, list[WorkerRecord]]:
    """The broker URL and the workers ``workers.json`` records."""
    state = load_workers(run_dir)
    assert state.broker is not None, f"no broker recorded in {run_dir}"
    return state.broker.url, list(state.workers)


def assert_workers_stopped(run: StageRun, pids_before: list[int], broker: str) -> None:
    """Every canary worker's process gone, none recorded, none consuming the canary's queue."""
    for pid in pids_before:
        wait_until(lambda pid=pid: not pids.is_alive(pid), 10.0, describe=f"worker PID {pid} to be gone")
    assert load_workers(run.run_dir).workers == ()
    assert consumers(broker, CANARY) == [], "a client still consumes the canary's queue"


def test_healthy_release_with_workers_passes_and_the_rl_worker_learns(
    worker_runner: StageRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    run = worker_runner.run(5, 4.0, *PPO_FAST)
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert not run.not_passed(), run.describe()
    broker, workers = recorded_workers(run.run_dir)
    assert sorted(w.role for w in workers) == ["llm", "rl"]
    assert all(w.version == CANARY and pids.is_alive(w.pid, w.pid_start_time) for w in workers)
    assert sorted(w["url"] for w in run.record().canary_workers) == sorted(w.url for w in workers)
    assert len(consumers(broker, CANARY)) == 2  # both consume the canary's queue, nothing else's
    [rl] = [w for w in workers if w.role == "rl"]
    updates = list(read_events(rl.app_log_path, "rl_update"))
    assert updates and {u["component"] for u in updates} == {"worker-rl"}
    canary_log = run.record().canary_log
    assert canary_log is not None and list(read_events(Path(canary_log), "rl_update")) == []
    # `canary stack status` lists the broker and each worker by PID, healthy, the workers at the canary's version.
    broker_record = load_workers(run.run_dir).broker
    assert broker_record is not None
    assert main(["stack", "status", "--run-dir", str(run.run_dir)]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert listed["broker"].startswith(f"broker      PID {broker_record.pid}  {broker}  healthy"), listed
    for worker in workers:
        assert listed[worker.name] == f"{worker.name} PID {worker.pid}  {worker.url}  healthy  {CANARY}", listed
    # `canary stack down` stops the workers and the broker too.
    worker_runner.stack.down()
    assert not pids.is_alive(broker_record.pid, broker_record.pid_start_time)
    assert not any(pids.is_alive(w.pid, w.pid_start_time) for w in workers)
    assert load_workers(run.run_dir) == WorkersState()


@pytest.mark.parametrize(
    "metrics",
    [
        pytest.param((), id="scraped"),
        # The stage's own Prometheus scrapes the workers as targets of the canary arm.
        pytest.param(("--canary-prometheus", "local"), id="local-prometheus"),
    ],
)
def test_rl_worker_with_exploding_loss_fails_the_rl_check_and_every_component_stops(
    worker_runner: StageRunner, metrics: tuple[str, ...]
) -> None:
    running = worker_runner.start(50, 60, *PPO_FAST, *metrics, faults="loss_factor=4")
    worker_runner.wait_for_output(running, PROGRESS_LINE.format(stage=50), 60)
    broker, workers = recorded_workers(worker_runner.run_dir)
    if metrics:
        lines = (worker_runner.run_dir / "prometheus" / "prometheus.yml").read_text().splitlines()
        [canary_targets] = [lines[i - 1] for i, label in enumerate(lines) if 'version: "canary"' in label]
        assert all(w.url.removeprefix("http://") in canary_targets for w in workers), lines
    run = worker_runner.wait(running, 180)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert failed_checks(run) == {"rl_loss"}, run.record().verdict
    assert set(run.not_passed(GATES)) == {GATES + "test_rl_loss_against_production_baseline"}
    assert_rolled_back(worker_runner, run, "RL loss")
    assert_workers_stopped(run, [w.pid for w in workers], broker)


def test_a_worker_killed_mid_stage_fails_the_stage(worker_runner: StageRunner) -> None:
    running = worker_runner.start(25, 60, *PPO_FAST)
    worker_runner.wait_for_output(running, PROGRESS_LINE.format(stage=25), 60)
    broker, workers = recorded_workers(worker_runner.run_dir)
    [rl] = [w for w in workers if w.role == "rl"]
    os.kill(rl.pid, signal.SIGKILL)
    run = worker_runner.wait(running, 180)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    record = run.record()
    unreachable = f"canary metrics at {rl.url}/metrics unreachable"
    assert record.error is not None and record.error.startswith("observation: ") and unreachable in record.error
    assert_rolled_back(worker_runner, run, "unreachable")
    assert_workers_stopped(run, [w.pid for w in workers], broker)


@dataclass
class WorkersCli(RolloutCli):
    """``canary`` commands whose stage sessions start the canary with one LLM and one RL worker."""

    @property
    def env(self) -> dict[str, str]:
        """The rollout fixtures' environment plus the runbook's replica variables."""
        return {**super().env, "LLM_WORKER_CANARY_REPLICAS": "1", "RL_WORKER_CANARY_REPLICAS": "1"}


def test_rollout_with_workers_runs_every_stage_and_promotion_stops_them(tmp_path: Path) -> None:
    with rollout_cli_in(tmp_path) as plain:
        cli = WorkersCli(**{item.name: getattr(plain, item.name) for item in fields(plain)})
        result = cli(*rollout_args(*PPO_FAST), timeout=240)
        assert result.returncode == 0, describe(result)
        verdicts = [entry for entry in cli.journal() if entry.event == "stage_verdict"]
        assert [(entry.stage, entry.details["passed"]) for entry in verdicts] == [
            (1, True), (5, True), (25, True), (100, True)
        ]  # fmt: skip
        broker, workers = recorded_workers(cli.run_dir)
        # One set of workers served the four stages: started with the canary, reused while healthy.
        assert sorted(w.role for w in workers) == ["llm", "rl"] and all(pids.is_alive(w.pid) for w in workers)
        assert len(list(read_events(workers[0].log_path.with_suffix(".jsonl"), "startup"))) == 1
        promoted = cli("promote", "--version", CANARY)
        assert promoted.returncode == 0, describe(promoted)
        for worker in workers:
            wait_until(lambda w=worker: not pids.is_alive(w.pid), 10.0, describe=f"{worker.name} to stop")
        assert load_workers(cli.run_dir).workers == () and consumers(broker, CANARY) == []
