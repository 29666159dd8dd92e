"""The Judge protocol: what the stage session's observation loop calls every tick."""

from __future__ import annotations

from typing import Protocol

from canary_harness.judge.verdict import StageVerdict
from canary_harness.metrics.types import MetricsSnapshot


class Judge(Protocol):
    """Decides a stage from cumulative counter deltas since stage start of both arms.

    One judge object judges one stage: its e-processes start at zero and are never carried
    across stages. The loop calls :meth:`observe` every tick (ticks may be irregular) and
    :meth:`conclude` once at the end of the window.
    """

    name: str
    # Why the stage runs past its window (on_inconclusive = extend_if_suspect); None otherwise.
    extension: str | None

    def observe(
        self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int
    ) -> StageVerdict:
        """Update with the deltas since stage start; a decided verdict (FAIL, early PASS) ends the stage."""
        ...

    def conclude(
        self, elapsed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, weight_percent: int
    ) -> StageVerdict:
        """The final verdict at the end of the window: always decided, INCONCLUSIVE resolved by policy."""
        ...
