"""What the evidence engine consumes each tick: count increments of both arms, per check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from numpy.typing import ArrayLike


@dataclass
class ModeTick:
    """One tick's increments for one LLM mode (from the latency histogram)."""

    canary_requests: ArrayLike = 0.0
    production_requests: ArrayLike = 0.0
    canary_over_threshold: ArrayLike = 0.0
    # Exceedances of τ_m (production's frozen p95); zero until τ_m is frozen.
    canary_over_tau: ArrayLike = 0.0
    production_over_tau: ArrayLike = 0.0


@dataclass
class RatioTick:
    """One tick's increments of one ratio check's counters: numerator events out of denominator trials."""

    canary_events: ArrayLike = 0.0
    canary_trials: ArrayLike = 0.0
    production_events: ArrayLike = 0.0
    production_trials: ArrayLike = 0.0


@dataclass
class Tick:
    """Increments of one tick for both arms; ``weight`` is the configured canary share (0..1)."""

    weight: ArrayLike
    canary_requests: ArrayLike = 0.0
    production_requests: ArrayLike = 0.0
    canary_errors: ArrayLike = 0.0
    production_errors: ArrayLike = 0.0
    # Routing units of the split check: journeys when the service reports them (sticky routing makes
    # the requests of one journey land together), else requests.
    canary_units: ArrayLike = 0.0
    production_units: ArrayLike = 0.0
    canary_briefs: ArrayLike = 0.0
    canary_schema_failures: ArrayLike = 0.0
    production_briefs: ArrayLike = 0.0
    production_schema_failures: ArrayLike = 0.0
    modes: Mapping[str, ModeTick] = field(default_factory=dict)
    # RL-loss pairs (canary blocks vs fresh production blocks) judged this tick, and how many had
    # D > 0 (canary above ratio × production): the sign tests' data.
    loss_blocks: ArrayLike = 0.0
    loss_exceed: ArrayLike = 0.0
    # Σ over those pairs of the capped standardised excess ζ (ExcessTest), the magnitude test's data,
    # and how many pairs it covers (the first pair has no earlier blocks to estimate a spread from).
    loss_excess: ArrayLike = 0.0
    loss_excess_pairs: ArrayLike = 0.0
    # Per ratio check (by its name in [[judge.ratios]]): its counters' increments.
    ratios: Mapping[str, RatioTick] = field(default_factory=dict)
