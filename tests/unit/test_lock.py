"""The rollout lock: one holder at a time across real processes, refused at once with the holder named,
released by the kernel when the holder dies, never inherited by children of the holder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from canary_harness.errors import RolloutError
from canary_harness.lock import LOCK_NAME, RolloutLock, lock_path
from canary_harness.waiting import wait_until

# A process that takes the lock, says so, and holds it until killed (or 60 s at most).
HOLDER = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from canary_harness.lock import RolloutLock
    signal.alarm(60)
    with RolloutLock(Path(sys.argv[1]), version=sys.argv[2]):
        print("locked", flush=True)
        time.sleep(60)
    """
)
# A process that tries to take the lock once and reports the outcome in its exit code and stderr.
CONTENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from canary_harness.errors import RolloutError
    from canary_harness.lock import RolloutLock
    try:
        with RolloutLock(Path(sys.argv[1]), version="v9.9.9"):
            pass
    except RolloutError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    """
)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start Python helper processes; every one is killed by its PID at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        _stop(process)


def _recorded(run_dir: Path) -> dict[str, object]:
    text = lock_path(run_dir).read_text()
    return json.loads(text) if text.strip() else {}


def test_holder_is_recorded_and_cleared(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with RolloutLock(run_dir, version="v0.2.0") as lock:
        assert lock.held
        record = _recorded(run_dir)
        assert record["pid"] == os.getpid() and record["version"] == "v0.2.0"
        assert str(record["started"]).endswith("Z") and record["actor"]
    assert not lock.held
    assert lock_path(run_dir).exists() and _recorded(run_dir) == {}
    assert lock_path(run_dir).name == LOCK_NAME
    with RolloutLock(run_dir, version="v0.3.0"):
        assert _recorded(run_dir)["version"] == "v0.3.0"


def test_second_acquirer_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with RolloutLock(tmp_path, version="v0.2.0"):
        with pytest.raises(RolloutError) as refused:
            RolloutLock(tmp_path, version="v0.3.0").acquire()
    message = str(refused.value)
    assert message.startswith(f"rollout of v0.2.0 already running (pid {os.getpid()}, started ")
    assert message.endswith("; wait for it or stop it")


def test_release_is_idempotent_and_double_acquire_is_refused(tmp_path: Path) -> None:
    lock = RolloutLock(tmp_path, version="v0.2.0")
    lock.acquire()
    with pytest.raises(RolloutError, match="already held by this process"):
        lock.acquire()
    lock.release()
    lock.release()
    assert not lock.held


@pytest.mark.integration
def test_lock_held_by_another_process_refuses_then_frees_when_it_is_killed(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    holder = spawn(HOLDER, str(tmp_path), "v0.2.0")
    wait_until(
        lambda: lock_path(tmp_path).exists() and _recorded(tmp_path).get("pid") == holder.pid,
        20,
        0.02,
        "the holder process to take the lock",
        ignore=(ValueError,),
    )

    with pytest.raises(RolloutError) as refused:
        RolloutLock(tmp_path, version="v0.3.0").acquire()
    assert f"rollout of v0.2.0 already running (pid {holder.pid}, started " in str(refused.value)
    assert str(refused.value).endswith("wait for it or stop it")

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert _recorded(tmp_path)["pid"] == holder.pid  # the dead holder's record is still in the file...
    with RolloutLock(tmp_path, version="v0.3.0"):  # ...and does not block
        assert _recorded(tmp_path)["pid"] == os.getpid()


@pytest.mark.integration
def test_other_process_is_refused_while_this_one_holds_it(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    with RolloutLock(tmp_path, version="v0.2.0"):
        contender = spawn(CONTENDER, str(tmp_path))
        _, err = contender.communicate(timeout=30)
    assert contender.returncode == 3
    assert f"rollout of v0.2.0 already running (pid {os.getpid()}" in err

    after = spawn(CONTENDER, str(tmp_path))
    after.communicate(timeout=30)
    assert after.returncode == 0


@pytest.mark.integration
def test_a_child_started_during_the_rollout_does_not_keep_the_lock(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    with RolloutLock(tmp_path, version="v0.2.0"):
        # A long-lived child (a server, a stage session) started while the lock is held.
        child = spawn("import signal, time; signal.alarm(60); print('up', flush=True); time.sleep(60)")
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
    assert child.poll() is None
    with RolloutLock(tmp_path, version="v0.3.0"):
        pass


def test_refusal_without_a_readable_record_still_says_why(tmp_path: Path) -> None:
    import fcntl

    path = lock_path(tmp_path)
    # A live holder that has not written its record yet; the file still shows a dead holder's record.
    path.write_text(json.dumps({"pid": 2**22 + 1, "version": "v0.0.1", "started": "x", "actor": "y"}))
    with path.open("r") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RolloutError) as refused:
            RolloutLock(tmp_path, version="v0.3.0").acquire()
    assert str(refused.value) == f"a rollout is already running (lock {path} held); wait for it or stop it"
