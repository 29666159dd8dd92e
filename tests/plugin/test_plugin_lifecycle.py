"""The whole stage lifecycle on the in-memory doubles (pytester, in-process, no NGINX, no uvicorn).

Each inner session is a real stage: ``--backend fake`` starts production and canary as tiny in-thread
HTTP services, ``[traffic] nginx = "memory"`` routes between them through the in-memory router, the
judge reads their synthetic ``/metrics`` (``FAKE_ERROR_RATE`` makes the canary bad) through the real
ScrapeSource, and the real exit guard rolls back. The router is then asked which weight is in force, and
a site conftest records every ``pytest_canary_rollback`` call.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from canary_harness import journal
from canary_harness.testing import fake_service, memory_router
from tests.integration.stackfixtures import free_port
from tests.plugin.inner import INNER_ARGS

pytest_plugins = ("pytester",)

STAGE = 50  # both fake arms grow at the same synthetic rate: a 50 % split is what the split check expects

RELEASE_CHECKS = """
def test_verdict_is_not_fail(canary_verdict):
    assert canary_verdict.state.value != "FAIL", canary_verdict.reason

def test_weight_in_force(canary_stage):
    assert canary_stage.weight_in_force == canary_stage.stage
"""

SITE_HOOKS = """
import json, os, signal
from pathlib import Path

CALLS = Path(__file__).parent / "rollback_calls.jsonl"

def pytest_canary_rollback(config, version, stage, reason, result):
    with CALLS.open("a") as handle:
        handle.write(json.dumps({"version": version, "stage": stage, "reason": reason,
                                 "weight_after": result.weight_after, "pid": os.getpid()}) + "\\n")

def pytest_canary_stage_applied(config, record):
    action = os.environ.get("LIFECYCLE_ON_APPLIED")
    if action == "sigint":  # Ctrl-C as the terminal sends it, once the canary serves its share
        os.kill(os.getpid(), signal.SIGINT)
    elif action == "metrics-gone":  # a harness error: the canary's /metrics stops answering mid-stage
        from canary_harness.testing import fake_service
        fake_service(record.canary_url).close()
"""


class Lifecycle:
    """One pytester project set up for a stage on the doubles, and what its stage left behind."""

    def __init__(self, pytester: pytest.Pytester, run_dir: Path) -> None:
        self.pytester, self.run_dir = pytester, run_dir
        self.toml = pytester.path / "canary.toml"
        # 100 probe requests prove a 50 % split as well as the default 400 (binomial 99.9 %: 33..67) in a
        # quarter of the time: the in-memory router serves them in this process, under its GIL.
        self.toml.write_text('[traffic]\nnginx = "memory"\n\n[stage]\nsplit_probe = 100\n')
        pytester.makeconftest(SITE_HOOKS)
        pytester.makeini("[pytest]\n")
        (pytester.mkdir("canary_tests") / "test_release.py").write_text(RELEASE_CHECKS)

    def run(self, *extra: str) -> pytest.RunResult:
        """One stage of v0.2.0 with a 0.5 s window (two ticks), no load (the fake services' counters grow by
        themselves at 100 requests/s)."""
        return self.pytester.runpytest(
            *INNER_ARGS,
            "-p",
            "no:cacheprovider",
            "--canary-version",
            "v0.2.0",
            "--stage",
            str(STAGE),
            "--backend",
            "fake",
            f"--canary-config={self.toml}",
            f"--canary-run-dir={self.run_dir}",
            "--observation-period",
            "0.5",
            "--canary-tick",
            "0.25",
            "--no-load",
            *extra,
        )

    def weight_in_force(self) -> int:
        """The weight the in-memory router serves now (asked from the router, not from a record)."""
        router = memory_router(self.run_dir / "nginx")
        assert router is not None, "the stage's in-memory router is not running"
        return router.state.canary_weight

    def rollback_calls(self) -> list[dict[str, object]]:
        """Every ``pytest_canary_rollback`` call the site hook saw."""
        path = self.pytester.path / "rollback_calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def events(self, name: str) -> list[journal.JournalEntry]:
        """The journal entries of one kind."""
        return [entry for entry in journal.read(self.run_dir) if entry.event == name]

    def record(self) -> dict[str, object]:
        """The last stage record."""
        return dict(json.loads(sorted((self.run_dir / "stages").glob("stage-*.json"))[-1].read_text()))

    def canary_url(self) -> str:
        """The canary's URL from the last stage record."""
        return str(self.record()["canary_url"])


@pytest.fixture(scope="module")
def httpx_loaded() -> None:
    """httpx imports httpcore at its first request. pytester's in-process sessions drop every module first
    imported inside them, so a later session would import httpcore afresh and httpx's exception mapping
    (built from the first copy) would let ``httpcore.ConnectError`` through: make the first request here."""
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{free_port()}/", timeout=2.0)


