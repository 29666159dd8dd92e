"""Stage 0 (shadow) on the real stack: NGINX copies users' requests to the canary, users see production only.

Real NGINX, real fragrance-ai processes, stage sessions as subprocesses (``pytest --canary-version v0.2.0
--stage 0``). Every claim is checked from outside: the answers users get through NGINX (``X-Upstream``,
``X-Served-Version``, status), NGINX's own logs and ``/__canary/state``, and the canary's request counter
on its ``/metrics``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from canary_harness.config import StackSettings
from canary_harness.metrics.scrape import parse_exposition
from canary_harness.rollback import withdraw
from canary_harness.stack import LocalStack
from canary_harness.stack_status import measure_status
from canary_harness.traffic.nginx import NginxTrafficController
from canary_harness.waiting import wait_until
from tests.integration.rolloutfixtures import RolloutCli, describe, rollout_args
from tests.integration.stackfixtures import FAST_ENV, StackFactory
from tests.integration.stagefixtures import StageRun, StageRunner, binomial_bounds

pytest_plugins = (
    "tests.integration.stagefixtures",
    "tests.integration.stackfixtures",
    "tests.integration.rolloutfixtures",
)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATES = "test_release_gates::"
SHORT_PERIOD_S = 4.0
USER_REQUESTS = 1000
BRIEF = {"brief": "a fresh citrus scent for summer mornings", "mode": "fast"}


def canary_requests(url: str) -> float:
    """The canary's API request counter (``http_requests_total``, /health and /metrics excluded)."""
    return parse_exposition(httpx.get(url.rstrip("/") + "/metrics", timeout=5.0).text).requests


