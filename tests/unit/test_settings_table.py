"""The table of settings round-trips: every setting can be given by each way it has (flag, environment, ini,
canary.toml), a bad value gives the same error whichever way it came and names that way, the precedence
rule holds for every pair of ways, the plugin and the `canary` commands use the table's names, and
docs/configuration.md is the table's own rendering."""

from __future__ import annotations

import argparse
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from _pytest.config.argparsing import Parser

from canary_harness.cli import build_parser
from canary_harness.configuration.reference import END, START, render_table
from canary_harness.configuration.resolve import resolve_with_source, validate_table_sections
from canary_harness.configuration.table import SETTINGS, Setting
from canary_harness.errors import ConfigError
from canary_harness.pytest_plugin.options import PLUGIN_SETTINGS, add_options

REPO = Path(__file__).resolve().parents[2]

# For each setting: two different good raw values with what they parse to, and one bad raw value.
SAMPLES: dict[str, tuple[str, Any, str, Any, str]] = {
    "canary_version": ("v0.2.0", "v0.2.0", "v0.3.0", "v0.3.0", "v1;rm -rf /"),
    "stage": ("5", 5, "25", 25, "150"),
    "production_version": ("v0.1.0", "v0.1.0", "v0.0.9", "v0.0.9", "v 1"),
    "backend": ("docker", "docker", "compose", "compose", "kubernetes"),
    "observation_period": ("20", 20.0, "60", 60.0, "soon"),
    "canary_env": ("A=1", {"A": "1"}, "B=2", {"B": "2"}, "1BAD=x"),
    "production_env": ("A=1", {"A": "1"}, "B=2", {"B": "2"}, "=x"),
    "canary_url": ("http://127.0.0.1:9001", "http://127.0.0.1:9001", "http://127.0.0.1:9002",
                   "http://127.0.0.1:9002", "127.0.0.1:9001"),
    "production_url": ("http://127.0.0.1:9001", "http://127.0.0.1:9001", "http://127.0.0.1:9002",
                       "http://127.0.0.1:9002", "ftp://x"),
    "prometheus_url": ("http://127.0.0.1:9090", "http://127.0.0.1:9090", "http://127.0.0.1:9091",
                       "http://127.0.0.1:9091", "localhost"),
    "prometheus": ("local", "local", "off", "off", "remote"),
    "no_load": ("true", True, "false", False, "maybe"),
    "load_users": ("4", 4, "8", 8, "0"),
    "load_rate": ("auto", "auto", "12.5", 12.5, "fast"),
    "load_max_rps": ("100", 100.0, "50", 50.0, "-1"),
    "load_mix": ("fast=100", "fast=100", "balanced=100", "balanced=100", " "),
    "load_workers": ("0", 0, "2", 2, "-2"),
    "keep_canary": ("true", True, "false", False, "perhaps"),
    "no_rollback": ("true", True, "false", False, "2"),
    "config_file": ("a.toml", "a.toml", "b.toml", "b.toml", " "),
    "shadow_share": ("50", 50, "25", 25, "0"),
    "split_probe": ("100", 100, "2000", 2000, "19"),
    "target": ("generic-http", "generic-http", "my.toml", "my.toml", " "),
    "dry_run": ("yes", True, "no", False, "dry"),
    "judge": ("fixed", "fixed", "sequential", "sequential", "bayes"),
    "tick": ("0.5", 0.5, "2", 2.0, "0"),
    "run_dir": ("/tmp/a", Path("/tmp/a"), "/tmp/b", Path("/tmp/b"), " "),
    "nginx_port": ("18080", 18080, "18081", 18081, "80x"),
    "production_port": ("18000", 18000, "18002", 18002, "70000"),
    "canary_port": ("18001", 18001, "18003", 18003, "0"),
    "nginx": ("external", "external", "managed", "managed", "system"),
    "nginx_dir": ("/etc/nginx", Path("/etc/nginx"), "/opt/nginx", Path("/opt/nginx"), " "),
    "nginx_url": ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8081",
                  "http://127.0.0.1:8081", "http://127.0.0.1:8080/path"),
    "nginx_container": ("web", "web", "proxy", "proxy", " "),
    "nginx_bin": ("nginx", "nginx", "/usr/sbin/nginx", "/usr/sbin/nginx", " "),
    "nginx_pid_file": ("/run/nginx.pid", Path("/run/nginx.pid"), "/tmp/n.pid", Path("/tmp/n.pid"), " "),
    "reload_timeout": ("5", 5.0, "20", 20.0, "0"),
    "group_header": ("X-Route-Class", "X-Route-Class", "X-Tenant", "X-Tenant", "X Route;"),
}  # fmt: skip

