"""Local processes by PID: liveness (zombies count as dead), identity checks, TERM-then-KILL; plus
the two helpers every local starter needs (is a port free, the tail of a log).

A PID recorded in a state file may outlive its process and be reused by an unrelated one, so every
recorded PID travels with the process start time read from ``/proc/PID/stat``; a signal is only sent
when both still match.

Every process the harness starts also carries a marker in its environment, ``CANARY_HARNESS_RUN_DIR=<abs
dir>`` (the run directory or a directory inside it), so that ``canary stack down`` can find and stop it
even when the state file that recorded it is lost: ``marked_processes`` reads ``/proc/PID/environ`` (only
readable for our own processes; for an NGINX master, which overwrites that block with its title, the
``-p`` prefix directory in the title) and pairs each PID with its start time, never matching by name.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from canary_harness.waiting import wait_until

HARNESS_MARKER = "CANARY_HARNESS_RUN_DIR"

# Popen objects of the processes this interpreter started, so that they can be reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def track_child(proc: subprocess.Popen[bytes]) -> None:
    """Remember a child started by this interpreter so that stopping it also reaps it."""
    _CHILDREN[proc.pid] = proc


def _reap(pid: int) -> None:
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(pid, None)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """True if ``pid`` runs (zombies are dead) and, when given, still has the recorded start time."""
    _reap(pid)
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (e.g. the workers of an NGINX master)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and fields[1] == str(pid):
                found.append(int(entry.name))
    return sorted(found)


def cmdline(pid: int) -> str:
    """The process title (argv joined by spaces), '' if gone; NGINX rewrites it per role."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def send_signal(pid: int, sig: int, start_time: int | None = None) -> bool:
    """Signal ``pid`` if it is still the recorded process; False when it is already gone."""
    if not is_alive(pid, start_time):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_dead(pid: int, timeout: float, start_time: int | None = None) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True if it did."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        _CHILDREN.pop(pid, None)
        return True
    try:
        wait_until(lambda: not is_alive(pid, start_time), timeout, 0.02, f"process {pid} to exit")
    except TimeoutError:
        return False
    return True


def terminate(
    pid: int,
    *,
    start_time: int | None = None,
    timeout: float = 10.0,
    term_signal: int = signal.SIGTERM,
    also_kill: tuple[tuple[int, int | None], ...] = (),
) -> None:
    """Stop ``pid``: ``term_signal``, wait up to ``timeout``, then SIGKILL (and ``also_kill``: (PID, start
    time) pairs, each signalled only while its start time matches) and wait.

    Idempotent: a process that is gone (or whose PID now belongs to another process) is left alone.
    Raises OSError if the process survives SIGKILL.
    """
    started = time.monotonic()
    if not send_signal(pid, term_signal, start_time):
        _reap(pid)
        return
    if wait_dead(pid, timeout, start_time):
        return
    send_signal(pid, signal.SIGKILL, start_time)
    for extra, extra_start in also_kill:
        send_signal(extra, signal.SIGKILL, extra_start)
    if not wait_dead(pid, 5.0, start_time):
        raise OSError(f"process {pid} still alive {time.monotonic() - started:.1f}s after SIGKILL")


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist), for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port (a bind succeeds, as it would for a server)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so connections in TIME_WAIT do not make the port busy for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def marker_env(owner: Path) -> dict[str, str]:
    """The environment entry that marks a process as started by the harness for ``owner`` (a directory)."""
    return {HARNESS_MARKER: str(Path(owner).resolve())}


def _marker_of(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    prefix = HARNESS_MARKER.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def _nginx_prefix(pid: int) -> str | None:
    """The ``-p`` prefix an NGINX master shows in its title. NGINX writes its process title over its
    environment block, so the marker cannot be read back there; the prefix directory it was started with
    (inside the run directory) identifies it instead. Workers exit with their master."""
    words = cmdline(pid).split()
    if words[:3] != ["nginx:", "master", "process"] or "-p" not in words[:-1]:
        return None
    return words[words.index("-p") + 1].rstrip("/")


def marked_processes(run_dir: Path) -> list[tuple[int, int]]:
    """(PID, start time) of every live process whose marker is ``run_dir`` or a directory inside it.

    This process and its ancestors are never listed (a command run from inside a marked process must not
    stop itself).
    """
    root = str(Path(run_dir).resolve())
    spared, parent = {os.getpid()}, os.getppid()
    while parent > 1 and parent not in spared:
        spared.add(parent)
        fields = _stat_fields(parent)
        parent = int(fields[1]) if fields else 0
    found: list[tuple[int, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        marker = _marker_of(int(entry.name)) or _nginx_prefix(int(entry.name))
        if marker is not None and (marker == root or marker.startswith(root + "/")):
            fields = _stat_fields(int(entry.name))
            if fields and fields[0] not in ("Z", "X"):
                found.append((int(entry.name), int(fields[19])))
    return sorted(found)


def stop_marked(run_dir: Path, timeout: float = 10.0) -> list[int]:
    """Stop (TERM, then KILL) every process marked for ``run_dir``; the PIDs that were stopped.

    Each PID is signalled only while its start time is still the one read when it was found.
    """
    stopped = []
    for pid, start_time in marked_processes(run_dir):
        if is_alive(pid, start_time):
            terminate(pid, start_time=start_time, timeout=timeout)
            stopped.append(pid)
    return stopped
