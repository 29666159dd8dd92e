"""Shared set-up of the plugin's pytester tests: an isolated environment that can never touch real ports.

The inner pytest sessions run in this process (one in a subprocess). Whatever the outer environment
holds, they see no ``CANARY_*`` variable except free loopback ports: should a test's bad value ever be
accepted, the stage it would start could not land on the fixed ports 8000/8001/8080 that other people's
stacks use, and the finalizer brings down anything recorded in the test's run directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary_harness.config import StackSettings
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from tests.integration.stackfixtures import free_ports


@pytest.fixture(autouse=True)
def no_gc_rounds_when_an_inner_config_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """An inner config from ``pytester.parseconfig(ure)`` ends without pytest's five full garbage collections.

    pytest's unraisable-exception plugin collects garbage five times when a config is cleaned up; in the
    outer session's large heap that is 0.3-0.5 s a round, 1.5-2.5 s a test (all of it "teardown").
    ``pytester.runpytest`` already sets the rounds to 0 for its inner sessions through the same stash key;
    ``parseconfig`` does not, so it is set here. Without the private key (another pytest), nothing changes.
    """
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:
        return
    parseconfig = pytest.Pytester.parseconfig

    def parseconfig_without_gc_rounds(self: pytest.Pytester, *args: str | os.PathLike[str]) -> pytest.Config:
        config = parseconfig(self, *args)
        config.stash[gc_collect_iterations_key] = 0
        return config

    monkeypatch.setattr(pytest.Pytester, "parseconfig", parseconfig_without_gc_rounds)


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """The run directory the inner sessions are pointed at; brought down by PID if anything appears."""
    path = tmp_path / "canary-run"
    yield path
    if load_state(path) is not None:
        LocalStack(StackSettings(run_dir=path)).down()


@pytest.fixture(autouse=True)
def isolated_canary_env(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    """No CANARY_* from the outer environment; the stack's three ports set to free ones."""
    for name in list(os.environ):
        if name.startswith("CANARY_"):
            monkeypatch.delenv(name)
    for name, port in zip(
        ("CANARY_NGINX_PORT", "CANARY_PRODUCTION_PORT", "CANARY_CANARY_PORT"), free_ports(3), strict=True
    ):
        monkeypatch.setenv(name, str(port))
