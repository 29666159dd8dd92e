"""The live observation view: what a person sees at a terminal (rendered to a recording console)."""

from __future__ import annotations

import io

from rich.console import Console

from canary_harness.judge.verdict import CheckVerdict, StageVerdict, State
from canary_harness.reporting.live import LiveObservation, check_table


def _verdict(elapsed: float, state: State = State.RUNNING, decided: bool = False) -> StageVerdict:
    checks = (
        CheckVerdict(
            "error_rate",
            State.PASS,
            "5xx",
            0.0,
            0.005,
            1825,
            "ratio",
            {"e_fail_slo": 0.00146, "e_pass_slo": 450.0, "e_max_pass_slo": 450.0},
        ),
        CheckVerdict(
            "p95_latency[fast]",
            State.RUNNING,
            "p95",
            0.174,
            2.5,
            658,
            "s",
            {"e_fail_threshold": 4e-9, "e_pass_threshold": 1.5e11},
        ),
    )
    return StageVerdict(state, decided, False, "r", elapsed, checks, "sequential")


def _console() -> Console:
    return Console(file=io.StringIO(), record=True, width=160, force_terminal=True)


def test_table_has_one_row_per_check_with_figure_sample_and_e_values() -> None:
    console = _console()
    console.print(check_table(_verdict(12)))
    text = console.export_text()
    assert "p95_latency[fast]" in text  # brackets kept (not read as markup)
    row = next(line for line in text.splitlines() if "p95_latency[fast]" in line)
    assert "RUNNING" in row and "0.17s" in row and "658" in row and "pass_threshold=1.5e+11" in row
    assert "e_max" not in text and "max_pass_slo" not in text


def test_live_view_shows_progress_against_the_planned_decision_and_stays_after_the_verdict() -> None:
    console = _console()
    view = LiveObservation(console, limit_s=120, planned_s=45)
    view.update(_verdict(10), 25)
    view.line("measured 213 req/s; re-planned")
    view.update(_verdict(20, State.PASS, decided=True), 25)
    assert not view.started  # stopped at the decided verdict, the last frame left on screen
    text = console.export_text()
    assert "stage 25%" in text and "20 s / planned decision ~45 s; 100 s left in the window" in text
    assert "measured 213 req/s; re-planned" in text
    assert "stage verdict so far: PASS" in text
