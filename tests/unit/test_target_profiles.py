"""Target profiles: the [target] table, health probes, layering a profile under canary.toml, the shipped
profiles (fragrance-ai's equals the built-in defaults), and the request-mix load profile."""

from __future__ import annotations

import random
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from canary_harness.config import resolve_stack_settings
from canary_harness.deploy.health import FRAGRANCE_PROBE, HealthProbe, probe_from_mapping
from canary_harness.deploy.process import ProcessBackend
from canary_harness.deploy.protocol import ServiceHandle, ServiceSpec
from canary_harness.errors import BackendError, ConfigError
from canary_harness.judge.settings import JudgeSettings
from canary_harness.loadgen.request_mix import RequestMix, parse_requests, requests_from_json, requests_to_json
from canary_harness.loadgen.settings import LoadSettings
from canary_harness.metrics.source_settings import MetricsSettings
from canary_harness.smoke import default_journey, journey_from
from canary_harness.target import TargetSettings, load_config, profile_path, with_profile

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello-service.toml"
COUNTERS = REPO / "examples" / "hello-service-counters.toml"


def test_the_fragrance_ai_profile_is_the_built_in_defaults(tmp_path: Path) -> None:
    layered = load_config(None, target="fragrance-ai", environ={})
    assert TargetSettings.from_mapping(layered["target"], "p") == TargetSettings()
    assert JudgeSettings.from_mapping(layered["judge"], "p") == JudgeSettings()
    assert MetricsSettings.from_mapping(layered["metrics"], "p") == MetricsSettings()
    assert LoadSettings.from_mapping(layered["load"], "p") == LoadSettings()
    assert journey_from(layered).steps == default_journey().steps


def test_canary_toml_overrides_its_profile_key_by_key(tmp_path: Path) -> None:
    config = tmp_path / "canary.toml"
    config.write_text('[target]\nprofile = "generic-http"\n[judge]\nerror_rate_slo = 0.01\n[[smoke]]\npath = "/ping"\n')
    layered = load_config(config, environ={})
    judge = JudgeSettings.from_mapping(layered["judge"], "p")
    assert judge.error_rate_slo == 0.01 and judge.modes == ("all",)  # one key changed, the rest the profile's
    assert judge.checks == ("error_rate", "latency", "traffic_split")
    assert [step.path for step in journey_from(layered).steps] == ["/ping"]  # arrays are replaced whole
    assert "profile" not in layered["target"] and layered["target"]["name"] == "generic-http"


def test_the_flag_beats_the_environment_which_beats_canary_toml(tmp_path: Path) -> None:
    config = tmp_path / "canary.toml"
    config.write_text('[target]\nprofile = "generic-http"\n')
    named = {"CANARY_TARGET": str(EXAMPLE)}
    assert load_config(config, environ={})["target"]["name"] == "generic-http"
    assert load_config(config, environ=named)["target"]["name"] == "hello-service"
    assert load_config(config, target="fragrance-ai", environ=named)["target"]["name"] == "fragrance-ai"


def test_a_missing_profile_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"target profile 'nope.toml' \(--canary-target\): neither a shipped"):
        load_config(None, target="nope.toml", environ={})
    with pytest.raises(ConfigError, match=r"environment CANARY_TARGET"):
        load_config(None, environ={"CANARY_TARGET": "missing"})


def test_with_profile_merges_tables_and_replaces_values() -> None:
    merged = with_profile({"judge": {"alpha": 0.02}, "extra": 1}, {"judge": {"alpha": 0.01, "beta": 0.1}, "x": [1]})
    assert merged == {"judge": {"alpha": 0.02, "beta": 0.1}, "x": [1], "extra": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "red"}, r"unknown \[target\] key 'colour' \(t\)"),
        ({"command": "serve --port {port}"}, r"command = 'serve --port \{port\}' \(t\): must be a list"),
        ({"command": ["serve"]}, r"must use \{port\}"),
        ({"name": ""}, r"name = '' \(t\): must be a non-empty string"),
        ({"health": {"path": "health"}}, r"health path = 'health' \(t \[target.health\]\): must start with '/'"),
        ({"health": {"version_field": "v", "version_header": "X-V"}}, r"version_field or version_header, not both"),
        ({"health": {"timeout": "1"}}, r"unknown health key 'timeout'"),
        ({"profile": "nope"}, r"target profile 'nope' \(t, key 'profile'\)"),
    ],
)
def test_bad_target_tables_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TargetSettings.from_mapping(data, "t")


