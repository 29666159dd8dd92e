"""``canary stack status``'s lines for the canary's workers: each recorded worker alive or not, answering its
/health or not, at which version (in-process services and real PIDs; the stage tests list them live)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from canary_harness.deploy import pids
from canary_harness.deploy.protocol import ServiceSpec
from canary_harness.deploy.workers import WorkerRecord, WorkersState, save_workers
from canary_harness.ports import free_port
from canary_harness.stack_status import StackStatus, workers_status
from canary_harness.testing.backend import FakeBackend


def record(role: str, url: str, pid: int, tmp_path: Path) -> WorkerRecord:
    log = tmp_path / f"worker-{role}.log"
    return WorkerRecord(role, 1, "v2", url, pid, pids.process_start_time(pid), log, log.with_suffix(".jsonl"))


def test_a_live_worker_is_healthy_at_its_version_and_a_dead_one_fails_the_status(tmp_path: Path) -> None:
    backend = FakeBackend()
    spec = ServiceSpec("canary", "v2", port=free_port(), log_path=tmp_path / "logs" / "worker.log")
    handle = backend.start(spec)
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=10)
    try:
        live = record("llm", handle.url, os.getpid(), tmp_path)
        gone = record("rl", f"http://127.0.0.1:{free_port()}", dead.pid, tmp_path)
        save_workers(tmp_path, WorkersState(None, (live, gone)))
        found = {status.name: status for status in workers_status(tmp_path)}
    finally:
        backend.stop(handle)
    assert list(found) == ["worker-llm-1", "worker-rl-1"]
    llm, rl = found["worker-llm-1"], found["worker-rl-1"]
    assert (llm.pid, llm.running, llm.healthy, llm.version) == (os.getpid(), True, True, "v2")
    assert (rl.running, rl.healthy, rl.version) == (False, False, None)
    # One dead worker is enough for `canary stack status` to exit 1.
    assert not StackStatus(tmp_path, (llm, rl), 0, 100, "g").ok
    assert StackStatus(tmp_path, (llm,), 0, 100, "g").ok


def test_nothing_recorded_lists_nothing(tmp_path: Path) -> None:
    assert workers_status(tmp_path) == []
