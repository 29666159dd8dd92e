"""Fault matrix: however a stage session ends, the canary does not keep its traffic.

Each case runs a real stage session (``python -m pytest --canary-version v0.2.0 --stage 25`` as a
subprocess, its own process group, free ports) against one real stack shared by the module (NGINX,
production and canary as processes), ends it one way, and asserts from outside:

* by traffic: NGINX reports 0 % and 200 requests through it reach production only, none the canary;
* by process table: the canary's PID is gone and the state file records no canary;
* by journal: exactly one ``rollback`` entry since the case started (weight 0, canary stopped), or, where
  the rollback cannot be proven (NGINX killed, production dead), ``rollback_failed`` and exit 3.

A failed stage (verdict FAIL, harness error, canary crashed or hung) also proves that the canary's
traffic was withdrawn before the release checks ran: a check in the case's own directory probes NGINX
while the checks run and writes what it saw to a file the test reads.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from canary_harness import journal
from canary_harness.deploy import pids
from canary_harness.journal import JournalEntry
from canary_harness.logs import read_events
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.stack_state import load_state
from canary_harness.traffic.probe import probe_split
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_port
from tests.integration.stagefixtures import REPO, BackgroundStage, StageRun, StageRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGE = 25
VERIFY_REQUESTS = 200
PROGRESS_LINE = rf"\[stage\s+{STAGE}% t="  # the observation loop's first tick
PROBE_ENV = "EXITPATHS_PROBE"
# Target of the issue: weight 0 in force at most 1 s after the stage failed.
VERDICT_TO_ZERO_MAX_S = 1.0
SESSION_TIMEOUT_S = 150.0

PROBE_CHECK = '''
"""Runs as a release check: what reaches the canary through NGINX while the checks run."""
import json
import os
from pathlib import Path

from canary_harness.traffic.probe import probe_split


def test_traffic_while_the_checks_run(canary_stage):
    split = probe_split(canary_stage.nginx_url, 200)
    Path(os.environ["EXITPATHS_PROBE"]).write_text(json.dumps(split.to_dict()))
'''
CANARY_CHECK = """
def test_canary_answers(canary_client):
    canary_client.get("/health").raise_for_status()
"""
FAILING_CHECK = """
def test_a_release_check_fails(canary_stage):
    assert canary_stage.canary_version == "not this one", "a failing release check"
"""
EXIT_42_CONFTEST = """
import pytest


def pytest_canary_verdict(config, record):
    pytest.exit("a site plugin ends the session with its own status", returncode=42)
"""
FOREIGN_SESSIONFINISH_CONFTEST = """
def pytest_sessionfinish(session, exitstatus):
    raise RuntimeError("a foreign plugin's sessionfinish fails")
"""
# Arms pytest-timeout's own signal-method timer (its hook, its SIGALRM handler) when the weight is
# applied, so that it fires in the middle of the observation as a per-test timeout would.
TIMEOUT_CONFTEST = """
import types

from pytest_timeout import Settings


def pytest_canary_stage_applied(config, record):
    item = types.SimpleNamespace(config=config, nodeid="canary-stage")
    config.hook.pytest_timeout_set_timer(
        item=item, settings=Settings(timeout=2.0, method="signal", func_only=False,
                                     disable_debugger_detection=True))
"""


class ExitPathRunner(StageRunner):
    """A StageRunner whose sessions also get ``EXITPATHS_PROBE`` (where the probe check writes)."""

    probe_file: Path

    def environ(self) -> dict[str, str]:
        """The stage runner's environment plus the probe file."""
        return {**super().environ(), PROBE_ENV: str(self.probe_file)}


