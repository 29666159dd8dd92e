"""Configuration parsing: every bad value is named with its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.config import (
    load_toml,
    parse_env_pairs,
    parse_percent,
    parse_version,
    resolve_stack_settings,
)
from canary_harness.errors import ConfigError


@pytest.mark.parametrize("raw", ["150", "-1", "abc", "5.5", "", "1000"])
def test_bad_percent_names_value_and_source(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_percent(raw, "from --stage")
    assert repr(raw) in str(info.value) and "from --stage" in str(info.value)


@pytest.mark.parametrize("raw", ["0", "1", "5", "100"])
def test_good_percent(raw: str) -> None:
    assert parse_percent(raw, "x") == int(raw)


@pytest.mark.parametrize("raw", ["v0.2.0; rm -rf /", "$(id)", "v 1", "", "a`b`"])
def test_versions_with_shell_characters_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="version"):
        parse_version(raw, "from --canary-version")


def test_env_pairs() -> None:
    assert parse_env_pairs(["A=1", "B=x=y"], "s") == {"A": "1", "B": "x=y"}
    with pytest.raises(ConfigError, match="'NOEQUALS'"):
        parse_env_pairs(["NOEQUALS"], "from --canary-env")


def test_precedence_cli_over_env_over_toml(tmp_path: Path) -> None:
    toml = {"stack": {"nginx_port": 9100, "canary_port": 9101}}
    env = {"CANARY_NGINX_PORT": "9200"}
    settings = resolve_stack_settings(toml=toml, environ=env, nginx_port="9300")
    assert settings.nginx_port == 9300
    assert resolve_stack_settings(toml=toml, environ=env).nginx_port == 9200
    assert resolve_stack_settings(toml=toml, environ={}).canary_port == 9101
    with pytest.raises(ConfigError, match="CANARY_NGINX_PORT"):
        resolve_stack_settings(environ={"CANARY_NGINX_PORT": "http"})
    with pytest.raises(ConfigError, match=r"canary.toml \[stack\] canary_port"):
        resolve_stack_settings(toml={"stack": {"canary_port": 0}}, environ={})


def test_toml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "canary.toml"
    bad.write_text("[stack\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
