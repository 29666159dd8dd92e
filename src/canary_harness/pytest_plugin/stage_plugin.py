"""The plugin object of an active stage session (as pytest-xdist's DSession: registered only when active).

``pytest_configure`` registers one ``CanaryStagePlugin`` on the controller of a session given
``--canary-version`` (never on an xdist worker, never for a smoke run, never when the plugin is inert), so
its hooks need not ask whether a stage is active: it is, or they are not registered. It owns the stage's
lock, its signal guard and the stash entries the fixtures and the exit guard read; the rollback itself is
``exitguard.finish_session`` (which exit rolls back) and ``canary_harness.rollback`` (how).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canary_harness.errors import RolloutError
from canary_harness.lock import RolloutLock
from canary_harness.pytest_plugin.console import say
from canary_harness.pytest_plugin.exitguard import EXIT_KEY, ExitState, early_withdraw, finish_session
from canary_harness.pytest_plugin.keys import RECORD_KEY, RECORD_PATH_KEY
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.session import StageSession
from canary_harness.pytest_plugin.signals import SignalGuard
from canary_harness.reporting.live import progress_factory
from canary_harness.stages import stage_label

WORKER_RECORD_INPUT = "canary_stage_record"


class CanaryStagePlugin:
    """Runs one stage before the tests and rolls it back on any exit but OK (see ``exitguard``)."""

    def __init__(self, config: pytest.Config, options: StageOptions) -> None:
        """Bind to the controller's ``config``; the stage record goes to ``config.stash[RECORD_PATH_KEY]``."""
        self.config, self.options = config, options
        self.say: Callable[[str], None] = lambda text: say(config, text)
        self.exit_state = ExitState(SignalGuard(self.say))
        config.stash[EXIT_KEY] = self.exit_state
        self.record_path: Path = config.stash[RECORD_PATH_KEY]
        self.session: pytest.Session | None = None
        self.lock: RolloutLock | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: tell each worker where the controller writes the stage record."""
        node.workerinput[WORKER_RECORD_INPUT] = str(self.record_path)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Remember the session for the unconfigure fallback."""
        self.session = session

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        """Run the stage once, after collection and before any test (not for --collect-only or a failed
        collection)."""
        config = session.config
        collection_failed = session.testsfailed and not config.option.continue_on_collection_errors
        if not config.option.collectonly and not collection_failed:
            self._run_stage()
        return (yield)

    def _run_stage(self) -> None:
        config, options = self.config, self.options
        self.say(
            f"canary: stage {stage_label(options.stage)} for {options.canary_version} (production "
            f"{options.production_version}, judge {options.judge}{', dry run' if options.dry_run else ''})"
        )
        self._take_lock()
        stage = StageSession(options, self.say)
        # From here until the rollback decision, SIGTERM/SIGHUP end the session like Ctrl-C.
        self.exit_state.guard.arm()
        if not (options.dry_run or options.no_rollback):
            stage.on_failed = early_withdraw(options, stage.record, self.exit_state, self.say)
        stage.progress = progress_factory(config)
        try:
            record = stage.run(
                self.record_path,
                on_applied=lambda rec: config.hook.pytest_canary_stage_applied(config=config, record=rec),
            )
        except pytest.fail.Exception:
            # pytest-timeout (signal method) fires as pytest.fail in whatever runs: here, the stage. It
            # ended with record.error; treat it as a harness error: traffic withdrawn, checks report on it.
            record = stage.record
            stage.failed(record.error or "stage ended by pytest.fail")
            record.save(self.record_path)
        finally:
            config.stash[RECORD_KEY] = stage.record
        config.hook.pytest_canary_verdict(config=config, record=record)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Any:
        """Any exit but OK (or a failed stage whose checks were deselected) rolls back; record the outcome.

        The outermost wrapper, and the rollback runs before it yields: no other plugin's sessionfinish
        (junitxml writing to an unwritable path...) runs before it, so none can prevent it.
        """
        try:
            finish_session(session, self.say)
        except Exception:  # a bug must not also silence the other plugins' sessionfinish (reports)
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            self.say(
                f"canary: ROLLBACK FAILED (unexpected error):\n{traceback.format_exc()}"
                "canary: run `canary rollback` and check `canary stack status`"
            )
        finally:
            self.exit_state.guard.disarm()
        return (yield)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Fallback: if an outer sessionfinish wrapper raised before ours ran, roll back here; then release the
        lock (held until after the rollback)."""
        try:
            if not self.exit_state.finished and self.session is not None:
                finish_session(self.session, self.say)
        finally:
            self.exit_state.guard.disarm()
            if self.lock is not None:
                self.lock.release()

    def _take_lock(self) -> None:
        """Hold the run directory's lock (or inherit a parent rollout's) until unconfigure; refused: exit 4."""
        lock = RolloutLock(
            self.options.stack.run_dir,
            version=self.options.canary_version,
            command=f"stage session {self.options.stage}%",
        )
        try:
            lock.acquire()
        except RolloutError as exc:
            raise pytest.UsageError(f"canary: {exc}") from None
        self.lock = lock
