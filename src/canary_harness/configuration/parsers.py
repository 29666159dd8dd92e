"""One parser per value type. Each takes the raw value and where it came from, and returns the parsed value
or raises ConfigError naming both: ``port '80x' (from --nginx-port): must be an integer in 1..65535``.

The source is always a phrase such as ``from --canary-stage``, ``from environment CANARY_STAGE``,
``from ini option canary_stage`` or ``from canary.toml [stage] observation_period``
(:func:`canary_harness.configuration.resolve.resolve_setting` builds it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from canary_harness.errors import ConfigError
from canary_harness.redact import register

Parser = Callable[[Any, str], Any]

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
# An HTTP header name NGINX can turn into a variable ($http_x_route_class): letters, digits and '-'.
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_version(raw: object, source: str) -> str:
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


def parse_split_probe(raw: object, source: str) -> int:
    """Probe requests that prove the split in force: an integer 20..10000 (fewer cannot tell 1 % from 5 %)."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()) or not 20 <= int(text) <= 10000:
        raise ConfigError(f"split probe {raw!r} ({source}): must be an integer number of requests in 20..10000")
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


def parse_header_name(raw: object, source: str) -> str:
    """An HTTP header name such as ``X-Route-Class`` (letters, digits, '-'; it is spliced into NGINX's config)."""
    text = str(raw).strip()
    if not HEADER_NAME_RE.match(text):
        raise ConfigError(
            f"header name {raw!r} ({source}): must be an HTTP header name such as X-Route-Class (letters, digits, '-')"
        )
    return text


def parse_text(raw: object, source: str) -> str:
    """Any non-empty text (names, mixes validated later by their own parser)."""
    text = str(raw).strip()
    if not text:
        raise ConfigError(f"value {raw!r} ({source}): must not be empty")
    return text


def parse_path(raw: object, source: str) -> Path:
    """A file or directory path (not checked for existence here: the code that uses it says what is missing)."""
    return Path(parse_text(raw, source))


def parse_url(raw: object, source: str) -> str:
    """An http(s) URL, path allowed; the trailing slash dropped."""
    text = str(raw).strip().rstrip("/")
    if not text.startswith(("http://", "https://")) or len(text) < 10:
        raise ConfigError(f"URL {raw!r} ({source}): must start with http:// or https://")
    return text


def parse_origin(raw: object, source: str) -> str:
    """An http(s) origin, scheme and host:port only (where the harness reads a server's own pages)."""
    text = str(raw).strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+", text):
        raise ConfigError(f"URL {raw!r} ({source}): must be http(s)://host:port")
    return text


def choice(choices: tuple[str, ...]) -> Callable[[object, str], str]:
    """A parser accepting one of ``choices`` exactly."""

    def parse(raw: object, source: str) -> str:
        text = str(raw).strip()
        if text not in choices:
            raise ConfigError(f"value {raw!r} ({source}): must be one of {', '.join(choices)}")
        return text

    parse.__doc__ = f"One of {', '.join(choices)}."
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


def table_of(data: object, table: str, known: Sequence[str], source: str) -> Mapping[str, Any]:
    """A canary.toml table with none but ``known`` keys; ConfigError naming the table, the key and ``source``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{table}] ({source}): must be a table, got {data!r}")
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown [{table}] key {key!r} ({source}); known keys: {', '.join(known)}")
    return data
