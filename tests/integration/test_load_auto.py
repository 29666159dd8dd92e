"""--load-rate auto on services given by URL while real users send traffic: the load only adds what is missing.

The services and NGINX (``canary stack up --production-url … --canary-url …``) are real; so are the "real
users": a constant-rate locust run through NGINX that the stage did not start. The stage measures both
arms' request counters before its own load starts and sizes its load to the rest: part of the rate when
the real traffic is short of it, nothing when the real traffic already brings it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_harness.deploy.protocol import ServiceHandle
from canary_harness.loadgen import LoadRun, LoadSettings
from canary_harness.pytest_plugin.record import StageRecord
from tests.integration.stackfixtures import CANARY_VERSION, PRODUCTION_VERSION, ServiceFactory, free_port

pytest_plugins = ("tests.integration.stackfixtures",)
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())"]
REAL_RPS = 40.0
WINDOW_S = 8
REAL_RE = re.compile(
    r"load rate auto: (?:(\S+) req/s with \d+ users|no load) \(.*real traffic (?:already )?brings "
    r"(\S+) req/s[^\n]*"
)


class Place:
    """Two services given by URL behind a recorded NGINX, with real users on it."""

    def __init__(self, base: Path, production: ServiceHandle, canary: ServiceHandle) -> None:
        self.base, self.production, self.canary = base, production, canary
        self.run_dir, self.nginx_port = base / "run", free_port()

    def stage(self, max_rps: float) -> tuple[subprocess.CompletedProcess[str], StageRecord]:
        """One 25 % stage session with --load-rate auto (the default) bounded at ``max_rps``."""
        env = {name: value for name, value in os.environ.items() if not name.startswith(("CANARY_", "PYTEST_"))}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--canary-version", CANARY_VERSION, "--stage", "25",
             "--canary-url", self.canary.url, "--production-url", self.production.url,
             f"--canary-run-dir={self.run_dir}", "--observation-period", str(WINDOW_S),
             "--load-max-rps", f"{max_rps:g}", "-q", "-p", "no:cacheprovider"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)  # fmt: skip
        records = sorted((self.run_dir / "stages").glob("stage-25-*.json"), key=lambda path: path.stat().st_mtime)
        assert records, f"no stage record\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        return done, StageRecord.read(records[-1])


@pytest.fixture
def place(service_factory: ServiceFactory, tmp_path: Path) -> Iterator[Place]:
    """The services, NGINX over them and real users sending REAL_RPS; all stopped at teardown."""
    here = Place(tmp_path, service_factory(PRODUCTION_VERSION), service_factory(CANARY_VERSION, role="canary"))
    up = subprocess.run([*CLI, "stack", "up", "--production-url", here.production.url, "--canary-url",
                         here.canary.url, "--nginx-port", str(here.nginx_port), "--run-dir", str(here.run_dir)],
                        capture_output=True, text=True, timeout=90, check=False)  # fmt: skip
    users = LoadRun(
        f"http://127.0.0.1:{here.nginx_port}",
        240,
        LoadSettings(users=40, rate_rps=REAL_RPS, spawn_rate=40),
        tmp_path / "real-users",
    )
    try:
        assert up.returncode == 0, up.stderr
        users.start()
        yield here
    finally:
        users.stop()
        subprocess.run([*CLI, "stack", "down", "--run-dir", str(here.run_dir)], capture_output=True, timeout=90,
                       check=False)  # fmt: skip


def test_the_load_adds_what_real_traffic_misses_or_nothing(place: Place) -> None:
    """Short of the rate: the load sends the rest. Already there: no load at all."""
    done, record = place.stage(max_rps=100)
    match = REAL_RE.search(done.stdout)
    assert match is not None and record.plan is not None, done.stdout[-3000:]
    real = float(match.group(2))
    assert REAL_RPS * 0.6 <= real <= REAL_RPS * 1.3, match.group(0)
    added = float(match.group(1))
    assert added == pytest.approx(100 - real, abs=0.2), match.group(0)
    assert match.group(0) in record.plan  # the plan states the rate and why
    assert record.load is not None
    (run,) = record.load["runs"]
    assert run["target_rps"] == pytest.approx(added) and run["rps"] > 0.5 * added, run

    done, record = place.stage(max_rps=20)
    match = REAL_RE.search(done.stdout)
    assert match is not None and match.group(1) is None, done.stdout[-3000:]
    assert "no load added" in match.group(0)
    assert record.load is None  # nothing of ours was sent
