"""Measured rates of the data streams a stage plan depends on, and re-planning from them.

A plan made from defaults (``loss_block_s``, users × 1 req/s, an even mode mix) can be several
times optimistic: on the reference service a loss block comes every ~20 s, not 5 s. The judge
therefore measures every stream — requests per LLM mode on both arms and RL-loss blocks per
request on both arms — and :class:`Replanner` re-plans from them every ``every_s`` seconds (at
once after a large change), reporting only when a check's expected decision time moves across
the window end. Rates are stored weight-free (all traffic per mode, blocks per request), so a
later stage at another weight, or a later rollout, can plan from the previous stage's record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary_harness.errors import ConfigError
from canary_harness.judge.plan_text import format_plan
from canary_harness.judge.planner import plan_stage
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.stage_plan import StagePlan
from canary_harness.metrics.types import MetricsSnapshot

# Re-plan this often, and at once when any stream's rate changed by more than JUMP (relative).
REPLAN_EVERY_S = 30.0
JUMP = 0.5
# Rates measured over less than this are too noisy to plan from.
MIN_MEASURED_S = 10.0


@dataclass(frozen=True)
class StreamRates:
    """Weight-free rates: all traffic per LLM mode (req/s) and RL-loss blocks per request per arm.

    ``source`` says where the figures come from ("defaults", "measured over 60 s of stage 5 %", …).
    """

    mode_rps: Mapping[str, float]
    canary_blocks_per_request: float
    production_blocks_per_request: float
    source: str = "defaults"
    measured_s: float = 0.0

    @property
    def total_rps(self) -> float:
        """All requests per second, both arms, every judged mode."""
        return sum(self.mode_rps.values())

    def mix(self) -> dict[str, float]:
        """Share of requests per mode (even if nothing was measured)."""
        total = self.total_rps
        if total <= 0:
            return {mode: 1.0 for mode in self.mode_rps}
        return {mode: rps / total for mode, rps in self.mode_rps.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the stage record keeps it for the next stage)."""
        return {
            "mode_rps": dict(self.mode_rps),
            "canary_blocks_per_request": self.canary_blocks_per_request,
            "production_blocks_per_request": self.production_blocks_per_request,
            "source": self.source,
            "measured_s": self.measured_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> StreamRates:
        """The inverse of :meth:`to_dict`; ConfigError naming ``where`` on a bad value."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"measured rates in {where}: must be a table, got {data!r}")
        try:
            rates = cls(
                mode_rps={str(k): float(v) for k, v in dict(data["mode_rps"]).items()},
                canary_blocks_per_request=float(data["canary_blocks_per_request"]),
                production_blocks_per_request=float(data["production_blocks_per_request"]),
                source=str(data.get("source", where)),
                measured_s=float(data.get("measured_s", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"measured rates in {where}: {exc!r} in {dict(data)!r}") from exc
        values = [*rates.mode_rps.values(), rates.canary_blocks_per_request, rates.production_blocks_per_request]
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ConfigError(f"measured rates in {where}: every rate must be a finite number ≥ 0, got {values}")
        return rates


def measure(
    settings: JudgeSettings, observed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot, source: str
) -> StreamRates | None:
    """Rates from counter deltas since stage start over ``observed_s`` seconds (None if too early)."""
    if observed_s < MIN_MEASURED_S:
        return None
    mode_rps = {
        mode: (canary.latency_count(mode) + production.latency_count(mode)) / observed_s for mode in settings.modes
    }
    k = settings.loss_block_updates

    def per_request(arm: MetricsSnapshot) -> float:
        return arm.rl_updates / k / arm.requests if arm.requests > 0 else 0.0

    return StreamRates(mode_rps, per_request(canary), per_request(production), source, observed_s)


def plan_from(stage_percent: int, settings: JudgeSettings, rates: StreamRates) -> StagePlan:
    """The stage plan at ``rates`` (falls back to 1 req/s when nothing was measured yet)."""
    return plan_stage(stage_percent, max(rates.total_rps, 1e-3), settings, rates.mix(), rates=rates)


def _deciding(plan: StagePlan) -> dict[str, bool]:
    """Per check: does its expected decision (fastest FAIL t50 for the MDE, PASS t50) fall in the window?"""
    result: dict[str, bool] = {}
    for test in plan.tests:
        inside = test.seconds50 is not None and test.seconds50 <= plan.max_duration_s
        label = f"{test.check} ({test.role.upper()})"
        result[label] = result.get(label, False) or inside
    return result


@dataclass
class Replanner:
    """Re-plans a running stage from measured rates (see the module docstring)."""

    stage: int
    settings: JudgeSettings
    plan: StagePlan
    rates: StreamRates | None = None  # what ``plan`` rests on; None: the planning defaults
    last_s: float = 0.0

    def _jumped(self, fresh: StreamRates) -> bool:
        if self.rates is None:
            return True  # the first measurement replaces the defaults at once
        pairs = [(fresh.total_rps, self.rates.total_rps)]
        pairs += [(fresh.canary_blocks_per_request, self.rates.canary_blocks_per_request)]
        pairs += [(fresh.production_blocks_per_request, self.rates.production_blocks_per_request)]
        return any(abs(new - old) > JUMP * max(old, 1e-12) for new, old in pairs)

    def update(self, observed_s: float, canary: MetricsSnapshot, production: MetricsSnapshot) -> str | None:
        """A note and the new plan when a check's expected decision crossed the window end, else None.

        Re-plans every REPLAN_EVERY_S of observation, or at once when a stream's rate jumped by
        more than JUMP against the rates of the current plan.
        """
        source = f"measured over {observed_s:.0f} s of the {self.stage} % stage"
        fresh = measure(self.settings, observed_s, canary, production, source)
        if fresh is None:
            return None
        due = observed_s - self.last_s >= REPLAN_EVERY_S
        if not due and not self._jumped(fresh):
            return None
        self.last_s = observed_s
        before = _deciding(self.plan)
        self.rates, self.plan = fresh, plan_from(self.stage, self.settings, fresh)
        after = _deciding(self.plan)
        moved = [label for label in after if after[label] != before.get(label, False)]
        if not moved:
            return None
        words = ", ".join(f"{label} now {'inside' if after[label] else 'beyond'} the window" for label in moved)
        return f"re-planned from rates {fresh.source} ({describe(fresh)}): {words}\n{format_plan(self.plan)}"


def describe(rates: StreamRates) -> str:
    """The rates in one phrase: requests per mode and seconds per loss block at a given traffic."""
    modes = ", ".join(f"{mode} {rps:.2f} req/s" for mode, rps in rates.mode_rps.items())
    return (
        f"{modes}; loss blocks per 100 requests: canary {100 * rates.canary_blocks_per_request:.2f}, "
        f"production {100 * rates.production_blocks_per_request:.2f}"
    )
