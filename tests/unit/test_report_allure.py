"""Allure results of a stage: the verdict result, its category, the environment (no env values)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from canary_harness.cli import main
from canary_harness.judge.settings import JudgeSettings
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.reporting import allure_results
from canary_harness.reporting.allure_cli import rollout_allure_args

DATA = Path(__file__).parent / "data"


def _record(
    state: str | None, *, failed_check: bool = False, warning: bool = False, error: str | None = None
) -> StageRecord:
    record = StageRecord(
        canary_version="v0.2.0",
        production_version="v0.1.0",
        stage=25,
        dry_run=False,
        judge="sequential",
        error=error,
        plan="plan text",
    )
    if state is not None:
        check = {
            "name": "error_rate",
            "state": "FAIL" if failed_check else "PASS",
            "metric": "5xx",
            "measured": 0.05,
            "threshold": 0.005,
            "sample_size": 150,
            "unit": "ratio",
            "evidence": {},
            "message": "5xx rate 5.00% > SLO 0.50% over 150 requests (canary)",
        }
        record.verdict = {
            "state": state,
            "decided": True,
            "warning": warning,
            "reason": f"{state} reason",
            "elapsed_s": 4.0,
            "checks": [check],
            "judge": "sequential",
        }
    record.trace = json.loads((DATA / "trace-fail.json").read_text())
    return record


def _category(status: str, message: str) -> str | None:
    for category in allure_results.CATEGORIES:
        if status in category["matchedStatuses"] and re.fullmatch(category["messageRegex"], message):
            return str(category["name"])
    return None


@pytest.mark.parametrize(
    ("record", "rollback_failed", "status", "category"),
    [
        (_record("FAIL", failed_check=True), None, "failed", "regression caught"),
        (_record("FAIL"), None, "failed", "inconclusive (underpowered)"),
        (_record("PASS", warning=True), None, "passed", "inconclusive (underpowered)"),
        (_record("PASS"), None, "passed", None),
        (_record(None, error="observation: metrics unreadable"), None, "broken", "harness error"),
        (_record("FAIL", failed_check=True), "weight still 25 %", "broken", "rollback failed"),
    ],
)
def test_each_outcome_lands_in_its_category(
    record: StageRecord, rollback_failed: str | None, status: str, category: str | None
) -> None:
    outcome = allure_results.outcome(record, "rolled back", rollback_failed)
    assert outcome.status == status
    assert _category(outcome.status, outcome.message) == category


def test_a_failed_release_check_message_is_a_caught_regression() -> None:
    message = "5xx rate 5.88% > SLO 0.50% over 153 requests (canary); e=2.4e+05 ≥ 1/α=900 at 4 s"
    assert _category("failed", message) == "regression caught"


def test_stage_result_carries_plots_trace_plan_and_suite(tmp_path: Path) -> None:
    path = allure_results.write_stage_result(tmp_path, _record("FAIL", failed_check=True), rollback="rolled back")
    data = json.loads(path.read_text())
    assert data["name"] == "stage 25% verdict: FAIL" and data["status"] == "failed"
    labels = {label["name"]: label["value"] for label in data["labels"]}
    assert labels["parentSuite"] == "rollout v0.2.0" and labels["suite"] == "stage 25%"
    names = [item["name"] for item in data["attachments"]]
    assert names[0] == "stage figures" and "decision trace (CSV)" in names and "stage plan" in names
    assert sum(item["type"] == "image/png" for item in data["attachments"]) == 5
    for item in data["attachments"]:
        assert (tmp_path / item["source"]).stat().st_size > 0


def test_environment_names_variables_never_their_values(tmp_path: Path) -> None:
    values = allure_results.environment(
        _record("PASS"),
        JudgeSettings(),
        period=30,
        tick=1,
        backend="process",
        env_names={"canary": ["FRAGRANCE_FAULTS", "API_TOKEN"], "production": []},
        cwd=tmp_path,
    )
    assert values["canary.env_names"] == "API_TOKEN, FRAGRANCE_FAULTS"
    assert values["production.env_names"] == "(none)"
    assert values["git.sha"] == "unknown"  # tmp_path is no git checkout
    allure_results.write_environment(tmp_path, values)
    later = _record("PASS")
    later.stage = 100
    allure_results.write_environment(tmp_path, {**values, "stages": "100"})
    text = (tmp_path / allure_results.ENVIRONMENT_FILE).read_text()
    assert "stages = 25, 100\n" in text and "judge.alpha = 0.01\n" in text


def test_rollout_shares_one_results_dir_cleaned_at_its_first_stage(tmp_path: Path) -> None:
    assert rollout_allure_args(tmp_path, (), first_stage=True) == [
        f"--alluredir={tmp_path / 'allure-results'}",
        "--clean-alluredir",
    ]
    assert rollout_allure_args(tmp_path, (), first_stage=False) == [f"--alluredir={tmp_path / 'allure-results'}"]
    assert rollout_allure_args(tmp_path, ("--alluredir=mine",), first_stage=True) == []


def test_report_without_results_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--results", str(tmp_path / "nowhere"), "--output", str(tmp_path / "html")]) == 2
    err = capsys.readouterr().err
    assert f"no Allure results in {tmp_path / 'nowhere'}" in err
    assert not (tmp_path / "html").exists()
