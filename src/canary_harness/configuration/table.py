"""The table of settings: one declarative entry per setting, from which everything else is derived.

The pytest plugin's options and their ini twins (:mod:`canary_harness.pytest_plugin.options`), the
``canary`` commands' flags that mirror a stage setting (:mod:`canary_harness.configuration.cli`), the
resolution of a value (:mod:`canary_harness.configuration.resolve`: CLI flag > environment > ini >
canary.toml > default), the validation of canary.toml's ``[stage]``, ``[stack]`` and ``[traffic]`` tables
and docs/configuration.md (:mod:`canary_harness.configuration.reference`) all read this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_harness.configuration.parsers import (
    Parser,
    choice,
    parse_bool,
    parse_env_pairs,
    parse_header_name,
    parse_load_rate,
    parse_non_negative_int,
    parse_origin,
    parse_path,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_shadow_share,
    parse_split_probe,
    parse_stage,
    parse_text,
    parse_url,
    parse_version,
)
from canary_harness.deploy.factory import parse_backend

JUDGES = ("sequential", "fixed")
PROMETHEUS_MODES = ("off", "local")
# "memory": canary_harness.testing's in-process router, for the plugin's own lifecycle tests (never a default).
NGINX_MODES = ("managed", "external", "memory")


@dataclass(frozen=True)
class Setting:
    """One setting and every way to give it; ``None``/empty where a way does not exist."""

    name: str  # the attribute it becomes (StageOptions, StackSettings, TrafficSettings, argparse dest)
    parse: Parser
    default: Any
    help: str
    flag: str | None = None  # the pytest plugin's flag
    aliases: tuple[str, ...] = ()  # older names of the plugin's flag, still accepted
    ini: str | None = None  # the ini twin of the plugin's flag (pytest.ini, tox.ini, pyproject.toml)
    env: str | None = None
    toml: tuple[str, ...] = ()  # "section.key" in canary.toml; the first one present wins
    cli_flag: str | None = None  # the `canary` commands' flag for it, where they have one
    kind: str = "value"  # value | flag (no argument: true) | append (repeatable K=V)

    @property
    def flags(self) -> tuple[str, ...]:
        """The plugin's option strings: the name, then its aliases."""
        return ((self.flag,) if self.flag else ()) + self.aliases


def _plugin(
    name: str,
    flag: str,
    parse: Parser,
    default: Any,
    help: str,
    *,
    old: str | None = None,
    toml: tuple[str, ...] = (),
    cli_flag: str | None = None,
    kind: str = "value",
) -> Setting:
    """A stage setting of the pytest plugin: ini ``canary_<x>`` and env ``CANARY_<X>`` (``<x>``: the name
    without a ``canary_`` prefix), with ``old``, the flag's name before the ``--canary-`` prefix, as alias."""
    short = name.removeprefix("canary_")
    return Setting(
        name, parse, default, help, flag=flag, aliases=(old,) if old else (), ini=f"canary_{short}",
        env=f"CANARY_{short.upper()}", toml=toml, cli_flag=cli_flag, kind=kind,
    )  # fmt: skip


