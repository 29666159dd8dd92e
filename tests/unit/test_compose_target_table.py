"""A target's ``[target.compose]`` table: every key validated with file, table, key and value named, the
variables each role gets, and the compose backend accepted for a target that has the table (canned tables;
the engine runs it in tests/integration/test_compose_target.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from canary_harness.config import resolve_stack_settings
from canary_harness.deploy.compose_target import ComposeRole, ComposeTarget
from canary_harness.errors import BackendError, ConfigError
from canary_harness.target import TargetSettings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello-service.toml"
SHOP = {"files": ["shop.yml"], "production": {"service": "shop"}, "canary": {"service": "shop-canary"}}


def test_the_example_profile_names_its_compose_file_services_and_variables() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    target = TargetSettings.from_mapping(document["target"], "hello-service.toml [target]")
    compose = target.compose
    assert compose is not None and compose.files == (Path("examples/hello-compose.yml"),)
    assert compose.roles["canary"] == ComposeRole("hello-canary", "HELLO_CANARY_VERSION", "HELLO_CANARY_PORT")
    assert compose.variables("production", "v1", 9000) == {"HELLO_VERSION": "v1", "HELLO_PORT": "9000"}
    assert compose.image_for("v2") == "hello-service:v2"
    # The file the example names is in the repository, and says what the profile says.
    text = (REPO / compose.files[0]).read_text()
    for names in compose.roles.values():
        assert f"  {names.service}:" in text and f"${{{names.version_variable}" in text
        assert f"${{{names.port_variable}" in text


def test_variables_default_per_role_and_no_image_is_checked_without_one() -> None:
    target = ComposeTarget.from_mapping(SHOP, "shop.toml")
    assert target.variables("canary", "v2", 9001) == {"CANARY_VERSION": "v2", "CANARY_PORT": "9001"}
    assert target.variables("production", "v1", 9000) == {"PRODUCTION_VERSION": "v1", "PRODUCTION_PORT": "9000"}
    assert target.image_for("v2") is None and not target.service_log


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**SHOP, "files": []}, r"\[target.compose\] files = \[\] \(t\): required"),
        ({**SHOP, "files": "shop.yml"}, r"files = 'shop.yml' \(t\): required, a list"),
        ({**SHOP, "image": "Shop:{version}"}, r"\[target.compose\] image = 'Shop:\{version\}' \(t\): not an image"),
        ({**SHOP, "image": "shop:{port}"}, r"image = 'shop:\{port\}' \(t\): unknown hole \{port\}; known: \{version\}"),
        ({**SHOP, "image": 3}, r"image = 3 \(t\): must be an image"),
        ({**SHOP, "ports": [1]}, r"unknown \[target.compose\] key 'ports' \(t\)"),
        ({"files": ["s.yml"], "canary": {"service": "c"}}, r"\[target.compose\] production \(t\): required"),
        ({**SHOP, "canary": "shop-canary"}, r"\[target.compose.canary\] \(t\): must be a table"),
        ({**SHOP, "canary": {"service": "shop canary"}}, r"canary service = 'shop canary' \(t\): must be the name"),
        ({**SHOP, "canary": {"service": "c", "image": "x"}}, r"unknown \[target.compose.canary\] key 'image' \(t\)"),
        (
            {**SHOP, "canary": {"service": "c", "port_variable": "CANARY-PORT"}},
            r"canary port_variable = 'CANARY-PORT' \(t\): must be a variable name",
        ),
        ({**SHOP, "canary": {"service": "shop"}}, r"production and canary service = 'shop' \(t\): each role"),
        (
            {**SHOP, "canary": {"service": "c", "version_variable": "PRODUCTION_VERSION"}},
            r"variable 'PRODUCTION_VERSION' \(t\): given twice",
        ),
        (
            {**SHOP, "canary": {"service": "c", "version_variable": "P", "port_variable": "P"}},
            r"variable 'P' \(t\): given twice",
        ),
    ],
)
def test_bad_compose_tables_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ComposeTarget.from_mapping(data, "t")


def test_the_table_names_its_file_through_the_target() -> None:
    with pytest.raises(ConfigError, match=r"\[target.compose\] canary \(p.toml\): required"):
        TargetSettings.from_mapping({"name": "shop", "compose": {"files": ["a.yml"], "production": {"service": "a"}}},
                                    "p.toml [target]")  # fmt: skip


def test_the_compose_backend_takes_a_target_with_the_table_once_its_files_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    toml = {"target": {"name": "shop", "command": ["shop", "{port}"], "compose": SHOP}}
    with pytest.raises(ConfigError, match=r"\[target.compose\] files: 'shop.yml' \(canary.toml\) is not a file"):
        resolve_stack_settings(toml=toml, backend="compose", environ={})
    # Other backends do not read the files: a process run of the same profile is not refused.
    assert resolve_stack_settings(toml=toml, backend="process", environ={}).target.compose is not None
    (tmp_path / "shop.yml").write_text("services: {}\n")
    settings = resolve_stack_settings(toml=toml, backend="compose", environ={})
    assert settings.target.compose is not None and settings.target.compose.roles["canary"].service == "shop-canary"


def test_a_version_that_makes_a_bad_tag_is_named() -> None:
    target = ComposeTarget.from_mapping({**SHOP, "image": "shop:{version}"}, "p.toml")
    with pytest.raises(BackendError, match=r"version 'v1\+b': \[target.compose\] image = 'shop:\{version\}' \(p"):
        target.image_for("v1+b")
