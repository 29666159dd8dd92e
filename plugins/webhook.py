"""Webhook notifier: posts a JSON event on stage applied, verdict, rollback (or its failure).

``--canary-notify URL`` (repeatable) or ``[notify] urls = [...]`` in canary.toml. Each event carries a
Slack-compatible ``text`` plus structured fields (see canary_harness.notify). A receiver that is down
costs a warning line, never the stage: the verdict and the exit code stay what the judge decided.
Promotion is posted by ``canary promote`` from the same ``[notify]`` settings.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from canary_harness import notify
from canary_harness.errors import ConfigError
from canary_harness.pytest_plugin.console import say
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_KEY
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.reporting.allure_plugin import rollback_outcome

NOTIFIER_KEY = pytest.StashKey[notify.Notifier]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--canary-notify URL``, repeatable."""
    parser.getgroup("canary").addoption(
        "--canary-notify",
        action="append",
        default=[],
        metavar="URL",
        dest="canary_notify",
        help="post stage events (applied, verdict, rollback) as JSON to URL; repeatable; or [notify] urls",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """A notifier for the stage's controller when any receiver is configured (after the canary plugin)."""
    options = config.stash.get(OPTIONS_KEY, None)
    if options is None or hasattr(config, "workerinput"):
        return
    try:
        settings = notify.NotifySettings.from_mapping(
            options.toml.get("notify", {}), "canary.toml [notify]", config.getoption("canary_notify") or []
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if settings.urls:
        config.stash[NOTIFIER_KEY] = notify.Notifier(settings, lambda text: say(config, text))


def _send(config: pytest.Config, event: dict[str, Any]) -> None:
    notifier = config.stash.get(NOTIFIER_KEY, None)
    if notifier is not None:
        notifier.send(event)


def pytest_canary_stage_applied(config: pytest.Config, record: StageRecord) -> None:
    """Post ``stage_applied``."""
    _send(config, notify.stage_applied(record))


def pytest_canary_verdict(config: pytest.Config, record: StageRecord) -> None:
    """Post ``verdict`` (a harness error is a verdict ERROR with the error as reason)."""
    _send(config, notify.verdict(record))


def pytest_canary_rollback(config: pytest.Config, version: str, stage: int, reason: str, result: Any) -> None:
    """Post ``rollback`` with the weight verified afterwards."""
    _send(config, notify.rollback(version, stage, reason, getattr(result, "weight_after", None)))


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Post ``rollback_failed`` if the stage's rollback could not restore weight 0; close the client.

    The canary plugin's own sessionfinish wraps this one and rolls back first, so the journal already
    says how the rollback went.
    """
    config = session.config
    try:
        return (yield)
    finally:
        options = config.stash.get(OPTIONS_KEY, None)
        record = config.stash.get(RECORD_KEY, None)
        if options is not None and record is not None and NOTIFIER_KEY in config.stash:
            _, failed = rollback_outcome(options.stack.run_dir, record)
            if failed is not None:
                _send(config, notify.rollback(options.canary_version, record.stage, failed, None, ok=False))
        notifier = config.stash.get(NOTIFIER_KEY, None)
        if notifier is not None:
            notifier.close()
