"""The plugin's flags carry the ``--canary-`` prefix; the names they had before still work and mean the same.
With pytester's in-process sessions (parseconfigure: the options are resolved, no session runs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from canary_harness.pytest_plugin.keys import OPTIONS_KEY
from tests.plugin.inner import INNER_ARGS

pytest_plugins = ("pytester",)


# The same stage, once with the new names, once with the old ones.
NEW = [
    "--canary-stage", "25", "--canary-observation-period", "30", "--canary-judge", "fixed", "--canary-dry-run",
    "--canary-backend", "process", "--canary-production-version", "v0.1.0", "--canary-load-users", "3",
    "--canary-load-rate", "0", "--canary-load-mix", "fast=100", "--canary-keep-canary", "--canary-no-load",
    "--canary-prometheus", "off", "--canary-load-max-rps", "50", "--canary-load-workers", "0",
    "--canary-production-env", "A=1",
]  # fmt: skip
OLD = [
    "--stage", "25", "--observation-period", "30", "--judge", "fixed", "--dry-run",
    "--backend", "process", "--production-version", "v0.1.0", "--load-users", "3",
    "--load-rate", "0", "--load-mix", "fast=100", "--keep-canary", "--no-load",
    "--prometheus", "off", "--load-max-rps", "50", "--load-workers", "0",
    "--production-env", "A=1",
]  # fmt: skip


def resolved(pytester: pytest.Pytester, run_dir: Path, args: list[str]) -> dict[str, object]:
    config = pytester.parseconfigure(*INNER_ARGS, "--canary-version", "v0.2.0", f"--canary-run-dir={run_dir}", *args)
    return dataclasses.asdict(config.stash[OPTIONS_KEY])


def test_old_names_resolve_to_the_same_options_as_the_new_ones(pytester: pytest.Pytester, run_dir: Path) -> None:
    new = resolved(pytester, run_dir, NEW)
    assert (new["stage"], new["observation_period"], new["judge"], new["dry_run"]) == (25, 30.0, "fixed", True)
    assert (new["load_users"], new["keep_canary"], new["no_load"], new["production_env"]) == (3, True, True, {"A": "1"})
    assert resolved(pytester, run_dir, OLD) == new


def test_help_shows_the_new_names_with_the_old_ones(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*INNER_ARGS, "--help")
    for new, old in [
        ("--canary-stage", "--stage"),
        ("--canary-judge", "--judge"),
        ("--canary-dry-run", "--dry-run"),
        ("--canary-config", "--config"),
    ]:
        result.stdout.fnmatch_lines([f"*{new}*, {old}*"])


def test_a_bad_value_names_the_flag_as_given(pytester: pytest.Pytester, run_dir: Path) -> None:
    pytester.makepyfile("def test_trivial():\n    assert True\n")
    for flag in ("--judge", "--canary-judge"):
        result = pytester.runpytest(
            *INNER_ARGS, "--canary-version", "v0.2.0", f"--canary-run-dir={run_dir}", "--canary-stage", "5", flag, "x"
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*value 'x' (from {flag}): must be one of sequential, fixed*"])
    assert not run_dir.exists()
