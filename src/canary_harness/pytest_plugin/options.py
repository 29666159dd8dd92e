"""The plugin's command-line options, their ini twins and environment fallbacks, all derived from the table
of settings (:mod:`canary_harness.configuration.table`), and their resolution into one frozen StageOptions
by the one precedence rule (CLI flag > environment > ini > canary.toml > default).

Each flag is ``--canary-<name>``; its older name (``--stage``, ``--judge``...) is still accepted as an alias.
A bad value raises pytest.UsageError naming the value and where it came from, before anything starts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from canary_harness.config import StackSettings, parse_port, resolve_stack_settings, resolve_traffic_settings
from canary_harness.configuration.parsers import parse_load_rate, parse_stage
from canary_harness.configuration.resolve import resolve_setting, validate_table_sections
from canary_harness.configuration.table import JUDGES, SETTING, SETTINGS, Setting
from canary_harness.errors import ConfigError
from canary_harness.judge.ratio_settings import refuse_uncountable
from canary_harness.judge.settings import JudgeSettings
from canary_harness.loadgen import LoadSettings
from canary_harness.metrics.prometheus_settings import PrometheusSettings
from canary_harness.metrics.source_settings import MetricsSettings
from canary_harness.smoke import journey_from
from canary_harness.target import load_config
from canary_harness.traffic.shadow_policy import ShadowPolicy

# The settings the plugin has a flag for, in the order --help shows them.
PLUGIN_SETTINGS: tuple[Setting, ...] = tuple(setting for setting in SETTINGS if setting.flag)
# Re-exported: where tests and older callers import them from.
__all__ = ["JUDGES", "PLUGIN_SETTINGS", "StageOptions", "add_options", "parse_load_rate", "parse_stage", "resolve"]

_FLAG_USED = "{}__flag"  # namespace attribute: the option string given (the new name or its alias)


def _checked_action(setting: Setting) -> type[argparse.Action]:
    """An argparse action that validates the value when it is parsed, naming the option string as given
    (``--stage`` or ``--canary-stage``), and records that option string for :func:`resolve`."""

    class Checked(argparse.Action):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if setting.kind == "flag":
                kwargs["nargs"] = 0
            super().__init__(*args, **kwargs)

        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            value: Any = True
            if setting.kind != "flag":
                try:
                    setting.parse([values] if setting.kind == "append" else values, f"from {option_string}")
                except ConfigError as exc:
                    raise argparse.ArgumentError(self, str(exc)) from None
                value = [*(getattr(namespace, self.dest, None) or []), values] if setting.kind == "append" else values
            setattr(namespace, self.dest, value)
            setattr(namespace, _FLAG_USED.format(self.dest), option_string)

    Checked.__name__ = f"Checked_{setting.name}"
    return Checked


def add_options(parser: pytest.Parser) -> None:
    """Register every plugin setting of the table in the ``canary`` group, with its ini twin."""
    group = parser.getgroup("canary", "canary release verification")
    for setting in PLUGIN_SETTINGS:
        assert setting.ini is not None  # every plugin setting has its ini twin (table._plugin)
        help_text = f"{setting.help} [ini {setting.ini}, env {setting.env}]"
        extra: dict[str, Any] = {"metavar": "K=V"} if setting.kind == "append" else {}
        group.addoption(
            *setting.flags, dest=setting.name, action=_checked_action(setting), default=None, help=help_text, **extra
        )
        if setting.kind == "append":
            parser.addini(setting.ini, setting.help, type="linelist", default=[])
        else:  # a flag's twin too: parse_bool names a bad value's source
            parser.addini(setting.ini, setting.help, default=None)


@dataclass(frozen=True)
class StageOptions:
    """Everything a stage session needs, resolved once and kept in ``config.stash``."""

    canary_version: str
    stage: int
    production_version: str
    backend: str
    observation_period: float
    canary_env: Mapping[str, str]
    production_env: Mapping[str, str]
    canary_url: str | None
    production_url: str | None
    prometheus_url: str | None
    prometheus: str
    no_load: bool
    load_users: int | None
    load_rate: float | str | None
    load_max_rps: float
    load_mix: str | None
    load_workers: int | None
    keep_canary: bool
    no_rollback: bool
    config_file: str | None
    target: str | None
    dry_run: bool
    judge: str
    tick: float
    run_dir: Path
    stack: StackSettings
    shadow_share: int
    split_probe: int
    toml: Mapping[str, Any] = field(default_factory=dict)


def _resolve_one(
    setting: Setting, config: pytest.Config, toml: Mapping[str, Any], environ: Mapping[str, str], toml_file: str
) -> Any:
    assert setting.ini is not None
    return resolve_setting(
        setting,
        cli=config.getoption(setting.name),
        flag=getattr(config.option, _FLAG_USED.format(setting.name), None),
        environ=environ,
        ini=config.getini(setting.ini),
        toml=toml,
        toml_file=toml_file,
    )


def resolve(config: pytest.Config, environ: Mapping[str, str] | None = None) -> StageOptions | None:
    """Resolve the options; None when no canary version is set (the plugin stays inert)."""
    environ = os.environ if environ is None else environ
    try:
        version = _resolve_one(SETTING["canary_version"], config, {}, environ, "")  # a file never activates it
        if version is None:
            return None
        config_file = _resolve_one(SETTING["config_file"], config, {}, environ, "")
        target = _resolve_one(SETTING["target"], config, {}, environ, "")  # else canary.toml [target] profile
        toml = load_config(Path(config_file) if config_file else None, target=target, environ=environ)
        toml_file = config_file or "canary.toml"
        validate_table_sections(toml, toml_file)
        values = {setting.name: _resolve_one(setting, config, toml, environ, toml_file) for setting in PLUGIN_SETTINGS}
        values["canary_version"] = version
        if values["stage"] is None and values["backend"] != "testcontainers":
            raise ConfigError(
                "--canary-stage is required with --canary-version (the canary's traffic share, 1..100, or 0: shadow)"
            )
        stack = resolve_stack_settings(
            toml=toml,
            toml_file=toml_file,
            environ=environ,
            run_dir=values["run_dir"],
            backend=values["backend"],
            production_version=values["production_version"],
            canary_version=values["canary_version"],
        )
        stack = StackSettings(
            **{**stack.__dict__, "canary_env": values["canary_env"], "production_env": values["production_env"]}
        )
        values["run_dir"] = stack.run_dir
        if values["stage"] is None:
            values["stage"] = -1  # a smoke run (testcontainers) has no stage (smoke.SMOKE_STAGE)
        _check_ports(stack)
        _check_service_urls(values)
        _check_sections(toml, toml_file, values)
        if values["stage"] == 0 and values["dry_run"]:
            raise ConfigError("--canary-stage 0 (shadow) with --canary-dry-run: a shadow stage copies users' requests "
                              "through NGINX, a dry run moves no traffic; dry-run stage 1 instead")  # fmt: skip
        resolve_traffic_settings(toml=toml, stack=stack, environ=environ)
        return StageOptions(**values, stack=stack, toml=toml)
    except ConfigError as exc:
        raise pytest.UsageError(f"canary: {exc}") from None


def _check_sections(toml: Mapping[str, Any], name: str, values: Mapping[str, Any]) -> None:
    """Validate the judge, load and Prometheus tables and the smoke steps now, before anything starts or moves."""
    judge = JudgeSettings.from_mapping(toml.get("judge", {}), f"{name} [judge]")
    LoadSettings.from_mapping(toml.get("load", {}), f"{name} [load]")
    PrometheusSettings.from_mapping(toml.get("prometheus", {}), f"{name} [prometheus]")
    ShadowPolicy.from_mapping(toml.get("shadow", {}), f"{name} [shadow]")
    journey_from(toml, name)
    metrics = MetricsSettings.from_mapping(toml.get("metrics", {}), f"{name} [metrics]")
    if metrics.source == "nginx-log" and (values["prometheus"] != "off" or values["prometheus_url"]):
        raise ConfigError(
            f'{name} [metrics] source = "nginx-log" reads NGINX\'s log, not Prometheus: drop --canary-prometheus(-url)'
        )
    refuse_uncountable(judge.ratios, judge.checks, metrics.counters, name)


def _check_service_urls(values: Mapping[str, Any]) -> None:
    """Services running elsewhere come as a pair, at two addresses, and are not started with an environment."""
    canary, production = values["canary_url"], values["production_url"]
    if bool(canary) != bool(production):
        given, missing = (
            ("--canary-url", "--canary-production-url") if canary else ("--canary-production-url", "--canary-url")
        )
        raise ConfigError(f"{given} {canary or production!r} needs {missing} too (services running elsewhere)")
    if canary and canary == production:
        raise ConfigError(f"--canary-url and --canary-production-url are both {canary!r}: they must differ")
    if canary and values["canary_env"]:
        raise ConfigError(f"--canary-env {dict(values['canary_env'])!r}: the canary at {canary} (--canary-url) is "
                          "not started by the harness; drop one of the two")  # fmt: skip


def _check_ports(stack: StackSettings) -> None:
    ports = {"nginx": stack.nginx_port, "production": stack.production_port, "canary": stack.canary_port}
    for name, port in ports.items():
        parse_port(port, f"{name} port")
    if len(set(ports.values())) != len(ports):
        raise ConfigError(f"ports must differ: {ports}")