@dataclass
class Case:
    """One exit cause: how the session is run and ended, and what it must leave."""

    period: float
    files: dict[str, str] = field(default_factory=dict)  # files of the case's check directory
    extra: tuple[str, ...] = ()
    faults: str = ""
    # Called once the observation runs: (runner, session) -> PID to SIGCONT at teardown, if any.
    act: Callable[[ExitPathRunner, BackgroundStage], int | None] | None = None
    exit_codes: tuple[int, ...] = (1,)
    reason: str = ""  # in the rollback entry's reason
    early: bool = False  # the stage failed: traffic withdrawn before the release checks
    rollback_fails: bool = False  # the rollback cannot be proven: exit 3, rollback_failed
    journal_writable: bool = True


def _signal_session(signum: int, times: int = 1) -> Callable[[ExitPathRunner, BackgroundStage], int | None]:
    def act(runner: ExitPathRunner, running: BackgroundStage) -> int | None:
        os.kill(running.process.pid, signum)  # the pytest process only, as CI runners and `timeout` do
        if times > 1:
            runner.wait_for_output(running, "rolling back", 60.0)
            for _ in range(times - 1):
                if running.process.poll() is None:
                    os.kill(running.process.pid, signum)
        return None

    return act


def _stop_canary_process(runner: ExitPathRunner, _running: BackgroundStage) -> int | None:
    state = load_state(runner.run_dir)
    assert state is not None and state.canary is not None and state.canary.pid is not None
    os.kill(state.canary.pid, signal.SIGSTOP)  # hung: alive, holds its port, answers nothing
    return state.canary.pid


def _kill(role: str) -> Callable[[ExitPathRunner, BackgroundStage], int | None]:
    def act(runner: ExitPathRunner, _running: BackgroundStage) -> int | None:
        state = load_state(runner.run_dir)
        assert state is not None
        handle = state.nginx if role == "nginx" else state.production
        assert handle is not None and handle.pid is not None
        # NGINX as a whole: its workers would go on serving (and holding the port) without the master.
        workers = runner.stack.traffic().process.workers() if role == "nginx" else []
        for pid in [handle.pid, *workers]:
            pids.terminate(pid, start_time=pids.process_start_time(pid), term_signal=signal.SIGKILL)
        return None

    return act


CHECKS_FAIL = {"test_probe.py": PROBE_CHECK, "test_fails.py": FAILING_CHECK}
CASES = {
    "failing-release-check": Case(3, CHECKS_FAIL, reason="pytest exit status 1 (TESTS_FAILED)"),
    "verdict-fail": Case(
        40, {"test_probe.py": PROBE_CHECK}, faults="error_rate=0.2", reason="verdict FAIL", early=True
    ),
    "harness-error": Case(
        40,
        {"test_probe.py": PROBE_CHECK},
        reason="unreachable",
        early=True,
        extra=("--prometheus-url", f"http://127.0.0.1:{free_port()}"),
    ),
    "sigint": Case(
        60, CHECKS_FAIL, act=_signal_session(signal.SIGINT), exit_codes=(2,), reason="interrupted by SIGINT"
    ),
    "sigterm": Case(
        60, CHECKS_FAIL, act=_signal_session(signal.SIGTERM), exit_codes=(2,), reason="interrupted by SIGTERM"
    ),
    "sighup": Case(
        60, CHECKS_FAIL, act=_signal_session(signal.SIGHUP), exit_codes=(2,), reason="interrupted by SIGHUP"
    ),
    # The second SIGTERM lands during the rollback (deferred) or after it (the default handler again).
    "sigterm-twice": Case(
        60,
        CHECKS_FAIL,
        act=_signal_session(signal.SIGTERM, times=2),
        exit_codes=(2, -signal.SIGTERM),
        reason="interrupted by SIGTERM",
    ),
    "pytest-timeout": Case(60, {"conftest.py": TIMEOUT_CONFTEST, **CHECKS_FAIL}, reason="Timeout"),
    "pytest-exit-42": Case(
        3, {"conftest.py": EXIT_42_CONFTEST, **CHECKS_FAIL}, exit_codes=(42,), reason="pytest exit status 42"
    ),
    # Its own sessionfinish raises, and junitxml (a later --junitxml wins) cannot write its report.
    "foreign-sessionfinish": Case(
        3,
        {"conftest.py": FOREIGN_SESSIONFINISH_CONFTEST, **CHECKS_FAIL},
        extra=("--junitxml=/dev/null/report.xml",),
        exit_codes=(1, 3),
        reason="pytest exit status 1",
    ),
    # The stage's first weight entry fails: a harness error (traffic withdrawn at once), not a crash.
    "unwritable-journal": Case(3, CHECKS_FAIL, journal_writable=False, early=True),
    "canary-crash": Case(
        40, {"test_probe.py": PROBE_CHECK}, faults="crash_after_s=10", reason="unreachable", early=True
    ),
    "canary-hung": Case(
        40,
        {"test_probe.py": PROBE_CHECK, "test_canary.py": CANARY_CHECK},
        act=_stop_canary_process,
        reason="unreachable",
        early=True,
    ),
    "nginx-killed": Case(6, CHECKS_FAIL, act=_kill("nginx"), exit_codes=(3,), rollback_fails=True),
    "production-dead": Case(
        40, {"test_probe.py": PROBE_CHECK}, act=_kill("production"), exit_codes=(3,), rollback_fails=True
    ),
}


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExitPathRunner]:
    """One stack for the whole matrix; every process it started is stopped at the end."""
    stage_runner = ExitPathRunner(tmp_path_factory.mktemp("exitpaths"))
    yield stage_runner
    stage_runner.close()


