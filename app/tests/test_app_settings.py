"""Unit tests: settings precedence and error messages naming the value and its source."""

from __future__ import annotations

import pytest

from fragrance_ai.errors import SettingsError
from fragrance_ai.settings import DEFAULT_MODELS, Secret, resolve_settings


def test_defaults() -> None:
    settings = resolve_settings(environ={})
    assert settings.models == DEFAULT_MODELS
    assert settings.active_models == DEFAULT_MODELS
    assert (settings.latency_scale, settings.ppo_batch_size, settings.store_size) == (1.0, 8, 10_000)
    assert settings.version == "dev" and settings.port == 8001 and settings.host == "127.0.0.1"


def test_flag_wins_over_environment() -> None:
    env = {"APP_VERSION": "v0.1.0", "FRAGRANCE_SEED": "5"}
    assert resolve_settings(environ=env).version == "v0.1.0"
    assert resolve_settings(environ=env).seed == 5
    chosen = resolve_settings(version="v0.2.0", seed="9", environ=env)
    assert (chosen.version, chosen.seed) == ("v0.2.0", 9)


def test_environment_values_are_parsed() -> None:
    settings = resolve_settings(
        environ={
            "LLM_ENSEMBLE_MODELS": "a, b",
            "LLM_ENSEMBLE_WEIGHTS": "2,1",
            "USE_LLM_ENSEMBLE": "false",
            "FRAGRANCE_LATENCY_SCALE": "0.01",
            "FRAGRANCE_PPO_BATCH_SIZE": "4",
            "FRAGRANCE_FAULTS": "error_rate=0.1",
        }
    )
    assert settings.models == ("a", "b")
    assert settings.active_models == ("a",) and settings.active_weights == (2.0,)
    assert settings.latency_scale == 0.01 and settings.ppo_batch_size == 4
    assert settings.faults.error_rate == 0.1


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        ({}, {"FRAGRANCE_LATENCY_SCALE": "fast"}, "FRAGRANCE_LATENCY_SCALE: 'fast' is not a number >= 0"),
        ({}, {"FRAGRANCE_LATENCY_SCALE": "-1"}, "FRAGRANCE_LATENCY_SCALE: '-1'"),
        ({}, {"FRAGRANCE_PPO_BATCH_SIZE": "0"}, "FRAGRANCE_PPO_BATCH_SIZE: '0' is not an integer in 1..4096"),
        ({}, {"USE_LLM_ENSEMBLE": "maybe"}, "USE_LLM_ENSEMBLE: 'maybe' is not a boolean"),
        ({}, {"APP_VERSION": "v1; rm -rf"}, "APP_VERSION: 'v1; rm -rf' is not a version label"),
        ({"version": "bad version"}, {}, "--version: 'bad version'"),
        ({"port": "80a"}, {}, "--port: '80a' is not a port in 1..65535"),
        ({"seed": "-3"}, {}, "--seed: '-3'"),
        ({}, {"LLM_ENSEMBLE_MODELS": "a,a"}, "LLM_ENSEMBLE_MODELS: 'a,a' names a model twice"),
        ({}, {"LLM_ENSEMBLE_WEIGHTS": "1,2"}, "LLM_ENSEMBLE_WEIGHTS: '1,2' has 2 weights for 3 models"),
        ({}, {"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL: 'ftp://x' is not an http(s) URL"),
        ({}, {"FRAGRANCE_FAULTS": "loss_factor=-1"}, "FRAGRANCE_FAULTS: loss_factor='-1'"),
    ],
)
def test_bad_values_name_value_and_source(kwargs: dict[str, str], env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        resolve_settings(environ=env, **kwargs)
    assert expected in str(caught.value)


def test_api_key_does_not_show_in_settings_repr() -> None:
    settings = resolve_settings(environ={"OPENAI_API_KEY": "sk-topsecret-123"})
    assert settings.openai_api_key.reveal() == "sk-topsecret-123"
    assert "sk-topsecret" not in repr(settings) and "sk-topsecret" not in str(Secret("sk-topsecret-123"))