def send_users(base_url: str, count: int, concurrency: int = 8) -> list[httpx.Response]:
    """``count`` POST /dna/create through NGINX from ``concurrency`` keep-alive clients, as users send them."""

    def one_client(n: int) -> list[httpx.Response]:
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            return [client.post("/dna/create", json=BRIEF) for _ in range(n)]

    shares = [count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        return [response for batch in pool.map(one_client, shares) for response in batch]


def assert_only_production_answered(responses: list[httpx.Response]) -> None:
    """Every answer came from production (header and served version) with a 2xx."""
    upstreams = {response.headers.get("X-Upstream") for response in responses}
    versions = {response.headers.get("X-Served-Version") for response in responses}
    statuses = sorted({response.status_code for response in responses})
    assert (upstreams, versions) == ({"production"}, {"v0.1.0"}), (upstreams, versions)
    assert statuses == [200], statuses


def settled(read: Callable[[], float], at_least: float, timeout: float = 20.0) -> float:
    """The value of ``read`` once it reached ``at_least`` and stopped changing (the copies are in)."""
    wait_until(lambda: read() >= at_least, timeout, 0.1, f"the counter to reach {at_least:g}")
    last = [read()]

    def stable() -> bool:
        now = read()
        unchanged, last[0] = now == last[0], now
        return unchanged

    wait_until(stable, timeout, 0.5, "the counter to settle")
    return last[0]


def access_lines(run_dir: Path) -> list[dict[str, object]]:
    """Every request NGINX served to users in this run directory."""
    path = run_dir / "nginx" / "logs" / "access.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_shadow_stage_passes_serves_users_from_production_and_copies_the_share(stage_runner: StageRunner) -> None:
    run = stage_runner.run(0, SHORT_PERIOD_S, "--shadow-share", "50")
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    outcomes = run.outcomes()
    # The split gate checks the mirror coverage at stage 0; every gate runs and passes.
    assert all(item.outcome == "passed" for key, item in outcomes.items() if key.startswith(GATES)), run.describe()
    assert not run.not_passed(), run.describe()
    record = run.record()
    assert record.verdict is not None
    checks = {check["name"]: check["state"] for check in record.verdict["checks"]}
    assert checks["mirror_coverage"] == "PASS" and "traffic_split" not in checks, checks
    assert (record.stage, record.weight_in_force, record.shadow_share) == (0, 0, 50)
    assert "stage shadow" in run.output and "PASSED" in run.output
    [weight] = run.events("weight")
    assert (weight.stage, weight.details["weight"], weight.details["shadow_share"]) == (0, 0, 50)
    # The stage's own load went through NGINX: not one user request was answered by the canary.
    users = access_lines(stage_runner.run_dir)
    assert users and {line["upstream"] for line in users} == {"production"}, {line["upstream"] for line in users}

    # The shadow stays in force after a passed stage (the next stage's weight ends it): check it by traffic.
    in_force = stage_runner.stack.traffic().weights_in_force()
    assert (in_force.canary_weight, in_force.shadow_share) == (0, 50)
    canary_url = f"http://127.0.0.1:{stage_runner.canary_port}"
    before = canary_requests(canary_url)
    responses = send_users(stage_runner.base_url, USER_REQUESTS)
    assert_only_production_answered(responses)
    low, high = binomial_bounds(USER_REQUESTS, 0.5)
    copies = settled(lambda: canary_requests(canary_url), before + low) - before
    assert low <= copies <= high, f"the canary received {copies:g} copies of {USER_REQUESTS} requests at 50 %"


def failed_checks(run: StageRun) -> set[str]:
    """Names of the verdict's checks in state FAIL."""
    verdict = run.record().verdict
    assert verdict is not None, f"the stage reached no verdict\n{run.describe()}"
    return {check["name"] for check in verdict["checks"] if check["state"] == "FAIL"}


def test_5xx_canary_fails_the_shadow_stage_without_one_user_error(stage_runner: StageRunner) -> None:
    run = stage_runner.run(0, 60, faults="error_rate=0.05")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.describe()
    assert "error_rate" in failed_checks(run), run.describe()
    assert run.not_passed(GATES).keys() >= {f"{GATES}test_5xx_error_rate"}
    [rollback] = run.events("rollback")
    assert rollback.stage == 0 and rollback.details["canary_stopped"] is True
    # The traffic was withdrawn the moment the verdict was FAIL: that withdrawal found the copies on.
    early = run.record().rollback
    assert early is not None and (early["shadow_before"], early["shadow_after"]) == (100, 0), early
    # Users: every request of the stage's load was answered by production, none with a 5xx.
    users = access_lines(stage_runner.run_dir)
    assert len(users) > 100, f"only {len(users)} user requests in the stage"
    assert {line["upstream"] for line in users} <= {"production", "none"}
    server_errors = [line for line in users if int(str(line["status"])) >= 500]
    assert not server_errors, server_errors[:3]
    # The canary did answer 5xx, to copies only (NGINX's shadow log has the canary's own statuses).
    copies = (stage_runner.run_dir / "nginx" / "logs" / "shadow_access.jsonl").read_text().splitlines()
    assert any(json.loads(line)["status"] >= 500 for line in copies)
    in_force = stage_runner.stack.traffic().weights_in_force()
    assert (in_force.canary_weight, in_force.shadow_share) == (0, 0)


def p95(values: list[float]) -> float:
    """The 95th percentile of ``values``."""
    return statistics.quantiles(values, n=20)[-1]


def user_latencies(base_url: str, count: int, clients: int = 4) -> list[float]:
    """Seconds per answer users get through NGINX, keep-alive clients sending one request after another."""

    def one_client(n: int) -> list[float]:
        seconds = []
        with httpx.Client(base_url=base_url, timeout=30.0) as client:
            for _ in range(n):
                started = time.perf_counter()
                response = client.post("/dna/create", json=BRIEF)
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 200 and response.headers["X-Upstream"] == "production"
        return seconds

    with ThreadPoolExecutor(clients) as pool:
        return [value for batch in pool.map(one_client, [count // clients] * clients) for value in batch]


def test_a_canary_sleeping_10_s_does_not_slow_production_for_users(stack_factory: StackFactory) -> None:
    stack: LocalStack = stack_factory(canary_env={**FAST_ENV, "FRAGRANCE_FAULTS": "latency_add_ms=10000"})
    traffic = stack.traffic()
    assert isinstance(traffic, NginxTrafficController)
    user_latencies(traffic.base_url, 40)  # warm both paths up
    without = p95(user_latencies(traffic.base_url, 400))
    traffic.set_shadow(100, reason="slow canary")
    with_mirror = p95(user_latencies(traffic.base_url, 400))
    # The copies were sent and the canary was slow: NGINX gave up on them after the relay's 5 s.
    shadow_log = traffic.shadow_access_log

    def timed_out_copies() -> int:
        lines = shadow_log.read_text().splitlines() if shadow_log.exists() else []
        return sum(json.loads(line)["status"] == 504 for line in lines)

    wait_until(lambda: timed_out_copies() >= 100, 30.0, 0.5, "copies timed out by the slow canary")
    print(f"production p95 seen by users: {without * 1000:.1f} ms without mirroring, {with_mirror * 1000:.1f} ms with")
    # A connection held by a 10 s copy would show as seconds; noise on a loaded machine stays well below this.
    assert with_mirror < max(2 * without, without + 0.05), (without, with_mirror)


def test_rollback_ends_the_copies_the_canary_counter_stops(stack_factory: StackFactory) -> None:
    stack: LocalStack = stack_factory()
    traffic = stack.traffic()
    canary = stack.settings.canary_port
    canary_url = f"http://127.0.0.1:{canary}"
    traffic.set_shadow(100, reason="stage 0")
    assert measure_status(stack, stack.state()).shadow_share == 100  # what `canary stack status` prints
    before = canary_requests(canary_url)
    assert_only_production_answered(send_users(traffic.base_url, 50, concurrency=2))
    copied = settled(lambda: canary_requests(canary_url), before + 50) - before
    assert copied == 50
    result = withdraw(stack.settings, version="v0.2.0", stage=0, reason="test rollback")
    assert (result.shadow_before, result.shadow_after, result.weight_after) == (100, 0, 0)
    assert traffic.weights_in_force().shadow_share == 0
    assert measure_status(stack, stack.state()).shadow_share == 0
    stopped_at = canary_requests(canary_url)
    assert_only_production_answered(send_users(traffic.base_url, 50, concurrency=2))
    # A copy arrives within milliseconds of its request; give any that NGINX still sent 2 s to show up.
    with pytest.raises(TimeoutError):
        wait_until(lambda: canary_requests(canary_url) > stopped_at, 2.0, 0.1, "a copy after the rollback")


# ---------------------------------------------------------------------------------------------- rollouts
def test_rollout_through_the_shadow_stage_to_100(rollout_cli: RolloutCli) -> None:
    result = rollout_cli(*rollout_args(stages="0,1,5,25,100"), timeout=240)
    assert result.returncode == 0, describe(result)
    weights = [(entry.stage, entry.details["weight"]) for entry in rollout_cli.journal() if entry.event == "weight"]
    assert weights == [(0, 0), (1, 1), (5, 5), (25, 25), (100, 100)], weights
    assert "--- stage shadow of v0.2.0 ---" in result.stdout and "stage shadow  PASSED" in result.stdout
    # Every request reaches the canary at 100 %: the weights ended the shadow stage's copies.
    assert rollout_cli.probe(100).canary == 100
    assert LocalStack(StackSettings(run_dir=rollout_cli.run_dir)).traffic().weights_in_force().shadow_share == 0


def test_bad_release_is_caught_at_the_shadow_stage_with_zero_user_errors(rollout_cli: RolloutCli) -> None:
    result = rollout_cli(*rollout_args("--canary-env", "FRAGRANCE_FAULTS=error_rate=0.05", stages="0,1,5,25,100",
                                       period=30), timeout=180)  # fmt: skip
    assert result.returncode == 1, describe(result)
    events = [(entry.event, entry.stage) for entry in rollout_cli.journal()]
    assert ("rollback", 0) in events and not [stage for _, stage in events if stage not in (None, 0)], events
    assert "stage shadow  FAILED" in result.stdout and "stage   1%  not run" in result.stdout, result.stdout
    users = access_lines(rollout_cli.run_dir)
    assert users and not [line for line in users if int(str(line["status"])) >= 500]
    assert {line["upstream"] for line in users} <= {"production", "none"}
