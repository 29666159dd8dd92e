"""The stage's plots drawn by a warmed-up child process (PlotJob) while the release checks run: the same
PNGs as drawn in the session, the session's own drawing when the child cannot, and no child left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from canary_harness.reporting import plot_job, plots
from canary_harness.reporting.plot_job import FIGURE_GROUPS, FIGURE_NAMES, PlotJob
from canary_harness.reporting.trace import DecisionTrace

DATA = Path(__file__).parent / "data"


def _trace() -> DecisionTrace:
    return DecisionTrace.from_dict(json.loads((DATA / "trace-fail.json").read_text()))


def test_the_job_names_every_figure_plots_draws() -> None:
    assert FIGURE_NAMES == tuple(plots.FIGURES)
    grouped = [name for group in FIGURE_GROUPS for name in group]
    assert sorted(grouped) == sorted(FIGURE_NAMES)  # each figure drawn by exactly one child


def test_a_child_draws_only_its_group(tmp_path: Path) -> None:
    (tmp_path / "trace.json").write_text(json.dumps(_trace().to_dict()))
    # A child that finds "draw" at once (no warm-up) and draws the named figures only.
    done = subprocess.run(
        [sys.executable, "-m", "canary_harness.reporting.plot_job", str(tmp_path), "60", "rl-loss", "traffic-split"],
        input=b"draw\n",
        timeout=120,
        check=True,
    )
    assert done.returncode == 0
    stage = _trace().stage
    assert sorted(path.name for path in tmp_path.glob("*.png")) == [
        f"stage-{stage}-rl-loss.png",
        f"stage-{stage}-traffic-split.png",
    ]


def test_unknown_figure_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'latncy'"):
        plots.save_plots(_trace(), tmp_path, ["latncy"])


def test_the_child_draws_every_plot(tmp_path: Path) -> None:
    job = PlotJob(tmp_path / "plots")
    job.draw(_trace())
    saved = job.result(timeout=60)
    # Drawn by the children, not the fallback.
    assert len(job._processes) == len(FIGURE_GROUPS) and all(p.returncode == 0 for p in job._processes)
    assert set(saved) == set(FIGURE_NAMES)
    for path in saved.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_a_failed_child_falls_back_to_drawing_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `false` (exits 1 at once) in place of the interpreter stands for a child that crashed.
    monkeypatch.setattr(plot_job, "sys", type("S", (), {"executable": "false"}))
    job = PlotJob(tmp_path / "plots")
    job.draw(_trace())
    saved = job.result(timeout=60)
    assert job._processes and all(p.returncode != 0 for p in job._processes)
    assert set(saved) == set(FIGURE_NAMES) and all(path.is_file() for path in saved.values())


def test_a_job_without_a_verdict_is_cancelled_and_draws_nothing(tmp_path: Path) -> None:
    job = PlotJob(tmp_path / "plots")
    job.cancel()
    assert job._processes and all(p.returncode == 0 for p in job._processes)
    assert not list((tmp_path / "plots").glob("*.png"))
    with pytest.raises(ValueError, match="before draw"):
        job.result()


def test_the_figures_of_a_dead_child_are_drawn_here(tmp_path: Path) -> None:
    job = PlotJob(tmp_path / "plots")
    dead = job._processes[1]
    dead.kill()  # stands for a child that crashed before drawing its group
    dead.wait()
    job.draw(_trace())
    saved = job.result(timeout=60)
    assert job._processes[0].returncode == 0 and dead.returncode != 0
    assert set(saved) == set(FIGURE_NAMES)
    for path in saved.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
