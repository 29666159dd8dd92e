"""Builds the HTML report from Allure results with the Allure CLI (npm ``allure`` 3.x, or 2.x on Java).

The rollout writes every stage's results into ``<run dir>/allure-results`` (cleaned at its first
stage), so one report shows the whole rollout, one suite per stage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import webbrowser
from importlib.util import find_spec
from pathlib import Path

from canary_harness.errors import ConfigError, ReportError
from canary_harness.reporting.allure_results import CATEGORIES

RESULTS_DIR = "allure-results"
REPORT_DIR = "allure-report"
GENERATE_TIMEOUT_S = 300.0
# The tree groups by rollout / stage / module (the labels every result carries); one self-contained
# index.html opens from a CI artifact or file:// without a server.
GROUP_BY = ["parentSuite", "suite", "subSuite"]


def allure_config(name: str) -> dict[str, object]:
    """The Allure 3 configuration of the report: categories, grouping, a single HTML file."""
    return {
        "name": name,
        "categories": CATEGORIES,
        "plugins": {"awesome": {"options": {"groupBy": GROUP_BY, "singleFile": True, "reportName": name}}},
    }


def rollout_allure_args(run_dir: Path, pytest_args: tuple[str, ...], first_stage: bool) -> list[str]:
    """pytest arguments that make a rollout's stages share one results directory (none if the user chose one)."""
    if find_spec("allure_pytest") is None or any(arg.startswith("--alluredir") for arg in pytest_args):
        return []
    args = [f"--alluredir={run_dir / RESULTS_DIR}"]
    return args + (["--clean-alluredir"] if first_stage else [])


def allure_command() -> str:
    """The Allure CLI on PATH; ReportError naming how to install it otherwise."""
    found = shutil.which("allure")
    if found is None:
        raise ReportError("no `allure` command on PATH: install it with scripts/install.sh (npm install -g allure@3)")
    return found


def build_report(results: Path, output: Path, *, name: str = "canary rollout") -> Path:
    """Generate the HTML report of ``results`` into ``output`` (replaced); returns its index.html."""
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise ConfigError(
            f"no Allure results in {results}: run a stage with --alluredir={results} (canary rollout does it for you)"
        )
    command = allure_command()
    if output.exists():
        shutil.rmtree(output)
    with tempfile.TemporaryDirectory(prefix="canary-allurerc-") as tmp:
        config = Path(tmp) / "allurerc.json"
        config.write_text(json.dumps(allure_config(name), ensure_ascii=False), encoding="utf-8")
        argv = [command, "generate", str(results), "--config", str(config), "--output", str(output.resolve())]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"`{' '.join(argv)}` did not finish within {GENERATE_TIMEOUT_S:g} s") from exc
    index = output / "index.html"
    if done.returncode != 0 or not index.exists():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise ReportError(f"`{' '.join(argv)}` exited {done.returncode} without {index}:\n{tail}")
    return index


def open_report(output: Path) -> int:
    """Open the single-file report in the default browser."""
    index = (output / "index.html").resolve()
    if not webbrowser.open(index.as_uri()):
        raise ReportError(f"no browser to open {index} with: open it by hand")
    return 0
