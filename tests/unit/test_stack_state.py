"""The stack state file: JSON round trip, and clear errors for missing or damaged state."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import StackError
from canary_harness.stack_state import NginxRecord, StackState, load_state


def handle(role: str, version: str, port: int, tmp: Path) -> ServiceHandle:
    return ServiceHandle(
        role=role, version=version, url=f"http://127.0.0.1:{port}", pid=4242 + port,
        log_path=tmp / f"{role}.log", app_log_path=tmp / f"{role}.jsonl", pid_start_time=123,
    )  # fmt: skip


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    state = StackState(
        run_dir=tmp_path,
        nginx=NginxRecord(tmp_path / "nginx", "127.0.0.1", 18080, "127.0.0.1:18000", "127.0.0.1:18001", 7, 9),
        production=handle("production", "v0.1.0", 18000, tmp_path),
        canary=handle("canary", "v0.2.0", 18001, tmp_path),
    )
    state.save()
    assert load_state(tmp_path) == state
    assert state.canary is not None and state.canary.address == "127.0.0.1:18001"
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file of the atomic write was left behind"


def test_missing_state_is_none(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None


@pytest.mark.parametrize(
    ("content", "needle"),
    [("{not json", "unreadable"), ('{"format": 99}', "format 1"), ('{"format": 1}', "missing key")],
)
def test_damaged_state_names_the_file(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(StackError, match=needle) as caught:
        load_state(tmp_path)
    assert str(tmp_path / "state.json") in str(caught.value)


def test_bad_service_entry_names_its_source() -> None:
    with pytest.raises(StackError, match="my-source"):
        ServiceHandle.from_json(
            {"role": "canary", "version": "v1", "url": "u", "pid": "x", "log_path": "l"}, source="my-source"
        )


def test_spec_refuses_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="'staging'"):
        ServiceSpec(role="staging", version="v1")
