"""What a stage plan is made of: one TestPlan per e-process and the StagePlan that holds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Reachability of a test within the window.
LIKELY, POSSIBLE, UNLIKELY, NEVER, NOT_APPLICABLE = "likely", "possible", "unlikely", "never", "n/a"


@dataclass(frozen=True)
class TestPlan:
    """What one test needs at this stage.

    ``unit`` is what n counts ("requests" of the canary, or loss "pairs"); ``rate`` is how many of
    them arrive per second at this stage; ``available`` how many the window delivers; ``seconds50``
    / ``seconds90`` are from stage start (warm-up included). ``reach`` is likely (n90 fits the
    window), possible (n50 fits), unlikely, never (even the most extreme data cannot cross in the
    window) or n/a (the test cannot run at this weight).
    """

    check: str
    key: str
    role: str
    description: str
    effect: str
    unit: str
    rate: float
    available: float
    n50: int | None
    n90: int | None
    n_min: int | None
    seconds50: float | None
    seconds90: float | None
    reach: str


@dataclass(frozen=True)
class StagePlan:
    """The plan of one stage: its tests and the plain-language conclusions."""

    stage_percent: int
    total_rps: float
    canary_rps: float
    max_duration_s: float
    warmup_s: float
    min_soak_s: float
    alpha_i: float
    beta_i: float
    tests: tuple[TestPlan, ...]
    notes: tuple[str, ...]

    @property
    def can_pass(self) -> bool:
        """Whether every PASS test can cross within the window at all."""
        return all(t.reach != NEVER for t in self.tests if t.role == "pass")

    @property
    def pass_seconds(self) -> tuple[float | None, float | None]:
        """Rough median / 90 % time to an early PASS: the slowest PASS test, at least the min soak."""

        def slowest(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return None if len(known) < len(values) else max([self.min_soak_s, *known])

        passes = [t for t in self.tests if t.role == "pass" and t.reach != NOT_APPLICABLE]
        return slowest([t.seconds50 for t in passes]), slowest([t.seconds90 for t in passes])


class MeasuredStreams(Protocol):
    """Weight-free measured rates (canary_harness.judge.rates.StreamRates)."""

    @property
    def canary_blocks_per_request(self) -> float: ...

    @property
    def production_blocks_per_request(self) -> float: ...
