"""Type-I error of each e-process at its null boundary stays ≤ α (seeded simulations).

Each test is watched at every step, as the judge does. The level is α = 5 % so that a thousand
runs can tell a valid test from a broken one. A valid e-process may come close to α (Ville's bound
is nearly tight for some grids), so the check is that the observed rate is not significantly above
α (its 99 % Clopper–Pearson lower bound is ≤ α); each simulation also shows it has the power to
notice a violated null, so the check itself can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from canary_harness.judge.eprocess import (
    LATENCY_FAIL_GRID,
    LATENCY_PASS_GRID,
    LOSS_FAIL_GRID,
    LOSS_PASS_GRID,
    SPLIT_MULTIPLIERS,
    BernoulliMixture,
    ShareTest,
    crossing_bound,
)

ALPHA = 0.05
RUNS = 1000


def _rejection_rate(test: BernoulliMixture, rate: float, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    events = rng.binomial(1, rate, (RUNS, steps)).cumsum(axis=1)
    trials = np.broadcast_to(np.arange(1, steps + 1), events.shape)
    return float((test.log_e(events, trials) >= crossing_bound(ALPHA)).any(axis=1).mean())


def _upper(rate: float) -> float:
    """One-sided 99 % Clopper–Pearson upper bound of an observed rejection rate."""
    hits = round(rate * RUNS)
    return 1.0 if hits >= RUNS else float(stats.beta.ppf(0.99, hits + 1, RUNS - hits))


def _holds_alpha(rate: float) -> bool:
    """The observed rejection rate is not significantly above α (99 % Clopper–Pearson lower bound)."""
    hits = round(rate * RUNS)
    lower = 0.0 if hits == 0 else float(stats.beta.ppf(0.01, hits, RUNS - hits + 1))
    return lower <= ALPHA


@pytest.mark.parametrize(
    ("test", "steps"),
    [
        (BernoulliMixture.fail_form(0.005), 1500),
        (BernoulliMixture.pass_form(0.005), 1500),
        (BernoulliMixture(0.05, LATENCY_FAIL_GRID), 800),
        (BernoulliMixture(0.05, LATENCY_PASS_GRID), 800),
        (BernoulliMixture(0.5, LOSS_FAIL_GRID), 200),
        (BernoulliMixture(0.5, LOSS_PASS_GRID), 200),
    ],
    ids=["5xx-fail", "5xx-pass", "p95-fail", "p95-pass", "loss-fail", "loss-pass"],
)
def test_one_sample_tests_hold_alpha_at_the_null_boundary(test: BernoulliMixture, steps: int) -> None:
    at_null = _rejection_rate(test, test.p0, steps, seed=1)
    assert _holds_alpha(at_null), f"rejection rate {at_null:.2%} at the null is above α = {ALPHA:.0%}"
    # The same simulation notices a null that is false by a factor 2 (or 1/2): it can fail.
    violated = test.p0 * (2.0 if test.upper else 0.5)
    assert _rejection_rate(test, violated, steps, seed=2) > 2 * _upper(at_null)


def _share_rejections(r0: float, true_ratio: float, seed: int, ticks: int = 400) -> float:
    """Share test under load swings and an incident that multiplies both arms' rates by 5."""
    rng = np.random.default_rng(seed)
    test = ShareTest(r0)
    t = np.arange(ticks)
    load = 50.0 * (1.5 + np.sin(t / 60.0))
    incident = np.where((t >= 150) & (t < 270), 5.0, 1.0)
    n_c = rng.poisson(load * 0.05, (RUNS, ticks))
    n_p = rng.poisson(load * 0.95, (RUNS, ticks))
    base = 0.004 * incident
    x_c = rng.binomial(n_c, np.minimum(base * true_ratio, 1))
    x_p = rng.binomial(n_p, base)
    total = n_c + n_p
    share = np.where(total > 0, n_c / np.maximum(total, 1), np.nan)
    state = np.cumsum(test.update(test.initial((RUNS, ticks)), x_c, x_p, share), axis=1)
    return float((test.log_e(state) >= crossing_bound(ALPHA)).any(axis=1).mean())


@pytest.mark.parametrize("r0", [1.0, 1.5])
def test_share_test_holds_alpha_under_load_swings_and_a_shared_incident(r0: float) -> None:
    at_null = _share_rejections(r0, r0, seed=3)
    assert _holds_alpha(at_null), f"rejection rate {at_null:.2%} at the null is above α = {ALPHA:.0%}"
    assert _share_rejections(r0, 3 * r0, seed=4) > 2 * _upper(at_null)


def test_split_test_holds_alpha_at_the_configured_weight() -> None:
    rng = np.random.default_rng(5)
    test = ShareTest(1.0, SPLIT_MULTIPLIERS)

    def rejections(true_share: float) -> float:
        requests = rng.poisson(50, (RUNS, 300))
        canary = rng.binomial(requests, true_share)
        state = np.cumsum(test.update(test.initial((RUNS, 300)), canary, requests - canary, 0.05), axis=1)
        return float((test.log_e(state) >= crossing_bound(ALPHA)).any(axis=1).mean())

    at_null = rejections(0.05)
    assert _holds_alpha(at_null), f"rejection rate {at_null:.2%} at the null is above α = {ALPHA:.0%}"
    assert rejections(0.07) > 2 * _upper(at_null)
