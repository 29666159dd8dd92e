"""Runs the locust profiles in subprocesses (locust patches the standard library with gevent, so it is
never imported here) and reads their machine-readable stats back.

One run is either one headless locust process or a headless master plus N local workers bound to
loopback. Every process writes its output to files in the stats directory (never to a pipe nobody
reads), is tracked by PID, and is stopped by PID: SIGTERM to the master makes locust write its stats
and tell the workers to quit; anything still alive after the timeout gets SIGKILL.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from canary_harness.deploy.pids import marker_env
from canary_harness.errors import LoadError
from canary_harness.loadgen.request_mix import REQUESTS_ENV, requests_to_json
from canary_harness.loadgen.settings import LoadSettings, format_mix
from canary_harness.loadgen.stats import LoadStats, build_stats
from canary_harness.loadgen.user_locustfile import USER_LOCUSTFILE_ENV
from canary_harness.ports import free_port

LOCUSTFILE = "fragrance.py"
USER_CLASSES = {"journey": "JourneyUser", "light": "LightUser", "requests": "RequestsUser"}
SAFETY_MARGIN_S = 30.0  # the locustfile's own time cap sits this far beyond -t
WORKER_WAIT_S = 30  # how long a master waits for its local workers to connect before giving up
_TAIL_LINES = 15


def find_locustfile_dir(explicit: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """The locustfile directory: explicit, else $CANARY_LOCUSTFILE, else ./load or this checkout's load/."""
    environ = dict(os.environ) if environ is None else environ
    candidates: list[tuple[Path, str]] = []
    if explicit is not None:
        candidates.append((Path(explicit), "LoadSettings.locustfile"))
    elif environ.get("CANARY_LOCUSTFILE"):
        candidates.append((Path(environ["CANARY_LOCUSTFILE"]), "environment CANARY_LOCUSTFILE"))
    else:
        candidates.append((Path.cwd() / "load", "the working directory"))
        candidates.append((Path(__file__).resolve().parents[3] / "load", "the canary-harness checkout"))
    for path, _source in candidates:
        if (path / LOCUSTFILE).is_file():
            return path.resolve()
    looked = "; ".join(f"{path} (from {source})" for path, source in candidates)
    raise LoadError(f"no locustfile directory with {LOCUSTFILE} found; looked in: {looked}")


def locustfile_arg(settings: LoadSettings, locust_dir: Path) -> str:
    """locust's ``-f``: the harness's locustfile directory, or (profile "locustfile") the harness's locustfile
    for its options and listeners, then the user's file (locust 2 loads comma-separated files in order)."""
    if settings.profile != "locustfile":
        return str(locust_dir)
    assert settings.locustfile is not None  # LoadSettings refuses the profile without its file
    return f"{locust_dir / LOCUSTFILE},{settings.locustfile.resolve()}"


def user_classes(settings: LoadSettings) -> list[str]:
    """The user classes locust runs: the profile's own, or the user's (none named: every class of the file)."""
    return list(settings.user_classes) if settings.profile == "locustfile" else [USER_CLASSES[settings.profile]]


@functools.cache
def locust_available() -> bool:
    """True when locust and gevent are installed here, so ``python -m locust`` can run.

    Found, not imported: importing locust would patch this process with gevent, and importing it in a
    subprocess (as this did before) cost every stage ~0.9 s before its load could start. A locust that is
    installed yet broken fails in its own process, with its output in the LoadError.
    """
    return all(importlib.util.find_spec(name) is not None for name in ("locust", "gevent"))


def locust_argv(
    base_url: str,
    duration_s: float,
    settings: LoadSettings,
    stats_dir: Path,
    locust_dir: Path,
    master_port: int | None = None,
) -> list[str]:
    """The command line of a headless locust run (a master when ``master_port`` is given)."""
    run_time = max(1, math.ceil(duration_s))
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        locustfile_arg(settings, locust_dir),
        "--headless",
        "--only-summary",
        "--host",
        base_url,
        "--users",
        str(settings.users),
        "--spawn-rate",
        f"{settings.spawn_rate:g}",
        "--run-time",
        f"{run_time}s",
        "--exit-code-on-error",
        "0",
        "--json-file",
        str(stats_dir / "locust"),
        "--csv",
        str(stats_dir / "locust"),
        "--logfile",
        str(stats_dir / "locust.log"),
        "--canary-mix",
        format_mix(settings.mix),
        "--canary-rate",
        f"{settings.rate_rps or 0:g}",
        "--canary-max-requests",
        str(settings.max_requests or 0),
        "--canary-max-time",
        f"{run_time + SAFETY_MARGIN_S:g}",
        "--canary-timeout",
        f"{settings.request_timeout_s:g}",
        "--canary-seed",
        str(-1 if settings.seed is None else settings.seed),
        "--canary-stats-file",
        str(stats_dir / "canary.json"),
    ]
    if master_port is not None:
        argv += [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(settings.workers),
            "--expect-workers-max-wait",
            str(WORKER_WAIT_S),
        ]
    return argv + user_classes(settings)


