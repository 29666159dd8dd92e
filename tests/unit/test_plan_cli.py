"""`canary plan` sizes the window a stage will really have: the stage's observation period from the flag,
the environment or canary.toml [stage], with the stage's own soak and warm-up caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.cli import main


def plan(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The output of a successful `canary plan` run."""
    assert main(["plan", "--stage", "5", "--rps", "50", *argv]) == 0
    return capsys.readouterr().out


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A canary.toml whose [stage] observes for 240 s; no CANARY_OBSERVATION_PERIOD in the environment."""
    monkeypatch.delenv("CANARY_OBSERVATION_PERIOD", raising=False)
    path = tmp_path / "canary.toml"
    path.write_text("[stage]\nobservation_period = 240\n", encoding="utf-8")
    return path


def test_the_stage_section_sets_the_window(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "window 240 s" in plan(["--config", str(config)], capsys)


def test_the_environment_overrides_the_file(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_OBSERVATION_PERIOD", "180")
    assert "window 180 s" in plan(["--config", str(config)], capsys)


def test_the_flag_overrides_both(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_OBSERVATION_PERIOD", "180")
    assert "window 120 s" in plan(["--config", str(config), "--observation-period", "120"], capsys)


def test_without_a_period_the_judge_maximum_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CANARY_OBSERVATION_PERIOD", raising=False)
    path = tmp_path / "canary.toml"
    path.write_text("[judge]\nmax_duration_s = 600\n", encoding="utf-8")
    assert "window 600 s" in plan(["--config", str(path)], capsys)


def test_a_window_shorter_than_the_soak_is_planned_as_the_stage_runs_it(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default soak is 60 s; a 20 s stage soaks for its whole window instead of failing.
    assert "window 20 s" in plan(["--config", str(config), "--observation-period", "20"], capsys)


def test_a_bad_period_in_the_file_names_the_file_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CANARY_OBSERVATION_PERIOD", raising=False)
    path = tmp_path / "canary.toml"
    path.write_text("[stage]\nobservation_period = 'soon'\n", encoding="utf-8")
    assert main(["plan", "--stage", "5", "--rps", "50", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert "'soon'" in captured.err and "observation_period" in captured.err and captured.out == ""