def _entries_since(run_dir: Path, since: float) -> list[JournalEntry]:
    return [entry for entry in journal.read(run_dir) if entry.time >= since]


def _record_since(run_dir: Path, since: float) -> StageRecord:
    files = [path for path in (run_dir / "stages").glob("stage-*.json") if path.stat().st_mtime >= since]
    assert files, f"no stage record written in {run_dir / 'stages'} by this case"
    return StageRecord.read(max(files, key=lambda path: path.stat().st_mtime))


def _canary_pid(record: StageRecord) -> int:
    assert record.canary_log, "the stage record names no canary log"
    startups = list(read_events(Path(record.canary_log), "startup"))
    assert startups, f"no startup event in {record.canary_log}"
    return int(startups[-1]["pid"])


def _junit_cases(path: Path) -> dict[str, tuple[str, float]]:
    """name -> (message of its failure/error, or "passed"; seconds)."""
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        message = "passed"
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                message = f"{kind}: {node.get('message', '')}"
        found[str(case.get("name"))] = (message, float(case.get("time", "0")))
    return found


@pytest.mark.parametrize("name", list(CASES))
def test_exit_path_leaves_no_traffic_on_the_canary(runner: ExitPathRunner, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    checks = tmp_path / "checks"
    checks.mkdir()
    for filename, text in case.files.items():
        (checks / filename).write_text(textwrap.dedent(text))
    runner.probe_file = tmp_path / "probe.json"
    journal_file = journal.journal_path(runner.run_dir)
    hung_pid: int | None = None
    since = time.time()
    try:
        if not case.journal_writable:
            runner.run_dir.mkdir(parents=True, exist_ok=True)
            journal_file.unlink(missing_ok=True)
            journal_file.mkdir()  # every append fails (IsADirectoryError), as on a full or read-only disk
        # The repository's pytest.ini still applies (markers, pytest-timeout's default) to checks kept outside it.
        running = runner.start(
            STAGE, case.period, "-c", str(REPO / "pytest.ini"), str(checks), *case.extra, faults=case.faults
        )
        if case.act is not None:
            runner.wait_for_output(running, PROGRESS_LINE, 90.0)
            hung_pid = case.act(runner, running)
        run = runner.wait(running, case.period + SESSION_TIMEOUT_S)
        assert run.returncode in case.exit_codes, run.describe()
        record = _record_since(runner.run_dir, since)
        canary_pid = _canary_pid(record)
        if case.rollback_fails:
            _assert_rollback_failed(runner, run, since, canary_pid, name)
            return
        _assert_rolled_back(runner, run, case, since, canary_pid)
        if case.early:
            _assert_withdrawn_before_checks(runner, run, record)
        if name == "canary-hung":
            message, seconds = _junit_cases(run.junit)["test_canary_answers"]
            assert "canary unreachable" in message and seconds < 5.0, (message, seconds, run.describe())
    finally:
        if hung_pid is not None and pids.is_alive(hung_pid):
            os.kill(hung_pid, signal.SIGCONT)
        if journal_file.is_dir():
            journal_file.rmdir()
        if name in ("nginx-killed", "production-dead", "canary-hung") and load_state(runner.run_dir):
            runner.stack.down()  # the next case starts a fresh stack


def _assert_no_canary_traffic(runner: ExitPathRunner) -> None:
    assert runner.stack.traffic().canary_weight() == 0
    split = probe_split(runner.base_url, VERIFY_REQUESTS, concurrency=2)
    assert (split.canary, split.production, split.failures) == (0, VERIFY_REQUESTS, 0), split.to_dict()


def _assert_rolled_back(runner: ExitPathRunner, run: StageRun, case: Case, since: float, canary_pid: int) -> None:
    _assert_no_canary_traffic(runner)
    state = load_state(runner.run_dir)
    assert state is not None and state.canary is None, f"the canary is still recorded\n{run.describe()}"
    wait_until(lambda: not pids.is_alive(canary_pid), 15.0, describe=f"canary PID {canary_pid} to be gone")
    if not case.journal_writable:
        assert not any(journal.journal_path(runner.run_dir).iterdir())
        assert "journal" in run.output and "rolled back v0.2.0: weight 0% in force" in run.output, run.describe()
        return
    entries = _entries_since(runner.run_dir, since)
    rollbacks = [entry for entry in entries if entry.event == "rollback"]
    assert len(rollbacks) == 1, f"rollback entries: {rollbacks}\n{run.describe()}"
    assert not [entry for entry in entries if entry.event == "rollback_failed"], run.describe()
    entry = rollbacks[0]
    assert case.reason in entry.reason, f"rollback reason {entry.reason!r}\n{run.describe()}"
    assert entry.details["weight_after"] == 0 and entry.details["canary_stopped"] is True
    assert entry.details["probe"]["canary"] == 0 and entry.details["probe"]["total"] == VERIFY_REQUESTS
    [verdict] = [item for item in entries if item.event == "stage_verdict"]
    assert verdict.details["passed"] is False and verdict.time >= entry.time, "journal written before the rollback"


def _assert_withdrawn_before_checks(runner: ExitPathRunner, run: StageRun, record: StageRecord) -> None:
    assert record.rollback is not None and record.rollback["ok"], f"{record.rollback}\n{run.describe()}"
    assert record.rollback["weight_before"] == STAGE
    assert record.rollback["verdict_to_zero_s"] <= VERDICT_TO_ZERO_MAX_S, record.rollback
    seen = json.loads(runner.probe_file.read_text())
    assert seen["canary"] == 0 and seen["total"] == VERIFY_REQUESTS, f"while the checks ran: {seen}"
    assert "weight 0 % in force" in run.output, run.describe()


def _assert_rollback_failed(runner: ExitPathRunner, run: StageRun, since: float, canary_pid: int, name: str) -> None:
    entries = _entries_since(runner.run_dir, since)
    assert [entry for entry in entries if entry.event == "rollback_failed"], run.describe()
    assert not [entry for entry in entries if entry.event == "rollback"], run.describe()
    assert "ROLLBACK FAILED" in run.output and "Next:" in run.output, run.describe()
    # Not stopped: with production dead it is the only version that can serve.
    assert pids.is_alive(canary_pid), "the canary was stopped although the rollback was not proven"
    state = load_state(runner.run_dir)
    assert state is not None and state.canary is not None
    if name == "production-dead":
        assert "production does not answer" in run.output, run.describe()
        assert runner.stack.traffic().canary_weight() == 0
