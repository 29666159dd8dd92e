"""Human output of a stage: the live progress line and the figures table (plain text, TTY-aware)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TextIO

from canary_harness.judge.check_names import ERROR_RATE, RL_LOSS, SCHEMA, SPLIT, latency_check
from canary_harness.judge.ratio_settings import ratio_check
from canary_harness.judge.verdict import CheckVerdict, StageVerdict, outcome_summary
from canary_harness.stages import stage_label

_SHORT = {ERROR_RATE: "5xx", SCHEMA: "schema", RL_LOSS: "loss", SPLIT: "split"}
_LATENCY_PREFIX = latency_check("")[:-1]  # "p95_latency[": the part before the mode
_RATIO_PREFIX = ratio_check("")[:-1]  # "ratio[": the part before a ratio check's name


def is_interactive(stream: TextIO) -> bool:
    """A terminal a person watches (live line), not a CI log (plain lines)."""
    return stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


def _figure(check: CheckVerdict) -> str:
    if check.measured is None:
        value = "n/a"
    elif check.unit == "s":
        value = f"{check.measured:.2f}s"
    elif check.name in (ERROR_RATE, SPLIT) or check.name.startswith(_RATIO_PREFIX):
        value = f"{check.measured * 100:.2f}%"
    elif check.unit == "ratio" or check.name == RL_LOSS:
        value = f"x{check.measured:.2f}"
    else:
        value = f"{check.measured:g}"
    name = _SHORT.get(check.name, check.name.replace(_LATENCY_PREFIX, "p95 ").rstrip("]"))
    if check.name.startswith(_RATIO_PREFIX):  # "ratio[order_failures]" -> "order_failures"
        name = check.name[len(_RATIO_PREFIX) : -1]
    return f"{name} {value} {check.state.value[0]}"


def format_progress(verdict: StageVerdict, stage: int) -> str:
    """One line: elapsed time, each check's running figure and state (R/P/F/I), the stage state."""
    figures = " | ".join(_figure(check) for check in verdict.checks)
    return f"[stage {stage_label(stage):>4} t={verdict.elapsed_s:5.0f}s] {figures} => {verdict.state.value}"


def format_table(verdict: StageVerdict) -> str:
    """Figures table for the report: one row per check with value, threshold, sample size and state."""
    header = f"{'check':<24} {'state':<13} {'measured':>12} {'threshold':>10} {'n':>8}  detail"
    rows = [header, "-" * len(header)]
    for check in verdict.checks:
        measured = "n/a" if check.measured is None else f"{check.measured:.4g}"
        threshold = "" if check.threshold is None else f"{check.threshold:.4g}"
        rows.append(
            f"{check.name:<24} {check.state.value:<13} {measured:>12} {threshold:>10} "
            f"{check.sample_size:>8.0f}  {check.message}"
        )
    rows.append(
        f"stage verdict: {verdict.state.value}{' (with warning)' if verdict.warning else ''} "
        f"after {verdict.elapsed_s:.0f}s: {verdict.reason}"
    )
    rows.append(f"stage outcome: {outcome_summary(verdict)}")
    return "\n".join(rows)


class ProgressPrinter:
    """Prints progress lines: every tick on a terminal (overwriting), every ``interval`` s in logs."""

    def __init__(
        self, write: Callable[[str], None] | None = None, *, stream: TextIO | None = None, interval: float = 10.0
    ) -> None:
        self._stream = stream or sys.stdout
        self._write = write
        self._live = write is None and is_interactive(self._stream)
        self._interval = interval
        self._last = -interval

    def update(self, verdict: StageVerdict, stage: int) -> None:
        """Show the running figures (throttled in plain mode; decided verdicts always shown)."""
        line = format_progress(verdict, stage)
        if self._live:
            self._stream.write("\r\x1b[2K" + line)
            self._stream.flush()
            return
        if verdict.decided or verdict.elapsed_s - self._last >= self._interval:
            self._last = verdict.elapsed_s
            self.line(line)

    def line(self, text: str) -> None:
        """A full line (ends any live line first)."""
        if self._live:
            self._stream.write("\r\x1b[2K")
        if self._write is not None:
            self._write(text)
        else:
            self._stream.write(text + "\n")
            self._stream.flush()
