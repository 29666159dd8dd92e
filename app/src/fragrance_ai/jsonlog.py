"""Structured logs: one JSON object per line, to stdout and optionally appended to a file.

Each line is written with a single write call and flushed at once, so that a reader tailing the file
(the harness's log checks) sees events promptly and never half a line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from fragrance_ai.errors import SettingsError


class JsonLogger:
    """Writes events ``{"ts", "event", ..., "version"}`` as JSON lines."""

    def __init__(self, version: str, *, log_file: Path | None = None, stream: IO[str] | None = None):
        self.version = version
        self._stream = stream if stream is not None else sys.stdout
        self._file: IO[str] | None = None
        if log_file is not None:
            try:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                self._file = log_file.open("a", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise SettingsError(f"--log-file: cannot open {str(log_file)!r}: {exc.strerror}") from exc

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event line (``version`` is added unless given)."""
        record: dict[str, Any] = {"ts": round(time.time(), 6), "event": event}
        record.update(fields)
        record.setdefault("version", self.version)
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        for target in (self._stream, self._file):
            if target is None:
                continue
            try:
                target.write(line)
                target.flush()
            except (OSError, ValueError):
                # A closed or broken stdout (reader gone) must not take requests down with it.
                pass

    def close(self) -> None:
        """Close the log file (stdout stays open)."""
        if self._file is not None:
            self._file.close()
            self._file = None
