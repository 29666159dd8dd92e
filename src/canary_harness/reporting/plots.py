"""The stage's plots, drawn with matplotlib's Agg backend (no display) from a decision trace.

One figure each: latency distributions per LLM mode (canary vs production, threshold line), the 5xx
rate over time, the RL-loss blocks, the observed split vs the configured weight, and every check's
e-values over time against its bound (log scale) with the decision point marked.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files only, never to a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from canary_harness.judge.check_names import RL_LOSS, check_family  # noqa: E402
from canary_harness.reporting.trace import DecisionTrace, rates, running_rate  # noqa: E402
from canary_harness.stages import stage_label

COLORS = {"canary": "tab:orange", "production": "tab:blue"}
# e-value tests whose crossing means FAIL, PASS or a split mismatch (names as in the evidence).
_PASS_PREFIX = "e_pass"
_SPLIT_KEY = "e_mismatch"


def _per_bucket(cumulative: list[list[float | None]]) -> tuple[list[float], list[float]]:
    """Upper edges and the share of requests in each bucket (the +Inf bucket dropped from the x axis)."""
    edges, shares, previous = [], [], 0.0
    total = float(cumulative[-1][1] or 0.0) if cumulative else 0.0
    for edge, count in cumulative:
        if edge is None or count is None:
            continue
        edges.append(edge)
        shares.append((count - previous) / total if total else 0.0)
        previous = count
    return edges, shares


def _layout(fig: Figure, *, rows: int = 1, suptitle: bool = False) -> None:
    """Fixed margins in inches for the titles, tick labels and axis labels.

    Not ``tight_layout``: it measures every tick label of every axes, which took over a third of the
    plots' time, and the plots are drawn at the end of every stage (benchmarks/stage_overhead.py).
    """
    width, height = fig.get_size_inches()
    top, bottom, gap = (0.75 if suptitle else 0.45), 0.55, 0.95  # inches
    axes_height = max(0.5, (height - top - bottom - gap * (rows - 1)) / rows)
    fig.subplots_adjust(
        left=0.8 / width,
        right=1 - 0.15 / width,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=0.3,
        hspace=gap / axes_height,
    )


def latency_figure(trace: DecisionTrace) -> Figure:
    """Per mode: canary and production latency distributions from histogram buckets, threshold line."""
    modes = [mode for mode in trace.thresholds if mode in trace.buckets] or list(trace.thresholds)
    fig, axes = plt.subplots(1, max(1, len(modes)), figsize=(4.2 * max(1, len(modes)), 3.4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=False):
        for arm in ("production", "canary"):
            edges, shares = _per_bucket(trace.buckets.get(mode, {}).get(arm, []))
            if edges:
                ax.step(edges, shares, where="pre", color=COLORS[arm], label=arm)
        ax.axvline(
            trace.thresholds[mode], color="tab:red", linestyle="--", label=f"threshold {trace.thresholds[mode]:g} s"
        )
        ax.set_xscale("log")
        ax.set_title(f"{mode} mode")
        ax.set_xlabel("latency bucket upper edge (s)")
        ax.set_ylabel("share of requests")
        ax.legend(fontsize="small")
    fig.suptitle(f"stage {stage_label(trace.stage)}: latency per LLM mode")
    _layout(fig, suptitle=True)
    return fig


def error_rate_figure(trace: DecisionTrace) -> Figure:
    """Both arms' 5xx rate since stage start at each tick (per-tick rates are too noisy to read), SLO line."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    times = trace.column("t_s")
    for arm in ("production", "canary"):
        xs, ys = running_rate(trace.column(f"{arm}_errors"), trace.column(f"{arm}_requests"), times)
        ax.plot(xs, [y * 100 for y in ys], marker=".", color=COLORS[arm], label=arm)
    ax.axhline(trace.error_rate_slo * 100, color="tab:red", linestyle="--", label=f"SLO {trace.error_rate_slo:.2%}")
    ax.set_xlabel("time since stage start (s)")
    ax.set_ylabel("5xx rate since stage start (%)")
    ax.set_title(f"stage {stage_label(trace.stage)}: 5xx rate")
    ax.legend(fontsize="small")
    _layout(fig)
    return fig


