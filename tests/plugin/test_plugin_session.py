"""Session-level behaviour of the plugin that needs no servers (pytester, in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin.inner import INNER_ARGS

pytest_plugins = ("pytester",)


def test_collect_only_runs_no_stage_and_records_nothing(pytester: pytest.Pytester, run_dir: Path) -> None:
    """--collect-only lists the checks: no stage runs, so no verdict may reach the journal."""
    test_file = pytester.makepyfile("def test_trivial():\n    assert True\n")
    result = pytester.runpytest(
        *INNER_ARGS,
        "--canary-version",
        "v0.2.0",
        "--stage",
        "5",
        f"--canary-run-dir={run_dir}",
        "--collect-only",
        "-q",
        str(test_file),
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*test_trivial*"])
    result.stdout.no_fnmatch_line("*PASSED*")
    assert not (run_dir / "journal.jsonl").exists(), (
        "a collect-only session wrote to the journal:\n" + (run_dir / "journal.jsonl").read_text()
    )


def test_usage_error_after_configure_records_nothing(pytester: pytest.Pytester, run_dir: Path) -> None:
    """A path that does not exist stops pytest before any stage: no journal entry, no run directory."""
    result = pytester.runpytest(
        *INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "5", f"--canary-run-dir={run_dir}", "no_such_dir"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no_such_dir*"])
    assert not run_dir.exists(), "a session that ran no stage created the run directory"


def test_release_checks_are_collected_by_default(pytester: pytest.Pytester, run_dir: Path) -> None:
    """Without paths, an active session collects the release checks next to the ini file."""
    checks = pytester.mkdir("canary_tests")
    (checks / "test_gate.py").write_text("def test_gate():\n    pass\n")
    pytester.makepyfile(test_elsewhere="def test_not_a_release_check():\n    pass\n")
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest(
        *INNER_ARGS, "--canary-version", "v0.2.0", "--stage", "5", f"--canary-run-dir={run_dir}", "--collect-only", "-q"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["canary_tests/test_gate.py::test_gate"])
    result.stdout.no_fnmatch_line("*test_not_a_release_check*")
