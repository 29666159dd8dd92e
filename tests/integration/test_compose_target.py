"""Any service on docker-compose: examples/hello_service.py run from the team's own compose file
(examples/hello-compose.yml), gated by its profile's ``[target.compose]`` table with ``--canary-backend compose``
on the real engine, docker-compose and NGINX, with NGINX's access log as the only metrics.

Checked from outside the session: the containers found on the engine by the run directory's label, their
compose service and image; ``canary stack down`` run from another directory removing them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker
import pytest

from canary_harness.deploy.docker import LABEL_RUN_DIR
from canary_harness.stack_state import load_state
from tests.integration.stagefixtures import CANARY_VERSION, PRODUCTION_VERSION, REPO, StageRunner
from tests.integration.test_generic_target import (
    ERRORS_UNDER_TRAFFIC,
    assert_caught_under_traffic,
    assert_rollback_recorded,
)

pytest_plugins = ("tests.integration.stagefixtures", "tests.integration.hellofixtures")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPOSE_SERVICE = "com.docker.compose.service"


def compose_profile(tmp_path: Path, repository: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """A canary.toml over examples/hello-service.toml whose image check names the session's image (the example
    compose file reads the repository from HELLO_IMAGE); the pytest args that use it."""
    monkeypatch.setenv("HELLO_IMAGE", repository)  # the sessions' docker-compose interpolates it
    config = tmp_path / "canary.toml"
    config.write_text(
        f'[target]\nprofile = "{REPO / "examples" / "hello-service.toml"}"\n\n'
        "[target.compose]\n"
        f'files = ["{REPO / "examples" / "hello-compose.yml"}"]\n'
        f'image = "{repository}:{{version}}"\n'
        'production = { service = "hello", version_variable = "HELLO_VERSION", port_variable = "HELLO_PORT" }\n'
        'canary = { service = "hello-canary", version_variable = "HELLO_CANARY_VERSION", '
        'port_variable = "HELLO_CANARY_PORT" }\n'
    )
    return ("--canary-config", str(config), "--canary-backend", "compose")


def compose_containers(run_dir: Path) -> dict[str, list[dict[str, object]]]:
    """Containers labelled with ``run_dir``, by compose service: id, status, image tags and role label."""
    found: dict[str, list[dict[str, object]]] = {}
    for item in docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN_DIR}={run_dir}"}):
        found.setdefault(item.labels.get(COMPOSE_SERVICE, "?"), []).append(
            {"id": item.id, "status": item.status, "tags": item.image.tags, "role": item.labels["canary-harness.role"]}
        )
    return found


def stack_down_elsewhere(stage_runner: StageRunner, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``canary stack down`` from ``cwd``, where the example's relative paths mean nothing."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())",
         "stack", "down", "--run-dir", str(stage_runner.run_dir)],
        cwd=cwd, env=stage_runner.environ(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_release_of_the_example_service_on_its_compose_file_passes(
    stage_runner: StageRunner, hello_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = stage_runner.run(25, 20, *compose_profile(tmp_path, hello_image, monkeypatch))
    try:
        assert run.returncode == pytest.ExitCode.OK, run.describe()
        verdict = run.record().verdict
        assert verdict is not None and verdict["state"] == "PASS", verdict
        states = {check["name"]: check["state"] for check in verdict["checks"]}
        assert states["p95_latency[all]"] == "PASS" and states["traffic_split"] == "PASS", states
        assert states["error_rate"] in ("PASS", "INCONCLUSIVE"), states  # a 0.5 % SLO needs ~7 000 requests
        state = load_state(stage_runner.run_dir)
        assert state is not None and state.canary is not None and state.production is not None
        assert (state.canary.backend, state.production.backend) == ("compose", "compose")
        assert state.canary.probe.version_header == "X-App-Version"
        found = compose_containers(stage_runner.run_dir)
        assert set(found) == {"hello", "hello-canary"}, found
        [canary], [production] = found["hello-canary"], found["hello"]
        assert (canary["status"], canary["role"], production["status"]) == ("running", "canary", "running")
        assert f"{hello_image}:{CANARY_VERSION}" in canary["tags"], canary  # type: ignore[operator]
        assert f"{hello_image}:{PRODUCTION_VERSION}" in production["tags"], production  # type: ignore[operator]
    finally:
        down = stack_down_elsewhere(stage_runner, tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert compose_containers(stage_runner.run_dir) == {}, down.stdout


def test_a_bad_release_on_compose_is_rolled_back_and_its_container_removed(
    stage_runner: StageRunner, hello_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = stage_runner.run(25, 60, *compose_profile(tmp_path, hello_image, monkeypatch), *ERRORS_UNDER_TRAFFIC)
    assert_caught_under_traffic(run, "error_rate")
    assert_rollback_recorded(stage_runner, run, "5xx rate")
    found = compose_containers(stage_runner.run_dir)
    assert set(found) == {"hello"} and [c["status"] for c in found["hello"]] == ["running"], found


def test_a_missing_image_is_refused_before_anything_starts(
    stage_runner: StageRunner, hello_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = compose_profile(tmp_path, hello_image, monkeypatch)
    run = stage_runner.run(25, 20, *args, "--canary-version", "v9.9.9")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert f"image {hello_image}:v9.9.9 not found" in run.output, run.describe()
    assert "[target.compose] image = " in run.output and str(tmp_path / "canary.toml") in run.output, run.describe()
    assert compose_containers(stage_runner.run_dir) == {}  # production's image exists, yet it was not started either
    state = load_state(stage_runner.run_dir)
    assert state is None or (state.production is None and state.nginx is None), state
    assert not run.events("weight"), run.events("weight")  # no traffic moved
