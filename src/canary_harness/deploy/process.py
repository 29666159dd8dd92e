"""Run service versions as local subprocesses: the ``fragrance-ai`` console script, or a target's command.

Logs: the process's stdout and stderr go to ``spec.log_path``; the service's own structured log
(``--log-file``) goes to a sibling with the suffix ``.jsonl`` (``canary.log`` -> ``canary.jsonl``), so
the two writers never interleave in one file. Each service runs in its own session and is stopped by
its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from canary_harness.deploy import pids
from canary_harness.deploy.health import check_reported_version, health, reported_version
from canary_harness.deploy.pids import port_is_free, tail
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError
from canary_harness.private import open_private_append
from canary_harness.waiting import wait_until

EXECUTABLE = "fragrance-ai"
_HARNESS_ONLY_ENV = ("CANARY_ENV", "CANARY_PRODUCTION_ENV")


def find_executable(name: str = EXECUTABLE) -> str:
    """The service's console script: next to the running interpreter first (same venv), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise BackendError(
        f"executable {name!r} not found next to {sys.executable} or on PATH (install it: pip install -e app)"
    )


def app_log_path(log_path: Path) -> Path:
    """Where the service's own structured log goes, given the stdout/stderr log path."""
    if log_path.suffix == ".jsonl":
        return log_path.with_suffix(".app.jsonl")
    return log_path.with_suffix(".jsonl")


def fill_command(template: tuple[str, ...], spec: ServiceSpec) -> list[str]:
    """A target's argv with its holes filled: {version}, {host}, {port}, {log} (the service's own log
    file) and {python} (the interpreter running the harness); BackendError naming an unknown hole."""
    values = {
        "version": spec.version,
        "host": spec.host,
        "port": str(spec.port),
        "log": str(app_log_path(spec.log_path)),
        "python": sys.executable,
    }
    try:
        return [part.format(**values) for part in template]
    except (KeyError, IndexError, ValueError) as exc:
        raise BackendError(
            f"{spec.role} {spec.version}: command {list(template)!r} has a bad hole ({exc}); "
            f"known: {', '.join('{' + name + '}' for name in values)}"
        ) from None


class ProcessBackend:
    """Backend that runs ``fragrance-ai --host H --port P --version V --log-file F`` as a subprocess."""

    name = "process"

    def __init__(
        self,
        executable: str | None = None,
        *,
        extra_env: dict[str, str] | None = None,
        on_spawn: Callable[[ServiceHandle], None] | None = None,
    ) -> None:
        """``executable`` overrides the console script lookup; ``extra_env`` goes under each spec's env;
        ``on_spawn`` is called with the handle as soon as the process exists, before the health wait
        (``LocalStack`` records it in the state file then)."""
        self._executable = executable
        self._extra_env = dict(extra_env or {})
        self.on_spawn = on_spawn

    def command(self, spec: ServiceSpec) -> list[str]:
        """The argv that starts ``spec``: the target's command, else fragrance-ai's console script."""
        if spec.command:
            return fill_command(spec.command, spec)
        return [
            self._executable or find_executable(),
            "--host", spec.host,
            "--port", str(spec.port),
            "--version", spec.version,
            "--log-file", str(app_log_path(spec.log_path)),
        ]  # fmt: skip

    def start(self, spec: ServiceSpec, *, timeout: float = 30.0) -> ServiceHandle:
        """Start ``spec`` and wait for ``/health`` to report its version; BackendError with the log tail."""
        argv = self.command(spec)
        if not port_is_free(spec.host, spec.port):
            raise BackendError(f"{spec.role} {spec.version}: port {spec.host}:{spec.port} is already in use")
        # The stage session's copy of the services' environment (JSON twins) is not the service's business.
        inherited = {key: value for key, value in os.environ.items() if key not in _HARNESS_ONLY_ENV}
        env = {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            **self._extra_env,
            **dict(spec.env),
            **pids.marker_env(spec.log_path.parent),
        }
        with os.fdopen(open_private_append(spec.log_path), "ab") as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise BackendError(f"{spec.role} {spec.version}: cannot run {argv[0]}: {exc}") from exc
        pids.track_child(proc)
        handle = ServiceHandle(
            role=spec.role,
            version=spec.version,
            url=spec.url,
            pid=proc.pid,
            log_path=spec.log_path,
            app_log_path=app_log_path(spec.log_path),
            pid_start_time=pids.process_start_time(proc.pid),
            backend=self.name,
            probe=spec.probe,
        )

        def ready() -> bool:
            if proc.poll() is not None:
                raise BackendError(f"exited with code {proc.returncode} before becoming healthy")
            data = health(spec.url, timeout=1.0, probe=spec.probe)
            return data is not None and check_reported_version(data, spec.version, spec.probe)

        try:
            if self.on_spawn is not None:
                self.on_spawn(handle)
            wait_until(ready, timeout, 0.05, f"{spec.url}{spec.probe.path}")
        except (TimeoutError, BackendError) as exc:
            self.stop(handle, timeout=5.0)
            raise BackendError(
                f"{spec.role} {spec.version} (PID {proc.pid}, {' '.join(argv)}) did not become healthy: "
                f"{exc}\n--- last lines of {spec.log_path} ---\n{tail(spec.log_path)}"
            ) from exc
        except BaseException:
            # Ctrl-C or any other error during the wait: the child leads its own session, so no signal
            # from the terminal reaches it and nothing else would ever stop it.
            self.stop(handle, timeout=5.0)
            raise
        return handle

    def stop(self, handle: ServiceHandle, *, timeout: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL after ``timeout``. Idempotent; a reused PID is left alone."""
        if handle.pid is None:
            return
        try:
            pids.terminate(handle.pid, start_time=handle.pid_start_time, timeout=timeout)
        except OSError as exc:
            raise BackendError(f"{handle.role} {handle.version} (PID {handle.pid}) did not stop: {exc}") from exc

    def is_running(self, handle: ServiceHandle) -> bool:
        """True if the recorded process is still alive."""
        return handle.pid is not None and pids.is_alive(handle.pid, handle.pid_start_time)

    def is_healthy(self, handle: ServiceHandle) -> bool:
        """True if the process runs and ``/health`` answers healthy."""
        return self.is_running(handle) and health(handle.url, probe=handle.probe) is not None

    def version(self, handle: ServiceHandle) -> str | None:
        """The version the service reports while it answers healthy, else None."""
        return reported_version(handle.url, probe=handle.probe)
