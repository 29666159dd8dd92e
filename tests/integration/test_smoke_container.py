"""``pytest canary_tests -m smoke --backend testcontainers`` and the ``canary_container`` fixture, run as a
developer runs them (a pytest subprocess): the checks pass against a throwaway container, and no container
is left afterwards, also after a failing test, Ctrl-C, SIGTERM or a missing image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from canary_harness.deploy.docker import LABEL_RUN_DIR
from canary_harness.logs import read_events
from canary_harness.waiting import wait_until
from tests.integration.stagefixtures import REPO

pytestmark = pytest.mark.integration

SMOKE = (
    "--canary-version",
    "v0.2.0",
    "--backend",
    "testcontainers",
    "--canary-env",
    "FRAGRANCE_LATENCY_SCALE=0.05",
    "-p",
    "no:cacheprovider",
    "-q",
)
OWN_TEST = '''
import time
from pathlib import Path

import httpx


def test_own_smoke(canary_container):
    """A team's own smoke test: the fixture gives the container's URL, version and log."""
    body = httpx.get(canary_container.url + "/health", timeout=5).json()
    assert body["version"] == canary_container.version == "v0.2.0"
    assert canary_container.log_path.exists()
    Path("started").write_text(canary_container.container_id)
    {body}
'''


def containers(run_dir: Path) -> list[str]:
    """Ids of every container (any state) labelled with ``run_dir``."""
    found = docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN_DIR}={run_dir.resolve()}"})
    return [item.id for item in found]


def environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CANARY_", "PYTEST_", "FRAGRANCE_"))}


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """The sessions' run directory; any container still labelled with it is removed (and reported) at teardown."""
    path = (tmp_path / "run").resolve()
    yield path
    for item in docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN_DIR}={path}"}):
        item.remove(force=True)


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # An explicit path: without one the plugin collects the release checks in canary_tests/.
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        env=environ(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def own_test(tmp_path: Path, body: str) -> Path:
    """A project of its own holding one smoke test that uses ``canary_container``."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_own.py").write_text(OWN_TEST.format(body=body))
    return project


def test_release_smoke_checks_pass_against_a_throwaway_container(run_dir: Path) -> None:
    result = run(REPO, "canary_tests", "-m", "smoke", f"--canary-run-dir={run_dir}", *SMOKE, "-rA")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for name in (
        "test_llm_brief_fields",
        "test_rl_update_fields",
        "test_series_present",
        "test_canary_serves_the_release_version",
        "test_health[canary_client]",
    ):
        assert "PASSED canary_tests/" in result.stdout and name in result.stdout, result.stdout[-3000:]
    # The release gates need a stage, so are not smoke checks: 3 latency groups, 5xx, schema, RL loss, split, and
    # the counter-ratio gate (fragrance-ai declares no ratio check).
    assert "8 deselected" in result.stdout, result.stdout[-3000:]
    [log] = list((run_dir / "smoke").glob("canary-v0.2.0-*.jsonl"))
    assert [event["version"] for event in read_events(log, "startup")] == ["v0.2.0"]
    assert containers(run_dir) == []


def test_a_failing_own_test_still_removes_the_container(tmp_path: Path, run_dir: Path) -> None:
    project = own_test(tmp_path, 'assert body["status"] == "not healthy", "deliberate failure"')
    result = run(project, ".", f"--canary-run-dir={run_dir}", *SMOKE)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout[-3000:]
    assert "deliberate failure" in result.stdout and "1 failed" in result.stdout
    assert (project / "started").exists(), "the test never reached its container"
    assert containers(run_dir) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_removes_the_container(tmp_path: Path, run_dir: Path, signum: int) -> None:
    project = own_test(tmp_path, "time.sleep(60)")
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", ".", f"--canary-run-dir={run_dir}", *SMOKE],
        cwd=project,
        env=environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: (project / "started").exists(), 60, 0.1, "the test to reach its container")
        assert len(containers(run_dir)) == 1
        os.killpg(process.pid, signum)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output.decode()[-3000:]
    assert containers(run_dir) == []


def test_missing_image_names_the_build_command(tmp_path: Path, run_dir: Path) -> None:
    project = own_test(tmp_path, "")
    result = run(project, ".", f"--canary-run-dir={run_dir}", *SMOKE[:1], "v9.9.9", *SMOKE[2:])
    assert result.returncode != 0
    assert "`canary images build --version v9.9.9`" in result.stdout, result.stdout[-3000:]
    assert containers(run_dir) == []
