"""Locust users of fragrance-ai, the service behind the canary (``locust -f load/``).

JourneyUser (weight 9): creates a fragrance DNA, asks for three evolution options in a fast, balanced
or creative LLM mode (``--canary-mix``), picks one and sends feedback; one request per task, named per
route and mode, e.g. ``/evolve/options [creative]``. LightUser (weight 1): /health and /metrics only,
one probe per second per user. RequestsUser (only when ``CANARY_LOAD_REQUESTS`` holds a request mix, as
the harness sets it for any HTTP service): one request of the mix per step, drawn by weight. Every
answer is checked (status, JSON shape, option count, version header; a mix's requests: their status);
a wrong answer is a failure in locust's stats.

``--canary-rate R`` paces all users of all workers to R requests/s in total (shared send slots per
process, R split over the workers). Every run is bounded: ``--canary-max-requests`` (default 100 000)
and ``--canary-max-time`` (default 1 h) stop it even without ``-t``. ``--canary-stats-file`` writes what
locust's own stats lack (requests per served version, journeys per mode, failure reasons) at exit.

With ``CANARY_LOAD_USER_LOCUSTFILE=1`` (the harness's ``[load] profile = "locustfile"``) this file is
loaded beside a team's own locustfile and defines no users: its options and listeners give their user
classes the same caps and per-version stats; with ``--canary-rate`` every request of theirs takes a shared
send slot (their wait_time is then 0), without it their own wait_time paces them (closed loop). Their
requests time out after ``--canary-timeout`` too, unless a request or a class of theirs sets its own.

``CANARY_LOAD_CLIENT=http`` runs the users on HttpUser (python-requests) instead of FastHttpUser.
The journey and its checks live in the canary_harness package (``pip install -e .`` in the checkout),
shared with the harness's builtin engine.
"""

from __future__ import annotations

import functools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, HttpUser, constant, events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

try:
    from canary_harness.loadgen.journey import UNKNOWN_VERSION, ModePicker, Walk, make_walk, served_version
    from canary_harness.loadgen.locust_options import add_canary_options, option_problems
    from canary_harness.loadgen.pacing import RateLimiter, RequestBudget, split_count
    from canary_harness.loadgen.request_mix import REQUESTS_ENV, RequestSpec, requests_from_json
    from canary_harness.loadgen.settings import parse_mix
    from canary_harness.loadgen.tally import Tally
    from canary_harness.loadgen.user_locustfile import USER_LOCUSTFILE_ENV
except ImportError as exc:  # the locustfile is used on its own too (web UI, remote workers)
    raise SystemExit(
        f"load/fragrance.py needs the canary-harness package: run `pip install -e .` "
        f"in the canary-harness checkout ({exc})"
    ) from exc

CLIENT = os.environ.get("CANARY_LOAD_CLIENT", "fast").strip() or "fast"
if CLIENT not in ("fast", "http"):
    raise SystemExit(f"CANARY_LOAD_CLIENT {CLIENT!r} (from environment): must be 'fast' or 'http'")
BaseUser: Any = FastHttpUser if CLIENT == "fast" else HttpUser
# Loaded beside a team's own locustfile (``-f load/fragrance.py,theirs.py``): options and listeners only.
USERS_OF_THEIR_OWN = bool(os.environ.get(USER_LOCUSTFILE_ENV))
PROBE_INTERVAL_S = 1.0  # LightUser's own pacing when no total rate is set
STATS_FORMAT = 1


class RunState:
    """This process's share of the run: mode draws, pacing, request cap and tally; reset at test start."""

    def __init__(self) -> None:
        self.environment: Environment | None = None
        self.tally = Tally()
        self.limiter: RateLimiter | None = None
        self.budget = RequestBudget(None)
        self.picker = ModePicker({"fast": 1.0}, random.Random())
        self.rng = random.Random()
        self.timeout_s = 30.0
        self.requests: tuple[RequestSpec, ...] = ()
        self.started: float | None = None
        self.stopped: float | None = None
        self.watchdogs: list[gevent.Greenlet] = []
        self.quit_requested = False
        self.share_done = False
        self.workers_done: set[str] = set()

    def configure(self, environment: Environment) -> None:
        """Read the run's options (on a worker: as the master sent them) and reset the counters."""
        options: Any = environment.parsed_options
        runner = environment.runner
        workers, index = 1, 0
        if isinstance(runner, WorkerRunner):
            workers = max(1, int(getattr(options, "canary_workers", 0) or options.expect_workers or 1))
            index = runner.worker_index
        seed = int(options.canary_seed)
        self.rng = random.Random(None if seed < 0 else seed * 1009 + index)
        self.picker = ModePicker(parse_mix(options.canary_mix, "locust option --canary-mix"), self.rng)
        rate = float(options.canary_rate or 0)
        self.limiter = RateLimiter(rate / workers) if rate > 0 else None
        cap = int(options.canary_max_requests or 0)
        self.budget = RequestBudget(split_count(cap, workers, index) if cap > 0 else None)
        self.timeout_s = float(options.canary_timeout)
        self.tally = Tally()
        raw_requests = os.environ.get(REQUESTS_ENV, "")
        self.requests = requests_from_json(raw_requests, f"environment {REQUESTS_ENV}") if raw_requests else ()
        self.started, self.stopped, self.quit_requested = time.time(), None, False
        self.share_done, self.workers_done = False, set()


