"""The simulated LLM latency model: lognormal per provider, calibrated on the ensemble's end-to-end time.

The providers of an ensemble are called concurrently, so the ensemble answers when the slowest one
does: its latency is the maximum of n independent lognormals. P(max <= x) = F(x)^n, hence the
ensemble's q-quantile is the provider's q^(1/n)-quantile. Solving for the provider's (mu, sigma) so that
the ensemble's median and p95 hit the targets keeps the end-to-end latency the same whatever the number
of providers (one with USE_LLM_ENSEMBLE=false, three by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# End-to-end targets at scale 1.0 (median, p95) in seconds, each p95 well under the release
# thresholds 2.5 / 3.2 / 4.5 s of the canary gates.
TARGETS: dict[str, tuple[float, float]] = {
    "fast": (1.0, 2.1),
    "balanced": (1.6, 2.7),
    "creative": (2.4, 3.8),
}

_STD_NORMAL = NormalDist()


@dataclass(frozen=True)
class LogNormal:
    """exp(N(mu, sigma^2)) in seconds."""

    mu: float
    sigma: float

    def quantile(self, q: float) -> float:
        """The q-quantile."""
        return math.exp(self.mu + self.sigma * _STD_NORMAL.inv_cdf(q))

    def sample(self, rng: np.random.Generator) -> float:
        """One draw."""
        return float(rng.lognormal(self.mu, self.sigma))


def provider_latency(mode: str, n_providers: int) -> LogNormal:
    """Per-provider lognormal such that the max of ``n_providers`` draws meets TARGETS[mode]."""
    if n_providers < 1:
        raise ValueError(f"n_providers must be >= 1, got {n_providers}")
    median, p95 = TARGETS[mode]
    z50 = _STD_NORMAL.inv_cdf(0.5 ** (1.0 / n_providers))
    z95 = _STD_NORMAL.inv_cdf(0.95 ** (1.0 / n_providers))
    sigma = (math.log(p95) - math.log(median)) / (z95 - z50)
    return LogNormal(mu=math.log(median) - z50 * sigma, sigma=sigma)


def ensemble_quantile(mode: str, n_providers: int, q: float) -> float:
    """Analytical q-quantile of the ensemble latency (seconds at scale 1)."""
    return provider_latency(mode, n_providers).quantile(q ** (1.0 / n_providers))
