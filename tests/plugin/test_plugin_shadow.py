"""Stage 0 (shadow) through the whole plugin on the in-memory doubles: the fake backend and the memory router.

The fake services' counters grow at the same synthetic rate on both arms, like a canary receiving a copy of
every production request: at a 100 % share the mirror coverage holds, at 50 % it cannot (the canary would
get half of production's requests), and the coverage check must say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.testing import fake_service, memory_router
from tests.plugin.test_plugin_lifecycle import Lifecycle, httpx_loaded  # noqa: F401 (a fixture)

pytest_plugins = ("pytester",)


@pytest.fixture
def lifecycle(pytester: pytest.Pytester, run_dir: Path, httpx_loaded: None) -> Lifecycle:  # noqa: F811
    """A pytester project whose stages run on the fake backend and the in-memory router."""
    return Lifecycle(pytester, run_dir)


def router_state(stage: Lifecycle) -> tuple[int, int]:
    """(canary weight, shadow share) the in-memory router serves now."""
    router = memory_router(stage.run_dir / "nginx")
    assert router is not None, "the stage's in-memory router is not running"
    return router.state.canary_weight, router.state.shadow_share


def test_healthy_shadow_stage_passes_and_leaves_the_copies_on(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("--stage", "shadow")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*stage shadow PASSED*weight left at shadow*"])
    assert router_state(lifecycle) == (0, 100)
    [weight] = lifecycle.events("weight")
    assert (weight.stage, weight.details["weight"], weight.details["shadow_share"]) == (0, 0, 100)
    assert lifecycle.rollback_calls() == []


def test_failed_shadow_stage_ends_the_copies_and_stops_the_canary(lifecycle: Lifecycle) -> None:
    result = lifecycle.run("--stage", "0", "--canary-env", "FAKE_ERROR_RATE=0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert router_state(lifecycle) == (0, 0)
    [call] = lifecycle.rollback_calls()
    assert call["stage"] == 0 and "5xx rate" in str(call["reason"]), call
    [rollback] = lifecycle.events("rollback")
    assert rollback.details["canary_stopped"] is True
    assert fake_service(lifecycle.canary_url()) is None, "the canary still serves after the rollback"


def test_missing_copies_fail_the_mirror_coverage_check(lifecycle: Lifecycle) -> None:
    # Equal rates on both arms are twice the copies a 50 % share sends: NGINX "does not copy as set".
    # At 1 000 requests/s on both arms the mismatch shows within a few ticks.
    rates = ("--canary-env", "FAKE_RPS=1000", "--canary-production-env", "FAKE_RPS=1000")
    result = lifecycle.run("--stage", "0", "--shadow-share", "50", "--observation-period", "20", *rates)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*mirror coverage mismatch*shadow share 50*"])
    assert router_state(lifecycle) == (0, 0)
