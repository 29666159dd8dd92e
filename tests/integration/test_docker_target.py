"""Any service on containers: examples/hello_service.py's image, built offline by examples/build-hello-image.sh,
gated by its profile's ``[target.docker]`` table with ``--canary-backend docker`` on the real engine and NGINX.

The image is built once per session under a unique name (tests/integration/hellofixtures.py); each stage's
containers are found by their ``canary-harness.*`` labels on the engine.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from canary_harness.stack_state import load_state
from tests.integration.stagefixtures import CANARY_VERSION, REPO, StageRunner
from tests.integration.test_docker_stages import containers
from tests.integration.test_generic_target import (
    ERRORS_UNDER_TRAFFIC,
    assert_caught_under_traffic,
    assert_rollback_recorded,
)

pytest_plugins = ("tests.integration.stagefixtures", "tests.integration.hellofixtures")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def profile(tmp_path: Path, repository: str) -> tuple[str, ...]:
    """A canary.toml over examples/hello-service.toml naming the session's image; the pytest args that use it."""
    config = tmp_path / "canary.toml"
    config.write_text(
        f'[target]\nprofile = "{REPO / "examples" / "hello-service.toml"}"\n\n'
        f'[target.docker]\nimage = "{repository}:{{version}}"\n'
        'command = ["--host", "{host}", "--port", "{port}", "--release", "{version}"]\n'
    )
    # The stage fixtures' closed loop: 20 users flat out (~1 500 req/s) saturate both cores. Before each role's
    # container had its own CPU cgroup (deploy/container_cgroups.py), the healthy canary's p95 was 26-32 ms
    # there against production's 19-23 ms, and its relative latency test FAILed.
    return ("--canary-config", str(config), "--canary-backend", "docker")


def test_a_release_of_the_example_service_on_containers_passes(
    stage_runner: StageRunner, hello_image: str, tmp_path: Path
) -> None:
    run = stage_runner.run(25, 20, *profile(tmp_path, hello_image))
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    verdict = run.record().verdict
    assert verdict is not None and verdict["state"] == "PASS", verdict
    states = {check["name"]: check["state"] for check in verdict["checks"]}
    # A 0.5 % SLO needs ~7 000 canary requests to be shown, about what 20 s bring: undecided or PASS, never FAIL.
    assert states["p95_latency[all]"] == "PASS" and states["error_rate"] in ("PASS", "INCONCLUSIVE"), states
    assert states["traffic_split"] == "PASS", states
    state = load_state(stage_runner.run_dir)
    assert state is not None and state.canary is not None and state.production is not None
    assert state.canary.backend == "docker" and state.canary.probe.version_header == "X-App-Version"
    found = containers(stage_runner.run_dir)
    assert [(c["id"], c["version"], c["status"]) for c in found["canary"]] == [
        (state.canary.container_id, CANARY_VERSION, "running")
    ]
    assert [(c["id"], c["version"]) for c in found["production"]] == [(state.production.container_id, "v0.1.0")]
    engine = docker.from_env()
    images = {role: engine.containers.get(c["id"]).image.tags for role, [c] in found.items()}
    assert f"{hello_image}:{CANARY_VERSION}" in images["canary"], images


def test_a_bad_release_on_containers_is_rolled_back_and_its_container_removed(
    stage_runner: StageRunner, hello_image: str, tmp_path: Path
) -> None:
    run = stage_runner.run(25, 60, *profile(tmp_path, hello_image), *ERRORS_UNDER_TRAFFIC)
    assert_caught_under_traffic(run, "error_rate")
    assert_rollback_recorded(stage_runner, run, "5xx rate")
    found = containers(stage_runner.run_dir)
    assert "canary" not in found, found
    assert [c["status"] for c in found["production"]] == ["running"]


def test_a_missing_image_is_refused_before_anything_starts(
    stage_runner: StageRunner, hello_image: str, tmp_path: Path
) -> None:
    run = stage_runner.run(25, 20, *profile(tmp_path, hello_image), "--canary-version", "v9.9.9")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()  # the stage ended in its start
    assert f"image {hello_image}:v9.9.9 not found" in run.output, run.describe()
    assert "[target.docker] image = " in run.output and "canary v9.9.9" in run.output, run.describe()
    assert containers(stage_runner.run_dir) == {}  # production's image exists, yet it was not started either
    state = load_state(stage_runner.run_dir)
    assert state is None or (state.production is None and state.nginx is None), state
    assert not run.events("weight"), run.events("weight")  # no traffic moved
