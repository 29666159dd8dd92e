"""Configuration: frozen dataclasses resolved once, by one precedence rule: CLI flag > environment > ini >
canary.toml > default (the table of settings is :mod:`canary_harness.configuration`).

Every value remembers where it came from so that a bad one can be reported as
"weight '150' (from --canary-stage): must be an integer percentage in 0..100".
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary_harness.configuration.parsers import (
    parse_env_pairs,
    parse_percent,
    parse_port,
    parse_positive_float,
    parse_version,
)
from canary_harness.configuration.resolve import check_section_keys, resolve_setting, section_of
from canary_harness.configuration.table import NGINX_MODES, SETTING
from canary_harness.errors import ConfigError
from canary_harness.target import TargetSettings

# Re-exported: callers import the parsers and the NGINX modes from here.
__all__ = [
    "DEFAULT_CONFIG_FILE",
    "MODES",
    "NGINX_MODES",
    "StackSettings",
    "TrafficSettings",
    "load_toml",
    "parse_env_pairs",
    "parse_percent",
    "parse_port",
    "parse_positive_float",
    "parse_version",
    "resolve_stack_settings",
    "resolve_traffic_settings",
]

DEFAULT_CONFIG_FILE = "canary.toml"
MODES: tuple[str, ...] = ("fast", "balanced", "creative")


# --------------------------------------------------------------------------- toml
def load_toml(path: Path | None) -> dict[str, Any]:
    """Read ``canary.toml`` (or the given file); a missing default file is an empty config."""
    if path is None:
        path = Path(DEFAULT_CONFIG_FILE)
        if not path.exists():
            return {}
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r}: not found")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r}: not a regular file")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: not UTF-8 (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r}: unreadable: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class StackSettings:
    """Where the local stack lives: loopback ports, versions and the run directory."""

    host: str = "127.0.0.1"
    nginx_port: int = 8080
    production_port: int = 8000
    canary_port: int = 8001
    run_dir: Path = Path(".canary")
    production_version: str = "v0.1.0"
    canary_version: str | None = None
    canary_env: Mapping[str, str] = field(default_factory=dict)
    production_env: Mapping[str, str] = field(default_factory=dict)
    # How services are started: process | docker | compose (testcontainers only for smoke runs).
    backend: str = "process"
    # What service is released: its start command and health probe (canary.toml [target], the profile).
    target: TargetSettings = field(default_factory=TargetSettings)
    # The header whose value the harness's NGINX logs as each request's latency group ([traffic] group_header).
    group_header: str = "X-LLM-Mode"


def resolve_stack_settings(
    *,
    toml: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    nginx_port: Any = None,
    production_port: Any = None,
    canary_port: Any = None,
    run_dir: Any = None,
    production_version: Any = None,
    canary_version: Any = None,
    canary_env: list[str] | None = None,
    backend: Any = None,
    toml_file: str = DEFAULT_CONFIG_FILE,
) -> StackSettings:
    """Build StackSettings from CLI values (None = not given), the environment and canary.toml [stack],
    by the one precedence rule (:mod:`canary_harness.configuration.resolve`); unknown [stack] keys are refused."""
    check_section_keys(section_of(toml, "stack", toml_file), "stack", toml_file)
    given = {
        "nginx_port": nginx_port,
        "production_port": production_port,
        "canary_port": canary_port,
        "run_dir": run_dir,
        "production_version": production_version,
        "canary_version": canary_version,
        "backend": backend,
    }
    # Values given here come from the `canary` commands' flags (the plugin resolves its own first).
    values = {
        name: resolve_setting(
            SETTING[name], cli=cli, flag=SETTING[name].cli_flag, environ=environ, toml=toml, toml_file=toml_file
        )
        for name, cli in given.items()
    }
    # --canary-env is a flag only here: CANARY_ENV is the stage's (canary rollout passes it to each stage).
    target = TargetSettings.from_mapping((toml or {}).get("target", {}), f"{toml_file} [target]")
    target.check_backend(values["backend"], f"{toml_file} [target]")
    group_header = resolve_setting(SETTING["group_header"], environ=environ, toml=toml, toml_file=toml_file)
    return StackSettings(
        **values, canary_env=parse_env_pairs(canary_env or [], "from --canary-env"), target=target,
        group_header=group_header,
    )  # fmt: skip


# --------------------------------------------------------------------------- [traffic]


@dataclass(frozen=True)
class TrafficSettings:
    """Which NGINX moves the traffic: the harness's own (managed) or the user's (external).

    External: the harness writes only ``<nginx_dir>/conf.d/upstream.conf``, checks and reloads the NGINX
    in ``nginx_container`` (``docker exec``/``docker kill -s HUP``) or on the host (``nginx_bin``, master PID
    in ``nginx_pid_file``), and reads the split in force from ``nginx_url``. ``production``/``canary`` are
    the upstream addresses.
    """

    nginx: str = "managed"
    nginx_dir: Path | None = None
    nginx_url: str | None = None
    nginx_container: str | None = None
    nginx_bin: str = "nginx"
    nginx_pid_file: Path = Path("/run/nginx.pid")
    production: str = "127.0.0.1:8000"
    canary: str = "127.0.0.1:8001"
    reload_timeout: float = 10.0
    lock_dir: Path = Path(".canary")


def resolve_traffic_settings(
    *,
    toml: Mapping[str, Any] | None = None,
    stack: StackSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> TrafficSettings:
    """Build TrafficSettings from the environment and canary.toml [traffic]; addresses from ``stack``.

    External mode without ``nginx_dir`` or ``nginx_url`` is a ConfigError naming the missing key.
    """
    check_section_keys(section_of(toml, "traffic"), "traffic")
    stack = stack or StackSettings()
    values = {
        name: resolve_setting(SETTING[name], environ=environ, toml=toml)
        for name in ("nginx", "nginx_dir", "nginx_url", "nginx_container", "nginx_bin", "nginx_pid_file",
                     "reload_timeout")
    }  # fmt: skip
    if values["nginx"] == "external":
        for key in ("nginx_dir", "nginx_url"):
            if values[key] is None:
                raise ConfigError(f"canary.toml [traffic] nginx = 'external' needs {key} (or CANARY_{key.upper()})")
    return TrafficSettings(
        **values,
        production=f"{stack.host}:{stack.production_port}",
        canary=f"{stack.host}:{stack.canary_port}",
        lock_dir=stack.run_dir,
    )
