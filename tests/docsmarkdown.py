"""The README's and the guides' sample commands and sample outputs, read from the markdown itself.

The docs tests run what the docs show, so a changed doc is tested, not a copy of it:

- a command is a line of a ```bash block (``\\`` continuations joined, ``# comments`` and ``[optional]``
  parts dropped);
- a sample output is a plain ``` block that either follows a ```bash block of exactly one command, or is
  preceded by ``<!-- output of: COMMAND -->``. Its lines must appear in the command's real output, in
  order, whitespace runs counting as one space; ``…`` and ``<placeholder>`` stand for any text and a line
  ``...`` for any lines.

PYTEST_DONT_REWRITE: the module holds no assertions.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE_RE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
OUTPUT_OF_RE = re.compile(r"<!--\s*output of:\s*(.+?)\s*-->\s*$")
PLACEHOLDER_RE = re.compile(r"…|<[^<>\s][^<>]*>")


def doc_files() -> list[Path]:
    """The README and every guide in docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    """One fenced block of a markdown file."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    before: str  # the text between the previous block and this one

    @property
    def where(self) -> str:
        """``docs/x.md:12`` for messages."""
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order."""
    text = path.read_text(encoding="utf-8")
    found, last_end = [], 0
    for match in FENCE_RE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(path, line, match.group(1), match.group(2), text[last_end : match.start()]))
        last_end = match.end()
    return found


@dataclass(frozen=True)
class Command:
    """A sample command as the docs show it, and its words."""

    block: Block
    text: str

    @property
    def argv(self) -> list[str]:
        """The command's words (the shell's quoting rules)."""
        return shlex.split(self.text)


def commands(block: Block) -> list[Command]:
    """The commands of a ```bash block: continuations joined, comments and ``[optional]`` parts dropped."""
    if block.lang not in ("bash", "sh", "shell"):
        return []
    result = []
    for raw in re.sub(r"\\\n\s*", " ", block.text).splitlines():
        words = _words(raw)
        if words:
            result.append(Command(block, shlex.join(words)))
    return result


def _words(line: str) -> list[str]:
    """The words of a shell line up to its comment, without ``[optional]`` groups."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    words, optional = [], False
    for word in lexer:
        if word.startswith("#"):
            break
        if word.startswith("["):
            optional = True
        if not optional:
            words.append(word)
        if optional and word.endswith("]"):
            optional = False
    return words


def all_commands(paths: Sequence[Path] | None = None) -> Iterator[Command]:
    """Every sample command of the docs."""
    for path in paths or doc_files():
        for block in blocks(path):
            yield from commands(block)


@dataclass(frozen=True)
class SampleOutput:
    """A sample output and the command that prints it."""

    command: Command
    expected: Block


def sample_outputs(paths: Sequence[Path] | None = None) -> list[SampleOutput]:
    """Every sample output of the docs with its command (see the module docstring for the two forms)."""
    found = []
    for path in paths or doc_files():
        previous: Block | None = None
        for block in blocks(path):
            if block.lang == "":
                tag = OUTPUT_OF_RE.search(block.before.rstrip("\n").rsplit("\n", 1)[-1])
                if tag is not None:
                    found.append(SampleOutput(Command(block, tag.group(1)), block))
                elif previous is not None and not block.before.strip():
                    before = commands(previous)
                    if len(before) == 1:
                        found.append(SampleOutput(before[0], block))
            previous = block
    return found


def _normalise(line: str) -> str:
    return " ".join(line.split())


def line_pattern(line: str) -> re.Pattern[str]:
    """A doc line as a pattern: whitespace runs as one space, ``…`` and ``<placeholder>`` as any text."""
    parts = PLACEHOLDER_RE.split(_normalise(line))
    return re.compile(".*".join(re.escape(part) for part in parts))


def missing_lines(expected: str, actual: str) -> list[str]:
    """The lines of ``expected`` not found in ``actual`` in order (empty: the sample output holds)."""
    actual_lines = [_normalise(line) for line in actual.splitlines()]
    missing, position = [], 0
    for line in expected.splitlines():
        if not line.strip() or line.strip() == "...":
            continue
        pattern = line_pattern(line)
        for index in range(position, len(actual_lines)):
            if pattern.fullmatch(actual_lines[index]):
                position = index + 1
                break
        else:
            missing.append(line)
    return missing
