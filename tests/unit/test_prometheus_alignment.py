"""Both arms read at one instant through Prometheus, whose targets are scraped at different times.

A fake Prometheus (httpx MockTransport) keeps a scrape history per arm and answers the source's
queries the way Prometheus evaluates them: an instant query at time t sees each target's latest
scrape at or before t; a range selector returns the raw scrapes. Counters grow linearly with the
scrape time, so the counts an arm should show at any instant are known exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from canary_harness.metrics.prometheus import PrometheusSource
from canary_harness.metrics.promql import DEFAULT_QUERIES, render
from canary_harness.metrics.types import MetricsSnapshot

URL = "http://127.0.0.1:9"
INF = math.inf


@dataclass(frozen=True)
class Target:
    """One scrape target: when it was scraped (and which of those scrapes failed), and its requests/s."""

    scrapes: Sequence[float]
    rps: float
    failed: Sequence[float] = ()

    def latest(self, at: float | None) -> float | None:
        seen = [when for when in self.scrapes if (at is None or when <= at) and when not in self.failed]
        return max(seen) if seen else None

    def count(self, at: float | None) -> float | None:
        scraped = self.latest(at)
        return None if scraped is None else self.rps * scraped


def arm(*targets: Target) -> tuple[Target, ...]:
    return targets


def rendered(name: str, role: str) -> str:
    return render(DEFAULT_QUERIES[name], {"job": "fragrance-ai", "version": role})


def vector(value: float | None, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    result = [] if value is None else [{"metric": dict(labels or {}), "value": [0, str(value)]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def fake_prometheus(arms: Mapping[str, Sequence[Target]]) -> httpx.Client:
    """Answers the snapshot, last-scrape and raw-scrape queries of each arm from its targets' histories:
    a sum at time t adds each target's count as of its latest successful scrape at or before t."""

    def handle(request: httpx.Request) -> httpx.Response:
        params = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        query, at = params["query"], float(params["time"]) if "time" in params else None
        for role, targets in arms.items():
            if query.startswith(f'up{{job="fragrance-ai",version="{role}"}}['):
                duration = query.split("[", 1)[1].rstrip("]")
                window = float(duration[:-2]) / 1000 if duration.endswith("ms") else float(duration[:-1])
                assert at is not None
                result = [
                    {
                        "metric": {"instance": f"i{n}"},
                        "values": [
                            [when, "0" if when in target.failed else "1"]
                            for when in target.scrapes
                            if at - window < when <= at
                        ],
                    }
                    for n, target in enumerate(targets)
                ]
                return httpx.Response(
                    200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
                )
            seen = [count for count in (target.count(at) for target in targets) if count is not None]
            counts = sum(seen) if seen else None
            scrapes = [when for when in (target.latest(at) for target in targets) if when is not None]
            answers = {
                rendered("last_scrape", role): vector(max(scrapes) if scrapes else None),
                rendered("present", role): vector(None if counts is None else 1, {"app_version": role}),
                rendered("requests", role): vector(counts),
                rendered("journeys", role): vector(None if counts is None else counts / 4),
                rendered("latency_buckets", role): {
                    "status": "success",
                    "data": {
                        "resultType": "vector",
                        "result": []
                        if counts is None
                        else [
                            {"metric": {"mode": "fast", "le": le}, "value": [0, str(counts * share)]}
                            for le, share in (("0.5", 0.5), ("+Inf", 1.0))
                        ],
                    },
                },
            }
            if query in answers:
                return httpx.Response(200, json=answers[query])
        return httpx.Response(200, json=vector(None))

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_arms_scraped_at_different_times_are_read_at_the_same_instant() -> None:
    # The canary's latest scrape is at 101.0; production's at 101.3, its previous at 100.3.
    arms = {
        "canary": arm(Target(scrapes=(99.0, 100.0, 101.0), rps=5.0)),
        "production": arm(Target(scrapes=(99.3, 100.3, 101.3), rps=10.0)),
    }
    source = PrometheusSource(URL, client=fake_prometheus(arms))
    read = source.snapshots(("canary", "production"))
    assert read["canary"].taken_at == read["production"].taken_at == 101.0
    assert read["canary"].requests == 505.0  # 5 req/s × 101.0: exactly its scrape
    assert read["production"].requests == 1010.0  # between 1003 and 1013: 10 req/s × 101.0
    assert read["production"].journeys == 253.0  # 1010 / 4 = 252.5, rounded half up to a whole count
    assert dict(read["production"].latency_buckets["fast"]) == {0.5: 505.0, INF: 1010.0}
    # Read one by one, each arm is as of its own latest scrape: 0.3 s of production's traffic apart.
    assert source.snapshot("production").requests == 1013.0


