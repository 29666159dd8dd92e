"""The deployment journal: one JSON object per line for every weight change, verdict, rollback
and promotion, with time, version, stage, who or what triggered it and why.

Appends are single ``write`` calls of one line on a file opened in append mode, so concurrent
writers (a stage session and a manual ``canary rollback``) never interleave within a line.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.private import open_private_append

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


def read(run_dir: Path) -> Iterator[JournalEntry]:
    """Every entry in order; a torn last line (a writer killed mid-write) is skipped."""
    path = journal_path(run_dir)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            yield JournalEntry(
                float(data["time"]), data["event"], data.get("version"), data.get("stage"),
                data.get("actor", "unknown"), data.get("reason", ""), data.get("details", {}),
            )
