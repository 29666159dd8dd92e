"""LongWait: plain progress lines with the elapsed time in CI, a spinner on a terminal."""

from __future__ import annotations

import io
import re

import pytest

from canary_harness.reporting.longwait import LongWait, is_terminal
from canary_harness.waiting import wait_until


class FakeTerminal(io.StringIO):
    """A stream that says it is a TTY."""

    def isatty(self) -> bool:
        return True


def test_plain_lines_say_start_progress_and_how_long_it_took() -> None:
    lines: list[str] = []
    with LongWait("starting the stack", say=lines.append, every_s=0.05) as wait:
        assert not wait.spinner
        wait_until(lambda: any("s so far" in line for line in lines), 5.0, 0.01, "a progress line")
        wait.line("a line from the work itself")
    assert lines[0] == "starting the stack ..."
    assert any(line.startswith("starting the stack: ") and line.endswith(" s so far") for line in lines)
    assert "a line from the work itself" in lines
    assert lines[-1].startswith("starting the stack: done after ") and lines[-1].endswith(" s")


def test_a_failed_wait_says_it_stopped_and_the_error_goes_on() -> None:
    lines: list[str] = []
    with pytest.raises(RuntimeError, match="engine gone"), LongWait("building", say=lines.append):
        raise RuntimeError("engine gone")
    assert lines[-1].startswith("building: stopped after ")


def test_a_terminal_gets_a_spinner_redrawn_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stream = FakeTerminal()
    assert is_terminal(stream)
    with LongWait("building v0.2.0", stream=stream) as wait:
        assert wait.spinner
        wait_until(
            lambda: re.search(r"\r\| building v0\.2\.0 \d+ s", stream.getvalue()), 5.0, 0.01, "the spinner drawn"
        )
        wait.line("step 1/3")
    text = stream.getvalue()
    assert "\r\x1b[Kstep 1/3\n" in text  # a line during the wait clears the spinner first
    assert text.rstrip("\n").rsplit("\r\x1b[K", 1)[-1].startswith("building v0.2.0: done after ")
    assert "building v0.2.0 ..." not in text  # no plain start line on a terminal


def test_ci_or_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = FakeTerminal()
    monkeypatch.setenv("CI", "true")
    assert not is_terminal(stream)
    monkeypatch.delenv("CI")
    monkeypatch.setenv("TERM", "dumb")
    assert not is_terminal(stream)
    assert not is_terminal(io.StringIO())
