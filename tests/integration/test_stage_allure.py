"""With --alluredir, a stage writes one Allure step per phase and attaches its figures, plan and config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.stackfixtures import free_ports

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _phase_steps(results: Path) -> tuple[list[str], list[str]]:
    for path in results.glob("*-container.json"):
        for before in json.loads(path.read_text()).get("befores", []):
            if before["name"] == "_canary_allure_phases":
                return (
                    [step["name"] for step in before.get("steps", [])],
                    [item["name"] for item in before.get("attachments", [])],
                )
    return [], []


def test_stage_phases_and_attachments_reach_allure(tmp_path: Path) -> None:
    nginx, production, canary = free_ports(3)
    run_dir, results = tmp_path / "run", tmp_path / "allure"
    env = {
        **os.environ,
        "CANARY_NGINX_PORT": str(nginx),
        "CANARY_PRODUCTION_PORT": str(production),
        "CANARY_CANARY_PORT": str(canary),
        "CANARY_LOAD_RATE": "0",
    }  # the closed loop these tests were written for, not --load-rate auto
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--canary-version",
        "v0.2.0",
        "--stage",
        "25",
        "--observation-period",
        "4",
        f"--canary-run-dir={run_dir}",
        "--alluredir",
        str(results),
        "--canary-env",
        "FRAGRANCE_LATENCY_SCALE=0.05",
        "--production-env",
        "FRAGRANCE_LATENCY_SCALE=0.05",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    finally:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from canary_harness.cli import main; raise SystemExit(main())",
                "stack",
                "down",
                "--run-dir",
                str(run_dir),
            ],
            cwd=REPO,
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    steps, attachments = _phase_steps(results)
    assert [step.split(":")[0] for step in steps] == ["start", "preflight", "weight", "observation"], steps
    assert all(": ok" in step for step in steps), steps
    assert {"stage figures", "upstream config in force", "stage plan"} <= set(attachments)
