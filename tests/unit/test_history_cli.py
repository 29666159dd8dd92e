"""`canary history`: the journal written by journal.append, as a table or as JSON lines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from canary_harness import journal
from canary_harness.cli import main


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run directory whose journal holds a short rollout of v0.2.0 and a rollback of v0.3.0.

    The working directory is an empty temporary one and CANARY_RUN_DIR is unset, so that only the
    flags of each test decide where the journal is read from.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CANARY_RUN_DIR", raising=False)
    directory = tmp_path / "run"
    journal.append(directory, "rollout_start", version="v0.2.0", reason="canary rollout", actor="ci", stages=[1, 5])
    journal.append(directory, "weight", version="v0.2.0", stage=1, reason="stage applied", actor="ci", weight=1)
    journal.append(
        directory, "stage_verdict", version="v0.2.0", stage=1, reason="all checks passed", actor="ci", passed=True
    )
    journal.append(
        directory,
        "rollback",
        version="v0.3.0",
        stage=5,
        reason="p95 creative 5.1s > 4.5s\nsecond line",
        actor="alice",
        weight=0,
    )
    return directory


def _rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()]


def test_table_shows_every_entry_in_order(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--run-dir", str(run_dir)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows[0].split() == ["TIME", "(UTC)", "EVENT", "VERSION", "STAGE", "ACTOR", "REASON", "DETAILS"]
    assert [row.split()[2] for row in rows[1:]] == ["rollout_start", "weight", "stage_verdict", "rollback"]
    entries = list(journal.read(run_dir))
    for row, entry in zip(rows[1:], entries, strict=True):
        when = dt.datetime.fromtimestamp(entry.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        assert row.startswith(when)
        assert entry.version in row and entry.actor in row
    assert "1%" in rows[2] and "weight=1" in rows[2]
    assert "passed=true" in rows[3]
    # A multi-line reason stays on its entry's line.
    assert "p95 creative 5.1s > 4.5s second line" in rows[4]
    # Columns line up: every row has its EVENT where the header has it.
    column = rows[0].index("EVENT")
    assert all(row[column - 2 : column] == "  " and row[column] != " " for row in rows[1:])


def test_version_filter_and_limit(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--run-dir", str(run_dir), "--version", "v0.2.0"]) == 0
    rows = _rows(capsys.readouterr().out)[1:]
    assert len(rows) == 3 and all("v0.2.0" in row for row in rows)
    assert main(["history", "--run-dir", str(run_dir), "--version", "v0.2.0", "--limit", "1"]) == 0
    rows = _rows(capsys.readouterr().out)[1:]
    assert len(rows) == 1 and "stage_verdict" in rows[0]


def test_json_lines_are_the_journal_entries(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--run-dir", str(run_dir), "--json", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = [entry.to_dict() for entry in journal.read(run_dir)][-2:]
    assert [json.loads(line) for line in lines] == expected
    assert expected[-1]["reason"] == "p95 creative 5.1s > 4.5s\nsecond line"


def test_empty_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--run-dir", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.strip() == f"no journal entries in {tmp_path / 'none' / 'journal.jsonl'}"
    assert main(["history", "--run-dir", str(tmp_path / "none"), "--json"]) == 0
    assert capsys.readouterr().out == ""


def test_no_match_for_a_version(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--run-dir", str(run_dir), "--version", "v9.9.9"]) == 0
    assert capsys.readouterr().out.startswith("no journal entries for v9.9.9 in ")


def test_run_dir_from_environment_and_config(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "canary.toml").write_text(f'[stack]\nrun_dir = "{run_dir}"\n')
    assert main(["history", "--limit", "1"]) == 0
    assert "rollback" in capsys.readouterr().out
    monkeypatch.setenv("CANARY_RUN_DIR", str(tmp_path / "elsewhere"))
    assert main(["history"]) == 0
    assert capsys.readouterr().out.startswith("no journal entries in ")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--limit", "0"], "'0'"),
        (["--limit", "abc"], "'abc'"),
        (["--limit", "-1"], "'-1'"),
        (["--version", "v1 v2"], "'v1 v2'"),
    ],
)
def test_bad_input_exits_2_naming_it(
    run_dir: Path, args: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--run-dir", str(run_dir), *args]) == 2
    out, err = capsys.readouterr()
    assert named in err and out == ""
