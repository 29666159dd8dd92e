"""Hooks a site adds implementations for in ``plugins/`` (notifications, approvals, tickets).

The plugin's own implementations are ``trylast`` so that site hooks run first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from canary_harness.pytest_plugin.record import StageRecord

hookspec = pytest.hookspec


@hookspec
def pytest_canary_stage_applied(config: pytest.Config, record: StageRecord) -> None:
    """The canary is up and the stage's weight is in force (or a dry run started); observation begins."""


@hookspec
def pytest_canary_verdict(config: pytest.Config, record: StageRecord) -> None:
    """The stage has a verdict (``record.verdict``); called once, before the tests read it."""


@hookspec
def pytest_canary_rollback(config: pytest.Config, version: str, stage: int, reason: str, result: Any) -> None:
    """A rollback ran (``result`` describes the weight and traffic verified afterwards)."""
