"""The decision trace and its plots, from traces recorded by real stages (data/trace-pass|fail.json)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import CheckVerdict, StageVerdict, State
from canary_harness.metrics.types import MetricsSnapshot
from canary_harness.reporting import plots
from canary_harness.reporting.trace import MAX_ROWS, DecisionTrace, rates, running_rate

DATA = Path(__file__).parent / "data"


def _trace(name: str) -> DecisionTrace:
    return DecisionTrace.from_dict(json.loads((DATA / f"trace-{name}.json").read_text()))


def _labels(fig: Figure) -> list[tuple[str, str]]:
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes if ax.get_visible()]


@pytest.mark.parametrize("name", ["pass", "fail"])
def test_every_plot_is_a_non_empty_png(name: str, tmp_path: Path) -> None:
    saved = plots.save_plots(_trace(name), tmp_path)
    assert set(saved) == set(plots.FIGURES)
    for path in saved.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", path
        assert len(data) > 10_000, f"{path} is only {len(data)} bytes"


def test_latency_plot_has_one_panel_per_mode_with_the_threshold() -> None:
    trace = _trace("pass")
    fig = plots.latency_figure(trace)
    assert [ax.get_title() for ax in fig.axes] == [f"{mode} mode" for mode in trace.thresholds]
    assert set(_labels(fig)) == {("latency bucket upper edge (s)", "share of requests")}
    for ax, threshold in zip(fig.axes, trace.thresholds.values(), strict=True):
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert legend == ["production", "canary", f"threshold {threshold:g} s"]


def test_error_rate_split_and_loss_axes() -> None:
    trace = _trace("fail")
    assert _labels(plots.error_rate_figure(trace)) == [("time since stage start (s)", "5xx rate since stage start (%)")]
    assert _labels(plots.split_figure(trace)) == [("time since stage start (s)", "canary share per tick (%)")]
    assert _labels(plots.loss_figure(_trace("pass"))) == [("loss block (in order)", "mean PPO loss of the block")]
    canary_line = plots.error_rate_figure(trace).axes[0].get_lines()[1]
    assert max(canary_line.get_ydata()) > trace.error_rate_slo * 100  # the failed release is above its SLO


def test_evalue_plot_is_log_scale_and_marks_the_decision() -> None:
    trace = _trace("fail")
    fig = plots.evalue_figure(trace)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(trace.e_columns())
    assert all(ax.get_yscale() == "log" for ax in visible)
    assert set(_labels(fig)) == {("time since stage start (s)", "e-value (log)")}
    error_ax = visible[0]
    legend = [text.get_text() for text in error_ax.get_legend().get_texts()]
    assert f"stage FAIL at {trace.decision['t_s']:.0f} s" in legend
    assert any(text.startswith("crossed at") for text in legend)


def test_trace_csv_has_one_row_per_tick_and_every_e_value() -> None:
    trace = _trace("fail")
    rows = list(csv.reader(io.StringIO(trace.to_csv())))
    assert len(rows) == 1 + len(trace.rows)
    header = rows[0]
    assert {"t_s", "canary_requests", "error_rate:e_fail_slo", "traffic_split:e_mismatch", "error_rate:state"} <= set(
        header
    )
    assert rows[-1][header.index("error_rate:state")] == "F"
    assert float(rows[-1][header.index("error_rate:e_fail_slo")]) >= trace.bounds["fail"]


def _verdict(elapsed: float, e_fail: float) -> StageVerdict:
    check = CheckVerdict(
        "error_rate",
        State.RUNNING,
        "5xx",
        0.0,
        0.005,
        elapsed,
        "ratio",
        {"e_fail_slo": e_fail, "e_max_fail_slo": e_fail, "canary_errors": 0.0},
    )
    return StageVerdict(State.RUNNING, False, False, "running", elapsed, (check,), "sequential")


def test_trace_stays_bounded_and_keeps_the_last_tick() -> None:
    trace = DecisionTrace.start(object(), JudgeSettings(), 25, 25)
    for tick in range(1, 2 * MAX_ROWS + 2):
        snapshot = MetricsSnapshot(taken_at=float(tick), requests=float(tick))
        trace.add(_verdict(float(tick), 1.0 + tick), snapshot, snapshot)
    assert MAX_ROWS // 2 <= len(trace.rows) <= MAX_ROWS
    assert trace.column("t_s")[-1] == 2 * MAX_ROWS + 1
    assert trace.column("error_rate:e_fail_slo")[-1] == 2 * MAX_ROWS + 2
    assert "error_rate:e_max_fail_slo" not in trace.columns and "error_rate:canary_errors" not in trace.columns
    assert len(trace.states["error_rate"]) == len(trace.rows)
    assert len(json.dumps(trace.to_dict())) < 200_000


def test_rates_skip_ticks_without_requests() -> None:
    times, counts, totals = [1.0, 2.0, 3.0], [0.0, 0.0, 2.0], [0.0, 10.0, 20.0]
    assert rates(counts, totals, times) == ([2.0, 3.0], [0.0, 0.2])
    assert running_rate(counts, totals, times) == ([2.0, 3.0], [0.0, 0.1])


def test_shadow_stage_plots_the_mirror_coverage_against_the_share() -> None:
    trace = _trace("pass")
    trace.stage, trace.weight, trace.shadow_share = 0, 0, 100
    figure = plots.split_figure(trace)
    axes = figure.axes[0]
    assert axes.get_title() == "stage shadow: mirror coverage"
    labels = [line.get_label() for line in axes.get_lines()]
    assert "expected with 100 % copied: 50 %" in labels and "observed canary share of requests" in labels
    assert DecisionTrace.from_dict(json.loads(json.dumps(trace.to_dict()))).shadow_share == 100


def test_checks_a_target_turns_off_are_left_out_of_the_plots() -> None:
    trace = _trace("fail")
    assert "rl_loss" in trace.e_columns()  # recorded, and drawn while judged (the test above)
    trace.families = ["error_rate", "latency", "traffic_split"]
    again = DecisionTrace.from_dict(json.loads(json.dumps(trace.to_dict())))  # the record keeps the families
    titles = {ax.get_title() for ax in plots.evalue_figure(again).axes if ax.get_visible()}
    assert "rl_loss" not in titles and "error_rate" in titles, titles
    [loss_ax] = plots.loss_figure(again).axes
    assert [text.get_text() for text in loss_ax.texts] == [
        "not a check of this target ([judge] checks leaves out 'rl_loss')"
    ]
