"""The canary pytest plugin (entry point ``pytest11: canary``).

Inert without ``--canary-version``. With it, the pytest session is one rollout stage: ``pytest_configure``
registers a ``CanaryStagePlugin`` (``stage_plugin``) on the controller, which runs the stage once before
the tests (never on an xdist worker); the release checks in canary_tests/ read the stage record, and any
session exit but OK rolls the canary back (``exitguard``: the traffic is withdrawn the moment the stage
fails, before the checks; SIGTERM/SIGHUP end the session like Ctrl-C). The module-level hooks below only
declare the options and hooks and decide, once, what to register.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from canary_harness.private import restrict_umask
from canary_harness.pytest_plugin import fixtures, hookspecs
from canary_harness.pytest_plugin.console import say
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_PATH_KEY
from canary_harness.pytest_plugin.options import StageOptions, add_options, resolve
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.pytest_plugin.smoke import SMOKE_BACKEND
from canary_harness.pytest_plugin.stage_plugin import WORKER_RECORD_INPUT, CanaryStagePlugin
from canary_harness.pytest_plugin.target_marker import target_skip_reason
from canary_harness.stages import stage_label

RELEASE_CHECKS_DIR = "canary_tests"
STAGE_PLUGIN_NAME = "canary-stage"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class SmokeRunNotice:
    """Registered for a smoke run (``--canary-backend testcontainers``): says what runs instead of a stage."""

    def __init__(self, config: pytest.Config, options: StageOptions) -> None:
        self.config, self.options = config, options

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """One line before the smoke checks run."""
        say(
            self.config,
            f"canary: smoke run of {self.options.canary_version} in a throwaway container (no stage, no NGINX)",
        )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the pytest_canary_* hookspecs."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``canary`` option group."""
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Resolve the options once; point collection at the release checks when no paths were given; on the
    controller of an active session, register the stage plugin."""
    options = resolve(config)
    if options is None:
        return
    config.stash[OPTIONS_KEY] = options
    config.addinivalue_line("markers", "smoke: a smoke check that runs against a throwaway canary container too")
    config.addinivalue_line("markers", "canary_target(name): a release check of that target's own (else skipped)")
    # The run directory (created later, only if a stage runs) holds the services' environment and logs:
    # everything in it is private to the user (docs/security.md).
    restrict_umask()
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
    if _is_worker(config):
        return  # workers run the release checks only: they read the record the controller writes
    if options.backend == SMOKE_BACKEND:
        config.pluginmanager.register(SmokeRunNotice(config, options), "canary-smoke-run")
    else:
        config.pluginmanager.register(CanaryStagePlugin(config, options), STAGE_PLUGIN_NAME)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A release check marked ``canary_target(name)`` checks that service's own paths, metrics or logs:
    with another target (``--canary-target``) it is skipped, saying why."""
    reason = target_skip_reason(item)
    if reason is not None:
        pytest.skip(reason)


@pytest.hookimpl(trylast=True)
def pytest_canary_verdict(config: pytest.Config, record: StageRecord) -> None:
    """Default: one summary line (site hooks in plugins/ run first)."""
    state = (record.verdict or {}).get("state", "ERROR")
    label = stage_label(record.stage)
    say(config, f"canary: verdict {state} for stage {label}{': ' + record.error if record.error else ''}")


__all__ = ["CanaryStagePlugin", "pytest_addhooks", "pytest_addoption", "pytest_canary_verdict", "pytest_configure"]
