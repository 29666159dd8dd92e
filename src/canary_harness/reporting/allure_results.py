"""Allure results of a stage written directly (no allure-pytest internals): the stage verdict as one
test result with its figures, plots, trace and plan; the environment; the categories.

A rollout runs every stage into the same results directory, so each stage adds one "verdict" result
to its own suite ("stage N%") and the environment file is merged, never overwritten.
Environment variable VALUES given to the services never appear here: only their names.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.verdict import StageVerdict
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.report import format_table
from canary_harness.reporting.trace import DecisionTrace
from canary_harness.stages import stage_label

# Allure's categories: the first whose pattern matches a result's message (and status) names it.
# [\s\S] rather than (?s): the patterns must work in Java (Allure 2) and JavaScript (Allure 3) alike.
_ANY = "[\\s\\S]*"
CATEGORIES: list[dict[str, Any]] = [
    {
        "name": "rollback failed",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": f"{_ANY}rollback failed{_ANY}",
    },
    {"name": "harness error", "matchedStatuses": ["broken"], "messageRegex": _ANY},
    {
        "name": "inconclusive (underpowered)",
        "matchedStatuses": ["failed", "skipped", "passed"],
        "messageRegex": f"{_ANY}inconclusive \\(underpowered\\){_ANY}",
    },
    {
        "name": "regression caught",
        "matchedStatuses": ["failed"],
        "messageRegex": f"(regression caught: {_ANY}|{_ANY}(≥ 1/α|> SLO|schema failures [1-9]){_ANY})",
    },
]
ENVIRONMENT_FILE = "environment.properties"
CATEGORIES_FILE = "categories.json"


def suite_labels(record: StageRecord) -> dict[str, str]:
    """One parent suite per rollout (the version), one suite per stage."""
    return {"parentSuite": f"rollout {record.canary_version}", "suite": f"stage {stage_label(record.stage)}"}


@dataclass(frozen=True)
class StageOutcome:
    """What the verdict result shows: status, category message and the rollback's outcome if any."""

    status: str  # passed | failed | broken
    message: str


def outcome(record: StageRecord, rollback: str | None, rollback_failed: str | None) -> StageOutcome:
    """The verdict result's status and message; its message prefix selects the Allure category."""
    if rollback_failed:
        return StageOutcome("broken", f"rollback failed: {rollback_failed}")
    if record.error or record.verdict is None:
        return StageOutcome("broken", f"harness error: {record.error or 'no verdict recorded'}")
    verdict = StageVerdict.from_dict(record.verdict)
    tail = f"\n{rollback}" if rollback else ""
    if verdict.failed_checks:
        return StageOutcome("failed", f"regression caught: {verdict.reason}{tail}")
    if verdict.state.value != "PASS" or verdict.warning:
        # No check failed, yet no PASS was shown: a FAIL by policy (on_inconclusive) or a PASS with warning.
        status = "passed" if verdict.state.value == "PASS" else "failed"
        return StageOutcome(status, f"inconclusive (underpowered): {verdict.reason}{tail}")
    return StageOutcome("passed", f"{verdict.state.value}: {verdict.reason}{tail}")


def _attach(
    results: Path, attachments: list[dict[str, str]], name: str, source: Path | str, kind: str, suffix: str
) -> None:
    target = results / f"{uuid.uuid4()}-attachment{suffix}"
    if isinstance(source, Path):
        shutil.copyfile(source, target)
    else:
        target.write_text(source, encoding="utf-8")
    attachments.append({"name": name, "source": target.name, "type": kind})


