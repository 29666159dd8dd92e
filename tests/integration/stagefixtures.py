"""Run stage sessions (``pytest --canary-version V --stage N``) as real subprocesses on free ports.

A stage session is a whole pytest session, so each one runs as ``python -m pytest`` from the repository
root, in its own process group, with the stack's three ports on free loopback ports (``CANARY_*_PORT``),
its own run directory and a JUnit report to read the release checks' outcomes from. Load the fixture
in a test module with::

    pytest_plugins = ("tests.integration.stagefixtures",)

Teardown, also when a test fails: a session still running gets SIGINT (it rolls back and stops its
load), then SIGKILL for its whole process group after a grace period; ``LocalStack(...).down()`` stops
what the stack recorded; a process still naming the run directory on its command line (a local
Prometheus or a locust orphaned by a killed session) is stopped by its PID.

PYTEST_DONT_REWRITE: the module holds no assertions.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from canary_harness import journal
from canary_harness.config import StackSettings
from canary_harness.deploy import pids
from canary_harness.journal import JournalEntry
from canary_harness.logs import read_events
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_ports

REPO = Path(__file__).resolve().parents[2]
CANARY_VERSION = "v0.2.0"
PRODUCTION_VERSION = "v0.1.0"  # the stack's default production version
# Simulated LLM latency at 5 %: short stages, yet every LLM mode keeps a measurable latency.
LATENCY_ENV = "FRAGRANCE_LATENCY_SCALE=0.05"
# The load these tests were written for: 20 closed-loop users (before --load-rate auto became the default).
OLD_FIXED_LOAD = "0"
# A session gets its observation period plus this long (start, preflight, checks, rollback).
SESSION_MARGIN_S = 120.0
# After SIGINT a session rolls back; it gets this long before its process group is killed.
INTERRUPT_GRACE_S = 45.0
PROMETHEUS_PID_RE = re.compile(r"local Prometheus (http://\S+) \(pid (\d+)\)")


def binomial_bounds(n: int, p: float, z: float = 5.0) -> tuple[int, int]:
    """A z-sigma interval for a Binomial(n, p) count: wide enough never to flake, narrow enough to tell
    5 % from 0 % or 25 % with 1000 requests."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return max(0, math.floor(mean - z * sd)), min(n, math.ceil(mean + z * sd))


def processes_naming(path: Path) -> list[int]:
    """Live processes whose command line contains ``path`` (locust and Prometheus name the run dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if str(path) in pids.cmdline(pid) and pids.is_alive(pid):
                found.append(pid)
    return sorted(found)


@dataclass
class Outcome:
    """One release check as the session's JUnit report tells it."""

    outcome: str  # passed | failed | error | skipped
    message: str


@dataclass
class StageRun:
    """A finished stage session: exit code, output, duration and what it left in its run directory."""

    returncode: int
    output: str
    duration_s: float
    run_dir: Path
    junit: Path

    def describe(self) -> str:
        """The end of the session's output, for assertion messages."""
        return f"exit {self.returncode} after {self.duration_s:.1f} s; output tail:\n{self.output[-4000:]}"

    def journal(self) -> list[JournalEntry]:
        """Every journal entry of the run directory."""
        return list(journal.read(self.run_dir))

    def events(self, event: str) -> list[JournalEntry]:
        """The journal entries of one kind (weight, stage_verdict, rollback...)."""
        return [entry for entry in self.journal() if entry.event == event]

    def record_files(self) -> list[Path]:
        """The stage record files the session wrote."""
        return sorted(path for path in (self.run_dir / "stages").glob("stage-*.json"))

    def record(self) -> StageRecord:
        """The one stage record of this run directory."""
        files = self.record_files()
        if len(files) != 1:
            raise AssertionError(f"expected one stage record, found {files}\n{self.describe()}")
        return StageRecord.read(files[0])

    def outcomes(self) -> dict[str, Outcome]:
        """Release checks by ``module::name`` (e.g. ``test_release_gates::test_5xx_error_rate``)."""
        results: dict[str, Outcome] = {}
        for case in ET.parse(self.junit).getroot().iter("testcase"):
            key = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                node = case.find(kind)
                if node is not None:
                    outcome = {"failure": "failed"}.get(kind, kind)
                    message = f"{node.get('message', '')}\n{node.text or ''}"
                    break
            results[key] = Outcome(outcome, message)
        return results

    def not_passed(self, module: str = "") -> dict[str, Outcome]:
        """Checks that failed or errored, optionally only those of one module."""
        return {
            key: item
            for key, item in self.outcomes().items()
            if item.outcome in ("failed", "error") and key.startswith(module)
        }

    def canary_pid(self) -> int:
        """PID of the canary this stage used, from the startup line of its structured log."""
        log = self.record().canary_log
        if not log:
            raise AssertionError(f"the stage record names no canary log\n{self.describe()}")
        startups = list(read_events(Path(log), "startup"))
        if not startups:
            raise AssertionError(f"no startup event in {log}")
        return int(startups[-1]["pid"])

    def prometheus(self) -> tuple[str, int]:
        """URL and PID of the local Prometheus the session printed."""
        match = PROMETHEUS_PID_RE.search(self.output)
        if match is None:
            raise AssertionError(f"no local Prometheus line in the output\n{self.describe()}")
        return match.group(1), int(match.group(2))


