"""Release checks that wait on the service, sent together: a stage pays its slowest walk, not their sum.

A *walk* is the body of a release check that calls the service (its requests and its assertions), as a
function of the client it talks to and the stage's options. A test module lists its walks by test name;
when the first of its tests sets up, :func:`started_walks` sends every walk that the session will run,
against each client the tests are parametrized with, on threads at once. Each test then takes its own
walk's outcome (:meth:`Walks.take`): it passes, or fails with the walk's own assertion error.

At fragrance-ai's real latency (1-4 s per LLM call) the smoke paths cost ~16 s one after another and
about the slowest walk (~5 s) together. A test whose walk was not sent ahead (an xdist worker runs only
some of the module's tests, so it sends nothing ahead; a client whose fixture skipped or failed) walks
when it runs, as any test does; its client fixture's skip or failure reaches it the usual way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.target_marker import target_skip_reason

Walk = Callable[[httpx.Client, StageOptions], None]
CLIENT_PARAM = "api"  # the fixture the tests are parametrized with: its value is a client fixture's name


class Walks:
    """The walks of one test module: those sent ahead, by (test name, client fixture name)."""

    def __init__(
        self, walks: Mapping[str, Walk], options: StageOptions, sent: Mapping[tuple[str, str], Future[None]]
    ) -> None:
        self.walks = walks
        self.options = options
        self.sent = dict(sent)

    def take(self, request: pytest.FixtureRequest, client: httpx.Client) -> None:
        """The outcome of the requesting test's walk against ``client``: its exception, re-raised."""
        __tracebackhide__ = True  # pytest shows the test, then the walk
        name = request.node.originalname
        future = self.sent.pop((name, _client_name(request.node)), None)
        if future is None:
            self.walks[name](client, self.options)
            return
        error = future.exception()
        if error is not None:
            # From the walk's own frame on: the executor's frame before it says nothing.
            trace = error.__traceback__
            raise error.with_traceback(trace.tb_next if trace is not None else None)


def _client_name(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return str(callspec.params.get(CLIENT_PARAM, "")) if callspec is not None else ""


@contextmanager
def started_walks(request: pytest.FixtureRequest, walks: Mapping[str, Walk], options: StageOptions) -> Iterator[Walks]:
    """Send the walks of the requesting module's tests that this session runs, each against its client.

    Call it from a module-scoped fixture. On exit it waits for walks still running (each bounded by its
    client's timeouts).
    """
    if hasattr(request.config, "workerinput"):  # an xdist worker: which tests it runs is not known here
        yield Walks(walks, options, {})
        return
    wanted = {
        (item.originalname, _client_name(item))
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and item.originalname in walks
        and _client_name(item)
        and target_skip_reason(item) is None
    }
    clients: dict[str, httpx.Client] = {}
    for name in sorted({client for _, client in wanted}):
        try:
            clients[name] = request.getfixturevalue(name)
        except (Exception, pytest.skip.Exception, pytest.fail.Exception):
            continue  # each test using that client meets the fixture's skip or failure itself
    sendable = sorted(key for key in wanted if key[1] in clients)
    with ThreadPoolExecutor(max_workers=max(1, len(sendable)), thread_name_prefix="canary-walk") as pool:
        sent = {key: pool.submit(walks[key[0]], clients[key[1]], options) for key in sendable}
        yield Walks(walks, options, sent)
