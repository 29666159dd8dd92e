"""Declarative smoke journeys: parsing ``[[smoke]]`` steps (errors name step and key), and walking them
against a canned service (httpx MockTransport) — captures, assertions, templates, the first failure."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from canary_harness.errors import BackendError, ConfigError
from canary_harness.precheck import check_canary_toml
from canary_harness.smoke import default_journey, journey_from, parse_journey, require_smoke, run_smoke

JOURNEY = """
[[smoke]]
method = "POST"
path = "/orders"
headers = { X-Tenant = "t-{mode}" }
json = { item = "tea", quantity = 2 }
status = 201
expect = [{ field = "id", prefix = "ord_" }, { field = "lines", length = 1 }]
capture = { order_id = "id", first_line = "lines.0" }

[[smoke]]
name = "GET /orders/{order_id}"
path = "/orders/{order_id}"
expect = [
    { field = "state", one_of = ["new", "paid"] },
    { field = "line", equals = "{first_line}" },
    { field = "build", equals = "{version}" },
    { field = "id", exists = true },
]
"""


def steps_of(text: str) -> Any:
    return tomllib.loads(text)["smoke"]


Handler = Callable[[httpx.Request], httpx.Response]


def shop(seen: list[httpx.Request], *, state: str = "new") -> Handler:
    """A tiny order service: POST /orders creates ord_1, GET /orders/ord_1 reads it."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST" and request.url.path == "/orders":
            return httpx.Response(201, json={"id": "ord_1", "lines": [{"item": "tea", "n": 2}]})
        if request.url.path == "/orders/ord_1":
            return httpx.Response(
                200, json={"id": "ord_1", "state": state, "line": {"item": "tea", "n": 2}, "build": "v2"}
            )
        return httpx.Response(404, json={"detail": "not found"})

    return handle


def client_for(handler: Handler) -> httpx.Client:
    return httpx.Client(base_url="http://svc.test", transport=httpx.MockTransport(handler))


def test_a_journey_passes_captures_forward_and_fills_templates() -> None:
    seen: list[httpx.Request] = []
    journey = parse_journey(steps_of(JOURNEY), "canary.toml [[smoke]]")
    steps = run_smoke(client_for(shop(seen)), expected_version="v2", mode="fast", journey=journey)
    assert [step.ok for step in steps] == [True, True], steps
    assert [step.step for step in steps] == ["POST /orders", "GET /orders/ord_1"]
    assert seen[0].headers["X-Tenant"] == "t-fast" and json.loads(seen[0].content) == {"item": "tea", "quantity": 2}
    assert seen[1].url.path == "/orders/ord_1"
    assert "order_id='ord_1'" in steps[0].detail and "build ok" in steps[1].detail


def test_the_first_failed_assertion_stops_the_journey_and_is_named() -> None:
    journey = parse_journey(steps_of(JOURNEY), "canary.toml [[smoke]]")
    steps = run_smoke(client_for(shop([], state="lost")), expected_version="v2", journey=journey)
    assert steps[-1].ok is False and len(steps) == 2
    assert steps[-1].detail == "field 'state' = 'lost', expected one of ['new', 'paid']"
    with pytest.raises(
        BackendError, match=r"smoke against svc failed at GET /orders/ord_1 \(HTTP 200\): field 'state'"
    ):
        require_smoke(client_for(shop([], state="lost")), expected_version="v2", target="svc", journey=journey)


def test_a_wrong_version_fails_and_no_expected_version_skips_that_check() -> None:
    journey = parse_journey(steps_of(JOURNEY), "canary.toml [[smoke]]")
    wrong = run_smoke(client_for(shop([])), expected_version="v9", journey=journey)
    assert wrong[-1].detail == "field 'build' = 'v2', expected 'v9'"
    unchecked = run_smoke(client_for(shop([])), expected_version=None, journey=journey)
    assert all(step.ok for step in unchecked) and "build not checked" in unchecked[-1].detail


def test_an_unexpected_status_or_a_non_object_answer_fails_the_step() -> None:
    journey = parse_journey(steps_of(JOURNEY), "canary.toml [[smoke]]")
    refused = run_smoke(client_for(lambda _r: httpx.Response(503, text="busy")), expected_version=None, journey=journey)
    assert (refused[0].ok, refused[0].status, refused[0].detail) == (False, 503, "expected HTTP 201: 'busy'")
    listed = run_smoke(client_for(lambda _r: httpx.Response(201, json=[1])), expected_version=None, journey=journey)
    assert listed[0].ok is False and "answered a JSON list, not an object" in listed[0].detail


def test_the_built_in_journey_is_fragrance_ais() -> None:
    journey = default_journey()
    assert [(step.method, step.path) for step in journey.steps] == [
        ("GET", "/health"),
        ("POST", "/dna/create"),
        ("POST", "/evolve/options"),
        ("POST", "/evolve/feedback"),
    ]
    assert journey_from({}) == journey
    own = journey_from({"smoke": steps_of(JOURNEY)})
    assert own.source == "canary.toml [[smoke]]" and len(own.steps) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[smoke]]\npath = "health"', r"step 1: path 'health': must be a string starting with '/'"),
        ('[[smoke]]\npath = "/x"\nmethod = "FETCH"', r"step 1: method 'FETCH': must be one of GET"),
        ('[[smoke]]\npath = "/x"\nstatus = 700', r"step 1: status 700: must be an HTTP status"),
        ('[[smoke]]\npath = "/x"\ntimeout = 3', r"step 1: unknown key\(s\) timeout"),
        ('[[smoke]]\npath = "/x"\nexpect = [{ field = "a" }]', r"step 1, expect 1: needs exactly one of exists"),
        ('[[smoke]]\npath = "/x"\nexpect = [{ field = "a", length = -1 }]', r"length = -1: must be an integer"),
        ('[[smoke]]\npath = "/x"\nexpect = [{ field = "a b", exists = true }]', r"field 'a b' must be a dotted path"),
        ('[[smoke]]\npath = "/x/{order_id}"', r"step 1: uses \{order_id\} before any step captures it"),
        ('[[smoke]]\npath = "/x"\ncapture = { version = "v" }', r"capture 'version': must be a lower-case name"),
    ],
)
def test_bad_steps_are_refused_naming_step_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_journey(steps_of(text), "canary.toml [[smoke]]")


def test_an_empty_journey_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"canary.toml \[\[smoke\]\]: must be a non-empty array"):
        journey_from({"smoke": []})


def test_precheck_validates_the_smoke_steps(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(JOURNEY)
    bad.write_text('[[smoke]]\npath = "nope"\n')
    [_, step_check] = check_canary_toml(good, tmp_path, {})[0]
    assert (step_check.name, step_check.status.name, step_check.reason) == (
        "config [[smoke]]",
        "PASS",
        "valid, 2 steps",
    )
    [_, failed] = check_canary_toml(bad, tmp_path, {})[0]
    assert failed.status.name == "FAIL" and "path 'nope'" in failed.reason
