"""The workers' broker: a ``redis-server`` of the stack's own, on loopback, with its data directory in the
run directory, recorded (PID and start time) and stopped by PID like NGINX.

It keeps nothing on disk (``--save ""``, no AOF): the queues live as long as the stack does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.deploy import pids
from canary_harness.errors import BackendError
from canary_harness.private import private_dir
from canary_harness.waiting import wait_until

EXECUTABLE = "redis-server"
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BrokerRecord:
    """A running redis-server the harness started."""

    host: str
    port: int
    pid: int
    pid_start_time: int | None
    dir: Path

    @property
    def url(self) -> str:
        """The URL workers and the API connect to."""
        return f"redis://{self.host}:{self.port}/0"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"host": self.host, "port": self.port, "pid": self.pid,
                "pid_start_time": self.pid_start_time, "dir": str(self.dir)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BrokerRecord:
        """Inverse of ``to_json`` (KeyError/ValueError on a malformed entry: the caller names the file)."""
        start = data.get("pid_start_time")
        return cls(str(data["host"]), int(data["port"]), int(data["pid"]),
                   int(start) if start is not None else None, Path(str(data["dir"])))  # fmt: skip

    def is_running(self) -> bool:
        """True while the recorded process lives."""
        return pids.is_alive(self.pid, self.pid_start_time)


def ping(url: str, timeout: float = 1.0) -> bool:
    """True if the broker at ``url`` answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_broker(directory: Path, host: str, port: int) -> BrokerRecord:
    """Start redis-server on ``host:port`` with ``directory`` as its data dir; waits for PING.

    BackendError (with the end of its log) if it cannot start; nothing is left running then."""
    executable = shutil.which(EXECUTABLE)
    if executable is None:
        raise BackendError(f"{EXECUTABLE!r} not found on PATH (apt-get install redis-server: scripts/install.sh)")
    if not pids.port_is_free(host, port):
        raise BackendError(f"broker: port {host}:{port} is already in use")
    private_dir(directory)
    log = directory / "redis.log"
    argv = [executable, "--bind", host, "--port", str(port), "--dir", str(directory), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", "--logfile", str(log)]  # fmt: skip
    env = {**os.environ, **pids.marker_env(directory)}
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env, start_new_session=True, close_fds=True)  # fmt: skip
    except OSError as exc:
        raise BackendError(f"broker: cannot run {executable}: {exc}") from exc
    pids.track_child(proc)
    record = BrokerRecord(host, port, proc.pid, pids.process_start_time(proc.pid), directory)

    def up() -> bool:
        if proc.poll() is not None:
            raise BackendError(f"exited with code {proc.returncode}")
        return ping(record.url)

    try:
        wait_until(up, START_TIMEOUT_S, 0.05, f"{record.url} to answer PING")
    except (TimeoutError, BackendError) as exc:
        stop_broker(record)
        raise BackendError(
            f"broker redis-server (PID {proc.pid}, {record.url}) did not start: {exc}\n"
            f"--- last lines of {log} ---\n{pids.tail(log)}"
        ) from exc
    return record


def stop_broker(record: BrokerRecord, timeout: float = 10.0) -> None:
    """SIGTERM by PID, SIGKILL after ``timeout``; idempotent."""
    try:
        pids.terminate(record.pid, start_time=record.pid_start_time, timeout=timeout)
    except OSError as exc:
        raise BackendError(f"broker redis-server (PID {record.pid}) did not stop: {exc}") from exc
