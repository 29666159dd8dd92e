"""How much load a stage sends under ``--load-rate auto``, and with how many users.

The planner says which total request rate lets every request-counted check reach its n90 within the
window (``judge.planner.rate_to_decide``); this module turns that need into what the load engine runs:
bounded by the user's ``--load-max-rps`` and by what this machine sustains, minus the real user traffic
already flowing, with enough users to keep that rate through seconds-long LLM answers.

Figures measured on the 2-core machine class (docs/load.md, "Sized to decide"): the local stack
(locust FastHttpUser, one NGINX worker, two fragrance-ai instances at full simulated LLM latency, all on
the same cores) keeps its latency up to ~300 req/s and saturates near 360 req/s, where p95 latency grows
by half and a healthy canary would fail its absolute latency thresholds. A journey request waits ~1.1 s
on average (LLM calls of 1-2.5 s, ratings of a few ms).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from canary_harness.errors import ConfigError

# Requests/s one core sustains for the whole local stack without inflating latency (measured: ~300 on 2).
SUSTAINED_RPS_PER_CORE = 150.0
# Seconds a constant-rate user is busy per request: the measured 1.1 s mean answer, plus headroom for
# the slow tail (a user still waiting misses its send slot, and the rate falls short).
USER_SECONDS_PER_REQUEST = 1.5
# Users start within this many seconds: the default spawn rate (10/s) would take 30 s for 300 users.
RAMP_S = 2.0


def machine_max_rps(cores: int | None = None) -> float:
    """The total rate this machine sustains for the local stack without inflating latency."""
    count = cores if cores is not None else (os.cpu_count() or 1)
    return SUSTAINED_RPS_PER_CORE * max(1, count)


def users_for_rate(rate_rps: float, minimum: int) -> int:
    """Users that keep ``rate_rps`` in constant-rate mode (each busy ~1.5 s per request), at least ``minimum``."""
    if not math.isfinite(rate_rps) or rate_rps < 0:
        raise ConfigError(f"load rate {rate_rps!r}: must be a finite number of requests/s >= 0")
    return max(minimum, math.ceil(rate_rps * USER_SECONDS_PER_REQUEST))


def spawn_rate_for(users: int, minimum: float) -> float:
    """Users started per second so that all of them run within RAMP_S, at least ``minimum``."""
    return max(minimum, users / RAMP_S)


def real_rate(requests_before: float, requests_after: float, seconds: float) -> float:
    """Requests/s the services answered between two counter reads (both arms summed), never negative."""
    if seconds <= 0:
        raise ConfigError(f"real traffic measured over {seconds!r} s: the interval must be positive")
    return max(0.0, (requests_after - requests_before) / seconds)


@dataclass(frozen=True)
class AutoLoad:
    """The outcome of sizing: the total rate the checks need, what the load sends, and why."""

    needed_rps: float
    load_rps: float
    why: str


def load_bound(max_rps: float, machine_rps: float) -> float:
    """The highest rate the load may send: the user's ``--load-max-rps`` or the machine's, whichever is lower."""
    return min(max_rps, machine_rps)


def name_bound(rate_rps: float, why: str, max_rps: float, machine_rps: float) -> AutoLoad:
    """The planner's choice (made under ``load_bound``); when the machine held it down, the reason says so."""
    if rate_rps >= machine_rps and machine_rps < max_rps:
        why = (
            f"{why} (this machine's bound: {SUSTAINED_RPS_PER_CORE:g} req/s per core keeps latency "
            f"uninflated; --load-max-rps is {max_rps:g})"
        )
    return AutoLoad(rate_rps, rate_rps, why)


def missing_rate(auto: AutoLoad, real_rps: float) -> AutoLoad:
    """With real user traffic flowing, the load only adds what the checks still miss (possibly nothing)."""
    add = max(0.0, auto.load_rps - real_rps)
    if add <= 0:
        return AutoLoad(
            auto.needed_rps, 0.0, f"{auto.why}; real traffic already brings {real_rps:.1f} req/s: no load added"
        )
    return AutoLoad(
        auto.needed_rps,
        math.ceil(add * 10) / 10,
        f"{auto.why}; real traffic brings {real_rps:.1f} req/s, the load adds the rest",
    )
