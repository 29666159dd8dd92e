"""The README's main job on containers, run as a user runs it: ``scripts/demo.sh VERSION PERIOD docker``
(what ``make demo BACKEND=docker`` calls), on free ports and a run directory of its own.

Checked as the user would: the exit code, the promotion and the container serving production in the
printed status, then, after the script's own teardown, no container of the run directory left on the engine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import pytest

from canary_harness.deploy.docker import LABEL_RUN_DIR
from tests.integration.stackfixtures import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_the_demo_rolls_out_and_promotes_on_containers_and_leaves_nothing_running(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    nginx, production, canary = free_ports(3)
    env = {**os.environ, "CANARY_RUN_DIR": str(run_dir), "CANARY_NGINX_PORT": str(nginx),
           "CANARY_PRODUCTION_PORT": str(production), "CANARY_CANARY_PORT": str(canary)}
    env.pop("CI", None)
    try:
        demo = subprocess.run(["bash", "scripts/demo.sh", "v0.2.0", "4", "docker"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        # What the script's own teardown left, looked at before this test cleans up after it.
        labelled = {"label": f"{LABEL_RUN_DIR}={run_dir.resolve()}"}
        left = [item.name for item in docker.from_env().containers.list(all=True, filters=labelled)]
        state_left = (run_dir / "state.json").exists()
    finally:
        subprocess.run(["canary", "stack", "down", "--run-dir", str(run_dir)], cwd=REPO, env=env,
                       capture_output=True, timeout=120, check=False)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-4000:]
    assert "v0.2.0 promoted: production serves it" in output, output[-4000:]
    status = [line for line in output.splitlines() if line.startswith("production ")]
    assert status and "(container " in status[-1] and "v0.2.0" in status[-1], status
    assert left == [] and not state_left, (left, state_left)
