"""Signals during a stage session: SIGTERM and SIGHUP end it like Ctrl-C, and nothing interrupts a rollback.

CI runners and ``timeout`` send SIGTERM, a closed terminal SIGHUP; Python's default for both is to die
on the spot, leaving the canary at its weight. While a stage is active (from the stage's start until
the session's rollback decision) the controller turns the first SIGINT, SIGTERM or SIGHUP into
``StageInterrupted`` (a KeyboardInterrupt, so pytest ends the session as on Ctrl-C and the rollback
runs). Any later one, and every one while the rollback runs, is deferred: it is reported and does not
interrupt the cleanup or the rollback. Handlers are installed only in the main thread of the controller
and the previous ones are restored afterwards.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StageInterrupted(KeyboardInterrupt):
    """A stage session ended by a signal; handled like Ctrl-C (the session rolls back)."""

    def __init__(self, signum: int) -> None:
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"canary: stage session interrupted by {self.signal_name}")


class SignalGuard:
    """Installs the stage's signal handlers (``arm``), defers signals (``deferred``), restores (``disarm``)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.received: list[str] = []  # every signal seen while armed, in order
        self._raised = False
        self._deferring = False
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def first(self) -> str | None:
        """The signal that ended the session, if one did."""
        return self.received[0] if self.received else None

    def arm(self) -> bool:
        """Install the handlers; False (nothing done) outside the main thread, where Python cannot."""
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return False
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def defer_all(self) -> None:
        """From now on every signal is reported and dropped (the final rollback runs, the session ends)."""
        self._deferring = True

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Signals wait until the block ends (an early rollback); the first one is raised after it."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending is not None and not self._raised:
            signum, self._pending = self._pending, None
            self._raised = True
            raise StageInterrupted(signum)

    def disarm(self) -> None:
        """Restore the handlers that were there before ``arm``."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if self._deferring or self._raised:
            # A second Ctrl-C (or the terminal's and the rollout's copies of one) must not abort a rollback.
            self._pending = self._pending or signum
            self.say(f"canary: {name} received while the stage cleans up or rolls back: deferred until it ends")
            return
        self._raised = True
        raise StageInterrupted(signum)
