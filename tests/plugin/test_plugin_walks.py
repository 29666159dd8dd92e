"""Release checks' walks sent together (canary_harness.pytest_plugin.walks), in inner pytest sessions.

The inner module's walks meet at a barrier that opens only when all of them run at the same time, so the
walks being sent together is shown without timing anything; each walk notes the client and thread it ran on.
"""

from __future__ import annotations

import pytest

from tests.plugin.inner import INNER_ARGS

pytest_plugins = ("pytester",)

MODULE = """
import threading

import pytest

from canary_harness.pytest_plugin.walks import started_walks

MEETING = threading.Barrier({meeting}, timeout=10)
SENT = []


@pytest.fixture(scope="session")
def one_client():
    return "one"


@pytest.fixture(scope="session")
def two_client():
    {two_client}


@pytest.fixture(params=["one_client", "two_client"])
def api(request):
    return request.getfixturevalue(request.param)


def walk_a(api, _options):
    SENT.append(("a", api, threading.current_thread().name))
    assert not {inline} or threading.current_thread() is threading.main_thread(), "sent ahead"
    MEETING.wait()


def walk_b(api, _options):
    SENT.append(("b", api, threading.current_thread().name))
    MEETING.wait()
    assert api != "{failing}", f"walk b against {{api}} went wrong"


WALKS = {{"test_a": walk_a, "test_b": walk_b}}


@pytest.fixture(scope="module")
def walks(request):
    with started_walks(request, WALKS, None) as started:
        yield started


def test_a(api, walks, request):
    walks.take(request, api)


def test_b(api, walks, request):
    walks.take(request, api)


def test_z_sent():
    print("SENT", sorted((name, client) for name, client, _ in SENT))
    print("THREADS", sorted({{thread.split("_")[0] for _, _, thread in SENT}}))
"""


def inner_module(meeting: int, *, two_client: str = 'return "two"', failing: str = "", inline: bool = False) -> str:
    return MODULE.format(meeting=meeting, two_client=two_client, failing=failing, inline=inline)


def test_every_walk_is_sent_at_once_and_each_test_takes_its_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=inner_module(4))
    result = pytester.runpytest(*INNER_ARGS, "-s", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    output = result.stdout.str()
    assert "SENT [('a', 'one'), ('a', 'two'), ('b', 'one'), ('b', 'two')]" in output, output
    assert "THREADS ['canary-walk']" in output, output


def test_a_walks_assertion_fails_its_own_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=inner_module(4, failing="two"))
    result = pytester.runpytest(*INNER_ARGS, "-p", "no:randomly")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*def walk_b(api, _options):", "*AssertionError: walk b against two went wrong"])
    result.stdout.fnmatch_lines(["FAILED test_inner.py::test_b?two_client?*"])
    assert "concurrent/futures" not in result.stdout.str(), result.stdout.str()


def test_a_client_that_skips_skips_its_tests_and_gets_no_walk(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=inner_module(2, two_client='pytest.skip("no second client here")'))
    result = pytester.runpytest(*INNER_ARGS, "-s", "-p", "no:randomly", "-rs")
    result.assert_outcomes(passed=3, skipped=2)
    assert "SENT [('a', 'one'), ('b', 'one')]" in result.stdout.str(), result.stdout.str()
    result.stdout.fnmatch_lines(["*no second client here*"])


def test_a_deselected_test_gets_no_walk(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=inner_module(2))
    result = pytester.runpytest(*INNER_ARGS, "-s", "-p", "no:randomly", "-k", "test_a or test_z")
    result.assert_outcomes(passed=3, deselected=2)
    assert "SENT [('a', 'one'), ('a', 'two')]" in result.stdout.str(), result.stdout.str()


def test_on_an_xdist_worker_each_test_walks_when_it_runs(pytester: pytest.Pytester) -> None:
    # Nothing is sent ahead: each walk runs on the test's own thread, and meets nobody at the barrier.
    pytester.makepyfile(test_inner=inner_module(1, inline=True))
    result = pytester.runpytest_subprocess(*INNER_ARGS, "-p", "xdist", "-n", "1", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
