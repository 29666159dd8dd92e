"""The lock every traffic- or stack-changing command takes, and how a rollout's stage sessions inherit it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from canary_harness.errors import RolloutError
from canary_harness.lock import TOKEN_ENV, RolloutLock, lock_path


def test_a_child_with_the_holder_token_inherits_the_lock(tmp_path: Path) -> None:
    with RolloutLock(tmp_path, version="v0.2.0") as rollout:
        environ = rollout.child_environ({"PATH": "/bin"})
        assert environ["PATH"] == "/bin" and len(environ[TOKEN_ENV]) == 32
        stage = RolloutLock(tmp_path, version="v0.2.0", command="stage session 5%", environ=environ)
        holder = stage.acquire()
        assert stage.held and stage.inherited_from == holder and holder.command == "rollout"
        stage.release()
        assert not stage.held and rollout.held, "the child's release must not free the rollout's lock"
        with pytest.raises(RolloutError, match="rollout of v0.2.0 already running"):
            RolloutLock(tmp_path, version="v0.3.0", command="canary weights 5").acquire()


@pytest.mark.parametrize("token", ["", "0" * 32, "not-the-token"])
def test_without_the_right_token_the_command_is_refused_naming_the_holder(tmp_path: Path, token: str) -> None:
    with RolloutLock(tmp_path, version="v0.2.0"):
        contender = RolloutLock(tmp_path, version="", command="canary stack down", environ={TOKEN_ENV: token})
        with pytest.raises(RolloutError) as refused:
            contender.acquire()
    assert str(refused.value).startswith("rollout of v0.2.0 already running (pid ")
    assert not contender.held


def test_the_lock_file_holds_a_hash_of_the_token_never_the_token(tmp_path: Path) -> None:
    with RolloutLock(tmp_path, version="", command="canary stack up") as lock:
        assert lock.token is not None
        record = json.loads(lock_path(tmp_path).read_text())
        assert lock.token not in lock_path(tmp_path).read_text()
        assert record["command"] == "canary stack up" and len(record["token_sha256"]) == 64
        assert stat.S_IMODE(lock_path(tmp_path).stat().st_mode) == 0o600


def test_a_command_without_a_version_is_named_by_its_command(tmp_path: Path) -> None:
    with RolloutLock(tmp_path, version="", command="canary stack up"):
        with pytest.raises(RolloutError, match=r"^canary stack up already running \(pid "):
            RolloutLock(tmp_path, version="v0.2.0").acquire()


def test_child_environ_needs_the_lock_held(tmp_path: Path) -> None:
    with pytest.raises(RolloutError, match="not held by this process"):
        RolloutLock(tmp_path, version="v0.2.0").child_environ({})
