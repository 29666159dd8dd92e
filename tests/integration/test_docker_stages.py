"""Stage sessions, a rollout and a promotion with ``--backend docker``: the same sessions as
test_stage_session.py, the services being containers of ``fragrance-ai-app:<version>``.

Each check is made from outside the session: containers found by their ``canary-harness.*`` labels on
the engine, the weight NGINX reports, requests sent through NGINX, the recorded state, the journal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from canary_harness.deploy.docker import LABEL_ROLE, LABEL_RUN_DIR, LABEL_VERSION
from canary_harness.stack_state import load_state
from canary_harness.traffic.probe import probe_split
from tests.integration.stagefixtures import REPO, StageRunner, binomial_bounds

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCKER = ("--backend", "docker")
SHORT_PERIOD_S = 4.0
PROBE_REQUESTS = 600
LATENCY_ENV = "FRAGRANCE_LATENCY_SCALE=0.05"


def containers(run_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Containers labelled with ``run_dir`` by role: their id, version label and status, from the engine."""
    found: dict[str, list[dict[str, str]]] = {}
    for item in docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN_DIR}={run_dir}"}):
        found.setdefault(item.labels[LABEL_ROLE], []).append(
            {"id": item.id, "version": item.labels[LABEL_VERSION], "status": item.status}
        )
    return found


def test_healthy_stage_25_passes_on_containers(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, SHORT_PERIOD_S, *DOCKER)
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert run.outcomes() and not run.not_passed(), run.describe()  # log-field checks read the mounted log
    record = run.record()
    assert record.weight_in_force == 25 and record.verdict is not None and record.verdict["state"] == "PASS"
    state = load_state(stage_runner.run_dir)
    assert state is not None and state.canary is not None and state.production is not None
    found = containers(stage_runner.run_dir)
    assert [(c["id"], c["version"], c["status"]) for c in found["canary"]] == [
        (state.canary.container_id, "v0.2.0", "running")
    ]
    assert [(c["id"], c["version"]) for c in found["production"]] == [(state.production.container_id, "v0.1.0")]
    split = probe_split(stage_runner.base_url, PROBE_REQUESTS, concurrency=4)
    low, high = binomial_bounds(PROBE_REQUESTS, 0.25)
    assert split.failures == 0 and low <= split.canary <= high, split.to_dict()
    assert set(split.by_version) == {"v0.1.0", "v0.2.0"}

    # The canary's state entry is lost: `canary stack down` still removes its container, by label.
    data = json.loads(state.state_file.read_text())
    data["canary"] = None
    state.state_file.write_text(json.dumps(data))
    down = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from canary_harness.cli import main; sys.exit(main())",
            "stack",
            "down",
            "--run-dir",
            str(stage_runner.run_dir),
        ],
        cwd=REPO,
        env=stage_runner.environ(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert down.returncode == 0, down.stderr
    assert containers(stage_runner.run_dir) == {}, down.stdout


def test_faulty_canary_container_is_rolled_back_and_removed(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, 60, *DOCKER, faults="error_rate=0.05")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    [rollback] = run.events("rollback")
    assert rollback.details["weight_after"] == 0 and rollback.details["canary_stopped"] is True
    assert "5xx" in rollback.reason, rollback.reason
    assert stage_runner.stack.traffic().canary_weight() == 0
    split = probe_split(stage_runner.base_url, 300, concurrency=3)
    assert (split.canary, split.production, split.failures) == (0, 300, 0), split.to_dict()
    state = load_state(stage_runner.run_dir)
    assert state is not None and state.canary is None
    found = containers(stage_runner.run_dir)
    assert "canary" not in found, found
    assert [c["status"] for c in found["production"]] == ["running"]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A run dir and the environment of ``canary`` commands on free ports; the stack is removed at teardown."""
    runner = StageRunner(tmp_path)
    yield runner.run_dir, runner.environ()
    runner.close()


def test_rollout_then_promote_replaces_the_production_container(workdir: tuple[Path, dict[str, str]]) -> None:
    run_dir, env = workdir

    def canary(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from canary_harness.cli import main; sys.exit(main())",
                *args,
                "--run-dir",
                str(run_dir),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    rollout = canary(
        "rollout",
        "--version",
        "v0.2.0",
        "--stages",
        "50,100",
        "--observation-period",
        "4",
        "--canary-env",
        LATENCY_ENV,
        "--production-env",
        LATENCY_ENV,
        *DOCKER,
    )
    assert rollout.returncode == 0, rollout.stdout[-4000:] + rollout.stderr[-2000:]
    before = containers(run_dir)
    [old_production] = before["production"]
    assert old_production["version"] == "v0.1.0" and [c["version"] for c in before["canary"]] == ["v0.2.0"]

    # No --backend: production stays the kind of service it is recorded as (a container).
    promoted = canary("promote", "--version", "v0.2.0")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    after = containers(run_dir)
    assert "canary" not in after, after
    [production] = after["production"]
    assert production["version"] == "v0.2.0" and production["id"] != old_production["id"]
    recorded = load_state(run_dir)
    assert recorded is not None and recorded.production is not None
    assert (recorded.production.container_id, recorded.production.version) == (production["id"], "v0.2.0")
    split = probe_split(f"http://127.0.0.1:{env['CANARY_NGINX_PORT']}", 200, concurrency=3)
    assert dict(split.by_version) == {"v0.2.0": 200} and split.failures == 0, split.to_dict()
