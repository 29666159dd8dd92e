"""The MetricsSource protocol: where the observation loop gets each arm's cumulative counters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from canary_harness.metrics.types import MetricsSnapshot

ROLES: tuple[str, ...] = ("production", "canary")


class MetricsSource(Protocol):
    """Reads a cumulative snapshot of one arm ("production" or "canary").

    Raises MetricsError (or NoDataError) when the arm cannot be read; never returns made-up zeros.
    """

    def snapshot(self, role: str) -> MetricsSnapshot:
        """The arm's cumulative counters now."""
        ...

    def snapshots(self, roles: Sequence[str]) -> dict[str, MetricsSnapshot]:
        """Every arm's cumulative counters at one instant: what the judge compares arm with arm."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
