"""A stage session with ``--backend compose``: the services are the runbook's compose services (``app``,
``app-canary``), started through ``docker-compose`` from the files in ``compose/``.

Checked from outside the session: the containers found on the engine by the run directory's label and
their compose service name, the split seen through NGINX, and ``canary stack down`` removing them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker
import pytest

from canary_harness.deploy.docker import LABEL_RUN_DIR
from canary_harness.stack_state import load_state
from canary_harness.traffic.probe import probe_split
from tests.integration.stagefixtures import REPO, StageRunner, binomial_bounds

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPOSE_SERVICE = "com.docker.compose.service"
PROBE_REQUESTS = 600


def compose_containers(run_dir: Path) -> dict[str, tuple[str, str]]:
    """Containers labelled with ``run_dir``, by compose service: (id, status), from the engine."""
    found = docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN_DIR}={run_dir}"})
    return {item.labels.get(COMPOSE_SERVICE, "?"): (item.id, item.status) for item in found}


def test_healthy_stage_25_passes_on_the_runbook_compose_services(stage_runner: StageRunner) -> None:
    run = stage_runner.run(25, 4.0, "--backend", "compose")
    try:
        assert run.returncode == pytest.ExitCode.OK, run.describe()
        assert run.outcomes() and not run.not_passed(), run.describe()  # log-field checks read the mounted log
        state = load_state(stage_runner.run_dir)
        assert state is not None and state.canary is not None and state.production is not None
        assert (state.canary.backend, state.production.backend) == ("compose", "compose")
        found = compose_containers(stage_runner.run_dir)
        assert found.get("app-canary", ("", ""))[1] == "running", found
        assert found.get("app", ("", ""))[1] == "running", found
        split = probe_split(stage_runner.base_url, PROBE_REQUESTS, concurrency=4)
        low, high = binomial_bounds(PROBE_REQUESTS, 0.25)
        assert split.failures == 0 and low <= split.canary <= high, split.to_dict()
        assert set(split.by_version) == {"v0.1.0", "v0.2.0"}
    finally:
        down = subprocess.run(
            [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())",
             "stack", "down", "--run-dir", str(stage_runner.run_dir)],
            cwd=REPO, env=stage_runner.environ(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    assert compose_containers(stage_runner.run_dir) == {}, down.stdout
