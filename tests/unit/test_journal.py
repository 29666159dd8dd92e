"""The deployment journal: append, read back, survive a torn line."""

from __future__ import annotations

from pathlib import Path

from canary_harness import journal


def test_append_and_read(tmp_path: Path) -> None:
    journal.append(tmp_path, "weight", version="v0.2.0", stage=5, reason="stage applied", actor="t", weight=5)
    journal.append(tmp_path, "rollback", version="v0.2.0", stage=5, reason="5xx", actor="t")
    entries = list(journal.read(tmp_path))
    assert [entry.event for entry in entries] == ["weight", "rollback"]
    assert entries[0].details == {"weight": 5}
    assert entries[1].reason == "5xx" and entries[1].actor == "t"


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal.append(tmp_path, "weight", version="v1", actor="t")
    with journal.journal_path(tmp_path).open("a") as handle:
        handle.write('{"time": 1, "event": "rollb')
    assert [entry.event for entry in journal.read(tmp_path)] == ["weight"]


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    assert list(journal.read(tmp_path / "nowhere")) == []
