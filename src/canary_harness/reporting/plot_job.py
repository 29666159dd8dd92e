"""The stage's plots drawn by a child process beside the stage, not after it (without importing matplotlib
in the session: the child does).

Drawing took a couple of seconds of CPU at the end of every stage, matplotlib's import and its first
figure included (benchmarks/stage_overhead.py). The child starts when observation begins, imports
matplotlib and draws a throw-away figure while the window runs (fonts and text layout warmed up), then
waits; once the stage has its verdict the trace is final, and the child draws it while the release
checks run. :meth:`PlotJob.result` waits for it and falls back to drawing in the session when the child
failed, so the plots are the same either way. A child never outlives its session: :meth:`PlotJob.cancel`
ends one that was not needed, and a child whose session died sees its stdin close and exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from canary_harness.reporting.trace import DecisionTrace

# The figures canary_harness.reporting.plots draws (its FIGURES), one PNG each.
FIGURE_NAMES = ("latency", "error-rate", "rl-loss", "traffic-split", "e-values")
TRACE_FILE = "trace.json"
GO = "draw"  # the line the child waits for on stdin
# Beyond this the child is given up and the plots are drawn in the session instead.
JOB_TIMEOUT_S = 120.0


class PlotJob:
    """A warmed-up child process that draws one stage's plots into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.trace: DecisionTrace | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self._process: subprocess.Popen[bytes] | None
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "canary_harness.reporting.plots", str(directory)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self._process = None  # drawn in the session by result()

    def draw(self, trace: DecisionTrace) -> None:
        """Hand the final trace to the child, which draws it now."""
        self.trace = trace
        (self.directory / TRACE_FILE).write_text(json.dumps(trace.to_dict()), encoding="utf-8")
        self._send(GO + "\n")

    def result(self, timeout: float = JOB_TIMEOUT_S) -> dict[str, Path]:
        """The plots (name -> PNG): the child's, else drawn here. Never leaves the child running."""
        if self.trace is None:
            raise ValueError("PlotJob.result() before draw(): no trace to draw")
        if self._process is not None:
            self._wait(timeout)
            if self._process.returncode == 0:
                found = {name: self.directory / f"stage-{self.trace.stage}-{name}.png" for name in FIGURE_NAMES}
                if all(path.is_file() for path in found.values()):
                    return found
        from canary_harness.reporting.plots import save_plots  # matplotlib: only for this fallback

        return save_plots(self.trace, self.directory)

    def cancel(self) -> None:
        """End a child that has nothing to draw (the stage ended before a verdict); idempotent."""
        if self._process is not None and self._process.poll() is None:
            self._send("")
            self._wait(10.0)

    def _send(self, text: str) -> None:
        if self._process is None or self._process.stdin is None or self._process.stdin.closed:
            return
        try:
            self._process.stdin.write(text.encode())
            self._process.stdin.close()
        except OSError:
            pass  # the child is gone: result() draws in the session

    def _wait(self, timeout: float) -> None:
        assert self._process is not None
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._send("")
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