def write_stage_result(
    results: Path,
    record: StageRecord,
    *,
    rollback: str | None = None,
    rollback_failed: str | None = None,
    plots: Mapping[str, Path] | None = None,
) -> Path:
    """The stage verdict as one Allure test result in the stage's suite; returns its file.

    ``plots`` (name -> PNG) are the trace's plots when already drawn (a :class:`PlotJob`); else they are
    drawn here.
    """
    results.mkdir(parents=True, exist_ok=True)
    attachments: list[dict[str, str]] = []
    if record.verdict is not None:
        _attach(
            results,
            attachments,
            "stage figures",
            format_table(StageVerdict.from_dict(record.verdict)),
            "text/plain",
            ".txt",
        )
    if record.trace:
        trace = DecisionTrace.from_dict(record.trace)
        if plots is not None:
            for name, path in plots.items():
                _attach(results, attachments, f"plot: {name}", path, "image/png", ".png")
        else:
            from canary_harness.reporting.plots import save_plots  # matplotlib only when a report is made

            with tempfile.TemporaryDirectory(prefix="canary-plots-") as tmp:
                for name, path in save_plots(trace, Path(tmp)).items():
                    _attach(results, attachments, f"plot: {name}", path, "image/png", ".png")
        _attach(results, attachments, "decision trace (CSV)", trace.to_csv(), "text/csv", ".csv")
    if record.plan:
        _attach(results, attachments, "stage plan", record.plan, "text/plain", ".txt")
    result = outcome(record, rollback, rollback_failed)
    steps = [
        {
            "name": f"{phase.name}: {'ok' if phase.ok else 'FAILED'} — {phase.detail}"[:300],
            "status": "passed" if phase.ok else "failed",
            "stage": "finished",
            "start": int(phase.started * 1000),
            "stop": int((phase.ended or phase.started) * 1000),
        }
        for phase in record.phases
    ]
    name = f"stage {stage_label(record.stage)} verdict: {(record.verdict or {}).get('state', 'ERROR')}"
    full_name = f"canary.{record.canary_version}.stage-{record.stage}.verdict"
    labels = [{"name": key, "value": value} for key, value in suite_labels(record).items()]
    labels += [{"name": "subSuite", "value": "verdict"}, {"name": "feature", "value": "stage verdict"}]
    data = {
        "uuid": str(uuid.uuid4()),
        "historyId": full_name,
        "testCaseId": full_name,
        "fullName": full_name,
        "name": name,
        "status": result.status,
        "stage": "finished",
        "statusDetails": {"message": result.message},
        "start": int(record.started_at * 1000),
        "stop": int((record.ended_at or record.started_at) * 1000),
        "labels": labels,
        "steps": steps,
        "attachments": attachments,
        "parameters": [],
    }
    path = results / f"{data['uuid']}-result.json"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_sha(cwd: Path) -> str:
    """The checked-out commit, or "unknown" outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def environment(
    record: StageRecord,
    settings: JudgeSettings,
    *,
    period: float,
    tick: float,
    backend: str,
    env_names: Mapping[str, Sequence[str]],
    cwd: Path,
) -> dict[str, str]:
    """Versions, stage, judge settings and git sha; of the services' environment only the NAMES."""
    names = {f"{arm}.env_names": ", ".join(sorted(set(found))) or "(none)" for arm, found in env_names.items()}
    thresholds = ", ".join(f"{mode} {value:g} s" for mode, value in settings.p95_thresholds.items())
    return {
        "canary.version": record.canary_version,
        "production.version": record.production_version,
        "stages": str(record.stage),
        "backend": backend,
        "judge": record.judge,
        "judge.alpha": f"{settings.alpha:g}",
        "judge.beta": f"{settings.beta:g}",
        "judge.srm_alpha": f"{settings.srm_alpha:g}",
        "judge.error_rate_slo": f"{settings.error_rate_slo:g}",
        "judge.p95_thresholds": thresholds,
        "judge.on_inconclusive": settings.on_inconclusive,
        "judge.early_pass": str(settings.early_pass).lower(),
        "observation.period_s": f"{period:g}",
        "observation.tick_s": f"{tick:g}",
        **names,
        "git.sha": git_sha(cwd),
        "python": platform.python_version(),
        "pytest": _version("pytest"),
        "canary-harness": _version("canary-harness"),
        "allure-pytest": _version("allure-pytest"),
    }


def _read_properties(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def write_environment(results: Path, values: Mapping[str, str]) -> Path:
    """Merge into environment.properties: the stage list grows, other keys take the latest stage's value."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / ENVIRONMENT_FILE
    merged = _read_properties(path)
    stages = [s for s in merged.get("stages", "").split(", ") if s]
    for stage in values.get("stages", "").split(", "):
        if stage and stage not in stages:
            stages.append(stage)
    merged.update(values)
    merged["stages"] = ", ".join(stages)
    text = "".join(f"{key} = {str(value).replace(chr(10), ' ')}\n" for key, value in merged.items())
    path.write_text(text, encoding="utf-8")
    return path


def write_categories(results: Path) -> Path:
    """categories.json with the four canary categories."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / CATEGORIES_FILE
    path.write_text(json.dumps(CATEGORIES, indent=1, ensure_ascii=False), encoding="utf-8")
    return path
