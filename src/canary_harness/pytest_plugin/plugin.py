"""The canary pytest plugin (entry point ``pytest11: canary``).

Inert without ``--canary-version``. With it, the pytest session is one rollout stage: the controller
runs the stage once before the tests (never on an xdist worker), the release checks in canary_tests/
read the stage record, and any session exit but OK rolls the canary back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from canary_harness import journal
from canary_harness.errors import CanaryError, RollbackError
from canary_harness.pytest_plugin import fixtures, hookspecs
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_KEY, RECORD_PATH_KEY
from canary_harness.pytest_plugin.options import add_options, resolve
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.pytest_plugin.session import StageSession
from canary_harness.pytest_plugin.smoke import SMOKE_BACKEND
from canary_harness.reporting.live import progress_factory
from canary_harness.rollback import rollback

RELEASE_CHECKS_DIR = "canary_tests"
WORKER_RECORD_INPUT = "canary_stage_record"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _say(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(text)
    else:
        print(text, flush=True)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the pytest_canary_* hookspecs."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``canary`` option group."""
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Resolve the options once; point collection at the release checks when no paths were given."""
    options = resolve(config)
    if options is None:
        return
    config.stash[OPTIONS_KEY] = options
    config.addinivalue_line("markers", "smoke: a smoke check that runs against a throwaway canary container too")
    if _is_worker(config):
        config.stash[RECORD_PATH_KEY] = Path(config.workerinput[WORKER_RECORD_INPUT])  # type: ignore[attr-defined]
    else:
        name = f"stage-{options.stage}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
        config.stash[RECORD_PATH_KEY] = (options.stack.run_dir / "stages" / name).resolve()
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        # Next to the ini file (the project root), else the directory pytest was started from.
        base = config.inipath.parent if config.inipath else config.invocation_params.dir
        config.args = [str(base / RELEASE_CHECKS_DIR)]
    config.pluginmanager.register(fixtures, "canary-fixtures")
    if config.getoption("allure_report_dir", None):
        from canary_harness.reporting import allure_plugin  # allure-pytest is an optional extra

        config.pluginmanager.register(allure_plugin, "canary-allure")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: tell each worker where the controller writes the stage record."""
    if RECORD_PATH_KEY in node.config.stash:  # absent when the plugin is inert (no --canary-version)
        node.workerinput[WORKER_RECORD_INPUT] = str(node.config.stash[RECORD_PATH_KEY])


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    """Run the stage once on the controller, after collection and before any test."""
    config = session.config
    options = config.stash.get(OPTIONS_KEY, None)
    collection_failed = session.testsfailed and not config.option.continue_on_collection_errors
    if options is not None and options.backend == SMOKE_BACKEND:
        _say(config, f"canary: smoke run of {options.canary_version} in a throwaway container (no stage, no NGINX)")
    elif options is not None and not _is_worker(config) and not config.option.collectonly \
            and not collection_failed:
        _say(config, f"canary: stage {options.stage}% for {options.canary_version} "
                     f"(production {options.production_version}, judge {options.judge}"
                     f"{', dry run' if options.dry_run else ''})")
        stage = StageSession(options, lambda text: _say(config, text))
        stage.progress = progress_factory(config)
        try:
            record = stage.run(
                config.stash[RECORD_PATH_KEY],
                on_applied=lambda rec: config.hook.pytest_canary_stage_applied(config=config, record=rec),
            )
        finally:
            config.stash[RECORD_KEY] = stage.record
        config.hook.pytest_canary_verdict(config=config, record=record)
    return (yield)


def _stage_failed(record: StageRecord | None) -> str | None:
    if record is None:
        return None
    if record.error:
        return record.error
    if record.verdict and record.verdict.get("state") == "FAIL":
        return f"verdict FAIL: {record.verdict.get('reason')}"
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Any exit but OK (or a failed stage whose checks were deselected) rolls back; record the outcome."""
    config = session.config
    options = config.stash.get(OPTIONS_KEY, None)
    if options is None or _is_worker(config) or options.backend == SMOKE_BACKEND:
        return  # a smoke run moved no traffic and records nothing: nothing to roll back
    record = config.stash.get(RECORD_KEY, None)
    if record is None and (config.option.collectonly or session.exitstatus == pytest.ExitCode.USAGE_ERROR):
        _say(config, "canary: no stage ran (collection only or usage error): nothing changed, nothing recorded")
        return
    stage_failure = _stage_failed(record)
    if exitstatus == pytest.ExitCode.OK and stage_failure is not None:
        _say(config, f"canary: the stage failed ({stage_failure}) although no selected test did")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    failed = session.exitstatus != pytest.ExitCode.OK
    status = pytest.ExitCode(session.exitstatus)
    reason = stage_failure or f"pytest exit status {int(status)} ({status.name})"
    journal.append(options.stack.run_dir, "stage_verdict", version=options.canary_version, stage=options.stage,
                   reason=reason if failed else "all release checks passed", passed=not failed,
                   dry_run=options.dry_run, record=str(config.stash[RECORD_PATH_KEY]))
    if not failed:
        _say(config, f"canary: stage {options.stage}% PASSED for {options.canary_version}"
                     f"{' (dry run)' if options.dry_run else f'; weight left at {options.stage}%'}")
        return
    if options.no_rollback:
        _say(config, f"canary: stage FAILED ({reason}); --no-rollback given: weight left as it is")
        return
    _say(config, f"canary: stage {options.stage}% FAILED ({reason}): rolling back {options.canary_version}")
    try:
        result = rollback(options.stack, version=options.canary_version, stage=options.stage, reason=reason,
                          keep_canary=options.keep_canary, actor="pytest")
    except (RollbackError, CanaryError) as exc:
        _say(config, f"canary: ROLLBACK FAILED: {exc}\ncanary: the canary may still receive traffic; "
                     f"run `canary rollback` and check `canary stack status`")
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        raise RollbackError(str(exc)) from exc
    config.hook.pytest_canary_rollback(config=config, version=options.canary_version, stage=options.stage,
                                       reason=reason, result=result)
    _say(config, f"canary: {result.summary()}")


@pytest.hookimpl(trylast=True)
def pytest_canary_verdict(config: pytest.Config, record: StageRecord) -> None:
    """Default: one summary line (site hooks in plugins/ run first)."""
    state = (record.verdict or {}).get("state", "ERROR")
    _say(config, f"canary: verdict {state} for stage {record.stage}%"
                 f"{': ' + record.error if record.error else ''}")
