"""Planning assumptions turned into event rates: what a healthy or regressed canary looks like.

Latency is taken as log-normal with spread ``latency_sigma`` and a healthy p95 of
``healthy_p95_ratio`` × threshold; RL-loss block means as log-normal with spread ``loss_sigma``
(a block of ``loss_block_updates`` updates), canary blocks paired with production blocks. These only
size stages and explain INCONCLUSIVE verdicts; the tests' own assumptions are in docs/judge.md.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from canary_harness.judge.settings import LATENCY_TAIL, JudgeSettings

_NORMAL = NormalDist()
# Latency histogram bucket edges of the reference service (seconds), used to predict τ_m.
SERVICE_LATENCY_EDGES: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    3.2,
    3.5,
    4.0,
    4.5,
    5.0,
    6.0,
    7.5,
    10.0,
    15.0,
    30.0,
)


def _latency_median(settings: JudgeSettings, mode: str) -> float:
    """Median latency of a healthy canary in ``mode`` under the planning model."""
    p95 = settings.healthy_p95_ratio * settings.p95_thresholds[mode]
    return p95 / math.exp(_NORMAL.inv_cdf(1 - LATENCY_TAIL) * settings.latency_sigma)


def latency_exceedance(settings: JudgeSettings, mode: str, factor: float = 1.0, cut: float | None = None) -> float:
    """P(latency > cut) with latencies multiplied by ``factor`` (cut defaults to the threshold)."""
    cut = settings.p95_thresholds[mode] if cut is None else cut
    median = _latency_median(settings, mode) * factor
    return 1 - _NORMAL.cdf(math.log(cut / median) / settings.latency_sigma)


def predicted_tau(settings: JudgeSettings, mode: str) -> float:
    """τ_m a healthy production would freeze: its p95 rounded up to a bucket edge."""
    p95 = settings.healthy_p95_ratio * settings.p95_thresholds[mode]
    return next((edge for edge in SERVICE_LATENCY_EDGES if edge >= p95), SERVICE_LATENCY_EDGES[-1])


def latency_factor_for(settings: JudgeSettings, mode: str, exceedance: float) -> float:
    """The latency multiplier at which ``exceedance`` of requests are over the threshold."""
    exceedance = min(max(exceedance, 1e-9), 1 - 1e-9)
    threshold = settings.p95_thresholds[mode]
    return threshold / (
        _latency_median(settings, mode) * math.exp(settings.latency_sigma * _NORMAL.inv_cdf(1 - exceedance))
    )


def loss_pair_spread(settings: JudgeSettings, production_per_canary: float = 1.0) -> float:
    """Spread of a pair's log difference D when each canary block meets ``production_per_canary``
    production blocks (fewer than one: several canary blocks share one production block)."""
    ratio = max(production_per_canary, 1e-9)
    canary_blocks, production_blocks = max(1.0, 1 / ratio), max(1.0, ratio)
    return settings.loss_sigma * math.sqrt(1 / canary_blocks + 1 / production_blocks)


def loss_exceedance(settings: JudgeSettings, factor: float = 1.0, production_per_canary: float = 1.0) -> float:
    """P(D > 0) for a pair when the canary's loss is ``factor`` × production's: the share of pairs in
    which the canary's blocks are above loss_ratio × production's."""
    spread = loss_pair_spread(settings, production_per_canary)
    return 1 - _NORMAL.cdf(math.log(settings.loss_ratio / factor) / spread)


def loss_factor_for(settings: JudgeSettings, exceedance: float, production_per_canary: float = 1.0) -> float:
    """The loss multiplier at which ``exceedance`` of pairs have the canary above loss_ratio × production."""
    exceedance = min(max(exceedance, 1e-9), 1 - 1e-9)
    spread = loss_pair_spread(settings, production_per_canary)
    return settings.loss_ratio / math.exp(spread * _NORMAL.inv_cdf(1 - exceedance))


def loss_pair_effect(settings: JudgeSettings, factor: float, production_per_canary: float = 1.0) -> float:
    """The standardised excess a pair shows on average: log(factor / loss_ratio) / the pair's spread."""
    return math.log(factor / settings.loss_ratio) / loss_pair_spread(settings, production_per_canary)
