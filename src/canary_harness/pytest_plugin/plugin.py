"""The canary pytest plugin (entry point ``pytest11: canary``).

Inert without ``--canary-version``. With it, the pytest session is one rollout stage: the controller
runs the stage once before the tests (never on an xdist worker), the release checks in canary_tests/
read the stage record, and any session exit but OK rolls the canary back (``exitguard``: the traffic is
withdrawn the moment the stage fails, before the checks; SIGTERM/SIGHUP end the session like Ctrl-C).
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from canary_harness.errors import RolloutError
from canary_harness.lock import RolloutLock
from canary_harness.private import restrict_umask
from canary_harness.pytest_plugin import fixtures, hookspecs
from canary_harness.pytest_plugin.console import say
from canary_harness.pytest_plugin.exitguard import EXIT_KEY, ExitState, early_withdraw, finish_session
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_KEY, RECORD_PATH_KEY
from canary_harness.pytest_plugin.options import StageOptions, add_options, resolve
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.pytest_plugin.session import StageSession
from canary_harness.pytest_plugin.signals import SignalGuard
from canary_harness.pytest_plugin.smoke import SMOKE_BACKEND
from canary_harness.reporting.live import progress_factory

RELEASE_CHECKS_DIR = "canary_tests"
WORKER_RECORD_INPUT = "canary_stage_record"
LOCK_KEY = pytest.StashKey[RolloutLock]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


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
    # The run directory (created later, only if a stage runs) holds the services' environment and logs:
    # everything in it is private to the user (docs/security.md).
    restrict_umask()
    if not _is_worker(config):
        config.stash[EXIT_KEY] = ExitState(SignalGuard(lambda text: say(config, text)))
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
        say(config, f"canary: smoke run of {options.canary_version} in a throwaway container (no stage, no NGINX)")
    elif options is not None and not _is_worker(config) and not config.option.collectonly and not collection_failed:
        say(
            config,
            f"canary: stage {options.stage}% for {options.canary_version} "
            f"(production {options.production_version}, judge {options.judge}"
            f"{', dry run' if options.dry_run else ''})",
        )
        _take_lock(config, options)
        stage = StageSession(options, lambda text: say(config, text))
        # From here until the rollback decision, SIGTERM/SIGHUP end the session like Ctrl-C.
        exit_state = config.stash[EXIT_KEY]
        exit_state.guard.arm()
        if not (options.dry_run or options.no_rollback):
            stage.on_failed = early_withdraw(options, stage.record, exit_state, lambda text: say(config, text))
        stage.progress = progress_factory(config)
        try:
            record = stage.run(
                config.stash[RECORD_PATH_KEY],
                on_applied=lambda rec: config.hook.pytest_canary_stage_applied(config=config, record=rec),
            )
        except pytest.fail.Exception:
            # pytest-timeout (signal method) fires as pytest.fail in whatever runs: here, the stage. It
            # ended with record.error; treat it as a harness error: traffic withdrawn, checks report on it.
            record = stage.record
            stage.failed(record.error or "stage ended by pytest.fail")
            record.save(config.stash[RECORD_PATH_KEY])
        finally:
            config.stash[RECORD_KEY] = stage.record
        config.hook.pytest_canary_verdict(config=config, record=record)
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """Any exit but OK (or a failed stage whose checks were deselected) rolls back; record the outcome.

    The outermost wrapper, and the rollback runs before it yields: no other plugin's sessionfinish
    (junitxml writing to an unwritable path...) runs before it, so none can prevent it.
    """
    config = session.config
    if not _is_worker(config):
        try:
            finish_session(session, lambda text: say(config, text))
        except Exception:  # a bug must not also silence the other plugins' sessionfinish (reports)
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            say(
                config,
                f"canary: ROLLBACK FAILED (unexpected error):\n{traceback.format_exc()}"
                "canary: run `canary rollback` and check `canary stack status`",
            )
        finally:
            _disarm(config)
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Fallback: if an outer sessionfinish wrapper raised before ours ran, roll back here; then release the
    lock (held until after the rollback)."""
    try:
        if EXIT_KEY in config.stash and not config.stash[EXIT_KEY].finished:
            session = getattr(config, "_canary_session", None)
            if session is not None:
                try:
                    finish_session(session, lambda text: say(config, text))
                finally:
                    _disarm(config)
        _disarm(config)
    finally:
        lock = config.stash.get(LOCK_KEY, None)
        if lock is not None:
            lock.release()


def _take_lock(config: pytest.Config, options: StageOptions) -> None:
    """Hold the run directory's lock (or inherit a parent rollout's) until unconfigure; refused: exit 4."""
    lock = RolloutLock(options.stack.run_dir, version=options.canary_version, command=f"stage session {options.stage}%")
    try:
        lock.acquire()
    except RolloutError as exc:
        raise pytest.UsageError(f"canary: {exc}") from None
    config.stash[LOCK_KEY] = lock


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember the session for the unconfigure fallback."""
    session.config._canary_session = session  # type: ignore[attr-defined]


def _disarm(config: pytest.Config) -> None:
    state = config.stash.get(EXIT_KEY, None)
    if state is not None:
        state.guard.disarm()


@pytest.hookimpl(trylast=True)
def pytest_canary_verdict(config: pytest.Config, record: StageRecord) -> None:
    """Default: one summary line (site hooks in plugins/ run first)."""
    state = (record.verdict or {}).get("state", "ERROR")
    say(config, f"canary: verdict {state} for stage {record.stage}%{': ' + record.error if record.error else ''}")
