"""One NGINX master run with its own prefix directory, tracked and stopped by PID.

Started as ``nginx -p DIR -c DIR/nginx.conf -e DIR/logs/error.log`` with ``daemon off`` in its own
session, so it outlives a short-lived ``canary stack up`` and is found again through ``DIR/nginx.pid``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from canary_harness.deploy import pids
from canary_harness.deploy.pids import port_is_free
from canary_harness.errors import TrafficError

TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def find_nginx(nginx_bin: str | None = None) -> str:
    """The NGINX executable: the given path or name, else ``nginx`` on PATH, else /usr/sbin/nginx."""
    for candidate in (nginx_bin, "nginx", "/usr/sbin/nginx"):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    raise TrafficError(
        f"nginx executable {nginx_bin or 'nginx'!r} not found on PATH or in /usr/sbin "
        "(install it with: apt-get install -y nginx)"
    )


class NginxProcess:
    """The NGINX binary bound to one prefix directory: test a config, start, reload, stop, find its PID."""

    def __init__(self, nginx_dir: Path, *, nginx_bin: str | None = None) -> None:
        """``nginx_dir`` is the prefix: it holds nginx.conf, conf.d/, logs/, temp/ and nginx.pid."""
        self.dir = Path(nginx_dir).resolve()
        self.binary = find_nginx(nginx_bin)
        self.conf = self.dir / "nginx.conf"
        self.error_log = self.dir / "logs" / "error.log"
        self.output_log = self.dir / "logs" / "nginx.out"
        self.pid_file = self.dir / "nginx.pid"
        self._pid: int | None = None
        self._start_time: int | None = None

    # ------------------------------------------------------------------ layout and checks
    def make_dirs(self) -> None:
        """Create logs/ and temp/* so that NGINX finds every path it writes."""
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        for name in TEMP_DIRS:
            (self.dir / "temp" / name).mkdir(parents=True, exist_ok=True)

    def command(self, conf: Path | None = None) -> list[str]:
        """argv prefix for this directory (``-p``, ``-c``, ``-e``)."""
        return [self.binary, "-p", f"{self.dir}/", "-c", str(conf or self.conf), "-e", str(self.error_log)]

    def test(self, conf: Path | None = None, *, timeout: float = 30.0) -> str:
        """``nginx -t`` on ``conf`` (default: the live nginx.conf); its output, TrafficError if bad."""
        self.make_dirs()
        try:
            result = subprocess.run(
                [*self.command(conf), "-t"], capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TrafficError(f"nginx -t on {conf or self.conf} could not run: {exc}") from exc
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise TrafficError(f"nginx -t rejected {conf or self.conf} (exit {result.returncode}):\n{output}")
        return output

    # ------------------------------------------------------------------ identity
    def _is_our_master(self, pid: int) -> bool:
        title = pids.cmdline(pid)
        return title.startswith("nginx: master process") and str(self.dir) in title

    def _master(self) -> tuple[int, int | None] | None:
        """(PID, start time) of this directory's running master: the tracked one while its recorded start
        time still matches, else the one in nginx.pid if its title names this directory. Every signal goes
        with that start time, so a PID reused by another process is never signalled."""
        if self._pid is not None and pids.is_alive(self._pid, self._start_time):
            return self._pid, self._start_time
        try:
            text = self.pid_file.read_text().strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        if text.isascii() and text.isdigit() and pids.is_alive(int(text)) and self._is_our_master(int(text)):
            return int(text), pids.process_start_time(int(text))
        return None

    @property
    def pid(self) -> int | None:
        """PID of this directory's running master (tracked, else from nginx.pid), None if not running."""
        master = self._master()
        return master[0] if master else None

    @property
    def start_time(self) -> int | None:
        """Start time (clock ticks since boot) of the running master, for the state file."""
        pid = self.pid
        return pids.process_start_time(pid) if pid else None

    def adopt(self, pid: int, start_time: int | None) -> None:
        """Track a master started earlier (by PID and start time from a state file)."""
        self._pid, self._start_time = pid, start_time

    def is_running(self) -> bool:
        """True if this directory's master is alive."""
        return self.pid is not None

    def workers(self) -> list[int]:
        """PIDs of the workers accepting connections (those shutting down after a reload excluded)."""
        master = self.pid
        if master is None:
            return []
        return [p for p in pids.children_of(master) if pids.cmdline(p) == "nginx: worker process"]

    # ------------------------------------------------------------------ lifecycle
    def spawn(self, listen_host: str, listen_port: int) -> int:
        """Start the master in the background (its own session); returns its PID. Does not wait."""
        if self.is_running():
            raise TrafficError(f"nginx already runs for {self.dir} (PID {self.pid})")
        if not port_is_free(listen_host, listen_port):
            raise TrafficError(f"nginx listen address {listen_host}:{listen_port} is already in use")
        self.make_dirs()
        with self.output_log.open("ab") as out:
            try:
                proc = subprocess.Popen(
                    self.command(),
                    env={**os.environ, **pids.marker_env(self.dir)},  # found by `canary stack down`
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise TrafficError(f"could not start {self.binary}: {exc}") from exc
        pids.track_child(proc)
        self._pid, self._start_time = proc.pid, pids.process_start_time(proc.pid)
        return proc.pid

    def exited(self) -> bool:
        """True once a master started by ``spawn`` has exited."""
        return self._pid is not None and not pids.is_alive(self._pid, self._start_time)

    def reload(self) -> int:
        """Send SIGHUP to the master (NGINX re-reads its config, starts new workers); returns its PID."""
        found = self._master()
        if found is None:
            raise TrafficError(f"nginx is not running for {self.dir}: nothing to reload")
        master, started = found
        if not pids.send_signal(master, signal.SIGHUP, started):
            raise TrafficError(f"nginx master PID {master} vanished before the reload")
        return master

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGQUIT: in-flight requests finish), then SIGKILL master and workers. Idempotent."""
        found = self._master()
        if found is None:
            return
        master, started = found
        # Workers with their start times, read while the master (their parent) is known to be ours.
        workers = [(w, pids.process_start_time(w)) for w in pids.children_of(master)]
        try:
            pids.terminate(
                master,
                start_time=started,
                timeout=timeout,
                term_signal=signal.SIGQUIT,
                also_kill=tuple(workers),
            )
        except OSError as exc:
            raise TrafficError(f"nginx master PID {master} did not stop: {exc}") from exc
        # Workers orphaned by a killed master would keep the port: make sure none is left.
        for worker, started in workers:
            pids.terminate(worker, start_time=started, timeout=2.0, term_signal=signal.SIGKILL)
        try:
            self.pid_file.unlink()
        except FileNotFoundError:
            pass
        self._pid = self._start_time = None
