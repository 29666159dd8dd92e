"""Configuration: frozen dataclasses resolved once, CLI > environment > canary.toml > defaults.

Every value remembers where it came from so that a bad one can be reported as
"--stage '150' (from command line): must be an integer in 0..100".
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from canary_harness.deploy.factory import parse_backend
from canary_harness.errors import ConfigError
from canary_harness.redact import register

T = TypeVar("T")

DEFAULT_CONFIG_FILE = "canary.toml"
MODES: tuple[str, ...] = ("fast", "balanced", "creative")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


# --------------------------------------------------------------------------- parsers
def parse_version(raw: str, source: str) -> str:
    """A release version label: letters, digits and ``._+-`` only (it ends up in argv and labels)."""
    value = str(raw).strip()
    if not _VERSION_RE.match(value):
        raise ConfigError(
            f"version {raw!r} ({source}): must match {_VERSION_RE.pattern} "
            "(letters, digits, '.', '_', '+', '-'; no spaces or shell characters)"
        )
    return value


def parse_percent(raw: object, source: str) -> int:
    """A traffic weight: an integer 0..100 (``5.5``, ``abc``, ``-1``, ``150`` are refused)."""
    text = str(raw).strip()
    if not re.fullmatch(r"\d{1,3}", text) or int(text) > 100:
        raise ConfigError(f"weight {raw!r} ({source}): must be an integer percentage in 0..100")
    return int(text)


def parse_port(raw: object, source: str) -> int:
    """A TCP port in 1..65535."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ConfigError(f"port {raw!r} ({source}): must be an integer in 1..65535")
    return int(text)


def parse_positive_float(raw: object, source: str) -> float:
    """A strictly positive finite number (seconds, rates)."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(f"value {raw!r} ({source}): must be a positive number") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"value {raw!r} ({source}): must be a positive number")
    return value


def parse_env_pairs(
    items: list[str] | tuple[str, ...], source: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``K=V`` strings into a dict; a key must be a valid environment variable name. ``K`` alone takes
    the value of ``K`` from ``environ`` (default: ours), so that a secret need not be on a command line."""
    environ = os.environ if environ is None else environ
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        valid = bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key))
        if valid and not sep and key in environ:
            value = environ[key]
        elif not sep or not valid:
            # Name only the part before '=': what follows may be a credential.
            raise ConfigError(
                f"environment entry {key[:40]!r}{'=***' if sep else ''} ({source}): must be "
                "KEY=VALUE, or KEY alone for a variable set in the environment"
            )
        result[key] = value
    # From here on these values are masked in every error message and output (canary_harness.redact).
    register(result)
    return result


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


