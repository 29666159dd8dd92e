"""The canary's workers as containers (``--canary-backend docker``): the LLM and RL workers run the release's
image ``fragrance-ai-app:v0.2.0`` on the host network, on the stack's redis-server, and are judged and
removed with the canary.

Real NGINX, real containers on the Docker engine, a real redis-server; each stage session a subprocess with
LLM_WORKER_CANARY_REPLICAS / RL_WORKER_CANARY_REPLICAS at 1. Every check is made from outside the session:
the engine's containers by their ``canary-harness.*`` labels, the broker's clients, the journal.
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import docker
import pytest

from canary_harness.deploy.docker import LABEL_PORT, LABEL_ROLE, LABEL_RUN_DIR, LABEL_VERSION
from canary_harness.deploy.worker_containers import LABEL_COMPONENT
from canary_harness.deploy.workers import consumers, load_workers
from canary_harness.logs import read_events
from canary_harness.waiting import wait_until
from tests.integration.rolloutfixtures import describe, rollout_args, rollout_cli_in
from tests.integration.stagefixtures import StageRunner
from tests.integration.test_stage_session import GATES, PPO_FAST, PROGRESS_LINE, failed_checks
from tests.integration.test_workers_stage import WorkersCli

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

CANARY = "v0.2.0"
DOCKER = ("--canary-backend", "docker")


@pytest.fixture
def worker_runner(stage_runner: StageRunner) -> StageRunner:
    """The stage runner, its sessions starting the canary with one LLM and one RL worker."""
    plain = stage_runner.environ

    def environ() -> dict[str, str]:
        return {**plain(), "LLM_WORKER_CANARY_REPLICAS": "1", "RL_WORKER_CANARY_REPLICAS": "1"}

    stage_runner.environ = environ  # type: ignore[method-assign]
    return stage_runner


def labelled(run_dir: Path) -> list[dict[str, str]]:
    """Every container labelled with ``run_dir`` (running or not): its labels plus id and status."""
    found = docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN_DIR}={run_dir}"})
    return [{**item.labels, "id": item.id, "status": item.status} for item in found]


def worker_containers(run_dir: Path) -> list[dict[str, str]]:
    """The worker containers among ``labelled``, by component."""
    return sorted((c for c in labelled(run_dir) if LABEL_COMPONENT in c), key=lambda c: c[LABEL_COMPONENT])


def test_stage_25_with_worker_containers_passes(worker_runner: StageRunner) -> None:
    run = worker_runner.run(25, 4.0, *DOCKER, *PPO_FAST)
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert run.outcomes() and not run.not_passed(), run.describe()
    state = load_workers(worker_runner.run_dir)
    assert state.broker is not None
    found = worker_containers(worker_runner.run_dir)
    assert [(c[LABEL_COMPONENT], c[LABEL_ROLE], c[LABEL_VERSION], c["status"]) for c in found] == [
        ("worker-llm", "canary-worker", CANARY, "running"),
        ("worker-rl", "canary-worker", CANARY, "running"),
    ]
    recorded = {w.container_id: w for w in state.workers}
    assert set(recorded) == {c["id"] for c in found}
    # Each worker's metrics URL (its label's loopback port) is in the canary's arm of the stage.
    urls = {f"http://127.0.0.1:{c[LABEL_PORT]}" for c in found}
    assert {w["url"] for w in run.record().canary_workers} == urls
    assert len(consumers(state.broker.url, CANARY)) == 2
    [rl] = [w for w in state.workers if w.role == "rl"]
    updates = list(read_events(rl.app_log_path, "rl_update"))  # written by the container into the mounted logs
    assert updates and {u["component"] for u in updates} == {"worker-rl"}
    worker_runner.stack.down()
    assert worker_containers(worker_runner.run_dir) == []
    assert labelled(worker_runner.run_dir) == []


def test_rl_worker_container_with_exploding_loss_fails_and_every_canary_container_goes(
    worker_runner: StageRunner,
) -> None:
    running = worker_runner.start(50, 60, *DOCKER, *PPO_FAST, faults="loss_factor=4")
    worker_runner.wait_for_output(running, PROGRESS_LINE.format(stage=50), 90)
    state = load_workers(worker_runner.run_dir)
    assert state.broker is not None and len(worker_containers(worker_runner.run_dir)) == 2
    run = worker_runner.wait(running, 180)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert failed_checks(run) == {"rl_loss"}, run.record().verdict
    assert set(run.not_passed(GATES)) == {GATES + "test_rl_loss_against_production_baseline"}
    [rollback] = run.events("rollback")
    assert rollback.details["weight_after"] == 0 and rollback.details["canary_stopped"] is True
    assert "RL loss" in rollback.reason, rollback.reason
    # Every canary container is gone (API and workers); production's alone is left.
    left = labelled(worker_runner.run_dir)
    assert [(c[LABEL_ROLE], c["status"]) for c in left] == [("production", "running")], left
    assert load_workers(worker_runner.run_dir).workers == ()
    wait_until(lambda: consumers(state.broker.url, CANARY) == [], 10.0, describe="no consumer of the canary queue")


def test_rollout_with_worker_containers_runs_every_stage_and_promotion_removes_them(tmp_path: Path) -> None:
    with rollout_cli_in(tmp_path) as plain:
        cli = WorkersCli(**{item.name: getattr(plain, item.name) for item in fields(plain)})
        started = time.monotonic()
        result = cli(*rollout_args("--backend", "docker", *PPO_FAST), timeout=300)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, describe(result)
        verdicts = [entry for entry in cli.journal() if entry.event == "stage_verdict"]
        assert [(entry.stage, entry.details["passed"]) for entry in verdicts] == [
            (1, True), (5, True), (25, True), (100, True)
        ]  # fmt: skip
        run_dir = cli.run_dir.resolve()
        found = worker_containers(run_dir)
        assert [(c[LABEL_COMPONENT], c["status"]) for c in found] == [
            ("worker-llm", "running"),
            ("worker-rl", "running"),
        ]
        workers = load_workers(run_dir).workers
        # One set of containers served the four stages: started with the canary, reused while healthy.
        assert {w.container_id for w in workers} == {c["id"] for c in found}
        assert all(len(list(read_events(w.app_log_path, "startup"))) == 1 for w in workers)
        broker = load_workers(run_dir).broker
        assert broker is not None
        promoted = cli("promote", "--version", CANARY)
        assert promoted.returncode == 0, describe(promoted)
        assert worker_containers(run_dir) == [] and load_workers(run_dir).workers == ()
        assert consumers(broker.url, CANARY) == []
        print(f"rollout 1-5-25-100 % with worker containers: {elapsed:.1f} s")


def test_compose_backend_starts_the_canary_workers_profile_and_rollback_removes_it(
    worker_runner: StageRunner,
) -> None:
    run = worker_runner.run(25, 4.0, "--canary-backend", "compose", *PPO_FAST)
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert not run.not_passed(), run.describe()
    found = worker_containers(worker_runner.run_dir)
    # Exactly the profile's two services, one replica each, in the canary's compose project.
    assert [(c[LABEL_COMPONENT], c["com.docker.compose.service"], c["status"]) for c in found] == [
        ("worker-llm", "worker-llm-canary", "running"),
        ("worker-rl", "worker-rl-canary", "running"),
    ]
    [canary] = [c for c in labelled(worker_runner.run_dir) if c[LABEL_ROLE] == "canary"]
    assert {c["com.docker.compose.project"] for c in found} == {canary["com.docker.compose.project"]}
    state = load_workers(worker_runner.run_dir)
    assert state.broker is not None and {w.container_id for w in state.workers} == {c["id"] for c in found}
    assert len(consumers(state.broker.url, CANARY)) == 2
    [rl] = [w for w in state.workers if w.role == "rl"]
    assert list(read_events(rl.app_log_path, "rl_update")), f"no rl_update in {rl.app_log_path}"
    # The canary goes (as on rollback): its workers go with it, verified on the broker.
    worker_runner.stack.stop_canary()
    assert worker_containers(worker_runner.run_dir) == []
    assert consumers(state.broker.url, CANARY) == []
