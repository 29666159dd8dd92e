"""Readers for fragrance-ai's structured logs (one JSON object per line) and their field checks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

REQUIRED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "llm_brief": ("mode", "elapsed_ms"),
    "rl_update": ("algo", "loss", "reward", "entropy", "clip_frac"),
}


def read_events(path: Path, event: str | None = None) -> Iterator[dict[str, Any]]:
    """JSON events from a log file, optionally only one kind; lines that are not JSON are skipped
    (a process may print a traceback or uvicorn banner between events)."""
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and (event is None or data.get("event") == event):
                yield data


def missing_fields(events: Iterable[Mapping[str, Any]], event: str) -> list[str]:
    """Problems with the required fields of ``event`` records: one line per bad record (empty = fine)."""
    problems = []
    for index, record in enumerate(events):
        absent = [name for name in REQUIRED_FIELDS[event] if record.get(name) is None]
        if absent:
            problems.append(f"{event} #{index}: missing {', '.join(absent)} in {json.dumps(record)[:200]}")
    return problems


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a text file, for error messages (empty when it does not exist)."""
    try:
        content = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])
