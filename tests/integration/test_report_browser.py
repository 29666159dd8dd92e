"""The HTML report of a real run, opened in a real headless Chromium: a passed and a failed stage.

Two stages run against one local stack into one Allure results directory (25 %: a healthy canary that
passes; 100 %: a canary answering 5 % 5xx that is caught and rolled back), ``canary report`` builds the
HTML, and Chromium (Debian's, driven by Playwright) must show each stage, its verdict and a plot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.stackfixtures import free_ports

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A value that must never reach any report file (environment values are never reported).
SECRET = "report-secret-7f3a9c"
FAST = "FRAGRANCE_LATENCY_SCALE=0.05"


@dataclass
class BuiltReport:
    """The results directory, the HTML report and the two stages' pytest outputs."""

    results: Path
    index: Path
    passed: subprocess.CompletedProcess[str]
    failed: subprocess.CompletedProcess[str]


def _canary(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from canary_harness.cli import main; raise SystemExit(main())", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def built_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltReport]:
    """Run the two stages for real, then `canary report`; the stack is stopped whatever happens."""
    if shutil.which("allure") is None or not Path(CHROMIUM).exists():
        message = "needs the Allure CLI and Debian chromium: run scripts/install.sh"
        if os.environ.get("CI") or os.environ.get("CANARY_DOCKER") == "1":
            pytest.fail(message)  # `make test` and CI install both: their absence there is a failure
        pytest.skip(message)
    base = tmp_path_factory.mktemp("report")
    run_dir, results = base / "run", base / "allure-results"
    nginx, production, canary = free_ports(3)
    env = {
        **os.environ,
        "CANARY_NGINX_PORT": str(nginx),
        "CANARY_PRODUCTION_PORT": str(production),
        "CANARY_CANARY_PORT": str(canary),
        "CANARY_RUN_DIR": str(run_dir),
        "CANARY_LOAD_RATE": "0",
    }  # the closed loop these tests were written for, not --load-rate auto
    env.pop("CI", None)

    def stage(number: int, period: int, *canary_env: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--canary-version",
            "v0.2.0",
            "--stage",
            str(number),
            "--observation-period",
            str(period),
            f"--canary-run-dir={run_dir}",
            f"--alluredir={results}",
            "--production-env",
            FAST,
            "--canary-env",
            FAST,
            "--canary-env",
            f"REPORT_TEST_TOKEN={SECRET}",
            *(item for value in canary_env for item in ("--canary-env", value)),
            "--load-users",
            "20",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    try:
        passed = stage(25, 20)
        failed = stage(100, 40, "FRAGRANCE_FAULTS=error_rate=0.05")
        built = _canary("report", "--run-dir", str(run_dir), "--results", str(results), env=env)
    finally:
        _canary("stack", "down", "--run-dir", str(run_dir), env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    yield BuiltReport(results, run_dir / "allure-report" / "index.html", passed, failed)


def test_the_stages_end_as_expected(built_report: BuiltReport) -> None:
    assert built_report.passed.returncode == 0, built_report.passed.stdout[-3000:]
    assert "stage verdict: PASS after" in built_report.passed.stdout
    assert built_report.failed.returncode == 1, built_report.failed.stdout[-3000:]
    assert "rolling back v0.2.0" in built_report.failed.stdout


def test_the_html_report_and_its_results_exist(built_report: BuiltReport) -> None:
    assert built_report.index.stat().st_size > 100_000  # one file: app, data and plots inline
    results = [json.loads(path.read_text()) for path in built_report.results.glob("*-result.json")]
    verdicts = sorted(result["name"] for result in results if result["name"].startswith("stage "))
    assert verdicts == ["stage 100% verdict: FAIL", "stage 25% verdict: PASS"]
    suites = {label["value"] for result in results for label in result["labels"] if label["name"] == "suite"}
    assert suites == {"stage 25%", "stage 100%"}
    assert (built_report.results / "environment.properties").read_text().count("stages = 25, 100") == 1


def test_no_environment_value_reaches_any_report_file(built_report: BuiltReport) -> None:
    leaks = [
        path
        for path in [*built_report.results.iterdir(), *built_report.index.parent.iterdir()]
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert "REPORT_TEST_TOKEN" in (built_report.results / "environment.properties").read_text()


def _open_until_visible(page: Any, url: str, text: str, tmp_path: Path) -> None:
    """Open ``url`` until ``text`` shows; reloads if a load never renders (a cold headless start has been
    seen to leave the report blank, and waiting longer on a blank page never helped: a reload did); the
    failure names what the page showed instead."""
    from playwright.sync_api import Error as PlaywrightError

    attempts = 3
    for attempt in range(attempts):
        page.goto(url)
        try:
            page.get_by_text(text, exact=True).first.wait_for(state="visible", timeout=15_000)
            return
        except PlaywrightError as exc:
            if attempt == attempts - 1:
                shot = tmp_path / "not-rendered.png"
                page.screenshot(path=str(shot))
                body = page.inner_text("body")[:1500]
                raise AssertionError(
                    f"{text!r} never showed in {url} (screenshot {shot}); the page showed:\n{body}"
                ) from exc


@pytest.mark.parametrize(
    ("stage", "state", "category"),
    [
        (25, "PASS", None),
        (100, "FAIL", "regression caught"),
    ],
)
def test_chromium_shows_the_stage_its_verdict_and_a_plot(
    built_report: BuiltReport, tmp_path: Path, stage: int, state: str, category: str | None
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1900})
            _open_until_visible(page, built_report.index.resolve().as_uri(), f"stage {stage}%", tmp_path)
            # Passed groups start collapsed in the tree: open the verdict by its id, as a shared link would.
            name = f"stage {stage}% verdict: {state}"
            by_id = json.loads((built_report.index.parent / "test-results.json").read_text())["byId"]
            ids = [key for key, result in by_id.items() if result.get("name") == name]
            assert len(ids) == 1, sorted(result.get("name") for result in by_id.values())
            page.goto(f"{built_report.index.resolve().as_uri()}#{ids[0]}")
            sync_api.expect(page.get_by_role("heading", name=name)).to_be_visible(timeout=15_000)
            status = "Passed" if state == "PASS" else "Failed"
            sync_api.expect(page.get_by_text(status, exact=True).first).to_be_visible(timeout=15_000)
            if category:
                sync_api.expect(page.get_by_text(f"Category: {category}")).to_be_visible()
            page.get_by_text("plot: e-values", exact=True).first.click()
            image = page.locator("img").last
            image.wait_for(state="visible", timeout=15_000)
            box = image.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 200, box
            assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) > 300
            shot = tmp_path / f"report-stage-{stage}.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000
            target = os.environ.get("CANARY_REPORT_SCREENSHOT")
            if target and state == "FAIL":
                shutil.copyfile(shot, target)  # refreshes docs/report.png on demand
        finally:
            browser.close()
