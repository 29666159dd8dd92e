"""The rollout lock: one command that changes traffic or the stack per run directory at a time.

Every such command takes it: ``canary rollout``, ``promote``, ``rollback``, ``weights N``, ``stack up``,
``stack down`` and a stage session (``pytest --canary-version``). The stage sessions a rollout runs
inherit the rollout's lock instead of being refused: the rollout passes them a random token in the
environment (``CANARY_LOCK_TOKEN``) and records its SHA-256 in the lock file; a process presenting the
token while the recorded holder is alive runs under the holder's lock.

An exclusive ``fcntl.flock`` on ``<run_dir>/rollout.lock``, taken without waiting: a second rollout is
refused at once with the holder's pid, version and start time, which the holder writes into the file.
The kernel releases a flock when its holder dies, so a lock file left behind by a killed process never
blocks the next rollout; its stale contents are simply overwritten.

The file is never deleted: removing it while another process has it open would let two processes each
lock a different inode of the same name.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from canary_harness.errors import RolloutError
from canary_harness.journal import default_actor

LOCK_NAME = "rollout.lock"
TOKEN_ENV = "CANARY_LOCK_TOKEN"


def lock_path(run_dir: Path) -> Path:
    """Where the rollout lock of a run directory lives."""
    return Path(run_dir) / LOCK_NAME


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) the lock, as written into the lock file."""

    pid: int
    version: str
    started: str  # ISO 8601, UTC
    actor: str
    command: str = "rollout"
    token_sha256: str = ""  # of the token children inherit the lock with ("" = not inheritable)

    def describe(self) -> str:
        """``rollout of v0.2.0 already running (pid 1234, started ...)``: the refusal's first half."""
        what = f"{self.command} of {self.version}" if self.version else self.command
        return f"{what} already running (pid {self.pid}, started {self.started}, by {self.actor})"


def _parse_holder(text: str) -> LockHolder | None:
    """The holder recorded in the file; None when empty or half-written (the holder is writing it)."""
    try:
        data = json.loads(text)
        return LockHolder(
            int(data["pid"]),
            str(data["version"]),
            str(data["started"]),
            str(data["actor"]),
            str(data.get("command", "rollout")),
            str(data.get("token_sha256", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RolloutLock:
    """Context manager holding the rollout lock of ``run_dir`` for the life of a rollout.

    ``RolloutError`` on entry when another process holds it. The descriptor is not inherited by child
    processes (Python opens files close-on-exec), so a stage session or a server started during the
    rollout never keeps the lock alive after the rollout ends.
    """

    def __init__(
        self, run_dir: Path, *, version: str, command: str = "rollout", environ: Mapping[str, str] | None = None
    ) -> None:
        """Bind to ``<run_dir>/rollout.lock`` (created on acquire); ``version`` is what is rolled out,
        ``command`` what holds the lock (named in a refusal); ``environ`` is where an inherited token is
        looked for (default: ours)."""
        self.path = lock_path(run_dir)
        self.version = version
        self.command = command
        self._environ = os.environ if environ is None else environ
        self._fd: int | None = None
        self.inherited_from: LockHolder | None = None
        self.token: str | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now (itself or inherited from a parent rollout)."""
        return self._fd is not None or self.inherited_from is not None

    def child_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus the token that lets a child (a rollout's stage session) inherit this lock."""
        if self._fd is None or self.token is None:
            raise RolloutError(f"rollout lock {self.path} is not held by this process: nothing to inherit")
        return {**base, TOKEN_ENV: self.token}

    def acquire(self) -> LockHolder:
        """Take the lock without waiting and record this process as its holder."""
        if self.held:
            raise RolloutError(f"rollout lock {self.path} is already held by this process")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _parse_holder(_read_all(fd))
            os.close(fd)
            if holder is not None and not _alive(holder.pid):
                holder = None  # a dead holder's record: the live one has not written its own yet
            token = self._environ.get(TOKEN_ENV, "")
            if (
                holder is not None
                and token
                and holder.token_sha256
                and hmac.compare_digest(_sha256(token), holder.token_sha256)
            ):
                self.inherited_from = holder  # a stage session of the rollout that holds the lock
                return holder
            who = holder.describe() if holder else f"a rollout is already running (lock {self.path} held)"
            raise RolloutError(f"{who}; wait for it or stop it") from None
        except OSError as exc:
            os.close(fd)
            raise RolloutError(f"cannot lock {self.path}: {exc}") from exc
        self.token = secrets.token_hex(16)
        holder = LockHolder(
            pid=os.getpid(),
            version=self.version,
            started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            actor=default_actor(),
            command=self.command,
            token_sha256=_sha256(self.token),
        )
        # Same inode, rewritten in place: the lock is on the open file, not on its name.
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder.__dict__, sort_keys=True) + "\n").encode(), 0)
        self._fd = fd
        return holder

    def release(self) -> None:
        """Clear the holder record and let go of the lock. Idempotent."""
        self.inherited_from = None
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            # Closing the last descriptor of the open file releases the flock.
            os.close(fd)

    def __enter__(self) -> RolloutLock:
        """Acquire; RolloutError if another rollout holds the lock."""
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release, whatever happened inside."""
        self.release()


def _read_all(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", errors="replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
