"""The simulated users' walks: requests planned, answers checked, failures named; canned answers only."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from canary_harness.loadgen.journey import (
    JOURNEY_HEADER,
    NUM_OPTIONS,
    Journey,
    LightProbe,
    ModePicker,
    make_walk,
    served_version,
)

HEADERS = {"X-App-Version": "v0.2.0"}


def _journey(mix: dict[str, float] | None = None, seed: int = 7) -> Journey:
    rng = random.Random(seed)
    return Journey(ModePicker(mix or {"balanced": 1.0}, rng), rng)


def _create_answer(dna_id: str = "dna_1") -> str:
    return json.dumps(
        {
            "dna_id": dna_id,
            "version": "v0.2.0",
            "brief": {},
            "notes": {"top": ["bergamot"], "heart": [], "base": ["musk"]},
        }
    )


def _options_answer(dna_id: str = "dna_1", count: int = NUM_OPTIONS) -> str:
    options = [{"id": f"opt_{i}", "action": i, "dna": {}} for i in range(count)]
    return json.dumps({"experiment_id": "exp_9", "dna_id": dna_id, "mode": "balanced", "options": options})


def _feedback_answer(**overrides: Any) -> str:
    return json.dumps({"status": "accepted", "experiment_id": "exp_9", "update": None, **overrides})


def test_mode_picker_honours_the_mix_within_a_binomial_bound() -> None:
    mix = {"fast": 0.5, "balanced": 0.35, "creative": 0.15}
    picker = ModePicker(mix, random.Random(3))
    draws = 20_000
    counts = {mode: 0 for mode in mix}
    for _ in range(draws):
        counts[picker.pick()] += 1
    for mode, share in mix.items():
        sigma = math.sqrt(draws * share * (1 - share))
        assert abs(counts[mode] - draws * share) < 4.5 * sigma, (mode, counts)


def test_mode_picker_never_draws_a_zero_weight_mode() -> None:
    picker = ModePicker({"fast": 0.0, "balanced": 1.0, "creative": 0.0}, random.Random(1))
    assert {picker.pick() for _ in range(500)} == {"balanced"}
    with pytest.raises(ValueError, match="no mode"):
        ModePicker({"fast": 0.0}, random.Random(1))


def test_served_version_prefers_nginx_header_then_service_header() -> None:
    assert served_version({"x-app-version": "v1", "X-Served-Version": "v2"}) == "v2"
    assert served_version({"X-APP-VERSION": "v1"}) == "v1"
    assert served_version({"X-Served-Version": " ", "X-App-Version": "v1"}) == "v1"
    assert served_version({"content-type": "text/plain"}) is None


def test_a_full_journey_plans_each_step_from_the_previous_answer() -> None:
    journey = _journey()
    create = journey.next_request()
    assert (create.method, create.path, create.name) == ("POST", "/dna/create", "/dna/create [balanced]")
    assert create.starts_journey and create.body is not None and create.body["mode"] == "balanced"
    assert journey.record(200, HEADERS, _create_answer("dna_42")).ok

    options = journey.next_request()
    assert options.name == "/evolve/options [balanced]" and not options.starts_journey
    assert options.body is not None
    assert options.body["dna_id"] == "dna_42" and options.body["num_options"] == NUM_OPTIONS
    assert options.body["algorithm"] == "PPO" and options.body["brief"] == create.body["brief"]
    verdict = journey.record(200, HEADERS, _options_answer("dna_42"))
    assert verdict.ok and verdict.version == "v0.2.0"

    feedback = journey.next_request()
    assert feedback.name == "/evolve/feedback [balanced]" and feedback.body is not None
    # One id per journey on every step, so a proxy can keep the journey on one instance.
    journey_ids = {step.headers[JOURNEY_HEADER] for step in (create, options, feedback)}
    assert len(journey_ids) == 1 and next(iter(journey_ids)).startswith("j")
    assert feedback.body["experiment_id"] == "exp_9"
    assert feedback.body["chosen_id"] in {"opt_0", "opt_1", "opt_2"} and 1 <= feedback.body["rating"] <= 5
    assert journey.record(200, HEADERS, _feedback_answer(update={"loss": 0.3})).ok
    second = journey.next_request()
    assert second.starts_journey and second.headers[JOURNEY_HEADER] != create.headers[JOURNEY_HEADER]


@pytest.mark.parametrize(
    ("status", "headers", "text", "reason"),
    [
        (500, HEADERS, '{"detail": "boom"}', "HTTP 500"),
        (0, {}, "", "no response"),
        (200, {}, _create_answer(), "no X-Served-Version or X-App-Version header"),
        (200, HEADERS, "<html>", "body is not JSON"),
        (200, HEADERS, "[1, 2]", "JSON list"),
        (200, HEADERS, json.dumps({"dna_id": "x_1", "version": "v", "notes": {}}), "does not start with 'dna_'"),
        (200, HEADERS, json.dumps({"dna_id": "dna_1", "version": "v", "notes": {"top": []}}), "notes must hold"),
    ],
)
def test_a_wrong_create_answer_fails_with_its_reason_and_restarts(
    status: int, headers: dict[str, str], text: str, reason: str
) -> None:
    journey = _journey()
    journey.next_request()
    verdict = journey.record(status, headers, text)
    assert not verdict.ok and reason in verdict.reason
    assert journey.next_request().starts_journey


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_options_answer(count=2), "2 options, expected 3"),
        (_options_answer(count=4), "4 options, expected 3"),
        (_options_answer(dna_id="dna_other"), "is not the one asked for"),
        (
            json.dumps({"experiment_id": "exp_1", "dna_id": "dna_1", "options": [{"id": "opt_1"}] * 3}),
            "lacks its action or dna",
        ),
        (json.dumps({"experiment_id": "run_1", "dna_id": "dna_1", "options": []}), "'exp_'"),
    ],
)
def test_a_wrong_options_answer_fails(text: str, reason: str) -> None:
    journey = _journey()
    journey.next_request()
    journey.record(200, HEADERS, _create_answer())
    journey.next_request()
    verdict = journey.record(200, HEADERS, text)
    assert not verdict.ok and reason in verdict.reason
    assert journey.next_request().starts_journey


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"status": "rejected"}, "expected 'accepted'"),
        ({"experiment_id": "exp_other"}, "is not 'exp_9'"),
        ({"update": [1]}, "update must be null or an object"),
    ],
)
def test_a_wrong_feedback_answer_fails(overrides: dict[str, Any], reason: str) -> None:
    journey = _journey()
    for answer in (_create_answer(), _options_answer()):
        journey.next_request()
        journey.record(200, HEADERS, answer)
    journey.next_request()
    verdict = journey.record(200, HEADERS, _feedback_answer(**overrides))
    assert not verdict.ok and reason in verdict.reason


def test_a_failed_answer_keeps_the_version_that_served_it() -> None:
    journey = _journey()
    journey.next_request()
    verdict = journey.record(503, {"X-Served-Version": "v0.2.0-canary"}, "")
    assert not verdict.ok and verdict.version == "v0.2.0-canary"


def test_light_probe_checks_health_and_metrics() -> None:
    probe = LightProbe(random.Random(5))
    seen: dict[str, int] = {}
    for _ in range(400):
        planned = probe.next_request()
        seen[planned.path] = seen.get(planned.path, 0) + 1
        assert planned.method == "GET" and planned.body is None and planned.mode is None
        if planned.path == "/health":
            assert probe.record(200, HEADERS, '{"status": "healthy", "version": "v1"}').ok
            sick = probe.record(200, HEADERS, '{"status": "sick", "version": "v"}')
            assert "expected 'healthy'" in sick.reason
        else:
            assert probe.record(200, HEADERS, "# TYPE http_requests_total counter\n").ok
            assert "not Prometheus text" in probe.record(200, HEADERS, "hello").reason
    assert set(seen) == {"/health", "/metrics"} and seen["/health"] > seen["/metrics"]


def test_make_walk_knows_the_profiles() -> None:
    picker = ModePicker({"fast": 1.0}, random.Random(1))
    assert isinstance(make_walk("journey", picker, random.Random(1)), Journey)
    assert isinstance(make_walk("light", picker, random.Random(1)), LightProbe)
    with pytest.raises(ValueError, match="heavy"):
        make_walk("heavy", picker, random.Random(1))
