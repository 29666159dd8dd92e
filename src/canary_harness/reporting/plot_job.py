"""The stage's plots drawn by a child process while the release checks run (without importing matplotlib
here: the child does, on the other core).
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
# Beyond this the job is given up and the plots are drawn in the session instead.
JOB_TIMEOUT_S = 120.0


class PlotJob:
    """The stage's plots drawn by a child process while the release checks run.

    Drawing takes a couple of seconds of CPU (matplotlib's import included) that used to be spent after
    the checks, at the end of every stage; the trace is final once the stage has its verdict, so a child
    draws it on the other core meanwhile. :meth:`result` waits for the child and falls back to drawing
    in this process when the child failed, so the plots are the same either way.
    """

    def __init__(self, trace: DecisionTrace, directory: Path) -> None:
        self.trace, self.directory = trace, directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TRACE_FILE).write_text(json.dumps(trace.to_dict()), encoding="utf-8")
        self._process: subprocess.Popen[bytes] | None
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "canary_harness.reporting.plots", str(directory)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError:
            self._process = None  # drawn in this process by result()

    def result(self, timeout: float = JOB_TIMEOUT_S) -> dict[str, Path]:
        """The plots (name -> PNG): the child's, else drawn here. Never leaves the child running."""
        if self._process is not None:
            try:
                self._process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.communicate()
            if self._process.returncode == 0:
                found = {name: self.directory / f"stage-{self.trace.stage}-{name}.png" for name in FIGURE_NAMES}
                if all(path.is_file() for path in found.values()):
                    return found
        from canary_harness.reporting.plots import save_plots  # matplotlib: only for this fallback

        return save_plots(self.trace, self.directory)
