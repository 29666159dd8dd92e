"""The deployment journal: one JSON object per line for every weight change, verdict, rollback
and promotion, with time, version, stage, who or what triggered it and why.

Appends are single ``write`` calls of one line on a file opened in append mode, so concurrent
writers (a stage session and a manual ``canary rollback``) never interleave within a line.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.errors import ConfigError
from canary_harness.private import open_private_append

_log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"


def journal_path(run_dir: Path) -> Path:
    """Where the journal of a run directory lives."""
    return Path(run_dir) / JOURNAL_NAME


def default_actor() -> str:
    """Who triggered an action: CANARY_ACTOR, else the CI job, else the local user."""
    if os.environ.get("CANARY_ACTOR"):
        return os.environ["CANARY_ACTOR"]
    if os.environ.get("CI"):
        return "ci"
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class JournalEntry:
    """One line of the journal."""

    time: float
    event: str  # weight | stage_verdict | rollback | promote | rollout_start | rollout_end
    version: str | None
    stage: int | None
    actor: str
    reason: str
    details: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the journal."""
        return {
            "time": self.time,
            "event": self.event,
            "version": self.version,
            "stage": self.stage,
            "actor": self.actor,
            "reason": self.reason,
            "details": dict(self.details),
        }


def append(
    run_dir: Path,
    event: str,
    *,
    version: str | None,
    stage: int | None = None,
    reason: str = "",
    actor: str | None = None,
    **details: Any,
) -> JournalEntry:
    """Append one entry and return it."""
    entry = JournalEntry(time.time(), event, version, stage, actor or default_actor(), reason, details)
    path = journal_path(run_dir)
    line = json.dumps(entry.to_dict(), default=str, sort_keys=True) + "\n"
    with os.fdopen(open_private_append(path), "a", encoding="utf-8") as handle:
        handle.write(line)
    return entry


def read(run_dir: Path, *, strict: bool = False) -> Iterator[JournalEntry]:
    """Every entry in order. A line that is not an entry (torn by a killed writer, not UTF-8, not a JSON
    object with a time and an event) is skipped with a one-line warning naming the file and line; with
    ``strict`` it is a ConfigError instead. Readers that must go on whatever the journal holds (the
    rollout's decision to roll back) use the default."""
    path = journal_path(run_dir)
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                entry = _entry(raw)
            except ValueError as exc:
                if not raw.endswith(b"\n"):
                    continue  # the last line, torn by a killed writer or still being written
                message = f"journal {path} line {number}: {exc}"
                if strict:
                    raise ConfigError(message + " (fix or remove the line)") from None
                _log.warning("%s: line skipped", message)
                continue
            yield entry


def _entry(raw: bytes) -> JournalEntry:
    """One journal line as an entry; ValueError saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("not JSON (torn or foreign line)") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an entry object")
    try:
        details = data.get("details", {})
        return JournalEntry(
            float(data["time"]),
            str(data["event"]),
            data.get("version"),
            data.get("stage"),
            str(data.get("actor", "unknown")),
            str(data.get("reason", "")),
            details if isinstance(details, dict) else {},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a journal entry ({type(exc).__name__}: {exc})") from None