@pytest.fixture
def lifecycle(pytester: pytest.Pytester, run_dir: Path, httpx_loaded: None) -> Lifecycle:
    """A pytester project whose stages run on the fake backend and the in-memory router."""
    return Lifecycle(pytester, run_dir)


def assert_rolled_back(stage: Lifecycle, reason_part: str) -> None:
    """Weight 0 in force at the router, one hook call naming the reason, canary stopped, one journal entry."""
    assert stage.weight_in_force() == 0
    calls = stage.rollback_calls()
    assert len(calls) == 1, calls
    assert reason_part in str(calls[0]["reason"]), calls[0]
    assert (calls[0]["version"], calls[0]["stage"], calls[0]["weight_after"]) == ("v0.2.0", STAGE, 0)
    [rollback] = stage.events("rollback")
    probe = rollback.details["probe"]
    assert isinstance(probe, dict) and probe["total"] == 50, probe  # half of [stage] split_probe = 100
    assert fake_service(stage.canary_url()) is None, "the canary still serves after the rollback"


def test_healthy_stage_passes_and_keeps_its_weight(lifecycle: Lifecycle) -> None:
    result = lifecycle.run()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    assert lifecycle.weight_in_force() == STAGE
    probe = lifecycle.record()["split_probe"]
    assert isinstance(probe, dict) and probe["total"] == 100, probe  # canary.toml's [stage] split_probe
    assert lifecycle.rollback_calls() == []
    assert [entry.details["passed"] for entry in lifecycle.events("stage_verdict")] == [True]
    assert fake_service(lifecycle.canary_url()) is not None, "a passing stage leaves its canary running"


def test_fail_verdict_rolls_back_and_calls_the_hook(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("--canary-env", "FAKE_ERROR_RATE=0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*canary weight 0 % in force * after the failure*"])
    assert_rolled_back(lifecycle, "verdict FAIL")
    assert "5xx rate" in str(lifecycle.rollback_calls()[0]["reason"])


def test_harness_error_rolls_back(lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_ON_APPLIED", "metrics-gone")
    result = lifecycle.run()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert_rolled_back(lifecycle, "observation: ")
    assert "metrics" in str(lifecycle.rollback_calls()[0]["reason"])


def test_ctrl_c_rolls_back(lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_ON_APPLIED", "sigint")
    result = lifecycle.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    assert_rolled_back(lifecycle, "interrupted by SIGINT")


def test_xdist_session_rolls_back_once(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("-n", "2", "--canary-env", "FAKE_ERROR_RATE=0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    # The release checks run on the workers and read the controller's record: the verdict check fails.
    result.assert_outcomes(failed=1, passed=1)
    assert_rolled_back(lifecycle, "verdict FAIL")
    assert len(lifecycle.events("weight")) == 1, "the stage's weight was set more than once"


def test_unprovable_rollback_exits_3(lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch) -> None:
    """The router refuses every later change: the rollback cannot be proven, the session says so loudly."""
    lifecycle.pytester.makeconftest(
        SITE_HOOKS
        + """
def pytest_canary_stage_applied(config, record):  # replaces the one above
    from canary_harness.pytest_plugin.keys import OPTIONS_KEY
    from canary_harness.stack import LocalStack
    from canary_harness.testing import MemoryTrafficController
    LocalStack(config.stash[OPTIONS_KEY].stack).traffic().refuse(10, "programmed by the test")
"""
    )
    result = lifecycle.run("--canary-env", "FAKE_ERROR_RATE=0.5")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR, result.stdout.str()
    result.stdout.fnmatch_lines(["*ROLLBACK FAILED*programmed by the test*"])
    assert lifecycle.weight_in_force() == STAGE
    assert lifecycle.rollback_calls() == []
    assert lifecycle.events("rollback_failed")


LOAD_STOP_FAILS = """
import canary_harness.pytest_plugin.session as session
from canary_harness.errors import LoadError

_real_stop_all = session.stop_all

def _failing_stop_all(runs):
    _real_stop_all(runs)
    raise LoadError("locust exited with code 1 without writing its stats (programmed by the test)")

def pytest_configure(config):
    session.stop_all = _failing_stop_all

def pytest_unconfigure(config):
    session.stop_all = _real_stop_all
"""


def test_a_load_that_fails_to_stop_keeps_the_decided_verdict(lifecycle: Lifecycle) -> None:
    """The verdict FAIL was decided before the load was stopped: the stop's own failure must not erase it."""
    lifecycle.pytester.makeconftest(SITE_HOOKS + LOAD_STOP_FAILS)
    result = lifecycle.run("--canary-env", "FAKE_ERROR_RATE=0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    record = lifecycle.record()
    verdict = record["verdict"]
    assert isinstance(verdict, dict) and verdict["state"] == "FAIL", record
    assert "without writing its stats" in str(record["error"]), record
    assert_rolled_back(lifecycle, "verdict FAIL")