STATE = RunState()


def _headers(response: Any) -> dict[str, str]:
    """Response headers as a plain dict (geventhttpclient's Headers turns into pairs under dict())."""
    headers = getattr(response, "headers", None)
    return {str(key): str(value) for key, value in headers.items()} if headers else {}


class _Walker:
    """Shared task of both user classes: pace, plan a request, send it, check the answer.

    A plain mixin (locust collects ``@task`` only from User classes), so each class lists ``step``.
    """

    profile = "journey"
    client: Any
    _walk: Walk
    _next_probe: float

    def on_start(self) -> None:
        self._walk = make_walk(self.profile, STATE.picker, STATE.rng, STATE.requests)
        self._next_probe = 0.0

    def _pace(self) -> float:
        if STATE.limiter is not None:
            return STATE.limiter.reserve()
        if self.profile == "light":
            now = time.monotonic()
            slot = max(now, self._next_probe)
            self._next_probe = slot + PROBE_INTERVAL_S
            return slot - now
        return 0.0

    def step(self) -> None:
        if not STATE.budget.take():
            gevent.sleep(0.25)  # this process's cap is spent: idle until the run ends
            return
        delay = self._pace()
        if delay > 0:
            gevent.sleep(delay)
        planned = self._walk.next_request()
        if planned.starts_journey and planned.mode:
            STATE.tally.journey_started(planned.mode)
        extra = {} if CLIENT == "fast" else {"timeout": STATE.timeout_s}
        with self.client.request(
            planned.method,
            planned.path,
            name=planned.name,
            json=planned.body,
            headers=dict(planned.headers),
            catch_response=True,
            **extra,
        ) as response:
            headers = _headers(response) if response.status_code else {}
            verdict = self._walk.record(int(response.status_code or 0), headers, response.text or "")
            if verdict.ok:
                response.success()
            else:
                response.failure(verdict.reason)


def _default_timeouts(user_class: type[FastHttpUser], timeout_s: float) -> None:
    """``--canary-timeout`` for a team's FastHttpUser class, unless the class (or a base of its own) sets it."""
    own = [base for base in user_class.__mro__ if base is not FastHttpUser and issubclass(base, FastHttpUser)]
    for name in ("network_timeout", "connection_timeout"):
        if not any(name in vars(base) for base in own):
            setattr(user_class, name, timeout_s)


def _paced(request: Any) -> Any:
    """A client's ``request`` that first takes a send slot of the shared rate and one of the request cap.

    How a team's classes are paced to ``--canary-rate``: per request, as the harness's own users are,
    whatever number of requests one of their tasks sends (locust's wait_time paces tasks, not requests).
    """

    @functools.wraps(request)
    def paced_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        while not STATE.budget.take():
            gevent.sleep(0.25)  # this process's cap is spent: idle until the run ends
        if STATE.limiter is not None:
            delay = STATE.limiter.reserve()
            if delay > 0:
                gevent.sleep(delay)
        if isinstance(self, HttpSession):
            # --canary-timeout, as for the harness's users; a timeout the class gives its request wins.
            kwargs.setdefault("timeout", STATE.timeout_s)
        return request(self, *args, **kwargs)

    return paced_request


if USERS_OF_THEIR_OWN:
    # Every request of a user class goes through one of these two methods (get, post, rest, ... call it);
    # patched in this locust process only, which runs the team's classes and none of the harness's.
    for _session in (HttpSession, FastHttpSession):
        _session.request = _paced(_session.request)  # type: ignore[method-assign]
else:

    class JourneyUser(_Walker, BaseUser):
        """A user of the LLM ensemble: create DNA → options (fast/balanced/creative) → feedback."""

        weight = 9
        profile = "journey"
        tasks = [_Walker.step]

    class LightUser(_Walker, BaseUser):
        """A health/metrics prober: no LLM calls."""

        weight = 1
        profile = "light"
        tasks = [_Walker.step]


if os.environ.get(REQUESTS_ENV):

    class RequestsUser(_Walker, BaseUser):
        """Any HTTP service: one request of the mix in CANARY_LOAD_REQUESTS per step, drawn by weight.
        Defined only when the mix is given (the harness sets it for ``[load] profile = "requests"``)."""

        weight = 1
        profile = "requests"
        tasks = [_Walker.step]


