"""The stage's plots drawn by child processes beside the stage, not after it (without importing matplotlib
in the session: the children do).

Drawing took a couple of seconds of CPU at the end of every stage, matplotlib's import and its first
figure included (benchmarks/stage_overhead.py). The children start when observation begins, import
matplotlib and draw a throw-away figure while the window runs (fonts and text layout warmed up), then
wait; once the stage has its verdict the trace is final, and each child draws its group of figures
while the release checks run. :meth:`PlotJob.result` waits for them and draws in the session any figure
a child failed to draw, so the plots are the same either way. No child outlives its session:
:meth:`PlotJob.cancel` ends those not needed, and a child whose session died sees its stdin close and exits.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the children import it (and the judge behind it) only after their warm-up delay
    from canary_harness.reporting.trace import DecisionTrace

# The figures canary_harness.reporting.plots draws (its FIGURES), one PNG each.
FIGURE_NAMES = ("latency", "error-rate", "rl-loss", "traffic-split", "e-values")
# Two children, one per core, with about equal work each: drawing all five figures in one child took
# ~2 s of CPU, longer than the release checks it overlaps, so the stage waited ~0.9 s for it at its end
# (benchmarks/stage_overhead.py). The latency and e-value figures are the two heavy ones (~0.8 s each).
FIGURE_GROUPS: tuple[tuple[str, ...], ...] = (("latency", "error-rate", "rl-loss"), ("e-values", "traffic-split"))
CHILD_MODULE = "canary_harness.reporting.plot_job"  # run by each child (see main)
TRACE_FILE = "trace.json"
GO = "draw"  # the line the children wait for on stdin
# The children import matplotlib and the judge (~1.5 s of CPU each) and warm up this long after they
# start: after the stage's own set-up (~0.6 s), one after the other so that they never take both cores
# from the window at once, and both ready within ~5 s, before the verdict of any but the shortest window.
WARM_UP_DELAYS_S = (2.0, 3.5)
# Beyond this the children are given up and the missing plots are drawn in the session instead.
JOB_TIMEOUT_S = 120.0


class PlotJob:
    """Warmed-up child processes that draw one stage's plots into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.trace: DecisionTrace | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self._processes: list[subprocess.Popen[bytes]] = []
        for group, delay in zip(FIGURE_GROUPS, WARM_UP_DELAYS_S, strict=True):
            try:
                self._processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", CHILD_MODULE, str(directory), f"{delay:g}", *group],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            except OSError:
                pass  # that group is drawn in the session by result()

    def draw(self, trace: DecisionTrace) -> None:
        """Hand the final trace to the children, which draw it now."""
        self.trace = trace
        (self.directory / TRACE_FILE).write_text(json.dumps(trace.to_dict()), encoding="utf-8")
        for process in self._processes:
            self._send(process, GO + "\n")

    def result(self, timeout: float = JOB_TIMEOUT_S) -> dict[str, Path]:
        """The plots (name -> PNG): the children's, and any they did not draw drawn here. Never leaves a
        child running."""
        if self.trace is None:
            raise ValueError("PlotJob.result() before draw(): no trace to draw")
        deadline = time.monotonic() + timeout
        for process in self._processes:
            self._wait(process, max(0.0, deadline - time.monotonic()))
        found = {name: self.directory / f"stage-{self.trace.stage}-{name}.png" for name in FIGURE_NAMES}
        drawn = {
            name
            for process, group in zip(self._processes, FIGURE_GROUPS, strict=False)
            if process.returncode == 0
            for name in group
            if found[name].is_file()
        }
        missing = [name for name in FIGURE_NAMES if name not in drawn]
        if missing:
            from canary_harness.reporting.plots import save_plots  # matplotlib: only for this fallback

            found.update(save_plots(self.trace, self.directory, missing))
        return found

    def cancel(self) -> None:
        """End children that have nothing to draw (the stage ended before a verdict); idempotent."""
        for process in self._processes:
            if process.poll() is None:
                self._send(process, "")
                self._wait(process, 10.0)

    @staticmethod
    def _send(process: subprocess.Popen[bytes], text: str) -> None:
        if process.stdin is None or process.stdin.closed:
            return
        try:
            process.stdin.write(text.encode())
            process.stdin.close()
        except OSError:
            pass  # the child is gone: result() draws its figures in the session

    @classmethod
    def _wait(cls, process: subprocess.Popen[bytes], timeout: float) -> None:
        cls._send(process, "")
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m canary_harness.reporting.plot_job DIR DELAY FIGURE...``: a child of :class:`PlotJob`.
    After DELAY seconds imports matplotlib and warms up, then waits for a line on stdin: ``draw`` draws
    the FIGUREs of the trace in ``DIR/trace.json`` into DIR; anything else (or end of input) exits."""
    args = argv if argv is not None else sys.argv[1:]
    directory, delay, names = Path(args[0]), float(args[1]), args[2:]
    # matplotlib and the judge are imported only after the wait: ~1.5 s of CPU that would otherwise compete
    # with the stage's own set-up.
    ready, _, _ = select.select([sys.stdin], [], [], delay)
    # A job cancelled during the wait (the stage ended without a verdict) exits without importing anything.
    if ready and sys.stdin.readline().strip() != GO:
        return 0
    from canary_harness.reporting import plots
    from canary_harness.reporting.trace import DecisionTrace

    if not ready:
        plots.warm_up()
        if sys.stdin.readline().strip() != GO:
            return 0
    trace = DecisionTrace.from_dict(json.loads((directory / TRACE_FILE).read_text(encoding="utf-8")))
    plots.save_plots(trace, directory, names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
