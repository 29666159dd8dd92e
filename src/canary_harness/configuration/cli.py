"""The ``canary`` commands' flags that mirror a setting of the table, defined once here.

A command adds a setting's flag with :func:`add_setting` (its help names the environment variable and the
canary.toml key that stand in for it) and reads the value with :func:`value_of`, which applies the one
precedence rule. ``--run-dir`` and ``--config`` come together from :func:`add_location_options`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from canary_harness.configuration.resolve import resolve_with_source
from canary_harness.configuration.table import SETTING, Setting


def twins(setting: Setting) -> str:
    """``env CANARY_X, canary.toml [s] x``: what stands in for the flag, in precedence order."""
    parts = [f"env {setting.env}"] if setting.env else []
    parts += [f"canary.toml [{key.partition('.')[0]}] {key.partition('.')[2]}" for key in setting.toml]
    return ", ".join(parts)


def add_setting(
    parser: argparse.ArgumentParser, name: str, *, help: str | None = None, flag_only: bool = False, **kwargs: Any
) -> None:
    """Add the ``canary`` command flag of setting ``name`` (dest: the setting's name; None when not given).

    ``flag_only``: the command reads the flag alone (its help then names no environment variable or key).
    """
    setting = SETTING[name]
    if setting.cli_flag is None:
        raise ValueError(f"setting {name!r} has no canary command flag")
    text = (help or setting.help).rstrip(".")
    stand_ins = "" if flag_only else twins(setting)
    if setting.kind != "flag" and setting.default not in (None, {}):
        text += f" (default {setting.default}" + (f"; {stand_ins})" if stand_ins else ")")
    elif stand_ins:
        text += f" ({stand_ins})"
    text = text.replace("%", "%%")  # argparse formats help with %
    if setting.kind == "flag":
        # None when absent, so that value_of() falls through to the environment (store_true would say False).
        parser.add_argument(setting.cli_flag, dest=name, action="store_const", const=True, help=text, **kwargs)
    elif setting.kind == "append":
        parser.add_argument(setting.cli_flag, dest=name, action="append", default=[], metavar="K=V", help=text)
    else:
        parser.add_argument(setting.cli_flag, dest=name, help=text, **kwargs)


def add_location_options(parser: argparse.ArgumentParser, *, config_help: str | None = None) -> None:
    """``--run-dir`` and ``--config``: where a stack is recorded and which canary.toml is read."""
    add_setting(parser, "run_dir")
    add_setting(parser, "config_file", help=config_help)


def config_path(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Path | None:
    """The canary.toml a command reads: ``--config``, else ``CANARY_CONFIG_FILE``, else None (./canary.toml)."""
    raw, _ = resolve_with_source(
        SETTING["config_file"], cli=getattr(args, "config_file", None), flag="--config", environ=environ
    )
    return None if raw is None else Path(raw)


def value_of(
    args: argparse.Namespace,
    name: str,
    toml: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """The value of setting ``name`` for this command: its flag, else the environment, else canary.toml."""
    return source_of(args, name, toml, environ, **kwargs)[0]


def source_of(
    args: argparse.Namespace,
    name: str,
    toml: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> tuple[Any, str]:
    """The value of setting ``name`` and where it came from (``from --run-dir``, ``default``...)."""
    setting = SETTING[name]
    environ = os.environ if environ is None else environ
    return resolve_with_source(
        setting, cli=getattr(args, name, None), flag=setting.cli_flag, environ=environ, toml=toml, **kwargs
    )
