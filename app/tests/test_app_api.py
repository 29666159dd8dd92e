"""API tests against a real ``fragrance-ai`` process (uvicorn) on a free port, latency scale 0."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest
from fa_helpers import Call, ServiceProcess, fire, free_port, metric_sum, samples, wait_until

from fragrance_ai.metrics import LATENCY_BUCKETS
from fragrance_ai.schema import schema_errors

pytestmark = pytest.mark.integration


def post(service: ServiceProcess, path: str, body: dict) -> httpx.Response:
    return httpx.post(service.base_url + path, json=body, timeout=10)


def new_dna(service: ServiceProcess, mode: str = "fast") -> str:
    response = post(service, "/dna/create", {"brief": "fresh citrus summer morning", "mode": mode})
    assert response.status_code == 200, response.text
    return str(response.json()["dna_id"])


def test_health_and_version_header(healthy_service: ServiceProcess) -> None:
    response = httpx.get(healthy_service.base_url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "version": "v0.2.0"}
    assert response.headers["x-app-version"] == "v0.2.0"
    for path in ("/metrics", "/no/such/route"):
        assert httpx.get(healthy_service.base_url + path).headers["x-app-version"] == "v0.2.0"


def test_dna_create_returns_a_schema_valid_brief_and_tiered_notes(healthy_service: ServiceProcess) -> None:
    response = post(
        healthy_service, "/dna/create", {"brief": "warm vanilla amber for winter nights", "mode": "balanced"}
    )
    assert response.status_code == 200 and response.headers["x-app-version"] == "v0.2.0"
    data = response.json()
    assert data["dna_id"].startswith("dna_") and len(data["dna_id"]) == 20
    assert data["version"] == "v0.2.0"
    assert schema_errors(data["brief"]) == []
    assert data["brief"]["mode"] == "balanced"
    assert data["brief"]["models"] == ["gpt-3.5-turbo", "claude-3-haiku", "gemini-pro"]
    notes = data["notes"]
    assert set(notes) == {"top", "heart", "base"}
    assert all(isinstance(n["name"], str) and n["concentration"] > 0 for tier in notes.values() for n in tier)
    assert math.isclose(sum(n["concentration"] for tier in notes.values() for n in tier), 100.0, abs_tol=0.05)
    assert post(healthy_service, "/dna/create", {"brief": "x"}).json()["brief"]["mode"] == "fast"  # default


def test_evolve_options_and_feedback_run_a_ppo_update_per_batch(healthy_service: ServiceProcess) -> None:
    dna_id = new_dna(healthy_service)
    body = {"dna_id": dna_id, "brief": "make it woodier", "mode": "creative", "algorithm": "PPO"}
    response = post(healthy_service, "/evolve/options", body)
    assert response.status_code == 200
    data = response.json()
    assert (
        data["experiment_id"].startswith("exp_") and data["dna_id"] == dna_id and data["mode"] == "creative"
    )
    assert len(data["options"]) == 3 and len({o["id"] for o in data["options"]}) == 3
    for option in data["options"]:
        assert option["id"].startswith("opt_") and isinstance(option["action"], str)
        assert set(option["dna"]) == {"top", "heart", "base"}
    assert len(post(healthy_service, "/evolve/options", {**body, "num_options": 7}).json()["options"]) == 7

    updates_before = len(healthy_service.events("rl_update"))
    experiment, option = data["experiment_id"], data["options"][0]["id"]
    results = [
        post(
            healthy_service,
            "/evolve/feedback",
            {"experiment_id": experiment, "chosen_id": option, "rating": 1 + i % 5},
        )
        for i in range(16)
    ]
    assert all(r.status_code == 200 and r.json()["status"] == "accepted" for r in results)
    updates = [r.json()["update"] for r in results if r.json()["update"] is not None]
    # Batch size 8 (default), module-shared service: 2 updates, whatever feedback came before.
    assert len(updates) == 2
    for update in updates:
        assert update["algo"] == "PPO" and update["loss"] >= 0 and update["steps"] > 0
        assert 0.0 <= update["clip_frac"] <= 1.0 and update["entropy"] > 0 and -1 <= update["reward"] <= 1
    events = healthy_service.wait_events("rl_update", updates_before + 2)
    assert {"algo", "loss", "reward", "entropy", "clip_frac", "version"} <= set(events[-1])
    assert events[-1]["loss"] == updates[-1]["loss"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/dna/create", {"brief": ""}, "body.brief"),
        ("/dna/create", {"brief": "x" * 2001}, "body.brief"),
        ("/dna/create", {"brief": "x", "mode": "turbo"}, "body.mode"),
        ("/dna/create", {}, "body.brief"),
        ("/evolve/options", {"dna_id": "d", "brief": "b", "mode": "turbo", "algorithm": "PPO"}, "body.mode"),
        (
            "/evolve/options",
            {"dna_id": "d", "brief": "b", "mode": "fast", "algorithm": "A2C"},
            "body.algorithm",
        ),
        (
            "/evolve/options",
            {"dna_id": "d", "brief": "b", "mode": "fast", "num_options": 11},
            "body.num_options",
        ),
        (
            "/evolve/options",
            {"dna_id": "d", "brief": "b", "mode": "fast", "num_options": 0},
            "body.num_options",
        ),
        ("/evolve/feedback", {"experiment_id": "e", "chosen_id": "o", "rating": 6}, "body.rating"),
        ("/evolve/feedback", {"experiment_id": "e", "chosen_id": "o", "rating": "great"}, "body.rating"),
        ("/evolve/feedback", {"experiment_id": "e", "rating": 3}, "body.chosen_id"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    healthy_service: ServiceProcess, path: str, body: dict, field: str
) -> None:
    response = post(healthy_service, path, body)
    assert response.status_code == 422
    assert field in response.json()["message"]
    assert response.headers["x-app-version"] == "v0.2.0"


def test_malformed_json_is_422(healthy_service: ServiceProcess) -> None:
    response = httpx.post(
        healthy_service.base_url + "/dna/create",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422 and "json" in response.json()["message"].lower()


def test_unknown_ids_are_404(healthy_service: ServiceProcess) -> None:
    missing = post(healthy_service, "/evolve/options", {"dna_id": "dna_nope", "brief": "b", "mode": "fast"})
    assert missing.status_code == 404 and "dna_nope" in missing.json()["detail"]
    feedback = post(
        healthy_service, "/evolve/feedback", {"experiment_id": "exp_nope", "chosen_id": "o", "rating": 3}
    )
    assert feedback.status_code == 404 and "exp_nope" in feedback.json()["detail"]
    options = post(
        healthy_service, "/evolve/options", {"dna_id": new_dna(healthy_service), "brief": "b"}
    ).json()
    wrong = post(
        healthy_service,
        "/evolve/feedback",
        {"experiment_id": options["experiment_id"], "chosen_id": "opt_other", "rating": 3},
    )
    assert wrong.status_code == 404 and "opt_other" in wrong.json()["detail"]


def test_metrics_exposition_labels_buckets_and_counts(healthy_service: ServiceProcess) -> None:
    before = healthy_service.metrics_text()
    dna_id = new_dna(healthy_service, mode="creative")
    post(healthy_service, "/evolve/options", {"dna_id": dna_id, "brief": "b", "mode": "creative"})
    post(healthy_service, "/evolve/options", {"dna_id": "dna_nope", "brief": "b", "mode": "fast"})
    text = healthy_service.metrics_text()

    for family_sample in samples(text, "http_request_duration_seconds_bucket"):
        assert family_sample[0]["app_version"] == "v0.2.0"
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines and all('app_version="v0.2.0"' in line for line in lines)

    edges = sorted(
        {float(labels["le"]) for labels, _ in samples(text, "http_request_duration_seconds_bucket")}
    )
    assert edges == sorted(LATENCY_BUCKETS)
    assert {2.5, 3.2, 4.5} <= set(edges)

    def delta(name: str, **labels: str) -> float:
        return metric_sum(text, name, **labels) - metric_sum(before, name, **labels)

    assert delta("http_requests_total", route="/dna/create", status="200") == 1
    assert delta("http_requests_total", route="/evolve/options", status="200") == 1
    assert delta("http_requests_total", route="/evolve/options", status="404") == 1
    assert (
        delta("http_request_duration_seconds_count", route="/evolve/options", mode="creative", status="200")
        == 1
    )
    assert (
        delta("http_request_duration_seconds_count", route="/evolve/options", mode="fast", status="404") == 1
    )
    assert delta("llm_brief_total", mode="creative") == 2
    assert delta("llm_brief_duration_seconds_count", mode="creative") == 2
    # Pre-initialised series exist at zero even when nothing happened for them.
    for name, labels in [
        ("llm_brief_schema_failures_total", {"mode": "balanced"}),
        ("rl_update_total", {"algo": "PPO"}),
        ("rl_update_loss_count", {}),
        ("rl_training_loss", {}),
        ("rl_clip_frac", {}),
        ("rl_reward", {}),
        ("rl_entropy", {}),
    ]:
        assert samples(before, name, **labels), name


def test_log_events_carry_their_fields(healthy_service: ServiceProcess) -> None:
    new_dna(healthy_service, mode="balanced")
    startup = healthy_service.events("startup")
    assert len(startup) == 1 and startup[0]["faults"] == {} and startup[0]["version"] == "v0.2.0"
    brief = wait_until(lambda: healthy_service.events("llm_brief"), timeout=5, what="llm_brief events")[-1]
    assert brief["mode"] == "balanced" and brief["schema_ok"] is True and brief["version"] == "v0.2.0"
    assert brief["models"] == ["gpt-3.5-turbo", "claude-3-haiku", "gemini-pro"] and brief["elapsed_ms"] >= 0
    request = [e for e in healthy_service.events("request") if e["route"] == "/dna/create"][-1]
    assert request["status"] == 200 and request["method"] == "POST" and request["duration_ms"] >= 0
    assert request["version"] == "v0.2.0"
    # stdout carries the same lines as the file.
    stdout_events = [
        line for line in healthy_service.stdout_file.read_text().splitlines() if '"event":"startup"' in line
    ]
    assert len(stdout_events) == 1


def test_healthy_service_stays_clean_under_a_thousand_mixed_requests(healthy_service: ServiceProcess) -> None:
    before = healthy_service.metrics_text()
    dna_ids = [new_dna(healthy_service, mode) for mode in ("fast", "balanced", "creative")]
    options = [
        post(
            healthy_service, "/evolve/options", {"dna_id": d, "brief": "more floral", "mode": "balanced"}
        ).json()
        for d in dna_ids
    ]
    calls: list[Call] = []
    for i in range(1000):
        kind = i % 3
        if kind == 0:
            calls.append(
                (
                    "POST",
                    "/dna/create",
                    {"brief": f"brief {i} citrus rose", "mode": ("fast", "balanced", "creative")[i % 3]},
                )
            )
        elif kind == 1:
            calls.append(
                (
                    "POST",
                    "/evolve/options",
                    {"dna_id": dna_ids[i % 3], "brief": "spicier", "mode": "creative"},
                )
            )
        else:
            option = options[i % 3]
            calls.append(
                (
                    "POST",
                    "/evolve/feedback",
                    {
                        "experiment_id": option["experiment_id"],
                        "chosen_id": option["options"][i % 3]["id"],
                        "rating": 1 + i % 5,
                    },
                )
            )
    responses = fire(healthy_service.base_url, calls, concurrency=16)
    assert [r.status_code for r in responses].count(200) == 1000
    text = healthy_service.metrics_text()
    errors = sum(v for labels, v in samples(text, "http_requests_total") if labels["status"].startswith("5"))
    assert errors == 0
    assert metric_sum(text, "llm_brief_schema_failures_total") == 0
    assert metric_sum(text, "http_requests_total") - metric_sum(before, "http_requests_total") >= 1006


def test_slow_requests_are_served_concurrently(service_factory: Callable[..., ServiceProcess]) -> None:
    # Fast-mode median is 1 s at scale 1: at 0.2 a request takes ~0.2 s; 120 of them in series ~24 s.
    service = service_factory(env={"FRAGRANCE_LATENCY_SCALE": "0.2"}).wait_ready()
    started = time.monotonic()
    responses = fire(
        service.base_url,
        [("POST", "/dna/create", {"brief": "citrus", "mode": "fast"})] * 120,
        concurrency=120,
    )
    elapsed = time.monotonic() - started
    assert all(r.status_code == 200 for r in responses)
    assert elapsed < 4.0, f"120 concurrent slow requests took {elapsed:.1f}s: the loop is blocked"
    briefs = sorted(e["elapsed_ms"] for e in service.events("llm_brief"))
    assert 100 < briefs[len(briefs) // 2] < 400  # the latency model is in force (median ~200 ms)


def test_version_comes_from_app_version_and_the_flag_wins(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    flag = service_factory(env={"APP_VERSION": "v9.9.9"}, version="v0.3.0")
    env_only = service_factory(env={"APP_VERSION": "v7.0.0"}, version=None)
    for service, expected in ((flag, "v0.3.0"), (env_only, "v7.0.0")):
        response = httpx.get(service.wait_ready().base_url + "/health")
        assert response.json()["version"] == expected and response.headers["x-app-version"] == expected


def test_sigterm_exits_zero_quickly_even_with_requests_in_flight(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    service = service_factory(env={"FRAGRANCE_LATENCY_SCALE": "1"}).wait_ready()

    def in_flight() -> None:
        try:
            httpx.post(service.base_url + "/dna/create", json={"brief": "x", "mode": "creative"}, timeout=10)
        except httpx.HTTPError:
            pass

    import threading

    threads = [threading.Thread(target=in_flight) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_until(
        lambda: any(e["route"] == "/health" for e in service.events("request")),
        timeout=5,
        what="the service to log its first request",
    )
    started = time.monotonic()
    code = service.stop(timeout=10)
    assert code == 0 and time.monotonic() - started < 5
    for thread in threads:
        thread.join(10)
    assert service.events("shutdown")


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        (
            {"FRAGRANCE_FAULTS": "error_rate=abc"},
            [],
            "FRAGRANCE_FAULTS: error_rate='abc' is not a number in [0, 1]",
        ),
        ({"FRAGRANCE_FAULTS": "typo=1"}, [], "unknown fault 'typo'"),
        ({"FRAGRANCE_LATENCY_SCALE": "slow"}, [], "FRAGRANCE_LATENCY_SCALE: 'slow'"),
        ({"FRAGRANCE_PPO_BATCH_SIZE": "0"}, [], "FRAGRANCE_PPO_BATCH_SIZE: '0'"),
        ({}, ["--version", "v 1"], "--version: 'v 1'"),
        ({"LLM_ENSEMBLE_MODELS": "openai:gpt-x"}, [], "needs OPENAI_BASE_URL"),
    ],
)
def test_invalid_settings_exit_2_before_binding(env: dict, args: list, expected: str) -> None:
    port = free_port()
    full_env = {"PATH": "", "FRAGRANCE_LATENCY_SCALE": "0", **env}
    result = subprocess.run(
        [sys.executable, "-m", "fragrance_ai", "--port", str(port), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert result.stdout == ""  # no startup line: it never came up