def loss_figure(trace: DecisionTrace) -> Figure:
    """Each arm's RL-loss block means in order, with production's median B and ratio × B."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    if RL_LOSS not in trace.families:
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"not a check of this target ([judge] checks leaves out {RL_LOSS!r})", ha="center")
        ax.set_title(f"stage {stage_label(trace.stage)}: RL loss")
        return fig
    for arm in ("production", "canary"):
        means = trace.loss_blocks.get(arm) or []
        ax.plot(
            range(1, len(means) + 1),
            means,
            marker="o",
            linestyle="",
            color=COLORS[arm],
            label=f"{arm} ({len(means)} blocks)",
        )
    reference = trace.loss_blocks.get("reference")
    if reference is not None:
        ax.axhline(reference, color=COLORS["production"], linestyle=":", label=f"B (production median) {reference:.3g}")
        ax.axhline(reference * trace.loss_ratio, color="tab:red", linestyle="--", label=f"{trace.loss_ratio:g} × B")
    ax.set_xlabel("loss block (in order)")
    ax.set_ylabel("mean PPO loss of the block")
    ax.set_title(f"stage {stage_label(trace.stage)}: RL loss blocks")
    ax.legend(fontsize="small")
    _layout(fig)
    return fig


def split_figure(trace: DecisionTrace) -> Figure:
    """The canary's share of journeys (requests when no journeys) per tick vs the configured weight; at the
    shadow stage its share of requests vs the one the copies make (s / (1 + s)): the mirror coverage."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    times = trace.column("t_s")
    journeys = any(trace.column("canary_journeys")) or any(trace.column("production_journeys"))
    unit = "journeys" if journeys and not trace.shadow_share else "requests"
    canary, production = trace.column(f"canary_{unit}"), trace.column(f"production_{unit}")
    totals = [None if c is None or p is None else c + p for c, p in zip(canary, production, strict=True)]
    xs, ys = rates(canary, totals, times)
    ax.plot(xs, [y * 100 for y in ys], marker=".", color=COLORS["canary"], label=f"observed canary share of {unit}")
    if trace.shadow_share:
        expected = 100 * trace.shadow_share / (100 + trace.shadow_share)
        label = f"expected with {trace.shadow_share} % copied: {expected:.0f} %"
        ax.axhline(expected, color="tab:gray", linestyle="--", label=label)
    else:
        ax.axhline(trace.weight, color="tab:gray", linestyle="--", label=f"configured weight {trace.weight} %")
    ax.set_ylim(-5, 105)
    ax.set_xlabel("time since stage start (s)")
    ax.set_ylabel("canary share per tick (%)")
    ax.set_title(f"stage {stage_label(trace.stage)}: {'mirror coverage' if trace.shadow_share else 'traffic split'}")
    ax.legend(fontsize="small")
    _layout(fig)
    return fig


def _bound_of(trace: DecisionTrace, column: str) -> float | None:
    test = column.split(":", 1)[1] if ":" in column else column
    if test.startswith(_SPLIT_KEY):
        return trace.bounds.get("split")
    return trace.bounds.get("pass" if test.startswith(_PASS_PREFIX) else "fail")


def evalue_figure(trace: DecisionTrace) -> Figure:
    """Each check's e-values over time (log scale) against its bound; the decision point marked."""
    checks = {name: columns for name, columns in trace.e_columns().items() if check_family(name) in trace.families}
    names = list(checks) or ["(no e-values: fixed judge)"]
    cols = 2
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.9 * rows), squeeze=False)
    times = trace.column("t_s")
    decided_at = trace.decision.get("t_s")
    for index, ax in enumerate(axes.flat):
        if index >= len(names):
            ax.set_visible(False)
            continue
        check = names[index]
        bounds_drawn: set[float] = set()
        for column in checks.get(check, []):
            values = trace.column(column)
            points = [(t, v) for t, v in zip(times, values, strict=True) if t is not None and v is not None]
            label = column.split(":e_", 1)[1]
            (line,) = ax.plot([t for t, _ in points], [max(v, 1e-6) for _, v in points], label=label)
            bound = _bound_of(trace, column)
            if bound is not None and bound not in bounds_drawn:
                bounds_drawn.add(bound)
                passing = label.startswith("pass")
                name = "1/β" if passing else "1/α_srm" if label.startswith("mismatch") else "1/α"
                ax.axhline(
                    bound,
                    color="tab:green" if passing else "tab:red",
                    linestyle="--",
                    linewidth=0.8,
                    label=f"{name} bound {bound:.3g}",
                )
        crossed = trace.decision.get("crossed", {}).get(check)
        if crossed is not None:
            ax.axvline(crossed, color="black", linestyle=":", label=f"crossed at {crossed:.0f} s")
        if decided_at is not None:
            ax.axvline(
                decided_at,
                color="tab:purple",
                linewidth=1.2,
                label=f"stage {trace.decision.get('state')} at {decided_at:.0f} s",
            )
        ax.set_yscale("log")
        ax.set_title(check, fontsize="medium")
        ax.set_xlabel("time since stage start (s)")
        ax.set_ylabel("e-value (log)")
        ax.legend(fontsize="x-small")
    fig.suptitle(f"stage {stage_label(trace.stage)}: e-values vs 1/α")
    _layout(fig, rows=rows, suptitle=True)
    return fig


FIGURES = {
    "latency": latency_figure,
    "error-rate": error_rate_figure,
    "rl-loss": loss_figure,
    "traffic-split": split_figure,
    "e-values": evalue_figure,
}


def save_plots(trace: DecisionTrace, directory: Path, names: Sequence[str] | None = None) -> dict[str, Path]:
    """Draw every figure of the trace (or those in ``names``) as a PNG in ``directory``; returns name -> file."""
    unknown = sorted(set(names or ()) - set(FIGURES))
    if unknown:
        raise ValueError(f"no such figure(s) {unknown}: known are {list(FIGURES)}")
    directory.mkdir(parents=True, exist_ok=True)
    saved = {}
    for name, draw in FIGURES.items():
        if names is not None and name not in names:
            continue
        fig = draw(trace)
        try:
            path = directory / f"stage-{trace.stage}-{name}.png"
            fig.savefig(path, dpi=90)
            saved[name] = path
        finally:
            plt.close(fig)  # pyplot keeps figures alive until closed
    return saved


def warm_up() -> None:
    """Draw and throw away one small figure: loads the fonts and the log-axis text machinery."""
    fig, ax = plt.subplots(figsize=(2, 2))
    try:
        ax.plot([1, 2], [1, 10], label="warm-up")
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("warm-up")
        fig.savefig(io.BytesIO(), format="png", dpi=30)
    finally:
        plt.close(fig)
