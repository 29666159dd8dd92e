"""The plugin's own words name its flags by their ``--canary-`` names, never by the older aliases.

The aliases stay accepted (configuration table), but a message that tells a user to "add --dry-run" sends
them to a name the docs no longer teach. Every string in the plugin's modules is checked against every alias.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import canary_harness.pytest_plugin as plugin_package
from canary_harness.configuration.table import SETTINGS

PLUGIN_DIR = Path(plugin_package.__file__).parent
NEW_NAME = {alias: setting.flag for setting in SETTINGS for alias in setting.aliases}
ALIASES = sorted(NEW_NAME)


def strings_of(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module (messages, f-string parts, docstrings) with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def old_names_in(text: str) -> list[str]:
    """The aliases ``text`` names as flags (``--stage`` but not ``--canary-stage`` nor ``--stage-x``), except
    where it speaks of the aliases themselves (says "alias" or names the new flag beside the old one)."""
    return [
        alias
        for alias in ALIASES
        if re.search(rf"(?<![\w-]){re.escape(alias)}(?![\w-])", text)
        and "alias" not in text
        and str(NEW_NAME[alias]) not in text
    ]


def test_the_scan_finds_an_old_name_and_passes_a_new_one() -> None:
    assert "--dry-run" in ALIASES and "--no-rollback" in ALIASES
    assert old_names_in("start one or add --dry-run") == ["--dry-run"]
    assert old_names_in("start one or add --canary-dry-run; --stage-x is something else") == []
    assert old_names_in("--stage is an alias of the flag") == []


@pytest.mark.parametrize("path", sorted(PLUGIN_DIR.glob("*.py")), ids=lambda path: path.name)
def test_plugin_strings_use_the_canary_names(path: Path) -> None:
    found = [f"{path.name}:{line}: {name}" for line, text in strings_of(path) for name in old_names_in(text)]
    assert not found, "old flag names in the plugin's words:\n" + "\n".join(found)
