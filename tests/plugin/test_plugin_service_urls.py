"""Services running elsewhere and the [traffic] table: impossible combinations are usage errors (exit 4)
before anything starts, with one line naming the flags. No servers: nothing here may start a stage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canary_harness.deploy.pids import children_of
from tests.plugin.inner import INNER_ARGS

pytest_plugins = ("pytester",)

CANARY = "http://127.0.0.1:18001"
PRODUCTION = "http://127.0.0.1:18000"


@pytest.mark.parametrize(
    ("args", "toml", "expected"),
    [
        pytest.param(["--canary-url", CANARY], "", f"--canary-url '{CANARY}' needs --canary-production-url too",
                     id="canary-alone"),
        pytest.param(["--production-url", PRODUCTION], "", f"--canary-production-url '{PRODUCTION}' needs --canary-url",
                     id="production-alone"),
        pytest.param(["--canary-url", CANARY, "--production-url", CANARY], "", "are both", id="same-url"),
        pytest.param(["--canary-url", CANARY, "--production-url", PRODUCTION, "--canary-env", "FRAGRANCE_SEED=3"],
                     "", "the canary at http://127.0.0.1:18001 (--canary-url) is not started", id="env-for-url"),
        pytest.param([], '[traffic]\nnginx = "system"\n', "'system' (from canary.toml [traffic] nginx)",
                     id="traffic-mode"),
        pytest.param([], '[traffic]\nnginx = "external"\nnginx_url = "http://127.0.0.1:8080"\n', "needs nginx_dir",
                     id="external-without-dir"),
    ],
)  # fmt: skip
def test_impossible_combination_is_a_usage_error(
    pytester: pytest.Pytester, run_dir: Path, args: list[str], toml: str, expected: str
) -> None:
    pytester.makepyfile("def test_trivial():\n    assert True\n")
    if toml:
        (pytester.path / "canary.toml").write_text(toml)
    before = set(children_of(os.getpid()))
    result = pytester.runpytest(*INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "5",
                                f"--canary-run-dir={run_dir}", *args)  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    lines = [line for line in result.stderr.lines if expected in line]
    assert len(lines) == 1 and lines[0].startswith("ERROR: canary: "), result.stderr.str()
    assert not run_dir.exists() and set(children_of(os.getpid())) == before
