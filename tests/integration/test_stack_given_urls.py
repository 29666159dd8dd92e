"""`canary stack up --production-url … --canary-url …`: a stack over services the harness does not own.

The services are started by the test itself (as a user's would be); the stack routes to them, and
`canary stack down` stops NGINX only. Impossible combinations are refused before anything starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from canary_harness.deploy.pids import port_is_free
from canary_harness.deploy.process import health
from tests.integration.stackfixtures import CANARY_VERSION, PRODUCTION_VERSION, ServiceFactory, free_port

pytest_plugins = ("tests.integration.stackfixtures",)

pytestmark = pytest.mark.integration


def canary_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``canary`` command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def test_stack_over_services_given_by_url(service_factory: ServiceFactory, tmp_path: Path) -> None:
    """Recorded at their reported versions, traffic split between them, left running by `stack down`."""
    production = service_factory(PRODUCTION_VERSION)
    canary = service_factory(CANARY_VERSION, role="canary")
    run_dir, nginx_port = tmp_path / "run", free_port()
    location = ["--run-dir", str(run_dir)]
    up = canary_cli("stack", "up", "--production-url", production.url, "--canary-url", canary.url,
                    "--canary-weight", "50", "--nginx-port", str(nginx_port), *location)  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.count("given by URL, never stopped by the harness") == 2, up.stdout
        with httpx.Client(base_url=f"http://127.0.0.1:{nginx_port}", timeout=5.0) as client:
            versions = [client.get("/health").json()["version"] for _ in range(100)]
        assert 20 <= versions.count(CANARY_VERSION) <= 80 and set(versions) == {PRODUCTION_VERSION, CANARY_VERSION}
        status = canary_cli("stack", "status", *location)
        assert status.returncode == 0 and "canary 50%" in status.stdout, status.stdout
    finally:
        down = canary_cli("stack", "down", *location)
    assert down.returncode == 0, down.stderr
    assert port_is_free("127.0.0.1", nginx_port)
    assert health(production.url) is not None and health(canary.url) is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--canary-env", "FRAGRANCE_FAULTS=error_rate=0.1"],
            "--canary-env ['FRAGRANCE_FAULTS=error_rate=0.1']: the canary at",
        ),
        (["--production-port", "18000"], "--production-port '18000': the production at"),
        (["--canary-url", "PRODUCTION"], "--production-url and --canary-url are both"),
        (["--canary-url", "127.0.0.1:8001"], "URL '127.0.0.1:8001' (from --canary-url): must be http://HOST:PORT"),
    ],
)
def test_impossible_combinations_are_usage_errors(
    fragrance_service: object, tmp_path: Path, extra: list[str], message: str
) -> None:
    """Exit 2 with one line naming the flags, nothing started, nothing recorded."""
    production_url = fragrance_service.url  # type: ignore[attr-defined]
    extra = [production_url if item == "PRODUCTION" else item for item in extra]
    if "--canary-url" not in extra:
        extra = [*extra, "--canary-url", f"http://127.0.0.1:{free_port()}"]
    nginx_port = free_port()
    done = canary_cli("stack", "up", "--production-url", production_url, "--nginx-port", str(nginx_port),
                      "--run-dir", str(tmp_path / "run"), *extra)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "state.json").exists() and port_is_free("127.0.0.1", nginx_port)


def test_service_not_answering_starts_nothing(fragrance_service: object, tmp_path: Path) -> None:
    """A canary URL where nothing answers: StackError (exit 1) naming it; no NGINX, no state."""
    dead = f"http://127.0.0.1:{free_port()}"
    nginx_port = free_port()
    production_url = fragrance_service.url  # type: ignore[attr-defined]
    done = canary_cli("stack", "up", "--production-url", production_url, "--canary-url", dead,
                      "--nginx-port", str(nginx_port), "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 1 and f"canary at {dead} (given by URL) is not healthy" in done.stderr, done.stderr
    assert not (tmp_path / "run" / "state.json").exists() and port_is_free("127.0.0.1", nginx_port)
    assert health(fragrance_service.url) is not None  # type: ignore[attr-defined]
