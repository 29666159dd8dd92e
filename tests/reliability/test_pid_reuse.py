"""Issue 11 item 9: a recorded NGINX PID reused by another process is never signalled; the state file and
the stage record are written 0600, atomically and fsynced.

The "reused PID" is a real ``sleep`` process whose PID is adopted with a start time that is not its own
(what a state file holds once the old master died and the PID came back): reload and stop must leave it
alone. ``sleep`` dies of SIGHUP, SIGQUIT and SIGKILL, so a signal sent by mistake is visible.
"""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_harness.deploy import pids
from canary_harness.errors import TrafficError
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.stack_state import StackState
from canary_harness.traffic.nginx_process import NginxProcess


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process standing in for whoever reused the PID; killed at teardown."""
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def test_a_reused_master_pid_is_neither_reloaded_nor_stopped(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    real_start = pids.process_start_time(stranger.pid)
    assert real_start is not None
    nginx = NginxProcess(tmp_path / "nginx")
    nginx.adopt(stranger.pid, real_start - 1)  # the recorded master started one tick earlier: not this one
    # Even with the PID in nginx.pid, the title does not name this prefix: not ours.
    (tmp_path / "nginx").mkdir()
    nginx.pid_file.write_text(f"{stranger.pid}\n")

    assert nginx.pid is None and not nginx.is_running()
    with pytest.raises(TrafficError, match="not running"):
        nginx.reload()
    nginx.stop(timeout=1)
    assert stranger.poll() is None, f"the unrelated process got a signal (exit {stranger.returncode})"


def test_terminate_spares_an_extra_pid_whose_start_time_changed(stranger: subprocess.Popen[bytes]) -> None:
    target = subprocess.Popen(["sleep", "120"], start_new_session=True)
    pids.track_child(target)
    other_start = pids.process_start_time(stranger.pid)
    assert other_start is not None
    pids.terminate(
        target.pid,
        start_time=pids.process_start_time(target.pid),
        timeout=0.2,
        term_signal=0,
        also_kill=((stranger.pid, other_start + 1),),
    )
    assert target.poll() is not None, "the target survived"
    assert stranger.poll() is None, "an extra PID with another start time was killed"


@pytest.mark.parametrize("write", ["state", "record"])
def test_state_and_record_are_private_and_leave_no_temporary_file(tmp_path: Path, write: str) -> None:
    run_dir = tmp_path / "run"
    if write == "state":
        StackState(run_dir=run_dir).save()
        path = run_dir / "state.json"
    else:
        path = run_dir / "stages" / "stage-5.json"
        StageRecord(
            canary_version="v0.2.0", production_version="v0.1.0", stage=5, dry_run=False, judge="sequential"
        ).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [entry.name for entry in path.parent.iterdir() if entry.name.startswith(".")] == []
    assert path.read_text().strip().startswith("{")