LEVELS = ("cli", "env", "ini", "toml")  # highest first: the precedence rule


def ways(setting: Setting) -> list[str]:
    """The levels at which ``setting`` can be given (a canary.toml key counts once per key)."""
    found = ["cli"] if setting.flag or setting.cli_flag else []
    found += ["env"] if setting.env else []
    found += ["ini"] if setting.ini else []
    found += [f"toml:{key}" for key in setting.toml]
    return found


def given(setting: Setting, way: str, raw: str) -> dict[str, Any]:
    """Keyword arguments of resolve_with_source giving ``raw`` at ``way``."""
    if way == "cli":
        return {"cli": [raw] if setting.kind == "append" else raw}
    if way == "env":
        return {"environ": {setting.env: raw}}
    if way == "ini":
        return {"ini": [raw] if setting.kind == "append" else raw}
    section, _, key = way.removeprefix("toml:").partition(".")
    return {"toml": {section: {key: raw}}}


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"environ": {}}
    for part in parts:
        for name, value in part.items():
            if name in ("environ", "toml") and name in result:
                result[name] = {**result[name], **value}
            else:
                result[name] = value
    return result


def test_every_setting_has_samples_and_a_way_to_be_given() -> None:
    assert set(SAMPLES) == {setting.name for setting in SETTINGS}
    assert all(ways(setting) for setting in SETTINGS)
    assert len({setting.name for setting in SETTINGS}) == len(SETTINGS)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_each_way_gives_the_value(setting: Setting) -> None:
    raw_a, value_a, raw_b, value_b, _ = SAMPLES[setting.name]
    for way in ways(setting):
        for raw, value in ((raw_a, value_a), (raw_b, value_b)):
            got, source = resolve_with_source(setting, **merged(given(setting, way, raw)))
            assert got == value, (way, raw)
            assert source != "default"
    assert resolve_with_source(setting, environ={})[1] == "default"
    assert resolve_with_source(setting, environ={})[0] == setting.default


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_a_bad_value_is_the_same_error_naming_each_source(setting: Setting) -> None:
    bad = SAMPLES[setting.name][4]
    texts = {}
    for way in ways(setting):
        with pytest.raises(ConfigError) as info:
            resolve_with_source(setting, **merged(given(setting, way, bad)), flag="--the-flag")
        text = str(info.value)
        source = {
            "cli": "from --the-flag",
            "env": f"from environment {setting.env}",
            "ini": f"from ini option {setting.ini}",
        }.get(way) or "from canary.toml [{}] {}".format(*way.removeprefix("toml:").split("."))
        assert source in text, (way, text)
        assert (repr(bad)[:-1] if setting.kind != "append" else repr(bad.partition("=")[0])) in text, text
        texts[way] = text.replace(source, "SOURCE")
    assert len(set(texts.values())) == 1, texts


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_precedence_flag_env_ini_toml_default_for_every_pair(setting: Setting) -> None:
    raw_a, value_a, raw_b, _, _ = SAMPLES[setting.name]
    order = ways(setting)  # already highest first; toml keys in the table's order
    for higher, lower in itertools.combinations(order, 2):
        got, source = resolve_with_source(
            setting, **merged(given(setting, lower, raw_b), given(setting, higher, raw_a)), flag="--f"
        )
        assert got == value_a, f"{setting.name}: {higher} must win over {lower}, got {source}"


