"""The docs' sample commands and code, read from the markdown (tests/docsmarkdown.py), against the real
parsers: every `canary` command parses, every pytest flag exists, every Python snippet names only what it
imports; and no file of the repository names a path of one machine or a file outside the repository."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from canary_harness.cli import build_parser
from tests.docsmarkdown import REPO, Block, Command, all_commands, blocks, doc_files, missing_lines, sample_outputs

COMMANDS = list(all_commands())


def _before_pipe(argv: list[str]) -> list[str]:
    return argv[: argv.index("|")] if "|" in argv else argv


def _split_pytest_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """`canary rollout ... -- PYTEST ARGS`: the command's own words and the words passed to pytest."""
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def _ids(commands: list[Command]) -> list[str]:
    return [f"{command.block.where} {command.text[:60]}" for command in commands]


CANARY = [command for command in COMMANDS if command.argv[0] == "canary"]
PYTEST = [command for command in COMMANDS if command.argv[0] == "pytest" or "--" in command.argv]


def test_the_docs_have_sample_commands() -> None:
    # The extraction must find the commands the README shows, or the tests below would check nothing.
    texts = {command.text for command in COMMANDS}
    assert {"canary plan --stage 5 --rps 50", "canary stack status"} <= texts
    assert len(CANARY) > 40 and len(PYTEST) > 15


@pytest.mark.parametrize("command", CANARY, ids=_ids(CANARY))
def test_every_canary_command_of_the_docs_parses(command: Command) -> None:
    own, _ = _split_pytest_args(_before_pipe(command.argv))
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = build_parser().parse_args(own[1:])
    except SystemExit as exc:
        pytest.fail(f"{command.block.where}: `{command.text}` does not parse (exit {exc.code}): {errors.getvalue()}")
    assert getattr(args, "handler", None) is not None, f"{command.block.where}: `{command.text}` names no command"


@pytest.fixture(scope="module")
def pytest_flags() -> set[str]:
    """Every long option `pytest --help` lists in this repository (the plugin's, the site plugins' and
    the installed plugins')."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", result.stdout))


@pytest.mark.parametrize("command", PYTEST, ids=_ids(PYTEST))
def test_every_pytest_flag_of_the_docs_exists(command: Command, pytest_flags: set[str]) -> None:
    argv = _before_pipe(command.argv)
    words = argv[1:] if argv[0] == "pytest" else _split_pytest_args(argv)[1]
    unknown = [
        word for word in words if word.startswith("--") and word.split("=", 1)[0] not in pytest_flags and word != "--"
    ]
    assert not unknown, f"{command.block.where}: `{command.text}` uses unknown pytest option(s) {unknown}"


PYTHON = [block for path in doc_files() for block in blocks(path) if block.lang == "python"]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize("block", PYTHON, ids=[block.where for block in PYTHON])
def test_every_python_snippet_names_only_what_it_imports(block: Block, tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(block.text, encoding="utf-8")
    result = subprocess.run(
        ["ruff", "check", "--no-cache", "--isolated", "--select", "F821,F822,F823", str(snippet)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{block.where}: the snippet does not stand alone:\n{result.stdout}"


def test_sample_output_matching() -> None:
    # The matcher the integration docs test relies on: order, placeholders, ellipses, spacing.
    actual = "head line\ncheck   state   n\nerror_rate  PASS  12\nrl_loss  FAIL  3\ntail"
    assert missing_lines("check state n\n...\nrl_loss FAIL <n>", actual) == []
    assert missing_lines("rl_loss FAIL 3\nerror_rate PASS 12", actual) == ["error_rate PASS 12"]
    assert missing_lines("error_rate … 13", actual) == ["error_rate … 13"]


def test_sample_outputs_are_found() -> None:
    found = {(sample.command.text, sample.expected.path.name) for sample in sample_outputs()}
    assert ("canary plan --stage 5 --rps 50", "canary-deployment-guide.md") in found
    assert ("canary precheck --version v0.2.0", "precheck.md") in found


# Paths of one machine, and the design notes that are not part of the repository.
OUTSIDE = re.compile(
    r"/work/|\.\./shared|/home/[a-z]|/Users/[A-Za-z]|(?<![\w/])/root/|\b(?:JUDGE|ARCHITECTURE|ENVIRONMENT|STYLE)\.md\b"
)


def test_no_file_names_a_path_outside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=False, timeout=60
    ).stdout.split(b"\0")
    if not any(listed):
        pytest.skip("not a git checkout")
    offenders = []
    for name in filter(None, listed):
        path = REPO / name.decode()
        if path == Path(__file__).resolve():
            continue  # OUTSIDE spells the patterns out
        if not path.is_file() or path.suffix in (".png", ".gz", ".ico"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{name.decode()}:{number}: {line.strip()[:120]}")
    assert not offenders, "files name paths outside the repository:\n" + "\n".join(offenders)
