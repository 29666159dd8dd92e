"""A long wait shown while it lasts: image builds, a stack starting, a Prometheus becoming ready.

On a person's terminal (a TTY, not CI, TERM not dumb) a spinner with the elapsed time redraws one line;
elsewhere (CI logs, files, pytest's captured output) plain lines: one when the wait starts, one every
``every_s`` seconds with the time so far, one at the end with how long it took. Lines printed during the
wait go through :meth:`LongWait.line` so that they never mix with the spinner.

    with LongWait("building fragrance-ai-app:v0.2.0") as wait:
        builder.build(version, say=wait.line)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

FRAMES = "|/-\\"
# A plain progress line this often: enough to show a CI log is alive, few enough not to flood it.
LINE_EVERY_S = 10.0
SPIN_EVERY_S = 0.1


def is_terminal(stream: TextIO) -> bool:
    """A person watching: the stream is a TTY, not in CI, and the terminal can redraw a line."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb")


class LongWait:
    """A context manager showing ``label`` and the elapsed time until the block ends.

    ``say`` (e.g. a pytest session's console line) forces plain lines through it; otherwise they go to
    ``stream`` (default stderr), as a spinner when that is a terminal.
    """

    def __init__(
        self,
        label: str,
        *,
        say: Callable[[str], None] | None = None,
        stream: TextIO | None = None,
        every_s: float = LINE_EVERY_S,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.spinner = say is None and is_terminal(self.stream)
        self._say = say
        self.every_s = every_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    @property
    def elapsed_s(self) -> float:
        """Seconds since the wait began."""
        return time.monotonic() - self._started

    def _emit(self, text: str) -> None:
        if self._say is not None:
            self._say(text)
        else:
            print(text, file=self.stream, flush=True)

    def line(self, text: str) -> None:
        """Print a full line during the wait (above the spinner on a terminal)."""
        with self._lock:
            if self.spinner:
                self.stream.write("\r\x1b[K")
            self._emit(text)

    def _run(self) -> None:
        frame = 0
        pause = SPIN_EVERY_S if self.spinner else self.every_s
        while not self._stop.wait(pause):
            with self._lock:
                if self.spinner:
                    self.stream.write(f"\r{FRAMES[frame % len(FRAMES)]} {self.label} {self.elapsed_s:.0f} s")
                    self.stream.flush()
                    frame += 1
                else:
                    self._emit(f"{self.label}: {self.elapsed_s:.0f} s so far")

    def __enter__(self) -> LongWait:
        self._started = time.monotonic()
        if not self.spinner:
            self._emit(f"{self.label} ...")
        # A daemon thread: an interrupted wait never keeps the process alive; __exit__ joins it anyway.
        self._thread = threading.Thread(target=self._run, name=f"long wait: {self.label}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        how = "done" if exc_type is None else "stopped"
        self.line(f"{self.label}: {how} after {self.elapsed_s:.1f} s")
