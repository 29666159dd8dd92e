"""The live observation view for a person at a terminal: a rich table and a stage progress bar.

One row per check (state, running figure, sample size, its e-values) and a bar of the time spent
against the planned decision time (the plan's median time to an early PASS), with time left in the
window. In CI or when output is not a terminal the plain progress lines of ``report.ProgressPrinter``
are used instead, as before. pytest captures output during the session: the view runs with capture
suspended so that it draws on the real terminal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Protocol

import pytest
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from canary_harness.judge.check_context import fmt_e
from canary_harness.judge.verdict import CheckVerdict, StageVerdict
from canary_harness.report import ProgressPrinter, _figure
from canary_harness.stages import stage_label

_STYLE = {"PASS": "green", "FAIL": "bold red", "RUNNING": "yellow", "INCONCLUSIVE": "magenta", "N/A": "dim"}


class Printer(Protocol):
    """What the observation loop calls: a verdict per tick, a full line now and then."""

    def update(self, verdict: StageVerdict, stage: int) -> None:
        """Show the running figures."""

    def line(self, text: str) -> None:
        """Print one full line."""


def _e_values(check: CheckVerdict) -> str:
    parts = [
        f"{key[2:]}={fmt_e(float(value))}"
        for key, value in check.evidence.items()
        if key.startswith("e_") and not key.startswith("e_max_") and isinstance(value, int | float)
    ]
    return " ".join(parts) or "-"


def check_table(verdict: StageVerdict) -> Table:
    """One row per check: name, state, running figure, sample size, e-values."""
    table = Table(title=f"stage verdict so far: {verdict.state.value}", title_justify="left", expand=False)
    for column, justify in (
        ("check", "left"),
        ("state", "left"),
        ("figure", "right"),
        ("n", "right"),
        ("e-values", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for check in verdict.checks:
        figure = _figure(check).rsplit(" ", 2)[-2]  # "<short name> <value> <state letter>": the value
        # Text, not markup: "p95_latency[fast]" would otherwise be read as a style tag and vanish.
        table.add_row(
            Text(check.name),
            Text(check.state.value, style=_STYLE.get(check.state.value, "")),
            Text(figure),
            f"{check.sample_size:.0f}",
            Text(_e_values(check)),
        )
    return table


class LiveObservation:
    """The rich view: refreshed at every tick, left on screen (not transient) when the stage ends."""

    def __init__(self, console: Console, limit_s: float, planned_s: float | None) -> None:
        self.console = console
        self.limit_s = limit_s
        self.planned_s = planned_s if planned_s is not None and planned_s < limit_s else limit_s
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[clock]}"), console=console
        )
        self.task = self.progress.add_task("observing", total=self.planned_s, clock="")
        self.live = Live(self.progress, console=console, refresh_per_second=4, transient=False)
        self.started = False

    def _clock(self, elapsed: float) -> str:
        planned = f"planned decision ~{self.planned_s:.0f} s" if self.planned_s < self.limit_s else "window"
        return f"{elapsed:4.0f} s / {planned}; {max(0.0, self.limit_s - elapsed):.0f} s left in the window"

    def update(self, verdict: StageVerdict, stage: int) -> None:
        """Redraw the table and the bar."""
        if not self.started:
            self.live.start()
            self.started = True
        self.progress.update(
            self.task,
            completed=min(verdict.elapsed_s, self.planned_s),
            description=f"stage {stage_label(stage)}",
            clock=self._clock(verdict.elapsed_s),
        )
        self.live.update(Group(check_table(verdict), self.progress), refresh=True)
        if verdict.decided:
            self.stop()

    def line(self, text: str) -> None:
        """Print above the live view."""
        self.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        """Leave the last view on screen."""
        if self.started:
            self.live.stop()
            self.started = False


def is_live_terminal(config: pytest.Config) -> bool:
    """A person's terminal: the reporter writes to a TTY, not in CI, TERM not dumb."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return bool(
        reporter is not None
        and getattr(reporter, "isatty", False)
        and not os.environ.get("CI")
        and os.environ.get("TERM") != "dumb"
    )


ProgressFactory = Callable[[Callable[[str], None], float, float, "float | None"], AbstractContextManager[Printer]]


def progress_factory(config: pytest.Config) -> ProgressFactory:
    """For the stage session: a context manager making the live view on a terminal, plain lines otherwise."""
    live = is_live_terminal(config)

    def make(
        say: Callable[[str], None], interval: float, limit_s: float, planned_s: float | None
    ) -> AbstractContextManager[Printer]:
        if not live:
            return nullcontext(ProgressPrinter(say, interval=interval))
        return _live_view(config, limit_s, planned_s)

    return make


@contextmanager
def _live_view(config: pytest.Config, limit_s: float, planned_s: float | None) -> Iterator[Printer]:
    with ExitStack() as stack:
        capture = config.pluginmanager.get_plugin("capturemanager")
        if capture is not None:
            stack.enter_context(capture.global_and_fixture_disabled())
        printer = LiveObservation(Console(), limit_s, planned_s)
        stack.callback(printer.stop)
        yield printer
