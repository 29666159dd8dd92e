"""``--backend``: its sources and precedence (flag > env > ini > canary.toml [stack] backend > process), and a
bad value as a usage error naming value and source. No servers: nothing here starts a stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.pytest_plugin.keys import OPTIONS_KEY
from tests.plugin.inner import INNER_ARGS

pytest_plugins = ("pytester",)


@pytest.mark.parametrize(
    ("flag", "env", "ini", "toml", "expected"),
    [
        ("docker", "process", "process", "process", "docker"),
        (None, "docker", "process", "process", "docker"),
        (None, None, "docker", "process", "docker"),
        (None, None, None, "docker", "docker"),
        (None, None, None, None, "process"),
    ],
    ids=["flag", "env", "ini", "toml-stack", "default"],
)
def test_backend_precedence(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    env: str | None,
    ini: str | None,
    toml: str | None,
    expected: str,
) -> None:
    args = ["--canary-version", "v0.2.0", "--stage", "5"] + (["--backend", flag] if flag else [])
    monkeypatch.delenv("CANARY_BACKEND", raising=False)
    if env:
        monkeypatch.setenv("CANARY_BACKEND", env)
    if ini:
        pytester.makeini(f"[pytest]\ncanary_backend = {ini}\n")
    if toml:
        (pytester.path / "canary.toml").write_text(f'[stack]\nbackend = "{toml}"\n')
    options = pytester.parseconfigure(*INNER_ARGS, *args).stash[OPTIONS_KEY]
    assert (options.backend, options.stack.backend) == (expected, expected)


@pytest.mark.parametrize(
    ("args", "env", "toml", "source"),
    [
        (["--backend", "k8s"], {}, "", "from --backend"),
        ([], {"CANARY_BACKEND": "k8s"}, "", "from environment CANARY_BACKEND"),
        ([], {}, '[stack]\nbackend = "k8s"\n', "from canary.toml [stack] backend"),
    ],
    ids=["flag", "env", "toml"],
)
def test_bad_backend_is_a_usage_error(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    run_dir: Path,
    args: list[str],
    env: dict[str, str],
    toml: str,
    source: str,
) -> None:
    pytester.makepyfile("def test_trivial():\n    assert True\n")
    monkeypatch.delenv("CANARY_BACKEND", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if toml:
        (pytester.path / "canary.toml").write_text(toml)
    result = pytester.runpytest(
        *INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "5", f"--canary-run-dir={run_dir}", *args
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = next((text for text in result.stderr.lines if "'k8s'" in text), "")
    assert source in line, result.stderr.str()
    assert not run_dir.exists()


def test_testcontainers_needs_no_stage(pytester: pytest.Pytester) -> None:
    options = pytester.parseconfigure(*INNER_ARGS, "--canary-version", "v0.2.0", "--backend", "testcontainers").stash[
        OPTIONS_KEY
    ]
    assert options.backend == "testcontainers"
