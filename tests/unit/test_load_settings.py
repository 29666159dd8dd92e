"""LoadSettings and parse_mix: normalised values; bad input refused naming the value and its source."""

from __future__ import annotations

import dataclasses

import pytest

from canary_harness.errors import ConfigError
from canary_harness.loadgen import DEFAULT_MIX, LoadSettings, format_mix, parse_mix


def test_parse_mix_normalises_percentages_in_mode_order() -> None:
    assert parse_mix("creative=15, fast=50 ,balanced=35", "test") == pytest.approx(
        {"fast": 0.5, "balanced": 0.35, "creative": 0.15}
    )
    assert list(parse_mix("creative=1,fast=3", "test")) == ["fast", "balanced", "creative"]


def test_parse_mix_gives_left_out_modes_zero() -> None:
    assert parse_mix("creative=2", "test") == {"fast": 0.0, "balanced": 0.0, "creative": 1.0}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "must be MODE=WEIGHT"),
        ("fast", "must be MODE=WEIGHT"),
        ("turbo=1", "unknown mode 'turbo'"),
        ("fast=1,fast=2", "given twice"),
        ("fast=-1", "must be a number >= 0"),
        ("fast=abc", "must be a number >= 0"),
        ("fast=nan", "must be a number >= 0"),
        ("fast=inf", "must be a number >= 0"),
        ("fast=0,balanced=0", "at least one mode"),
    ],
)
def test_parse_mix_refuses_bad_input_naming_value_and_source(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mix(raw, "from --load-mix")
    message = str(info.value)
    assert repr(raw) in message and "from --load-mix" in message and fragment in message


def test_format_mix_round_trips() -> None:
    mix = parse_mix("fast=2,balanced=1,creative=1", "test")
    assert parse_mix(format_mix(mix), "round trip") == pytest.approx(mix)


def test_defaults() -> None:
    settings = LoadSettings()
    assert (settings.users, settings.profile, settings.workers, settings.engine) == (20, "journey", 0, "auto")
    assert settings.rate_rps is None and settings.max_requests is None
    assert dict(settings.mix) == pytest.approx(dict(DEFAULT_MIX))


def test_from_mapping_reads_canary_toml_values() -> None:
    settings = LoadSettings.from_mapping(
        {
            "users": 8,
            "spawn_rate": "4",
            "rate_rps": 25,
            "mix": {"fast": 1, "creative": 1},
            "profile": "light",
            "workers": 2,
            "max_requests": 500,
            "engine": "locust",
            "client": "http",
            "seed": 0,
        },
        "canary.toml [load]",
    )
    assert (settings.users, settings.spawn_rate, settings.rate_rps) == (8, 4.0, 25.0)
    assert settings.mix == {"fast": 0.5, "balanced": 0.0, "creative": 0.5}
    assert (settings.profile, settings.workers, settings.max_requests) == ("light", 2, 500)
    assert (settings.engine, settings.client, settings.seed) == ("locust", "http", 0)


def test_from_mapping_zero_switches_optional_limits_off() -> None:
    settings = LoadSettings.from_mapping({"rate_rps": 0, "max_requests": 0, "mix": "fast=1"}, "canary.toml")
    assert settings.rate_rps is None and settings.max_requests is None
    assert settings.mix["fast"] == 1.0


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"userz": 3}, ["'userz'", "unknown", "canary.toml [load]"]),
        ({"users": 0}, ["users 0", "key 'users'", ">= 1"]),
        ({"users": "many"}, ["'many'", "key 'users'"]),
        ({"users": True}, ["True", "key 'users'"]),
        ({"rate_rps": -5}, ["-5", "key 'rate_rps'", "positive"]),
        ({"workers": -1}, ["-1", "key 'workers'"]),
        ({"profile": "heavy"}, ["'heavy'", "journey, light"]),
        ({"engine": "jmeter"}, ["'jmeter'", "key 'engine'"]),
        ({"mix": "fast=x"}, ["'fast=x'", "key 'mix'"]),
    ],
)
def test_from_mapping_refuses_bad_values(data: dict[str, object], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        LoadSettings.from_mapping(data, "canary.toml [load]")
    for fragment in fragments:
        assert fragment in str(info.value)


def test_construction_and_replace_run_the_same_checks() -> None:
    base = LoadSettings()
    with pytest.raises(ConfigError, match="users 0"):
        dataclasses.replace(base, users=0)
    with pytest.raises(ConfigError, match="spawn_rate"):
        LoadSettings(spawn_rate=0)
    with pytest.raises(ConfigError, match="needs engine"):
        LoadSettings(engine="builtin", workers=2)
    assert dataclasses.replace(base, mix={"fast": 3, "balanced": 1}).mix == {
        "fast": 0.75,
        "balanced": 0.25,
        "creative": 0.0,
    }