@dataclass
class BackgroundStage:
    """A stage session still running; its output goes to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path
    junit: Path
    started: float
    output_file: IO[bytes]

    def output(self) -> str:
        """What the session printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def interrupt(self) -> None:
        """Ctrl-C as a terminal sends it: SIGINT to the session's whole process group (its load too)."""
        os.killpg(self.process.pid, signal.SIGINT)


class StageRunner:
    """Runs stage sessions of one stack: its own free ports, run directory and environment."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.run_dir = base / "run"
        self.nginx_port, self.production_port, self.canary_port = free_ports(3)
        self._count = 0
        self._running: list[BackgroundStage] = []

    @property
    def base_url(self) -> str:
        """NGINX, where users' traffic enters."""
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def stack(self) -> LocalStack:
        """The stack the sessions recorded in the run directory."""
        return LocalStack(StackSettings(run_dir=self.run_dir))

    def environ(self) -> dict[str, str]:
        """The session's environment: no CANARY_*, PYTEST_* or FRAGRANCE_* from ours; our free ports."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("CANARY_", "PYTEST_", "FRAGRANCE_"))
        }
        env.update(
            CANARY_NGINX_PORT=str(self.nginx_port),
            CANARY_PRODUCTION_PORT=str(self.production_port),
            CANARY_CANARY_PORT=str(self.canary_port),
            CANARY_LOAD_RATE=OLD_FIXED_LOAD,
        )
        return env

    def command(self, stage: int, period: float, extra: Sequence[str], faults: str, junit: Path) -> list[str]:
        """The stage session's argv; ``faults`` goes into the canary's FRAGRANCE_FAULTS."""
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "--canary-version",
            CANARY_VERSION,
            "--stage",
            str(stage),
            "--observation-period",
            f"{period:g}",
            f"--canary-run-dir={self.run_dir}",
            "--canary-env",
            LATENCY_ENV,
            "--production-env",
            LATENCY_ENV,
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "-q",
        ]
        if faults:
            argv += ["--canary-env", f"FRAGRANCE_FAULTS={faults}"]
        return argv + list(extra)

    def start(self, stage: int, period: float, *extra: str, faults: str = "") -> BackgroundStage:
        """Start a session in the background, in its own process group."""
        self._count += 1
        log = self.base / f"session-{self._count}.log"
        junit = self.base / f"session-{self._count}.xml"
        output = log.open("wb")
        process = subprocess.Popen(
            self.command(stage, period, extra, faults, junit),
            cwd=REPO,
            env=self.environ(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        running = BackgroundStage(process, log, junit, time.monotonic(), output)
        self._running.append(running)
        return running

    def wait(self, running: BackgroundStage, timeout: float) -> StageRun:
        """Wait for a session to end (interrupted, then killed, past ``timeout``) and read its results."""
        try:
            returncode = running.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._stop(running)
            raise AssertionError(
                f"stage session still running after {timeout:g} s:\n{running.output()[-4000:]}"
            ) from None
        duration = time.monotonic() - running.started
        running.output_file.close()
        self._running.remove(running)
        return StageRun(returncode, running.output(), duration, self.run_dir, running.junit)

    def run(self, stage: int, period: float, *extra: str, faults: str = "") -> StageRun:
        """Run a whole session and return its results (bounded by the period plus a margin)."""
        return self.wait(self.start(stage, period, *extra, faults=faults), period + SESSION_MARGIN_S)

    def wait_for_output(self, running: BackgroundStage, pattern: str, timeout: float) -> re.Match[str]:
        """Poll the session's output until ``pattern`` appears; fails if the session ends first."""

        def seen() -> re.Match[str] | None:
            if running.process.poll() is not None:
                raise AssertionError(
                    f"the session ended (exit {running.process.returncode}) before "
                    f"printing {pattern!r}:\n{running.output()[-4000:]}"
                )
            return re.search(pattern, running.output())

        match = wait_until(seen, timeout, 0.1, f"{pattern!r} in the session's output")
        if match is None:  # wait_until returns only a truthy value; this narrows the type
            raise AssertionError(f"{pattern!r} not found")
        return match

    def _stop(self, running: BackgroundStage) -> None:
        process = running.process
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            except ProcessLookupError:
                pass
        running.output_file.close()

    def close(self) -> None:
        """Stop running sessions, the recorded stack and any process still naming the run directory."""
        errors: list[BaseException] = []
        for running in list(self._running):
            try:
                self._stop(running)
            except Exception as exc:  # keep cleaning up; report at the end
                errors.append(exc)
        self._running.clear()
        if load_state(self.run_dir) is not None:
            try:
                self.stack.down()
            except Exception as exc:
                errors.append(exc)
        for pid in processes_naming(self.run_dir):
            pids.terminate(pid, start_time=pids.process_start_time(pid), timeout=10)
        if errors:
            raise errors[0]


@pytest.fixture
def stage_runner(tmp_path: Path) -> Iterator[StageRunner]:
    """Runs stage sessions against one stack on free ports in tmp_path; everything is stopped at teardown.

    ``run(stage, period, *pytest_args, faults="k=v,...")`` returns a StageRun; ``start(...)`` returns a
    BackgroundStage to interrupt or watch, finished with ``wait(running, timeout)``.
    """
    runner = StageRunner(tmp_path)
    yield runner
    runner.close()
