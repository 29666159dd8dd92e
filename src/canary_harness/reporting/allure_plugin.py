"""pytest side of the Allure report (registered by the canary plugin only with ``--alluredir``).

Each release check goes to its stage's suite; after the session (and after any rollback) the
controller writes the stage verdict result with its plots and trace, the environment and the
categories into the results directory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

from canary_harness import journal
from canary_harness.judge.settings import JudgeSettings
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_KEY
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.reporting import allure_results
from canary_harness.reporting.plot_job import PlotJob
from canary_harness.reporting.trace import DecisionTrace
from canary_harness.stages import stage_label

PLOT_JOB_KEY = pytest.StashKey[PlotJob]()


def results_dir(config: pytest.Config) -> Path | None:
    """The ``--alluredir`` of this session, if any (the option exists only with allure-pytest)."""
    value = config.getoption("allure_report_dir", None)
    return Path(value) if value else None


@pytest.fixture(autouse=True)
def _canary_allure_suite(request: pytest.FixtureRequest) -> None:
    """Files each release check under "rollout V" / "stage N%" / its module, next to the stage verdict."""
    record = request.config.stash.get(RECORD_KEY, None)
    options = request.config.stash.get(OPTIONS_KEY, None)
    if options is None:
        return
    import allure

    labels = (
        allure_results.suite_labels(record)
        if record is not None
        else {"parentSuite": f"rollout {options.canary_version}", "suite": f"stage {stage_label(options.stage)}"}
    )
    allure.dynamic.parent_suite(labels["parentSuite"])
    allure.dynamic.suite(labels["suite"])
    allure.dynamic.sub_suite(request.node.module.__name__ if request.node.module else "release checks")
    # Allure keys a test's history by its parameters: without the stage, the same check at 1 % and at
    # 100 % would look like retries of one test and only the last stage would show.
    allure.dynamic.parameter("stage", labels["suite"].removeprefix("stage "))


def rollback_outcome(run_dir: Path, record: StageRecord) -> tuple[str | None, str | None]:
    """(rollback summary, rollback failure) of this stage, from the last rollback entry journaled since it
    started (a failed early withdrawal followed by a successful rollback counts as rolled back)."""
    last = None
    for entry in journal.read(run_dir):
        if (
            entry.time >= record.started_at
            and entry.version == record.canary_version
            and entry.stage == record.stage
            and entry.event in ("rollback", "rollback_failed")
        ):
            last = entry
    if last is None:
        return None, None
    if last.event == "rollback_failed":
        return None, last.reason
    return f"rolled back by {last.actor}: weight {last.details.get('weight_after', '?')} % in force after", None


def pytest_canary_stage_applied(config: pytest.Config, record: StageRecord) -> None:
    """Observation begins: start the child that will draw the stage's plots (it warms up meanwhile)."""
    if results_dir(config) is not None and not hasattr(config, "workerinput") and PLOT_JOB_KEY not in config.stash:
        config.stash[PLOT_JOB_KEY] = PlotJob(Path(tempfile.mkdtemp(prefix="canary-plots-")))


def pytest_canary_verdict(config: pytest.Config, record: StageRecord) -> None:
    """The trace is final: the child draws it while the release checks run."""
    job = config.stash.get(PLOT_JOB_KEY, None)
    if job is not None and record.trace:
        job.draw(DecisionTrace.from_dict(record.trace))


def pytest_unconfigure(config: pytest.Config) -> None:
    """No plot child outlives the session (one whose stage never reached a verdict, or a failed finish)."""
    job = config.stash.get(PLOT_JOB_KEY, None)
    if job is not None:
        job.cancel()
        shutil.rmtree(job.directory, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """After the canary plugin's own finish (rollback included): write the stage's Allure results."""
    config = session.config
    try:
        return (yield)
    finally:
        record = config.stash.get(RECORD_KEY, None)
        options = config.stash.get(OPTIONS_KEY, None)
        target = results_dir(config)
        if record is not None and options is not None and target is not None and not hasattr(config, "workerinput"):
            rollback, rollback_failed = rollback_outcome(options.stack.run_dir, record)
            job = config.stash.get(PLOT_JOB_KEY, None)
            plots = job.result() if job is not None and job.trace is not None else None
            allure_results.write_stage_result(
                target, record, rollback=rollback, rollback_failed=rollback_failed, plots=plots
            )
            settings = JudgeSettings.from_mapping(options.toml.get("judge", {}), "canary.toml [judge]")
            allure_results.write_environment(
                target,
                allure_results.environment(
                    record,
                    settings,
                    period=options.observation_period,
                    tick=options.tick,
                    backend=options.backend,
                    env_names={"canary": list(options.canary_env), "production": list(options.production_env)},
                    cwd=config.rootpath,
                ),
            )
            allure_results.write_categories(target)