def pick(
    name: str,
    parse: Callable[[Any, str], T],
    default: T,
    *,
    cli: Any = None,
    cli_flag: str = "",
    env: str = "",
    toml: Mapping[str, Any] | None = None,
    toml_key: str = "",
    environ: Mapping[str, str] | None = None,
) -> T:
    """Resolve one setting by precedence CLI > env > toml > default, parsing with its source named."""
    environ = os.environ if environ is None else environ
    if cli is not None:
        return parse(cli, f"from {cli_flag or '--' + name}")
    if env and environ.get(env, "") != "":
        return parse(environ[env], f"from environment {env}")
    if toml is not None and toml_key and toml_key in toml:
        return parse(toml[toml_key], f"from canary.toml key {toml_key!r}")
    return default


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
) -> StackSettings:
    """Build StackSettings from CLI values (None = not given), the environment and canary.toml [stack]."""
    section: Mapping[str, Any] = (toml or {}).get("stack", {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"canary.toml [stack] must be a table, got {section!r}")
    base = StackSettings()
    common: dict[str, Any] = {"toml": section, "environ": environ}
    version = pick(
        "canary-version",
        parse_version,
        None,
        cli=canary_version,
        env="CANARY_VERSION",
        toml_key="canary_version",
        **common,
    )
    return StackSettings(
        nginx_port=pick(
            "nginx-port",
            parse_port,
            base.nginx_port,
            cli=nginx_port,
            env="CANARY_NGINX_PORT",
            toml_key="nginx_port",
            **common,
        ),
        production_port=pick(
            "production-port",
            parse_port,
            base.production_port,
            cli=production_port,
            env="CANARY_PRODUCTION_PORT",
            toml_key="production_port",
            **common,
        ),
        canary_port=pick(
            "canary-port",
            parse_port,
            base.canary_port,
            cli=canary_port,
            env="CANARY_CANARY_PORT",
            toml_key="canary_port",
            **common,
        ),
        run_dir=pick(
            "run-dir",
            lambda raw, _src: Path(str(raw)),
            base.run_dir,
            cli=run_dir,
            env="CANARY_RUN_DIR",
            toml_key="run_dir",
            **common,
        ),
        production_version=pick(
            "production-version",
            parse_version,
            base.production_version,
            cli=production_version,
            env="CANARY_PRODUCTION_VERSION",
            toml_key="production_version",
            **common,
        ),
        canary_version=version,
        canary_env=parse_env_pairs(canary_env or [], "from --canary-env"),
        backend=pick(
            "backend", parse_backend, base.backend, cli=backend, env="CANARY_BACKEND", toml_key="backend", **common
        ),
    )


# --------------------------------------------------------------------------- [traffic]
# "memory": canary_harness.testing's in-process router, for the plugin's own lifecycle tests (never a default).
NGINX_MODES = ("managed", "external", "memory")


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


def _parse_choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse(raw: Any, source: str) -> str:
        if str(raw) not in choices:
            raise ConfigError(f"value {raw!r} ({source}): must be one of {', '.join(choices)}")
        return str(raw)

    return parse


def _parse_url(raw: Any, source: str) -> str:
    text = str(raw).strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+", text):
        raise ConfigError(f"URL {raw!r} ({source}): must be http(s)://host:port")
    return text


def _parse_text(raw: Any, source: str) -> str:
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"value {raw!r} ({source}): must not be empty")
    return text


def resolve_traffic_settings(
    *,
    toml: Mapping[str, Any] | None = None,
    stack: StackSettings | None = None,
    environ: Mapping[str, str] | None = None,
) -> TrafficSettings:
    """Build TrafficSettings from the environment and canary.toml [traffic]; addresses from ``stack``.

    External mode without ``nginx_dir`` or ``nginx_url`` is a ConfigError naming the missing key.
    """
    section: Mapping[str, Any] = (toml or {}).get("traffic", {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"canary.toml [traffic] must be a table, got {section!r}")
    common: dict[str, Any] = {"toml": section, "environ": environ}
    stack = stack or StackSettings()
    mode = pick("nginx", _parse_choice(NGINX_MODES), "managed", env="CANARY_NGINX", toml_key="nginx", **common)
    nginx_dir = pick(
        "nginx-dir", lambda raw, _src: Path(str(raw)), None, env="CANARY_NGINX_DIR", toml_key="nginx_dir", **common
    )
    nginx_url = pick("nginx-url", _parse_url, None, env="CANARY_NGINX_URL", toml_key="nginx_url", **common)
    if mode == "external":
        for key, value in (("nginx_dir", nginx_dir), ("nginx_url", nginx_url)):
            if value is None:
                raise ConfigError(f"canary.toml [traffic] nginx = 'external' needs {key} (or CANARY_{key.upper()})")
    return TrafficSettings(
        nginx=mode,
        nginx_dir=nginx_dir,
        nginx_url=nginx_url,
        nginx_container=pick(
            "nginx-container", _parse_text, None, env="CANARY_NGINX_CONTAINER", toml_key="nginx_container", **common
        ),
        nginx_bin=pick("nginx-bin", _parse_text, "nginx", toml_key="nginx_bin", **common),
        nginx_pid_file=pick(
            "nginx-pid-file",
            lambda raw, _src: Path(str(raw)),
            Path("/run/nginx.pid"),
            toml_key="nginx_pid_file",
            **common,
        ),
        production=f"{stack.host}:{stack.production_port}",
        canary=f"{stack.host}:{stack.canary_port}",
        reload_timeout=pick("reload-timeout", parse_positive_float, 10.0, toml_key="reload_timeout", **common),
        lock_dir=stack.run_dir,
    )
