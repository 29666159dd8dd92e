"""The plugin's command-line options, their ini twins and environment fallbacks, and their resolution
into one frozen StageOptions (CLI > environment > ini > canary.toml > default).

A bad value raises pytest.UsageError naming the value and where it came from, before anything starts.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from canary_harness.config import (
    StackSettings,
    load_toml,
    parse_env_pairs,
    parse_percent,
    parse_port,
    parse_positive_float,
    parse_version,
    resolve_stack_settings,
    resolve_traffic_settings,
)
from canary_harness.deploy.factory import parse_backend
from canary_harness.errors import ConfigError
from canary_harness.judge.settings import JudgeSettings
from canary_harness.load import LoadSettings
from canary_harness.metrics.prometheus import PrometheusSettings
from canary_harness.traffic.shadow_policy import ShadowPolicy

JUDGES = ("sequential", "fixed")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_stage(raw: object, source: str) -> int:
    """A stage is the canary's traffic share in percent, 1..100, or 0 (also ``shadow``): the shadow stage, where
    users stay on production and the canary is judged on copies of their requests."""
    if str(raw).strip().lower() == "shadow":
        return 0
    try:
        return parse_percent(raw, source)
    except ConfigError:
        raise ConfigError(f"stage {raw!r} ({source}): must be 1..100, or 0 / shadow (the shadow stage)") from None


def parse_shadow_share(raw: object, source: str) -> int:
    """The share of production's requests a shadow stage copies to the canary: an integer percentage 1..100."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100:
        raise ConfigError(f"shadow share {raw!r} ({source}): must be an integer percentage in 1..100")
    return int(text)


def parse_bool(raw: object, source: str) -> bool:
    """true/false, yes/no, 1/0, on/off."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"value {raw!r} ({source}): must be true or false")


def parse_url(raw: object, source: str) -> str:
    """An http(s) URL."""
    text = str(raw).strip().rstrip("/")
    if not text.startswith(("http://", "https://")) or len(text) < 10:
        raise ConfigError(f"URL {raw!r} ({source}): must start with http:// or https://")
    return text


def parse_positive_int(raw: object, source: str) -> int:
    """An integer ≥ 1."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigError(f"value {raw!r} ({source}): must be an integer ≥ 1")
    return int(text)


def parse_non_negative_int(raw: object, source: str) -> int:
    """An integer ≥ 0."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"value {raw!r} ({source}): must be an integer ≥ 0")
    return int(text)


def parse_text(raw: object, source: str) -> str:
    """Any non-empty text (paths, mixes validated later by their own parser)."""
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"empty value ({source})")
    return text


def _choice(choices: tuple[str, ...]) -> Callable[[object, str], str]:
    def parse(raw: object, source: str) -> str:
        text = str(raw).strip()
        if text not in choices:
            raise ConfigError(f"value {raw!r} ({source}): must be one of {', '.join(choices)}")
        return text

    return parse


def parse_load_rate(raw: object, source: str) -> float | str:
    """``auto``, a positive number of requests per second, or 0: the closed loop (each user waits for its answer)."""
    text = str(raw).strip().lower()
    if text == "auto":
        return "auto"
    try:
        return 0.0 if text and float(text) == 0 else parse_positive_float(raw, source)
    except (ConfigError, ValueError):
        raise ConfigError(
            f"load rate {raw!r} ({source}): must be a positive number of requests/s, auto, or 0 (closed loop)"
        ) from None


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag, ini twin, environment variable, canary.toml key and parser."""

    dest: str
    flag: str
    parse: Callable[[Any, str], Any]
    default: Any
    help: str
    kind: str = "value"  # value | flag | append
    toml_key: str = ""  # key in canary.toml [stage]

    @property
    def ini(self) -> str:
        return "canary_" + self.dest.removeprefix("canary_")

    @property
    def env(self) -> str:
        return "CANARY_" + self.dest.removeprefix("canary_").upper()


SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "canary_version",
        "--canary-version",
        parse_version,
        None,
        "Version of the canary release; activates the plugin (inert without it).",
    ),
    OptionSpec(
        "stage",
        "--stage",
        parse_stage,
        None,
        "Canary traffic share of this stage, percent 1..100; 0 (shadow): copies only.",
    ),
    OptionSpec(
        "shadow_share",
        "--shadow-share",
        parse_shadow_share,
        100,
        "At stage 0: percent of production's requests copied to the canary (default 100).",
        toml_key="shadow_share",
    ),
    OptionSpec(
        "production_version",
        "--production-version",
        parse_version,
        "v0.1.0",
        "Version production runs (started if no stack is up).",
        toml_key="production_version",
    ),
    OptionSpec(
        "backend",
        "--backend",
        parse_backend,
        None,
        "process | docker | compose | testcontainers (smoke only): how service versions are started "
        "(default: canary.toml [stack] backend, else process).",
    ),
    OptionSpec(
        "observation_period",
        "--observation-period",
        parse_positive_float,
        900.0,
        "Maximum observation window of the stage in seconds (default 900).",
        toml_key="observation_period",
    ),
    OptionSpec(
        "canary_env",
        "--canary-env",
        parse_env_pairs,
        {},
        "K=V for the canary's environment (repeatable).",
        kind="append",
    ),
    OptionSpec(
        "production_env",
        "--production-env",
        parse_env_pairs,
        {},
        "K=V for production's environment when the plugin starts it (repeatable).",
        kind="append",
    ),
    OptionSpec("canary_url", "--canary-url", parse_url, None, "Canary already running there: nothing is started."),
    OptionSpec(
        "production_url", "--production-url", parse_url, None, "Production already running there: nothing is started."
    ),
    OptionSpec(
        "prometheus_url",
        "--prometheus-url",
        parse_url,
        None,
        "Read metrics from this Prometheus instead of each instance's /metrics.",
    ),
    OptionSpec(
        "prometheus",
        "--prometheus",
        _choice(("off", "local")),
        "off",
        "local: start a Prometheus for the stage and read metrics through PromQL.",
        toml_key="prometheus",
    ),
    OptionSpec("no_load", "--no-load", parse_bool, False, "Send no load (real traffic is present).", kind="flag"),
    OptionSpec("load_users", "--load-users", parse_positive_int, None, "Simulated users of the load driver."),
    OptionSpec(
        "load_rate",
        "--load-rate",
        parse_load_rate,
        None,
        "Total load rate in requests/s; auto (the default unless canary.toml [load] sets rate_rps): the "
        "rate at which the checks can decide; 0: closed loop with --load-users users.",
    ),
    OptionSpec(
        "load_max_rps",
        "--load-max-rps",
        parse_positive_float,
        200.0,
        "Upper bound of --load-rate auto in requests/s (also bounded by what this machine sustains).",
    ),
    OptionSpec("load_mix", "--load-mix", parse_text, None, "LLM mode mix, e.g. fast=50,balanced=35,creative=15."),
    OptionSpec(
        "load_workers", "--load-workers", parse_non_negative_int, None, "Local locust workers (0 = one process)."
    ),
    OptionSpec(
        "keep_canary", "--keep-canary", parse_bool, False, "Leave the canary running after a rollback.", kind="flag"
    ),
    OptionSpec(
        "no_rollback", "--no-rollback", parse_bool, False, "Do not roll back on failure (debugging only).", kind="flag"
    ),
    OptionSpec(
        "config_file", "--canary-config", parse_text, None, "canary.toml with thresholds, judge and load settings."
    ),
    OptionSpec(
        "dry_run",
        "--dry-run",
        parse_bool,
        False,
        "Move no traffic: judge the canary on load sent to it directly.",
        kind="flag",
    ),
    OptionSpec(
        "judge",
        "--judge",
        _choice(JUDGES),
        "sequential",
        "Stage judge: sequential (default) or fixed.",
        toml_key="judge",
    ),
    OptionSpec("tick", "--canary-tick", parse_positive_float, 1.0, "Seconds between metric reads.", toml_key="tick"),
    OptionSpec("run_dir", "--canary-run-dir", parse_text, None, "Run directory of the local stack (default .canary)."),
)


def _argparse_type(spec: OptionSpec) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            spec.parse(raw if spec.kind != "append" else [raw], f"from {spec.flag}")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return raw

    convert.__name__ = spec.dest
    return convert


def add_options(parser: pytest.Parser) -> None:
    """Register every option in the ``canary`` group, with its ini twin."""
    group = parser.getgroup("canary", "canary release verification")
    for spec in SPECS:
        help_text = f"{spec.help} [ini {spec.ini}, env {spec.env}]"
        flags = [spec.flag] + (["--config"] if spec.dest == "config_file" else [])
        if spec.kind == "flag":
            group.addoption(*flags, dest=spec.dest, action="store_true", default=None, help=help_text)
            parser.addini(spec.ini, spec.help, default=None)  # parse_bool names a bad value's source
        elif spec.kind == "append":
            group.addoption(
                *flags,
                dest=spec.dest,
                action="append",
                default=None,
                metavar="K=V",
                type=_argparse_type(spec),
                help=help_text,
            )
            parser.addini(spec.ini, spec.help, type="linelist", default=[])
        else:
            group.addoption(*flags, dest=spec.dest, default=None, type=_argparse_type(spec), help=help_text)
            parser.addini(spec.ini, spec.help, default=None)


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
    dry_run: bool
    judge: str
    tick: float
    run_dir: str | None
    stack: StackSettings
    toml: Mapping[str, Any] = field(default_factory=dict)
    shadow_share: int = 100