def worker_argv(locust_dir: Path, master_port: int, log_file: Path, locustfile: str | None = None) -> list[str]:
    """The command line of one local worker (it takes every run option from the master); ``locustfile``
    is the master's ``-f`` when it is not ``locust_dir`` (``locustfile_arg``)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        locustfile or str(locust_dir),
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(master_port),
        "--logfile",
        str(log_file),
    ]


def tail(path: Path, lines: int = _TAIL_LINES) -> str:
    """The last lines of a log file ('' if missing), for error messages."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LocustEngine:
    """One locust run: a headless process, or a master and ``settings.workers`` local workers."""

    name = "locust"

    def __init__(self, base_url: str, duration_s: float, settings: LoadSettings, stats_dir: Path) -> None:
        self.base_url, self.duration_s, self.settings = base_url, duration_s, settings
        self.stats_dir = stats_dir
        self._master: subprocess.Popen[bytes] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self._outputs: list[IO[bytes]] = []
        self._terminated = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the processes and return at once; nothing is left running if a start fails."""
        # Profile "locustfile": `locustfile` is the user's file; the harness's own comes from the usual places.
        own = self.settings.locustfile if self.settings.profile != "locustfile" else None
        locust_dir = find_locustfile_dir(own)
        self.stats_dir.mkdir(parents=True, exist_ok=True)
        # Never read a previous run's figures; locust appends to existing log files.
        for stale in ("locust.json", "canary.json", "locust.log", *(f"worker-{i}.log" for i in range(64))):
            (self.stats_dir / stale).unlink(missing_ok=True)
        # A worker without a user would hold back its share of the rate and of the request cap.
        settings = replace(self.settings, workers=min(self.settings.workers, self.settings.users))
        port = free_port() if settings.workers else None
        files = locustfile_arg(settings, locust_dir)
        try:
            self._master = self._spawn(
                locust_argv(self.base_url, self.duration_s, settings, self.stats_dir, locust_dir, port), "locust.out"
            )
            if port is not None:
                for index in range(settings.workers):
                    self._workers.append(
                        self._spawn(
                            worker_argv(locust_dir, port, self.stats_dir / f"worker-{index}.log", files),
                            f"worker-{index}.out",
                        )
                    )
        except OSError as exc:
            self._kill_all()
            raise LoadError(f"could not start locust ({exc})") from exc

    def _spawn(self, argv: list[str], output_name: str) -> subprocess.Popen[bytes]:
        output = (self.stats_dir / output_name).open("wb")
        self._outputs.append(output)
        env = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
        env.update({"CANARY_LOAD_CLIENT": self.settings.client, "PYTHONUNBUFFERED": "1", **marker_env(self.stats_dir)})
        if self.settings.requests:  # the "requests" profile's mix, for RequestsUser in every process
            env[REQUESTS_ENV] = requests_to_json(self.settings.requests)
        if self.settings.profile == "locustfile":  # the harness's locustfile: listeners only, no users of its own
            env[USER_LOCUSTFILE_ENV] = "1"
        # cwd = stats dir: locust also reads ./locust.conf and ./pyproject.toml, which must not leak in.
        return subprocess.Popen(
            argv, cwd=self.stats_dir, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )

    def pids(self) -> list[int]:
        """PIDs of every process of this run (master or single process first)."""
        return [proc.pid for proc in ([self._master] if self._master else []) + self._workers]

    def running(self) -> bool:
        """True while the master (or the single process) runs."""
        return self._master is not None and self._master.poll() is None

    def stop(self, timeout: float) -> LoadStats:
        """End the run now (or collect it if it ended by itself), reap every process, parse the stats."""
        if self._master is None:
            return LoadStats.empty(self.name)
        deadline = time.monotonic() + timeout
        if self._master.poll() is None:
            self._terminated = True
            self._master.send_signal(signal.SIGTERM)
        _wait_or_kill(self._master, deadline)
        for worker in self._workers:
            # Workers quit when the master tells them; give them a moment, then make sure.
            _wait_or_kill(worker, max(deadline, time.monotonic() + 5.0), term_first=True)
        for output in self._outputs:
            output.close()
        return self._read_stats()

    def _kill_all(self) -> None:
        for proc in ([self._master] if self._master else []) + self._workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for output in self._outputs:
            output.close()

    # ------------------------------------------------------------------ results
    def _read_stats(self) -> LoadStats:
        assert self._master is not None
        entries_path, tally_path = self.stats_dir / "locust.json", self.stats_dir / "canary.json"
        code = self._master.returncode
        if not entries_path.exists() or not tally_path.exists():
            if self._terminated and code in (-signal.SIGTERM, -signal.SIGKILL):
                return LoadStats.empty(self.name)  # stopped before locust had set itself up
            raise LoadError(
                f"locust (pid {self._master.pid}) exited with code {code} without writing its stats "
                f"to {self.stats_dir}; last output:\n{tail(self.stats_dir / 'locust.out')}\n"
                f"{tail(self.stats_dir / 'locust.log')}"
            )
        try:
            entries: Any = json.loads(entries_path.read_text(encoding="utf-8"))
            tally: Any = json.loads(tally_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LoadError(f"locust stats in {self.stats_dir} are unreadable ({exc})") from exc
        if not isinstance(entries, list) or not isinstance(tally, dict):
            raise LoadError(f"locust stats in {self.stats_dir} have an unexpected shape")
        return build_stats(self.name, entries, tally)


def _wait_or_kill(proc: subprocess.Popen[bytes], deadline: float, *, term_first: bool = False) -> None:
    """Wait for ``proc`` until ``deadline``; then SIGTERM (if asked) for 5 s more, then SIGKILL."""
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        return
    except subprocess.TimeoutExpired:
        pass
    if term_first:
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()