def test_shipped_and_example_profiles_are_valid() -> None:
    for path in (profile_path("fragrance-ai", "t"), profile_path("generic-http", "t"), EXAMPLE, COUNTERS):
        document = tomllib.loads(path.read_text())
        TargetSettings.from_mapping(document["target"], str(path))
        JudgeSettings.from_mapping(document["judge"], str(path))
        LoadSettings.from_mapping(document["load"], str(path))
        MetricsSettings.from_mapping(document["metrics"], str(path))
        journey_from(document, str(path))


def test_stack_settings_carry_the_target() -> None:
    stack = resolve_stack_settings(toml={"target": {"name": "shop", "command": ["shop", "--port", "{port}"]}})
    assert stack.target.name == "shop" and stack.target.command == ("shop", "--port", "{port}")


def test_the_process_backend_fills_the_targets_command(tmp_path: Path) -> None:
    command = ("{python}", "shop.py", "--bind", "{host}:{port}", "--release", "{version}")
    spec = ServiceSpec(role="canary", version="v2", port=9001, log_path=tmp_path / "c.log", command=command)
    argv = ProcessBackend().command(spec)
    assert argv == [sys.executable, "shop.py", "--bind", "127.0.0.1:9001", "--release", "v2"]
    with pytest.raises(BackendError, match=r"bad hole \('colour'\)"):
        ProcessBackend().command(ServiceSpec(role="canary", version="v2", command=("x", "{colour}")))


def test_a_probe_is_recorded_with_the_handle(tmp_path: Path) -> None:
    probe = HealthProbe(path="/ping", status_field=None, version_field=None, version_header="X-App-Version")
    handle = ServiceHandle("canary", "v2", "http://127.0.0.1:9", 1, tmp_path / "l", probe=probe)
    assert ServiceHandle.from_json(handle.to_json()).probe == probe
    legacy = {key: value for key, value in handle.to_json().items() if key != "probe"}
    assert ServiceHandle.from_json(legacy).probe == FRAGRANCE_PROBE


def test_probe_from_mapping_and_what_it_says() -> None:
    probe = probe_from_mapping({"path": "/ping", "status_field": "", "version_header": "X-App-Version",
                                "version_field": ""}, "t")  # fmt: skip
    assert probe.describe() == "GET /ping answers HTTP 200; version in header X-App-Version"
    assert FRAGRANCE_PROBE.describe() == "GET /health answers status = 'healthy'; version in JSON field 'version'"


MIX = [
    {"path": "/items", "weight": 3},
    {"method": "post", "path": "/orders", "json": {"item": "tea"}, "status": [201], "name": "order"},
]


def test_the_request_mix_draws_by_weight_and_judges_by_status() -> None:
    mix = RequestMix(parse_requests(MIX, "t"), random.Random(7))
    drawn = [mix.next_request() for _ in range(4000)]
    share = sum(request.path == "/items" for request in drawn) / len(drawn)
    assert 0.72 < share < 0.78, share
    order = next(request for request in drawn if request.path == "/orders")
    assert (order.method, order.name, order.body) == ("POST", "order", {"item": "tea"})
    mix.next_request()
    while mix._last is None or mix._last.path != "/orders":
        mix.next_request()
    assert mix.record(201, {"X-App-Version": "v2"}, "").ok and not mix.record(200, {}, "").ok
    assert mix.record(0, {}, "").reason == "no answer"


def test_the_request_mix_survives_json_for_locust() -> None:
    specs = parse_requests(MIX, "t")
    assert requests_from_json(requests_to_json(specs), "env") == specs


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], r"must be a non-empty list"),
        ([{"path": "items"}], r"entry 1: path 'items' must be a string starting with '/'"),
        ([{"path": "/a", "weight": 0}], r"entry 1: weight 0 must be a positive number"),
        ([{"path": "/a", "verb": "GET"}], r"entry 1: unknown key\(s\) verb"),
        ([{"path": "/a", "status": 700}], r"entry 1: status 700 must be an HTTP status"),
    ],
)
def test_bad_request_mixes_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_requests(raw, "canary.toml [load]")


def test_the_requests_profile_needs_a_mix() -> None:
    with pytest.raises(ConfigError, match=r"load profile 'requests' .*give the mix in \[load\] requests"):
        LoadSettings(profile="requests")
