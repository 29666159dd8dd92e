"""The one precedence rule: CLI flag > environment > ini > canary.toml > default.

Every value is parsed by its setting's parser with its source named, so a bad one reads
``value 'soon' (from canary.toml [stage] observation_period): must be a positive number`` whichever
command or stage read it. The tables of canary.toml this module owns (``[stage]``, ``[stack]``,
``[traffic]``) refuse keys the table does not know, naming the file, the table and the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from canary_harness.configuration.table import SETTINGS, TABLE_SECTIONS, Setting, keys_of_section
from canary_harness.errors import ConfigError

DEFAULT_TOML_NAME = "canary.toml"
_MISSING: Any = object()


def section_of(toml: Mapping[str, Any] | None, name: str, toml_file: str = DEFAULT_TOML_NAME) -> Mapping[str, Any]:
    """canary.toml ``[name]`` (empty when absent); ConfigError when it is not a table."""
    section = (toml or {}).get(name, {})
    if not isinstance(section, Mapping):
        raise ConfigError(f"{toml_file} [{name}] must be a table, got {section!r}")
    return section


def check_section_keys(section: Mapping[str, Any], name: str, toml_file: str = DEFAULT_TOML_NAME) -> None:
    """ConfigError for the first key of ``[name]`` the table does not know (a typo would be silently ignored)."""
    known = keys_of_section(name)
    for key in section:
        if key not in known:
            raise ConfigError(f"unknown [{name}] key {key!r} ({toml_file}); known keys: {', '.join(known)}")


def validate_table_sections(toml: Mapping[str, Any], toml_file: str = DEFAULT_TOML_NAME) -> None:
    """Check the keys and parse every value of the tables this module owns, before anything starts."""
    for name in TABLE_SECTIONS:
        section = section_of(toml, name, toml_file)
        check_section_keys(section, name, toml_file)
        for setting in SETTINGS:
            for key in setting.toml:
                table, _, field = key.partition(".")
                if table == name and field in section:
                    _parse(setting, section[field], toml_source(key, toml_file))


def toml_source(key: str, toml_file: str = DEFAULT_TOML_NAME) -> str:
    """``from canary.toml [stage] observation_period`` for the key ``stage.observation_period``."""
    section, _, field = key.partition(".")
    return f"from {toml_file} [{section}] {field}"


def resolve_with_source(
    setting: Setting,
    *,
    cli: Any = None,
    flag: str | None = None,
    environ: Mapping[str, str] | None = None,
    ini: Any = None,
    toml: Mapping[str, Any] | None = None,
    toml_file: str = DEFAULT_TOML_NAME,
    default: Any = _MISSING,
) -> tuple[Any, str]:
    """The setting's value and where it came from (``default`` when nowhere).

    ``cli`` is the flag's raw value (None: not given) and ``flag`` the option string used (default: the
    setting's plugin flag, else its ``canary`` command flag); ``ini`` the ini value (None or []: not set).
    """
    environ = os.environ if environ is None else environ
    if cli is not None:
        return _parse(setting, cli, f"from {flag or setting.flag or setting.cli_flag}")
    if setting.env and environ.get(setting.env, "") != "":
        raw: Any = environ[setting.env]
        if setting.kind == "append":
            raw = env_list(raw, setting.env)
        return _parse(setting, raw, f"from environment {setting.env}")
    if setting.ini and ini not in (None, []):
        return _parse(setting, ini, f"from ini option {setting.ini}")
    for key in setting.toml:
        section = section_of(toml, key.partition(".")[0], toml_file)
        field = key.partition(".")[2]
        if field in section:
            return _parse(setting, section[field], toml_source(key, toml_file))
    return (setting.default if default is _MISSING else default), "default"


def resolve_setting(setting: Setting, **given: Any) -> Any:
    """The setting's value by the precedence rule (see :func:`resolve_with_source` for the arguments)."""
    return resolve_with_source(setting, **given)[0]


def _parse(setting: Setting, raw: Any, source: str) -> tuple[Any, str]:
    if setting.kind == "append" and isinstance(raw, str):
        raw = [raw]  # one K=V from an ini line or a toml string
    return setting.parse(raw, source), source


def env_list(raw: str, name: str) -> list[str]:
    """A repeatable option's environment twin: ``K=V K2=V2``, or a JSON object (values with spaces; what
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
