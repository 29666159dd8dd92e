"""Planning assumptions turned into event rates: what a healthy or regressed canary looks like.

Latency is taken as log-normal with spread ``latency_sigma`` and a healthy p95 of
``healthy_p95_ratio`` × threshold; RL-loss block means as log-normal with spread ``loss_sigma``
around production's median. These only size stages and explain INCONCLUSIVE verdicts; the tests
themselves assume nothing about the distributions.
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


def loss_exceedance(settings: JudgeSettings, factor: float = 1.0) -> float:
    """P(block mean > loss_ratio × B) when the canary's loss is ``factor`` × production's."""
    return 1 - _NORMAL.cdf(math.log(settings.loss_ratio / factor) / settings.loss_sigma)


def loss_factor_for(settings: JudgeSettings, exceedance: float) -> float:
    """The loss multiplier at which ``exceedance`` of blocks are above loss_ratio × B."""
    exceedance = min(max(exceedance, 1e-9), 1 - 1e-9)
    return settings.loss_ratio / math.exp(settings.loss_sigma * _NORMAL.inv_cdf(1 - exceedance))