# --------------------------------------------------------------------------- options
@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    add_canary_options(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    STATE.environment = environment
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return  # workers take the master's options at spawn time
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("canary_share_done", _on_share_done)
    problems = option_problems(options)
    if USERS_OF_THEIR_OWN and options.canary_rate > 0:
        # Only HTTP clients' requests take send slots: another client would send outside the rate.
        unpaced = [cls.__name__ for cls in environment.user_classes if not issubclass(cls, (HttpUser, FastHttpUser))]
        if unpaced:
            problems.append(
                f"--canary-rate {options.canary_rate!r}: paces HttpUser and FastHttpUser classes, not "
                f"{', '.join(unpaced)} (use 0: closed loop)"
            )
    if problems:
        raise SystemExit("load/fragrance.py: " + "; ".join(problems))


# --------------------------------------------------------------------------- run lifecycle
def _end_run(environment: Environment, reason: str) -> None:
    if STATE.quit_requested or environment.runner is None:
        return
    STATE.quit_requested = True
    print(f"canary load: {reason}, stopping", flush=True)
    if environment.parsed_options is not None and environment.parsed_options.headless:
        environment.runner.quit()
    else:
        environment.runner.stop()  # the web UI stays up


def _watch_total(environment: Environment, cap: int) -> None:
    """Master: end the run once the workers' reports add up to the cap (they stop at their share)."""
    while environment.runner is not None and environment.runner.stats.total.num_requests < cap:
        gevent.sleep(0.5)
    _end_run(environment, f"{cap} requests sent")


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    options: Any = environment.parsed_options
    if isinstance(runner, MasterRunner):
        # Sent to the workers with the spawn message that follows: they split rate and cap by it.
        options.canary_workers = max(1, len(runner.clients.ready + runner.clients.running + runner.clients.spawning))
    STATE.configure(environment)
    if USERS_OF_THEIR_OWN and STATE.limiter is not None:
        # The send slots pace a team's classes: their think time would only hold back users the rate needs.
        for user_class in environment.user_classes:
            user_class.wait_time = constant(0)
    if USERS_OF_THEIR_OWN:
        for user_class in environment.user_classes:
            if issubclass(user_class, FastHttpUser):
                _default_timeouts(user_class, STATE.timeout_s)
    for user_class in _Walker.__subclasses__():  # FastHttpUser reads these when a user starts
        user_class.network_timeout = user_class.connection_timeout = STATE.timeout_s
    if isinstance(runner, WorkerRunner):
        return
    STATE.watchdogs = [
        gevent.spawn_later(
            options.canary_max_time, _end_run, environment, f"--canary-max-time {options.canary_max_time:g}s reached"
        )
    ]
    if isinstance(runner, MasterRunner) and options.canary_max_requests > 0:
        STATE.watchdogs.append(gevent.spawn(_watch_total, environment, options.canary_max_requests))


def _on_share_done(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    """Master: a worker sent its whole share of the request cap; end the run when all have."""
    STATE.workers_done.add(str(msg.node_id))
    options: Any = environment.parsed_options
    if len(STATE.workers_done) >= max(1, int(options.canary_workers or 1)):
        # Not in this greenlet: it is the master's message listener, which must stay free to receive
        # the workers' final reports while the runner quits.
        gevent.spawn(_end_run, environment, f"{options.canary_max_requests} requests sent")


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    STATE.stopped = time.time()
    for greenlet in STATE.watchdogs:
        greenlet.kill(block=False)
    STATE.watchdogs = []


@events.request.add_listener
def _on_request(
    name: str, response_time: float, response: Any, exception: BaseException | None, **_kwargs: Any
) -> None:
    version = served_version(_headers(response)) or UNKNOWN_VERSION
    reason = None if exception is None else f"{name}: {exception}"
    STATE.tally.record(version, float(response_time or 0.0), reason)
    environment = STATE.environment
    limit = STATE.budget.limit
    if environment is None or limit is None or STATE.tally.completed < limit or STATE.share_done:
        return
    STATE.share_done = True
    if isinstance(environment.runner, WorkerRunner):
        # Tell the master now rather than at the next stats report (every 3 s).
        environment.runner.send_message("canary_share_done")
    else:
        gevent.spawn(_end_run, environment, f"{limit} requests sent")


@events.report_to_master.add_listener
def _on_report_to_master(data: dict[str, Any], **_kwargs: Any) -> None:
    data["canary_tally"] = STATE.tally.drain()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    runner = STATE.environment.runner if STATE.environment is not None else None
    index = runner.get_worker_index(client_id) if isinstance(runner, MasterRunner) else client_id
    STATE.tally.merge(data.get("canary_tally", {}), source=f"worker-{index}")


@events.quit.add_listener
def _on_quit(**_kwargs: Any) -> None:
    """Write the tally once the workers' final reports are in (locust fires quit after the runner quit)."""
    environment = STATE.environment
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return
    options: Any = environment.parsed_options
    path = options.canary_stats_file if options is not None else ""
    if not path:
        return
    document = {
        "format": STATS_FORMAT,
        "runner": "master" if isinstance(environment.runner, MasterRunner) else "local",
        "started": STATE.started,
        "stopped": STATE.stopped or time.time(),
        "target_rps": options.canary_rate or None,
        "workers": options.canary_workers if isinstance(environment.runner, MasterRunner) else 0,
        "users": options.num_users,
        "client": CLIENT,
        **STATE.tally.to_dict(),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=1), encoding="utf-8")
    temporary.replace(target)  # readers never see half a file
