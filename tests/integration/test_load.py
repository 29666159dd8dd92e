"""The load profiles against the real fragrance-ai service: real locust subprocesses, real uvicorn.

Each service instance runs on a free loopback port with its LLM latency scaled to 0 and is stopped by
PID in its fixture finalizer. Every load run is bounded by time (a few seconds) and, where the test is
about the cap, by a request count.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from canary_harness.loadgen import LoadRun, LoadSettings, LoadStats
from canary_harness.loadgen.locust_engine import free_port, locust_available
from canary_harness.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("fragrance-ai") is None, reason="fragrance-ai is not installed (pip install -e app)"
    ),
    pytest.mark.skipif(not locust_available(), reason="locust is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
MIX = {"fast": 0.6, "balanced": 0.3, "creative": 0.1}  # not the default, so honouring it means something


@dataclass(frozen=True)
class Service:
    """One running fragrance-ai instance."""

    url: str
    version: str
    pid: int


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_service(directory: Path, version: str, extra_env: dict[str, str]) -> Iterator[Service]:
    port = free_port()
    log_path = directory / f"service-{version}.log"
    env = {**os.environ, "FRAGRANCE_LATENCY_SCALE": "0", **extra_env}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["fragrance-ai", "--host", "127.0.0.1", "--port", str(port), "--version", version],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                if proc.poll() is not None:
                    log_text = log_path.read_text()
                    raise AssertionError(f"fragrance-ai exited with {proc.returncode}:\n{log_text}")
                return httpx.get(f"{url}/health", timeout=1.0).status_code == 200

            wait_until(healthy, 30, 0.05, f"fragrance-ai {version} on {url}/health", ignore=(httpx.HTTPError,))
            yield Service(url, version, proc.pid)
        finally:
            _stop(proc)


@pytest.fixture(scope="module")
def healthy_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A healthy fragrance-ai instance (latency scale 0)."""
    yield from _start_service(tmp_path_factory.mktemp("healthy"), "v1.0.0", {})


@pytest.fixture(scope="module")
def faulty_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A fragrance-ai instance that answers 30 % of API requests with a 500."""
    yield from _start_service(tmp_path_factory.mktemp("faulty"), "v2.0.0-bad", {"FRAGRANCE_FAULTS": "error_rate=0.3"})


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (reaped, or a zombie-free exit)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _run_to_end(run: LoadRun, limit_s: float) -> LoadStats:
    """Start, wait (with a deadline) until the run ends by itself, stop and return the stats."""
    with run:
        wait_until(lambda: not run.running(), limit_s, 0.1, "the load run to end by itself")
    assert run.stats is not None
    assert all(_gone(pid) for pid in run.pids()), f"left running: {run.pids()}"
    return run.stats


@pytest.fixture(scope="module")
def healthy_run(healthy_service: Service, tmp_path_factory: pytest.TempPathFactory) -> LoadStats:
    """A 4 s closed-loop journey run against the healthy instance (shared by the tests that read it)."""
    run = LoadRun(
        healthy_service.url, 4, LoadSettings(users=8, mix=MIX, engine="locust"), tmp_path_factory.mktemp("healthy-run")
    )
    return _run_to_end(run, 30)


def test_healthy_run_sends_load_and_counts_no_failures(healthy_run: LoadStats, healthy_service: Service) -> None:
    assert healthy_run.engine == "locust" and healthy_run.requests > 100
    assert healthy_run.failures == 0, healthy_run.errors
    assert healthy_run.by_version == {healthy_service.version: healthy_run.requests}
    assert 3 <= healthy_run.duration_s <= 6 and healthy_run.rps > 0
    for mode in MIX:
        for route in ("/dna/create", "/evolve/options", "/evolve/feedback"):
            item = healthy_run.by_name[f"{route} [{mode}]"]
            assert item.requests > 0 and item.failures == 0 and 0 < item.p95_ms <= item.p99_ms


def test_mode_mix_is_honoured_within_a_binomial_bound(healthy_run: LoadStats) -> None:
    journeys = sum(healthy_run.by_mode.values())
    assert journeys >= 300, healthy_run.by_mode
    for mode, share in MIX.items():
        sigma = math.sqrt(journeys * share * (1 - share))
        # 4.5 sigma: a correct mix fails this about once in 150 000 runs.
        assert abs(healthy_run.by_mode[mode] - journeys * share) <= 4.5 * sigma, healthy_run.by_mode
        # A journey is counted when drawn; at most one per user can still be in flight at the end.
        assert 0 <= healthy_run.by_mode[mode] - healthy_run.by_name[f"/dna/create [{mode}]"].requests <= 8


def test_failures_are_counted_when_the_service_answers_badly(faulty_service: Service, tmp_path: Path) -> None:
    run = LoadRun(faulty_service.url, 3, LoadSettings(users=6, engine="locust"), tmp_path)
    stats = _run_to_end(run, 30)
    assert stats.requests > 100
    # Each request fails with p = 0.3 on its own; far outside [0.15, 0.45] means the counting is wrong.
    assert 0.15 <= stats.failure_ratio <= 0.45, (stats.failures, stats.requests, stats.errors)
    assert any("HTTP 500" in reason for reason in stats.errors), stats.errors
    assert stats.version_stats[faulty_service.version].failures == stats.failures


def test_constant_rate_mode_holds_the_target(healthy_service: Service, tmp_path: Path) -> None:
    run = LoadRun(healthy_service.url, 4, LoadSettings(users=6, rate_rps=40, engine="locust"), tmp_path)
    stats = _run_to_end(run, 30)
    assert stats.target_rps == 40 and stats.failures == 0
    assert abs(stats.rps - 40) <= 40 * 0.15, f"achieved {stats.rps:.1f} req/s of 40"


def test_master_and_two_workers_give_combined_stats(healthy_service: Service, tmp_path: Path) -> None:
    settings = LoadSettings(users=6, workers=2, max_requests=400, engine="locust")
    run = LoadRun(healthy_service.url, 30, settings, tmp_path)
    stats = _run_to_end(run, 30)  # ends by itself at the cap, long before its 30 s limit
    assert len(run.pids()) == 3
    assert stats.workers == 2 and stats.failures == 0
    assert stats.requests == 400  # each worker sends its share of the cap, and the master adds them up
    assert stats.by_worker == {"worker-0": 200, "worker-1": 200}
    assert sum(item.requests for item in stats.by_name.values()) == stats.requests
    assert stats.by_version == {healthy_service.version: 400}


def test_stop_before_the_end_stops_master_and_workers_promptly(healthy_service: Service, tmp_path: Path) -> None:
    run = LoadRun(healthy_service.url, 60, LoadSettings(users=4, workers=2, engine="locust"), tmp_path)
    try:
        run.start()
        wait_until(lambda: _csv_requests(tmp_path / "locust_stats.csv") > 0, 30, 0.1, "locust to report requests")
        asked = time.monotonic()
        stats = run.stop(timeout=20)
        took = time.monotonic() - asked
    finally:
        run.stop()
    assert took < 10, f"stop took {took:.1f}s"
    assert stats.requests > 0 and stats.duration_s < 30
    assert all(_gone(pid) for pid in run.pids()), f"left running: {run.pids()}"


def _csv_requests(path: Path) -> int:
    """The 'Aggregated' request count of locust's live CSV (0 until it exists)."""
    if not path.exists():
        return 0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") == "Aggregated":
                return int(row.get("Request Count") or 0)
    return 0


