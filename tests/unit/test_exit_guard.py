"""The stage session's signal guard, exit-status names and the rollout's handling of a failed rollback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_harness import journal
from canary_harness.config import StackSettings
from canary_harness.pytest_plugin.exitguard import status_text
from canary_harness.pytest_plugin.signals import SignalGuard, StageInterrupted
from canary_harness.rollout import RolloutPlan, StageOutcome, _StopRequest, format_summary, rollback_failed_since
from canary_harness.waiting import wait_until


@pytest.fixture
def guard() -> Iterator[SignalGuard]:
    said: list[str] = []
    armed = SignalGuard(said.append)
    assert armed.arm()
    yield armed
    armed.disarm()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_first_signal_ends_the_stage_like_ctrl_c(guard: SignalGuard, signum: int) -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        os.kill(os.getpid(), signum)
    assert isinstance(caught.value, StageInterrupted)
    assert caught.value.signal_name == signal.Signals(signum).name and guard.first == caught.value.signal_name


def test_second_signal_is_deferred_not_raised(guard: SignalGuard) -> None:
    with pytest.raises(StageInterrupted):
        os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)  # must not raise: the cleanup and rollback are running
    assert guard.received == ["SIGTERM", "SIGINT"]


def test_signals_during_an_early_rollback_wait_for_its_end(guard: SignalGuard) -> None:
    finished = False
    with pytest.raises(StageInterrupted, match="SIGHUP"):
        with guard.deferred():
            os.kill(os.getpid(), signal.SIGHUP)
            finished = True
    assert finished


def test_after_defer_all_nothing_is_raised(guard: SignalGuard) -> None:
    guard.defer_all()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.kill(os.getpid(), signum)
    assert guard.received == ["SIGINT", "SIGTERM", "SIGHUP"]


def test_disarm_restores_the_previous_handlers() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    armed = SignalGuard(lambda _text: None)
    armed.arm()
    armed.disarm()
    assert {signum: signal.getsignal(signum) for signum in before} == before


@pytest.mark.parametrize(("code", "text"), [(2, "2 (INTERRUPTED)"), (42, "42"), (-15, "-15")])
def test_any_exit_status_has_a_name(code: int, text: str) -> None:
    assert status_text(code) == text


def _plan(run_dir: Path) -> RolloutPlan:
    return RolloutPlan(version="v0.2.0", stages=(1, 5, 25, 100), stack=StackSettings(run_dir=run_dir))


def test_summary_after_a_failed_rollback_does_not_claim_zero_percent(tmp_path: Path) -> None:
    outcomes = [StageOutcome(1, 3, 10.0, reason="verdict FAIL")]
    text = format_summary(_plan(tmp_path), outcomes, rollback_failed=True)
    assert "rolled back to 0 %" not in text and "ROLLBACK FAILED" in text
    assert "rolled back to 0 %" in format_summary(_plan(tmp_path), outcomes)


def test_rollback_failed_since_reads_the_last_rollback_of_the_version(tmp_path: Path) -> None:
    since = journal.append(tmp_path, "rollout_start", version="v0.2.0").time
    assert not rollback_failed_since(tmp_path, "v0.2.0", since)
    journal.append(tmp_path, "rollback_failed", version="v0.2.0", reason="production does not answer")
    assert rollback_failed_since(tmp_path, "v0.2.0", since)
    assert not rollback_failed_since(tmp_path, "v0.3.0", since)
    journal.append(tmp_path, "rollback", version="v0.2.0", reason="retried by hand")
    assert not rollback_failed_since(tmp_path, "v0.2.0", since)


CHILD = """
import signal, sys, time
out = open(sys.argv[1], "a", buffering=1)
signal.signal(signal.SIGINT, lambda *_: out.write("INT\\n"))
signal.signal(signal.SIGUSR1, lambda *_: (out.write("END\\n"), sys.exit(0)))
out.write("ready\\n")
while True:
    time.sleep(0.01)
"""


def test_rollout_forwards_a_signal_to_the_stage_once(tmp_path: Path) -> None:
    seen = tmp_path / "signals.txt"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(seen)], process_group=0)
    try:
        wait_until(lambda: seen.exists() and "ready" in seen.read_text(), 10.0, 0.01, "the child to start")
        with _StopRequest() as stop:
            stop.child = child
            os.kill(os.getpid(), signal.SIGINT)
            wait_until(lambda: "INT" in seen.read_text(), 10.0, 0.01, "the forwarded SIGINT")
            os.kill(os.getpid(), signal.SIGTERM)  # a second one: from the terminal, CI, or a second Ctrl-C
        # Linux delivers a pending SIGINT (2) before SIGUSR1 (10): a second forward would show before END.
        child.send_signal(signal.SIGUSR1)
        assert child.wait(10) == 0
        assert seen.read_text().split() == ["ready", "INT", "END"]
        assert stop.signal == signal.SIGINT
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
