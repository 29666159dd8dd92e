"""Each fault makes a real service a measurably bad release, by a statistically sound margin.

Healthy counterparts: test_app_api.py::test_healthy_service_stays_clean_under_a_thousand_mixed_requests
(no 5xx, no schema failure) and the healthy arms below.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from fa_helpers import Call, ServiceProcess, binomial_interval, fire, metric_sum, samples, wait_until

from fragrance_ai.api import CRASH_EXIT_CODE
from fragrance_ai.schema import schema_errors

pytestmark = pytest.mark.integration
Factory = Callable[..., ServiceProcess]


def start(factory: Factory, faults: str = "", **env: str) -> ServiceProcess:
    return factory(env={"FRAGRANCE_FAULTS": faults, **env})


def create_dna(service: ServiceProcess) -> str:
    response = httpx.post(service.base_url + "/dna/create", json={"brief": "fresh citrus"}, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["dna_id"])


def test_error_rate_answers_that_fraction_of_api_requests_500(service_factory: Factory) -> None:
    service = start(service_factory, "error_rate=0.2").wait_ready()
    assert service.events("startup")[0]["faults"] == {"error_rate": 0.2}
    # A DNA and an experiment to give feedback on (retried past injected 500s).
    options: dict[str, Any] = {}
    while not options:
        dna = httpx.post(service.base_url + "/dna/create", json={"brief": "rose"}, timeout=10)
        if dna.status_code == 200:
            reply = httpx.post(
                service.base_url + "/evolve/options",
                json={"dna_id": dna.json()["dna_id"], "brief": "rose"},
                timeout=10,
            )
            options = reply.json() if reply.status_code == 200 else {}
    before = service.metrics_text()
    feedback = {
        "experiment_id": options["experiment_id"],
        "chosen_id": options["options"][0]["id"],
        "rating": 4,
    }
    n = 1000
    calls = [("POST", "/evolve/feedback", feedback)] * n + [
        ("GET", "/health", None),
        ("GET", "/metrics", None),
    ] * 25
    responses = fire(service.base_url, calls, concurrency=16)
    api, probes = responses[:n], responses[n:]
    errors = [r for r in api if r.status_code == 500]
    assert {r.status_code for r in api} <= {200, 500}
    lo, hi = binomial_interval(n, 0.2, 0.999)
    assert lo <= len(errors) <= hi, f"{len(errors)} x 500 in {n} requests, expected {lo}..{hi}"
    assert all(
        r.json()["detail"].startswith("internal error") and r.headers["x-app-version"] == "v0.2.0"
        for r in errors
    )
    assert all(r.status_code == 200 for r in probes)  # /health and /metrics are never failed on purpose
    text = service.metrics_text()
    counted = metric_sum(text, "http_requests_total", route="/evolve/feedback", status="500") - metric_sum(
        before, "http_requests_total", route="/evolve/feedback", status="500"
    )
    assert counted == len(errors)
    assert metric_sum(text, "http_requests_total", route="/health", status="500") == 0


def test_latency_add_ms_shifts_only_its_mode_past_the_bucket_edges(service_factory: Factory) -> None:
    service = start(service_factory, "latency_add_ms.fast=300").wait_ready()
    calls = [("POST", "/dna/create", {"brief": "citrus", "mode": mode}) for mode in ("fast", "balanced") * 30]
    assert all(r.status_code == 200 for r in fire(service.base_url, calls, concurrency=60))
    text = service.metrics_text()

    def over(mode: str, edge: float) -> float:
        labels = {"route": "/dna/create", "mode": mode, "status": "200"}
        total = metric_sum(text, "http_request_duration_seconds_count", **labels)
        within = metric_sum(text, "http_request_duration_seconds_bucket", le=str(edge), **labels)
        return total - within

    # Latency scale 0: without the fault everything answers in milliseconds.
    assert over("fast", 0.25) == 30  # every fast request took more than 0.25 s
    assert over("balanced", 0.25) == 0  # the other mode is untouched
    fast_briefs = [e["elapsed_ms"] for e in service.events("llm_brief") if e["mode"] == "fast"]
    assert len(fast_briefs) == 30 and min(fast_briefs) >= 300


def _median_brief_ms(service: ServiceProcess, mode: str) -> float:
    return statistics.median(e["elapsed_ms"] for e in service.events("llm_brief") if e["mode"] == mode)


def _brief_load(service: ServiceProcess) -> None:
    service.wait_ready()
    for mode in ("creative", "fast"):  # one mode after the other: both arms draw the same latencies
        calls = [("POST", "/dna/create", {"brief": "amber", "mode": mode})] * 30
        assert all(r.status_code == 200 for r in fire(service.base_url, calls, concurrency=40))


def test_latency_factor_multiplies_its_mode_only(service_factory: Factory) -> None:
    scale = {"FRAGRANCE_LATENCY_SCALE": "0.12"}  # fast median ~120 ms: timer noise stays small
    healthy = start(service_factory, "", **scale)
    slow = start(service_factory, "latency_factor.creative=3", **scale)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(_brief_load, (healthy, slow)))
    creative = _median_brief_ms(slow, "creative") / _median_brief_ms(healthy, "creative")
    fast = _median_brief_ms(slow, "fast") / _median_brief_ms(healthy, "fast")
    # Same seed, same latency draws: the ratio of medians is ~3 and ~1 (bands allow for a busy machine).
    assert 2.4 < creative < 3.6, creative
    assert 0.6 < fast < 1.5, fast
    text = slow.metrics_text()
    mean = metric_sum(text, "http_request_duration_seconds_sum", mode="creative", route="/dna/create") / 30
    assert mean > 3 * 0.12 * 2.4 * 0.8  # ~3 x the scaled 2.4 s median, seen in the histogram too


def test_schema_rate_breaks_that_fraction_of_briefs_and_counts_them(service_factory: Factory) -> None:
    service = start(service_factory, "schema_rate=0.3").wait_ready()
    n = 300
    responses = fire(service.base_url, [("POST", "/dna/create", {"brief": f"brief {i}"}) for i in range(n)])
    assert all(r.status_code == 200 for r in responses)  # the service still answers
    broken = sum(1 for r in responses if schema_errors(r.json()["brief"]))
    lo, hi = binomial_interval(n, 0.3, 0.999)
    assert lo <= broken <= hi, f"{broken} broken briefs of {n}, expected {lo}..{hi}"
    text = service.metrics_text()
    assert metric_sum(text, "llm_brief_schema_failures_total") == broken
    assert metric_sum(text, "llm_brief_total") == n
    events = service.wait_events("llm_brief", n)
    assert len(events) == n
    assert sum(1 for e in events if e["schema_ok"] is False) == broken
    assert all(e["schema_errors"] for e in events if e["schema_ok"] is False)


def _feedback_losses(service: ServiceProcess, seed: int, updates: int) -> list[float]:
    """Feedback with uniformly random ratings on random options, ``updates`` x batch size of them;
    returns the losses of the PPO updates in the order they ran (from the rl_update log events)."""
    rng = np.random.default_rng(seed)
    service.wait_ready()
    dna = create_dna(service)
    experiments = [
        httpx.post(service.base_url + "/evolve/options", json={"dna_id": dna, "brief": b, "mode": m}).json()
        for b in ("woody", "citrus", "floral")
        for m in ("fast", "creative")
    ]
    calls: list[Call] = []
    for _ in range(updates * 8):  # default batch size 8
        experiment = experiments[int(rng.integers(len(experiments)))]
        option = experiment["options"][int(rng.integers(3))]
        body = {"experiment_id": experiment["experiment_id"], "chosen_id": option["id"]}
        calls.append(("POST", "/evolve/feedback", {**body, "rating": int(rng.integers(1, 6))}))
    replies = fire(service.base_url, calls, concurrency=4)
    assert all(r.status_code == 200 for r in replies)
    answered = sorted(r.json()["update"]["loss"] for r in replies if r.json()["update"] is not None)
    logged = [e["loss"] for e in service.wait_events("rl_update", updates)]
    assert len(logged) == updates and sorted(logged) == pytest.approx(answered)
    return logged


def test_loss_factor_pushes_updates_over_twice_the_healthy_median(service_factory: Factory) -> None:
    healthy, faulty = start(service_factory, ""), start(service_factory, "loss_factor=3")
    with ThreadPoolExecutor(2) as pool:
        healthy_losses, faulty_losses = pool.map(_feedback_losses, (healthy, faulty), (1, 2), (40, 40))
    median = statistics.median(healthy_losses)
    assert np.mean(np.array(healthy_losses) > 2 * median) <= 0.05
    assert np.mean(np.array(faulty_losses) > 2 * median) >= 0.9, (median, faulty_losses)
    for service, losses in ((healthy, healthy_losses), (faulty, faulty_losses)):
        text = service.metrics_text()
        assert metric_sum(text, "rl_update_loss_count") == len(losses) == metric_sum(text, "rl_update_total")
        assert metric_sum(text, "rl_update_loss_sum") == pytest.approx(sum(losses))
        [(_, last)] = samples(text, "rl_training_loss")
        assert last == pytest.approx(losses[-1])


def test_crash_after_s_makes_the_process_exit_non_zero(service_factory: Factory) -> None:
    launched = time.monotonic()
    service = start(service_factory, "crash_after_s=3").wait_ready()
    assert service.process.poll() is None
    code = wait_until(lambda: service.process.poll(), timeout=15, what="the crash_after_s fault to fire")
    lived = time.monotonic() - launched
    assert code == CRASH_EXIT_CODE != 0
    assert 3.0 <= lived < 5.0, lived  # counted from process start
    [crash] = service.events("crash")
    assert crash["after_s"] == 3
    with pytest.raises(httpx.ConnectError):
        httpx.get(service.base_url + "/health", timeout=2)
