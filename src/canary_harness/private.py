"""Private files in the run directory: the directory is 0700, every file the harness writes is 0600.

The run directory holds the services' environment (``service-env.json``), logs that may echo request data,
and the journal. Other users of the machine must not read any of it, so:

* ``private_dir`` creates a directory 0700 (and tightens an existing one);
* ``restrict_umask`` makes every file this process and its children create (NGINX, the services, locust,
  Prometheus) lose group and other permissions: the entry points (``canary`` and the pytest plugin)
  call it once;
* ``write_private`` writes a file atomically, 0600, and fsyncs the file and its directory, so that a
  crash or power cut leaves either the old or the new version, never an empty file (item 9).
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_NO_GROUP_OTHER = 0o077


def restrict_umask() -> int:
    """Add group/other bits to the process umask (files become at most 0600, dirs 0700); the old umask."""
    previous = os.umask(_NO_GROUP_OTHER)
    os.umask(previous | _NO_GROUP_OTHER)
    return previous


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make ``path`` itself 0700; returns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename or a new entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``path`` atomically with mode 0600: temporary file, fsync, rename, fsync of the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # O_CREAT's mode only applies to a new file
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def open_private_append(path: Path) -> int:
    """A descriptor appending to ``path``, created 0600 if missing (logs, the journal)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
