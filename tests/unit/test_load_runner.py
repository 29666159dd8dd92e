"""LoadRun's input checks and the locust command line, without starting anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from canary_harness.errors import ConfigError, LoadError
from canary_harness.loadgen import LoadRun, LoadSettings, resolve_engine
from canary_harness.loadgen.locust_engine import LOCUSTFILE, find_locustfile_dir, locust_argv, worker_argv

REPO = Path(__file__).resolve().parents[2]


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_single_process_command_line(tmp_path: Path) -> None:
    settings = LoadSettings(users=7, spawn_rate=3.5, mix={"fast": 1, "creative": 3}, seed=4)
    argv = locust_argv("http://127.0.0.1:9", 4.2, settings, tmp_path, REPO / "load")
    assert argv[:3] == [sys.executable, "-m", "locust"] and "--headless" in argv
    assert _flag(argv, "--host") == "http://127.0.0.1:9" and _flag(argv, "--users") == "7"
    assert _flag(argv, "--spawn-rate") == "3.5" and _flag(argv, "--run-time") == "5s"  # ceil, never shorter
    assert _flag(argv, "--canary-mix") == "fast=0.25,balanced=0,creative=0.75"
    assert _flag(argv, "--canary-rate") == "0" and _flag(argv, "--canary-max-requests") == "0"
    assert _flag(argv, "--canary-seed") == "4" and float(_flag(argv, "--canary-max-time")) > 5
    assert _flag(argv, "--canary-stats-file") == str(tmp_path / "canary.json")
    assert "--master" not in argv and argv[-1] == "JourneyUser"


def test_master_and_worker_command_lines(tmp_path: Path) -> None:
    settings = LoadSettings(workers=3, rate_rps=40, max_requests=900, profile="light")
    argv = locust_argv("http://127.0.0.1:9", 10, settings, tmp_path, REPO / "load", master_port=5599)
    assert "--master" in argv and _flag(argv, "--master-bind-host") == "127.0.0.1"
    assert _flag(argv, "--master-bind-port") == "5599" and _flag(argv, "--expect-workers") == "3"
    assert _flag(argv, "--canary-rate") == "40" and _flag(argv, "--canary-max-requests") == "900"
    assert argv[-1] == "LightUser"
    worker = worker_argv(REPO / "load", 5599, tmp_path / "w.log")
    assert "--worker" in worker and _flag(worker, "--master-host") == "127.0.0.1"
    assert _flag(worker, "--master-port") == "5599"


def test_find_locustfile_dir(tmp_path: Path) -> None:
    assert (find_locustfile_dir(None, {}) / LOCUSTFILE).is_file()
    (tmp_path / LOCUSTFILE).write_text("")
    assert find_locustfile_dir(tmp_path, {}) == tmp_path.resolve()
    assert find_locustfile_dir(None, {"CANARY_LOCUSTFILE": str(tmp_path)}) == tmp_path.resolve()
    with pytest.raises(LoadError) as info:
        find_locustfile_dir(tmp_path / "missing", {})
    assert str(tmp_path / "missing") in str(info.value) and "LoadSettings.locustfile" in str(info.value)


@pytest.mark.parametrize(
    ("url", "duration", "fragment"),
    [
        ("127.0.0.1:8080", 5, "'127.0.0.1:8080'"),
        ("ftp://127.0.0.1", 5, "must start with http"),
        ("http://127.0.0.1:8080", 0, "duration 0"),
        ("http://127.0.0.1:8080", -3, "duration -3"),
    ],
)
def test_load_run_refuses_bad_target_or_duration(tmp_path: Path, url: str, duration: float, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        LoadRun(url, duration, LoadSettings(), tmp_path)


def test_stop_before_start_gives_empty_stats_and_starts_nothing(tmp_path: Path) -> None:
    run = LoadRun("http://127.0.0.1:9", 5, LoadSettings(), tmp_path / "stats")
    stats = run.stop()
    assert stats.requests == 0 and run.pids() == [] and not run.running()
    assert run.stop() is stats and not (tmp_path / "stats").exists()


def test_builtin_engine_is_chosen_when_asked() -> None:
    assert resolve_engine(LoadSettings(engine="builtin")) == "builtin"