def _resolve_one(
    spec: OptionSpec, config: pytest.Config, toml_stage: Mapping[str, Any], environ: Mapping[str, str]
) -> Any:
    cli = config.getoption(spec.dest)
    if cli is not None:
        return spec.parse(cli, f"from {spec.flag}")
    raw_env = environ.get(spec.env, "")
    if raw_env != "":
        value = _env_list(raw_env, spec.env) if spec.kind == "append" else raw_env
        return spec.parse(value, f"from environment {spec.env}")
    ini = config.getini(spec.ini)
    if ini not in (None, []):
        return spec.parse(ini, f"from ini option {spec.ini}")
    if spec.toml_key and spec.toml_key in toml_stage:
        return spec.parse(toml_stage[spec.toml_key], f"from canary.toml [stage] {spec.toml_key}")
    return spec.default


def _env_list(raw: str, name: str) -> list[str]:
    """An append option's environment twin: ``K=V K2=V2``, or a JSON object (values with spaces; what
    ``canary rollout`` passes so that the services' environment never appears in the stage's argv)."""
    if not raw.lstrip().startswith("{"):
        return raw.split()
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigError(f"environment {name}: not a valid JSON object") from None
    if not isinstance(data, dict):
        raise ConfigError(f"environment {name}: not a valid JSON object")
    return [f"{key}={value}" for key, value in data.items()]


def resolve(config: pytest.Config, environ: Mapping[str, str] | None = None) -> StageOptions | None:
    """Resolve the options; None when no canary version is set (the plugin stays inert)."""
    environ = os.environ if environ is None else environ
    try:
        version_spec = SPECS[0]
        version = _resolve_one(version_spec, config, {}, environ)
        if version is None:
            return None
        config_spec = next(spec for spec in SPECS if spec.dest == "config_file")
        config_file = _resolve_one(config_spec, config, {}, environ)
        toml = load_toml(Path(config_file) if config_file else None)
        toml_stage = toml.get("stage", {})
        values = {spec.dest: _resolve_one(spec, config, toml_stage, environ) for spec in SPECS}
        if values["stage"] is None and values["backend"] != "testcontainers":
            raise ConfigError(
                "--stage is required with --canary-version (the canary's traffic share, 1..100, or 0: shadow)"
            )
        stack = resolve_stack_settings(
            toml=toml,
            environ=environ,
            run_dir=values["run_dir"],
            backend=values["backend"],
            production_version=values["production_version"],
            canary_version=values["canary_version"],
        )
        stack = StackSettings(
            **{**stack.__dict__, "canary_env": values["canary_env"], "production_env": values["production_env"]}
        )
        values["backend"] = stack.backend  # the flag, its env/ini twin, else [stack] backend, else process
        if values["stage"] is None:
            values["stage"] = -1  # a smoke run (testcontainers) has no stage (smoke.SMOKE_STAGE)
        _check_ports(stack)
        _check_service_urls(values)
        _check_sections(toml, config_file or "canary.toml")
        if values["stage"] == 0 and values["dry_run"]:
            raise ConfigError("--stage 0 (shadow) with --dry-run: a shadow stage copies users' requests through "
                              "NGINX, a dry run moves no traffic; dry-run stage 1 instead")  # fmt: skip
        resolve_traffic_settings(toml=toml, stack=stack, environ=environ)
        return StageOptions(**values, stack=stack, toml=toml)
    except ConfigError as exc:
        raise pytest.UsageError(f"canary: {exc}") from None


def _check_sections(toml: Mapping[str, Any], name: str) -> None:
    """Validate the judge, load and Prometheus tables now, before anything starts or moves."""
    JudgeSettings.from_mapping(toml.get("judge", {}), f"{name} [judge]")
    LoadSettings.from_mapping(toml.get("load", {}), f"{name} [load]")
    PrometheusSettings.from_mapping(toml.get("prometheus", {}), f"{name} [prometheus]")
    ShadowPolicy.from_mapping(toml.get("shadow", {}), f"{name} [shadow]")


def _check_service_urls(values: Mapping[str, Any]) -> None:
    """Services running elsewhere come as a pair, at two addresses, and are not started with an environment."""
    canary, production = values["canary_url"], values["production_url"]
    if bool(canary) != bool(production):
        given, missing = ("--canary-url", "--production-url") if canary else ("--production-url", "--canary-url")
        raise ConfigError(f"{given} {canary or production!r} needs {missing} too (services running elsewhere)")
    if canary and canary == production:
        raise ConfigError(f"--canary-url and --production-url are both {canary!r}: they must differ")
    if canary and values["canary_env"]:
        raise ConfigError(f"--canary-env {dict(values['canary_env'])!r}: the canary at {canary} (--canary-url) is "
                          "not started by the harness; drop one of the two")  # fmt: skip


def _check_ports(stack: StackSettings) -> None:
    ports = {"nginx": stack.nginx_port, "production": stack.production_port, "canary": stack.canary_port}
    for name, port in ports.items():
        parse_port(port, f"{name} port")
    if len(set(ports.values())) != len(ports):
        raise ConfigError(f"ports must differ: {ports}")
