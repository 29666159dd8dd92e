"""Unit tests: the calibration of the simulated latency model, checked by sampling it (not by timing)."""

from __future__ import annotations

import numpy as np
import pytest

from fragrance_ai.latency import TARGETS, ensemble_quantile, provider_latency
from fragrance_ai.providers.simulated import SimulatedProvider

THRESHOLDS = {"fast": 2.5, "balanced": 3.2, "creative": 4.5}
SAMPLES = 200_000


@pytest.mark.parametrize("n_providers", [1, 2, 3, 5])
@pytest.mark.parametrize("mode", ["fast", "balanced", "creative"])
def test_ensemble_latency_hits_median_and_p95_targets(mode: str, n_providers: int) -> None:
    dist = provider_latency(mode, n_providers)
    rng = np.random.default_rng(11)
    ensemble = rng.lognormal(dist.mu, dist.sigma, size=(SAMPLES, n_providers)).max(axis=1)
    median, p95 = np.quantile(ensemble, [0.5, 0.95])
    target_median, target_p95 = TARGETS[mode]
    assert median == pytest.approx(target_median, rel=0.02)
    assert p95 == pytest.approx(target_p95, rel=0.02)
    # A healthy instance stays safely under the release threshold: at most ~2 % over it.
    assert np.mean(ensemble > THRESHOLDS[mode]) < 0.025
    assert ensemble_quantile(mode, n_providers, 0.95) == pytest.approx(target_p95)


def test_provider_samples_are_multiplied_by_the_scale() -> None:
    full = SimulatedProvider("m", seed=4, latency_scale=1.0, n_providers=3)
    tenth = SimulatedProvider("m", seed=4, latency_scale=0.1, n_providers=3)
    off = SimulatedProvider("m", seed=4, latency_scale=0.0, n_providers=3)
    a = np.array([full.latency_s("balanced") for _ in range(500)])
    b = np.array([tenth.latency_s("balanced") for _ in range(500)])
    assert np.allclose(b, a * 0.1)  # same seed, same stream: exactly a tenth
    assert all(off.latency_s("creative") == 0.0 for _ in range(10))
    assert np.median(a) == pytest.approx(provider_latency("balanced", 3).quantile(0.5), rel=0.1)


def test_calibration_needs_a_provider() -> None:
    with pytest.raises(ValueError):
        provider_latency("fast", 0)
