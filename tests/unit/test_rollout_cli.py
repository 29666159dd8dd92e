"""Argument validation of `canary rollout`, `promote` and `rollback`: bad input exits 2 with a message
naming the value and the flag, before anything starts (no run directory, no lock, no process)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from canary_harness.cli import main


class ProcessStarted(Exception):
    """Raised by the Popen stand-in: the command got as far as starting a process."""


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[str]]:
    """Every process the command tries to start (none is started: the first attempt raises).

    The working directory is an empty tmp_path (no canary.toml) and no CANARY_* variable is set, so
    the arguments under test are the only input.
    """
    calls: list[list[str]] = []

    def refuse(argv: Any, *args: Any, **kwargs: Any) -> None:
        calls.append([str(item) for item in argv])
        raise ProcessStarted(calls[-1])

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.chdir(tmp_path)
    for name in (
        "CANARY_RUN_DIR",
        "CANARY_VERSION",
        "CANARY_NGINX_PORT",
        "CANARY_PRODUCTION_PORT",
        "CANARY_CANARY_PORT",
        "CANARY_PRODUCTION_VERSION",
    ):
        monkeypatch.delenv(name, raising=False)
    return calls


def run_dir(tmp_path: Path) -> Path:
    """The run directory the commands under test are pointed at (it must never be created)."""
    return tmp_path / "run"


@pytest.mark.parametrize("stages", ["0,5", "5,1", "a,b", "1,5,150", "1,5", "", "1,,100", "5,5,100", "-1,100", "²,100"])
def test_bad_stages_are_refused_before_anything_starts(
    stages: str, started: list[list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["rollout", "--version", "v0.2.0", f"--stages={stages}", "--run-dir", str(run_dir(tmp_path))])

    err = capsys.readouterr().err
    assert code == 2, err
    assert f"stages {stages!r} (from --stages)" in err, err
    assert not run_dir(tmp_path).exists()
    assert started == []


@pytest.mark.parametrize("version", ["v0.2.0; rm -rf /", "", "../v1", "v 1", "v" * 65, "$(id)"])
@pytest.mark.parametrize("command", ["rollout", "promote", "rollback"])
def test_bad_version_is_refused_before_anything_starts(
    command: str, version: str, started: list[list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([command, f"--version={version}", "--run-dir", str(run_dir(tmp_path))])

    err = capsys.readouterr().err
    assert code == 2, err
    assert f"version {version!r} (from --version)" in err, err
    assert not run_dir(tmp_path).exists()
    assert started == []


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--observation-period", "0", "value '0' (from --observation-period)"),
        ("--observation-period", "-5", "value '-5' (from --observation-period)"),
        ("--observation-period", "soon", "value 'soon' (from --observation-period)"),
        ("--observation-period", "inf", "value 'inf' (from --observation-period)"),
        ("--canary-env", "FRAGRANCE_FAULTS", "environment entry 'FRAGRANCE_FAULTS' (from --canary-env)"),
        ("--production-env", "=1", "environment entry ''=*** (from --production-env)"),
    ],
)
def test_other_bad_rollout_values_are_refused(
    flag: str,
    value: str,
    named: str,
    started: list[list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["rollout", "--version", "v0.2.0", f"{flag}={value}", "--run-dir", str(run_dir(tmp_path))])

    err = capsys.readouterr().err
    assert code == 2, err
    assert named in err, err
    assert not run_dir(tmp_path).exists()
    assert started == []


@pytest.mark.parametrize(
    "argv",
    [
        ["rollout"],  # --version is required
        ["rollout", "--version", "v0.2.0", "--judge", "bogus"],
        ["promote"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], started: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)

    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert started == []


def test_valid_arguments_reach_the_first_stage_session(started: list[list[str]], tmp_path: Path) -> None:
    """The control of the tests above: with good arguments the same harness does see a process start."""
    with pytest.raises(ProcessStarted):
        main(
            [
                "rollout",
                "--version",
                "v0.2.0",
                "--stages",
                "5,100",
                "--observation-period",
                "4",
                "--run-dir",
                str(run_dir(tmp_path)),
                "--",
                "-q",
            ]
        )

    assert len(started) == 1
    argv = started[0]
    assert argv[1:3] == ["-m", "pytest"] and argv[-1] == "-q"
    assert " --canary-version v0.2.0 --canary-stage 5 " in " ".join(argv)