def test_each_target_of_an_arm_is_read_between_its_own_scrapes() -> None:
    # The canary's API (5 req/s) and a worker (3/s) are scraped 0.6 s apart; production is one target.
    arms = {
        "canary": arm(Target(scrapes=(99.0, 100.0, 101.0), rps=5.0), Target(scrapes=(99.6, 100.6, 101.6), rps=3.0)),
        "production": arm(
            Target(scrapes=(99.3, 100.3, 101.3), rps=10.0), Target(scrapes=(99.8, 100.8, 101.8), rps=1.0)
        ),
    }
    read = PrometheusSource(URL, client=fake_prometheus(arms)).snapshots(("canary", "production"))
    # The instant is the target scraped least recently (the canary's API at 101.0), and every target
    # counts as at 101.0: the worker 0.4 of the way from 301.8 to 304.8.
    assert read["canary"].taken_at == read["production"].taken_at == 101.0
    assert read["canary"].requests == 808.0  # 505 + 303
    assert read["production"].requests == 1111.0  # 1010 + 101
    assert dict(read["canary"].latency_buckets["fast"]) == {0.5: 404.0, INF: 808.0}


def test_a_target_no_longer_scraped_does_not_hold_the_instant_back() -> None:
    arms = {
        "canary": arm(Target(scrapes=(99.0, 100.0, 101.0), rps=5.0), Target(scrapes=(80.0, 81.0), rps=0.0)),
        "production": arm(Target(scrapes=(99.3, 100.3, 101.3), rps=10.0)),
    }
    read = PrometheusSource(URL, client=fake_prometheus(arms)).snapshots(("canary", "production"))
    assert read["canary"].taken_at == 101.0
    assert (read["canary"].requests, read["production"].requests) == (505.0, 1010.0)


def test_a_target_whose_scrapes_fail_does_not_hold_the_instant_back() -> None:
    # The second target is scraped on schedule but its scrapes failed since 100.1: it counts as of 99.1.
    down = Target(scrapes=(99.1, 100.1, 101.1), rps=2.0, failed=(100.1, 101.1))
    arms = {
        "canary": arm(Target(scrapes=(99.0, 100.0, 101.0), rps=5.0), down),
        "production": arm(Target(scrapes=(99.3, 100.3, 101.3), rps=10.0)),
    }
    read = PrometheusSource(URL, client=fake_prometheus(arms)).snapshots(("canary", "production"))
    assert read["canary"].taken_at == 101.0
    assert read["canary"].requests == 505.0 + 2.0 * 99.1


def test_the_instant_follows_the_arm_scraped_least_recently() -> None:
    arms = {
        "canary": arm(Target(scrapes=(99.5, 100.5, 101.5), rps=5.0)),
        "production": arm(Target(scrapes=(99.2, 100.2, 101.2), rps=10.0)),
    }
    read = PrometheusSource(URL, client=fake_prometheus(arms)).snapshots(("canary", "production"))
    assert read["canary"].taken_at == 101.2
    assert read["canary"].requests == 506.0  # 0.7 of the way from 502.5 (at 100.5) to 507.5 (at 101.5)
    assert read["production"].requests == 1012.0


def snap(requests: float, **extra: Any) -> MetricsSnapshot:
    return MetricsSnapshot(taken_at=0.0, requests=requests, **extra)


def test_towards_rounds_whole_counts_and_never_decreases() -> None:
    early, late = (
        snap(10, errors_5xx=1, rl_updates=2, rl_loss_sum=1.0),
        snap(13, errors_5xx=2, rl_updates=4, rl_loss_sum=9.0),
    )
    values = [early.towards(late, step / 20, at=1.0).requests for step in range(21)]
    assert values[0] == 10 and values[-1] == 13 and values == sorted(values)
    assert all(value == int(value) for value in values)
    middle = early.towards(late, 0.5, at=7.0)
    assert (middle.taken_at, middle.errors_5xx) == (7.0, 2.0)
    assert (middle.rl_updates, middle.rl_loss_sum) == (2, 1.0)  # the RL pair is never split


def test_towards_a_restarted_instance_keeps_the_earlier_reading() -> None:
    early, restarted = snap(100), snap(3)
    assert early.towards(restarted, 0.5, at=1.0) is early


@pytest.mark.parametrize("fraction", [-0.1, 1.5, math.nan])
def test_towards_refuses_a_fraction_outside_zero_to_one(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        snap(1).towards(snap(2), fraction, at=0.0)


def test_advanced_adds_a_weighted_step_to_another_reading() -> None:
    own = snap(100, errors_5xx=3, rl_updates=5, rl_loss_sum=2.0, counters={"a": 10.0})
    step_start, step_end = snap(40, counters={"a": 1.0}), snap(50, errors_5xx=0, counters={"a": 5.0})
    moved = own.advanced(step_start, step_end, 0.25, at=9.0)
    assert (moved.taken_at, moved.requests, moved.errors_5xx) == (9.0, 103.0, 3.0)  # 100 + round(2.5)
    assert moved.counters == {"a": 11.0} and (moved.rl_updates, moved.rl_loss_sum) == (5, 2.0)
    assert own.advanced(step_end, step_start, 0.5, at=9.0) is own  # a step that goes down: a restart