def test_the_plugin_registers_every_flag_and_its_old_name() -> None:
    parser = Parser(_ispytest=True)
    add_options(parser)
    for setting in PLUGIN_SETTINGS:
        assert setting.flag is not None and setting.flag.startswith("--canary-"), setting.name
        raw = SAMPLES[setting.name][0]
        for option in setting.flags:
            argv = [option] if setting.kind == "flag" else [option, raw]
            namespace = parser.parse(argv)
            expected = True if setting.kind == "flag" else [raw] if setting.kind == "append" else raw
            assert getattr(namespace, setting.name) == expected, option
            assert getattr(namespace, f"{setting.name}__flag") == option


def test_an_old_flag_name_is_named_in_its_error() -> None:
    parser = Parser(_ispytest=True)
    add_options(parser)
    for option in ("--stage", "--canary-stage"):
        with pytest.raises(Exception, match=re.escape(f"stage '150' (from {option})")):
            parser.parse([option, "150"])


def _command_options() -> list[tuple[str, argparse.Action]]:
    found = []
    stack: list[tuple[str, argparse.ArgumentParser]] = [("canary", build_parser())]
    while stack:
        name, parser = stack.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend((f"{name} {sub}", child) for sub, child in action.choices.items())
            else:
                found.append((name, action))
    return found


def test_the_commands_use_the_tables_flag_for_each_setting_they_share() -> None:
    by_name = {setting.name: setting for setting in SETTINGS}
    shared = [(command, action) for command, action in _command_options() if action.dest in by_name]
    assert {action.dest for _, action in shared} >= {"run_dir", "config_file", "backend", "nginx_port", "judge"}
    for command, action in shared:
        assert action.option_strings == [by_name[action.dest].cli_flag], (command, action.option_strings)
    # --run-dir and --config: one definition, the same help wherever they appear.
    helps = {action.help for _, action in shared if action.dest == "run_dir"}
    assert len(helps) == 1, helps


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ({"stage": {"observaton_period": 20}}, "unknown [stage] key 'observaton_period' (ops.toml); known keys:"),
        ({"stack": {"nginx_port": "eighty"}}, "port 'eighty' (from ops.toml [stack] nginx_port)"),
        ({"traffic": {"reload_timeout": -1}}, "value -1 (from ops.toml [traffic] reload_timeout)"),
        ({"stage": 3}, "ops.toml [stage] must be a table"),
    ],
)
def test_table_sections_refuse_unknown_keys_and_bad_values(toml: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_table_sections(toml, "ops.toml")


def test_docs_configuration_md_is_the_tables_rendering() -> None:
    text = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    inside = text.partition(START)[2].partition(END)[0].strip()
    assert inside == render_table(), "run: python -m canary_harness.configuration.reference docs/configuration.md"
    for setting in SETTINGS:
        assert f"| {setting.name} |" in inside


@pytest.mark.parametrize("present", [("cli", "env", "toml"), ("env", "toml"), ("toml",), ()], ids=str)
def test_a_canary_command_follows_the_same_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], present: tuple[str, ...]
) -> None:
    """`canary weights` without a stack names the run directory it looked in and where that came from."""
    from canary_harness.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CANARY_RUN_DIR", raising=False)
    monkeypatch.delenv("CANARY_CONFIG_FILE", raising=False)
    argv = ["weights"]
    if "cli" in present:
        argv += ["--run-dir", "from-flag"]
    if "env" in present:
        monkeypatch.setenv("CANARY_RUN_DIR", "from-env")
    config = tmp_path / "ops.toml"
    config.write_text('[stack]\nrun_dir = "from-toml"\n' if "toml" in present else "")
    monkeypatch.setenv("CANARY_CONFIG_FILE", str(config))  # the commands read it too
    assert main(argv) == 2
    err = capsys.readouterr().err
    expected = {
        "cli": ("from-flag", "from --run-dir"),
        "env": ("from-env", "from environment CANARY_RUN_DIR"),
        "toml": ("from-toml", f"from {config} [stack] run_dir"),
    }
    name, source = expected[present[0]] if present else (".canary", "default")
    assert f"run directory '{tmp_path / name}' ({source}): no stack recorded there" in err, err
    assert not any((tmp_path / name).exists() for name in ("from-flag", "from-env", "from-toml", ".canary"))
