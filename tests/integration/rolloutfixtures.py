"""Helpers and fixtures for driving ``canary rollout``, ``promote`` and ``rollback`` as a user does.

Every command runs as a real ``canary`` process (the console script's ``main``) from the repository root,
on three free loopback ports passed through ``CANARY_NGINX_PORT`` / ``CANARY_PRODUCTION_PORT`` /
``CANARY_CANARY_PORT``. Load them in a test module with::

    pytest_plugins = ("tests.integration.rolloutfixtures",)

Teardown, also when a test fails: a rollout still running in the background is killed with its whole
process group (it leads its own session, so the group holds exactly the rollout, its stage session and
that session's load processes), then ``canary stack down --run-dir DIR`` stops what the stack recorded.

PYTEST_DONT_REWRITE: the module holds no assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from canary_harness import journal
from canary_harness.journal import JournalEntry
from canary_harness.stack_state import StackState, load_state
from canary_harness.traffic.probe import SplitCount, probe_split
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_ports

REPO = Path(__file__).resolve().parents[2]
CLI_ENTRY = "import sys; from canary_harness.cli import main; sys.exit(main())"
CANARY_VERSION = "v0.2.0"
PRODUCTION_VERSION = "v0.1.0"
# Simulated LLM latency at 5 %: fast stages, yet every LLM mode still has a measurable latency.
LATENCY_ENV = "FRAGRANCE_LATENCY_SCALE=0.05"
SERVICE_FLAGS = ("--canary-env", LATENCY_ENV, "--production-env", LATENCY_ENV)
FAULTY_FLAGS = ("--canary-env", "FRAGRANCE_FAULTS=error_rate=0.2")
# Bounds for one CLI command and for a whole background rollout.
COMMAND_TIMEOUT_S = 90.0
ROLLOUT_TIMEOUT_S = 150.0


def process_group_members(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name: state, ppid, pgrp, ...
        fields = raw[raw.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


@dataclass
class BackgroundRollout:
    """A ``canary rollout`` running in the background; its output goes to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path
    _output: IO[bytes]

    @property
    def pid(self) -> int:
        """PID of the rollout process (also its process group id)."""
        return self.process.pid

    def output(self) -> str:
        """Everything the rollout and its stage sessions printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float = ROLLOUT_TIMEOUT_S) -> int:
        """Wait for the rollout to exit; its exit code."""
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is not None:
                self._output.close()

    def kill_group(self) -> None:
        """SIGKILL the rollout with its stage session and load processes, and wait until all are gone."""
        if self.process.poll() is None:
            # The leader still runs, so the group id cannot have been reused by anything else.
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._output.close()
        wait_until(
            lambda: not process_group_members(self.pid),
            15,
            describe=f"every process of the rollout's group {self.pid} to exit",
        )


@dataclass
class RolloutCli:
    """Runs ``canary`` commands against one run directory on free ports, from the repository root."""

    run_dir: Path
    logs_dir: Path
    nginx_port: int
    production_port: int
    canary_port: int
    background: list[BackgroundRollout] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The commands' environment: ours minus any CANARY_* setting, plus this stack's ports."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("CANARY_")}
        env.update(
            {
                "CANARY_NGINX_PORT": str(self.nginx_port),
                "CANARY_PRODUCTION_PORT": str(self.production_port),
                "CANARY_CANARY_PORT": str(self.canary_port),
                # The load these tests were written for: 20 closed-loop users, not --load-rate auto's.
                "CANARY_LOAD_RATE": "0",
                # Services started by `canary stack up` inherit this; stage sessions also get it as flags.
                "FRAGRANCE_LATENCY_SCALE": "0.05",
                # Stage output reaches the log file as it is printed, so tests can wait for it.
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    @property
    def base_url(self) -> str:
        """The service through the stack's NGINX."""
        return f"http://127.0.0.1:{self.nginx_port}"

    def argv(self, *args: str) -> list[str]:
        """The ``canary`` command line, with ``--run-dir`` added before any ``--`` (pytest arguments)."""
        words = list(args)
        cut = words.index("--") if "--" in words else len(words)
        words[cut:cut] = ["--run-dir", str(self.run_dir)]
        return [sys.executable, "-c", CLI_ENTRY, *words]

    def __call__(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run one command to completion (bounded by ``timeout``) and capture its output."""
        return subprocess.run(
            self.argv(*args), cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, *args: str) -> BackgroundRollout:
        """Start a command in the background, in its own session; stopped at teardown if still running."""
        log = self.logs_dir / f"background-{len(self.background)}.log"
        output = log.open("wb")
        process = subprocess.Popen(
            self.argv(*args),
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        run = BackgroundRollout(process, log, output)
        self.background.append(run)
        return run

    # ------------------------------------------------------------------ what the stack looks like now
    def journal(self) -> list[JournalEntry]:
        """Every journal entry of the run directory, oldest first."""
        return list(journal.read(self.run_dir))

    def state(self) -> StackState | None:
        """The stack recorded in the run directory."""
        return load_state(self.run_dir)

    def probe(self, requests: int = 200) -> SplitCount:
        """Who serves ``requests`` real GET /health through NGINX."""
        return probe_split(self.base_url, requests)

    def wait_for_entry(
        self,
        describe: str,
        match: Callable[[JournalEntry], bool],
        timeout: float = 60.0,
        run: BackgroundRollout | None = None,
    ) -> JournalEntry:
        """The first journal entry matching ``match``; fails fast if ``run`` exits before it appears."""

        def found() -> JournalEntry | None:
            entry = next((item for item in self.journal() if match(item)), None)
            if entry is None and run is not None and run.process.poll() is not None:
                raise AssertionError(
                    f"the rollout exited ({run.process.returncode}) before {describe}:\n{run.output()[-4000:]}"
                )
            return entry

        entry = wait_until(found, timeout, interval=0.1, describe=describe)
        assert entry is not None  # wait_until returns only truthy values
        return entry

    def wait_for_output(self, run: BackgroundRollout, text: str, timeout: float = 60.0) -> None:
        """Wait until the background command has printed ``text``."""

        def printed() -> bool:
            if text in run.output():
                return True
            if run.process.poll() is not None:
                raise AssertionError(
                    f"the rollout exited ({run.process.returncode}) before printing {text!r}:\n{run.output()[-4000:]}"
                )
            return False

        wait_until(printed, timeout, interval=0.1, describe=f"{text!r} in the rollout's output")


def rollout_args(
    *flags: str,
    version: str = CANARY_VERSION,
    stages: str | None = None,
    period: float = 4,
    pytest_args: Sequence[str] = ("-q",),
) -> tuple[str, ...]:
    """``rollout --version V [--stages S] --observation-period P <fast services> FLAGS -- PYTEST_ARGS``."""
    args = ["rollout", "--version", version, "--observation-period", f"{period:g}", *SERVICE_FLAGS, *flags]
    if stages is not None:
        args += ["--stages", stages]
    return (*args, "--", *pytest_args)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """The end of a command's output, for assertion messages."""
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-2000:]}"


@contextmanager
def rollout_cli_in(base: Path) -> Iterator[RolloutCli]:
    """A RolloutCli on free ports with its run directory in ``base``; everything stopped on exit."""
    nginx_port, production_port, canary_port = free_ports(3)
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cli = RolloutCli(base / "run", logs, nginx_port, production_port, canary_port)
    try:
        yield cli
    finally:
        for run in cli.background:
            run.kill_group()
        started = time.monotonic()
        down = cli("stack", "down", timeout=60)
        if down.returncode != 0:
            raise RuntimeError(f"canary stack down failed after {time.monotonic() - started:.0f}s: {describe(down)}")


@pytest.fixture
def rollout_cli(tmp_path: Path) -> Iterator[RolloutCli]:
    """A ``canary`` runner for one test: its own run directory and free ports; its stack (and any
    background rollout) is stopped by PID at teardown."""
    with rollout_cli_in(tmp_path) as cli:
        yield cli