def test_builtin_engine_gives_the_same_stats_shape(
    healthy_service: Service, healthy_run: LoadStats, tmp_path: Path
) -> None:
    run = LoadRun(healthy_service.url, 2, LoadSettings(users=4, mix=MIX, engine="builtin"), tmp_path)
    stats = _run_to_end(run, 20)
    assert stats.engine == "builtin" and run.pids() == []
    assert stats.requests > 0 and stats.failures == 0
    assert set(stats.to_dict()) == set(healthy_run.to_dict())
    assert set(stats.by_name) <= set(healthy_run.by_name)
    assert stats.by_version == {healthy_service.version: stats.requests}
    assert set(stats.by_mode) <= set(MIX)
    assert json.loads((tmp_path / "canary.json").read_text())["client"] == "httpx"


def test_light_profile_probes_health_and_metrics(healthy_service: Service, tmp_path: Path) -> None:
    settings = LoadSettings(users=4, profile="light", rate_rps=30, engine="locust")
    run = LoadRun(healthy_service.url, 3, settings, tmp_path)
    stats = _run_to_end(run, 30)
    assert set(stats.by_name) == {"/health", "/metrics"} and stats.failures == 0
    assert stats.by_mode == {}


def test_locust_command_from_the_checkout(healthy_service: Service) -> None:
    """`locust --config load/locust.conf --headless ...` from the repository root, stats as JSON on stdout."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "--config",
            "load/locust.conf",
            "--headless",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "2s",
            "--host",
            healthy_service.url,
            "--json",
            "--skip-log",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    entries = json.loads(done.stdout)
    assert sum(entry["num_requests"] for entry in entries) > 0
    assert sum(entry["num_failures"] for entry in entries) == 0
    assert any(entry["name"].startswith("/evolve/options [") for entry in entries)


@pytest.fixture
def web_ui(healthy_service: Service, tmp_path: Path) -> Iterator[str]:
    """locust's web UI on a free loopback port, stopped by PID afterwards."""
    port = free_port()
    with (tmp_path / "ui.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                "load/",
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(port),
                "--host",
                healthy_service.url,
                "--canary-max-requests",
                "2000",
                "--canary-max-time",
                "60",
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(
                lambda: httpx.get(url, timeout=1.0).status_code == 200,
                30,
                0.1,
                "locust web UI",
                ignore=(httpx.HTTPError,),
            )
            yield url
        finally:
            _stop(proc)


def test_web_ui_runs_the_profiles(web_ui: str) -> None:
    form = {"user_count": 3, "spawn_rate": 3, "canary_mix": "creative=1", "canary_rate": 20}
    started = httpx.post(f"{web_ui}/swarm", data=form, timeout=10)
    assert started.status_code == 200 and started.json()["success"]

    def names_seen() -> set[str]:
        stats = httpx.get(f"{web_ui}/stats/requests", timeout=5).json()["stats"]
        return {row["name"] for row in stats if row["num_requests"] > 0}

    def reached_options() -> set[str]:
        seen = names_seen()
        return seen if "/evolve/options [creative]" in seen else set()

    seen = wait_until(reached_options, 20, 0.2, "the web UI run to reach /evolve/options")
    assert not {name for name in seen if "[fast]" in name or "[balanced]" in name}
    httpx.get(f"{web_ui}/stop", timeout=10)