SETTINGS: tuple[Setting, ...] = (
    # ------------------------------------------------------------------ the stage (pytest plugin)
    _plugin("canary_version", "--canary-version", parse_version, None,
            "Version of the canary release; activates the plugin (inert without it). canary.toml [stack] "
            "canary_version is read by `canary stack up` only: a file never activates the plugin.",
            toml=("stack.canary_version",), cli_flag="--canary-version"),
    _plugin("stage", "--canary-stage", parse_stage, None,
            "Canary traffic share of this stage, percent 1..100; 0 (shadow): users stay on production, the canary "
            "is judged on copies of their requests.", old="--stage"),
    _plugin("shadow_share", "--canary-shadow-share", parse_shadow_share, 100,
            "At stage 0: percent of production's requests copied to the canary (default 100).",
            old="--shadow-share", toml=("stage.shadow_share",)),
    _plugin("split_probe", "--canary-split-probe", parse_split_probe, 400,
            "Probe requests sent through NGINX once the weight is set: the canary's share of their answers must "
            "match the weight (a binomial 99.9 percent interval); at stage 0 the canary may answer none. A rollback "
            "verifies weight 0 with half as many.",
            toml=("stage.split_probe",)),
    _plugin("production_version", "--canary-production-version", parse_version, "v0.1.0",
            "Version production runs (started if no stack is up).", old="--production-version",
            toml=("stage.production_version", "stack.production_version"), cli_flag="--production-version"),
    _plugin("backend", "--canary-backend", parse_backend, "process",
            "process | docker | compose | testcontainers (smoke only): how service versions are started.",
            old="--backend", toml=("stack.backend",), cli_flag="--backend"),
    _plugin("observation_period", "--canary-observation-period", parse_positive_float, 900.0,
            "Maximum observation window of the stage in seconds.", old="--observation-period",
            toml=("stage.observation_period",), cli_flag="--observation-period"),
    _plugin("canary_env", "--canary-env", parse_env_pairs, {},
            "K=V for the canary's environment (repeatable; env: K=V K2=V2 or a JSON object).",
            cli_flag="--canary-env", kind="append"),
    _plugin("production_env", "--canary-production-env", parse_env_pairs, {},
            "K=V for production's environment when the plugin starts it (repeatable).", old="--production-env",
            cli_flag="--production-env", kind="append"),
    _plugin("canary_url", "--canary-url", parse_url, None, "Canary already running there: nothing is started.",
            cli_flag="--canary-url"),
    _plugin("production_url", "--canary-production-url", parse_url, None,
            "Production already running there: nothing is started.", old="--production-url",
            cli_flag="--production-url"),
    _plugin("prometheus_url", "--canary-prometheus-url", parse_url, None,
            "Read metrics from this Prometheus instead of each instance's /metrics.", old="--prometheus-url"),
    _plugin("prometheus", "--canary-prometheus", choice(PROMETHEUS_MODES), "off",
            "local: start a Prometheus for the stage and read metrics through PromQL.", old="--prometheus",
            toml=("stage.prometheus",)),
    _plugin("no_load", "--canary-no-load", parse_bool, False, "Send no load (real traffic is present).",
            old="--no-load", kind="flag"),
    _plugin("load_users", "--canary-load-users", parse_positive_int, None, "Simulated users of the load driver.",
            old="--load-users"),
    _plugin("load_rate", "--canary-load-rate", parse_load_rate, None,
            "Total load rate in requests/s; auto (the default unless canary.toml [load] sets rate_rps): the "
            "rate at which the checks can decide; 0: closed loop with --canary-load-users users.",
            old="--load-rate"),
    _plugin("load_max_rps", "--canary-load-max-rps", parse_positive_float, 200.0,
            "Upper bound of --canary-load-rate auto in requests/s (also bounded by what this machine sustains).",
            old="--load-max-rps"),
    _plugin("load_mix", "--canary-load-mix", parse_text, None, "LLM mode mix, e.g. fast=50,balanced=35,creative=15.",
            old="--load-mix"),
    _plugin("load_workers", "--canary-load-workers", parse_non_negative_int, None,
            "Local locust workers (0 = one process).", old="--load-workers"),
    _plugin("keep_canary", "--canary-keep-canary", parse_bool, False, "Leave the canary running after a rollback.",
            old="--keep-canary", cli_flag="--keep-canary", kind="flag"),
    _plugin("no_rollback", "--canary-no-rollback", parse_bool, False, "Do not roll back on failure (debugging only).",
            old="--no-rollback", kind="flag"),
    _plugin("config_file", "--canary-config", parse_text, None,
            "canary.toml with thresholds, judge and load settings (default ./canary.toml if present).",
            old="--config", cli_flag="--config"),
    _plugin("target", "--canary-target", parse_text, None,
            "The service released: a shipped profile (fragrance-ai, generic-http) or a profile file; "
            "else canary.toml [target] profile, else fragrance-ai's built-in defaults."),
    _plugin("dry_run", "--canary-dry-run", parse_bool, False,
            "Move no traffic: judge the canary on load sent to it directly.", old="--dry-run", cli_flag="--dry-run",
            kind="flag"),
    _plugin("judge", "--canary-judge", choice(JUDGES), "sequential", "Stage judge: sequential or fixed.",
            old="--judge", toml=("stage.judge",), cli_flag="--judge"),
    _plugin("tick", "--canary-tick", parse_positive_float, 1.0, "Seconds between metric reads.",
            toml=("stage.tick",)),
    _plugin("run_dir", "--canary-run-dir", parse_path, Path(".canary"),
            "Run directory of the local stack (state.json, logs, journal).", toml=("stack.run_dir",),
            cli_flag="--run-dir"),
    # ------------------------------------------------------------------ the local stack's ports
    Setting("nginx_port", parse_port, 8080, "NGINX listen port on 127.0.0.1.", env="CANARY_NGINX_PORT",
            toml=("stack.nginx_port",), cli_flag="--nginx-port"),
    Setting("production_port", parse_port, 8000, "Production's port on 127.0.0.1.", env="CANARY_PRODUCTION_PORT",
            toml=("stack.production_port",), cli_flag="--production-port"),
    Setting("canary_port", parse_port, 8001, "The canary's port on 127.0.0.1.", env="CANARY_CANARY_PORT",
            toml=("stack.canary_port",), cli_flag="--canary-port"),
    # ------------------------------------------------------------------ which NGINX moves the traffic
    Setting("nginx", choice(NGINX_MODES), "managed",
            "managed: the harness's own NGINX; external: the user's (needs nginx_dir and nginx_url).",
            env="CANARY_NGINX", toml=("traffic.nginx",)),
    Setting("nginx_dir", parse_path, None, "External NGINX: its configuration directory (conf.d/upstream.conf).",
            env="CANARY_NGINX_DIR", toml=("traffic.nginx_dir",)),
    Setting("nginx_url", parse_origin, None, "External NGINX: where it serves (the split in force is read there).",
            env="CANARY_NGINX_URL", toml=("traffic.nginx_url",)),
    Setting("nginx_container", parse_text, None, "External NGINX in this container (docker exec / kill -s HUP).",
            env="CANARY_NGINX_CONTAINER", toml=("traffic.nginx_container",)),
    Setting("nginx_bin", parse_text, "nginx", "External NGINX on the host: the executable for nginx -t and reloads.",
            toml=("traffic.nginx_bin",)),
    Setting("nginx_pid_file", parse_path, Path("/run/nginx.pid"), "External NGINX on the host: its master's PID file.",
            toml=("traffic.nginx_pid_file",)),
    Setting("reload_timeout", parse_positive_float, 10.0, "Seconds an NGINX reload may take before it is an error.",
            toml=("traffic.reload_timeout",)),
    Setting("group_header", parse_header_name, "X-LLM-Mode",
            "The request/response header whose value is each request's latency group in the harness's NGINX access "
            "log (metrics source nginx-log: p95_latency[<group>]).", env="CANARY_GROUP_HEADER",
            toml=("traffic.group_header",)),
)  # fmt: skip

SETTING: Mapping[str, Setting] = {setting.name: setting for setting in SETTINGS}


def keys_of_section(section: str) -> tuple[str, ...]:
    """The keys of canary.toml ``[section]`` the table knows, in table order."""
    return tuple(key.partition(".")[2] for s in SETTINGS for key in s.toml if key.partition(".")[0] == section)


# The canary.toml tables this module owns; [judge], [load], [prometheus] and [notify] are read (and their
# keys checked) by their own settings classes (see canary_harness.config_sections).
TABLE_SECTIONS: tuple[str, ...] = ("stage", "stack", "traffic")
