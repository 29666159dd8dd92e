"""Sample sizes by dynamic programming: the design's reference figures and a Monte-Carlo cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from canary_harness.judge.eprocess import LATENCY_FAIL_GRID, LOSS_FAIL_GRID, BernoulliMixture, crossing_bound
from canary_harness.judge.power import crossing_edge, detectable_rate, sample_sizes

ALPHA_I = 0.002  # α = 1 % over five FAIL tests
BETA_I = 0.05 / 3  # β = 5 % over three PASS tests


@pytest.mark.parametrize(
    ("test", "rate", "budget", "n50", "n90"),
    [
        (BernoulliMixture.fail_form(0.005), 0.03, ALPHA_I, 243, 500),
        (BernoulliMixture.pass_form(0.005), 0.002, BETA_I, 3437, 6724),
        (
            BernoulliMixture(0.05, LATENCY_FAIL_GRID),
            float(stats.norm.sf(math.log(2.5 / 1.4) / 0.45)),
            ALPHA_I,
            349,
            678,
        ),
        (BernoulliMixture(0.5, LOSS_FAIL_GRID), float(stats.norm.sf(math.log(2 / 3) / 0.3)), ALPHA_I, 16, 27),
    ],
    ids=["5xx-fail-3%", "5xx-pass-0.2%", "p95-fail-+40%", "loss-fail-3x"],
)
def test_reference_figures_of_judge_md(test: BernoulliMixture, rate: float, budget: float, n50: int, n90: int) -> None:
    size = sample_sizes(test, rate, budget)
    assert (size.n50, size.n90) == (n50, n90)


def test_dynamic_programming_agrees_with_simulation() -> None:
    test = BernoulliMixture.fail_form(0.01)
    size = sample_sizes(test, 0.05, 0.01)
    assert size.n50 is not None and size.n90 is not None
    rng = np.random.default_rng(11)
    runs, horizon = 4000, size.n90 * 2
    x = rng.binomial(1, 0.05, (runs, horizon)).cumsum(axis=1)
    n = np.arange(1, horizon + 1)
    crossed = test.log_e(x, np.broadcast_to(n, x.shape)) >= crossing_bound(0.01)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1, horizon + 1)
    assert np.mean(first <= size.n50) == pytest.approx(0.5, abs=0.04)
    assert np.mean(first <= size.n90) == pytest.approx(0.9, abs=0.03)
    assert np.mean(first <= size.n50 - 5) < 0.5


def min_crossing_samples(test: BernoulliMixture, budget: float, limit: int = 100_000) -> int | None:
    """The fewest samples with which ``test`` can cross at all, by brute force: all events (FAIL form) or none."""
    bound = crossing_bound(budget)
    for n in range(1, limit + 1):
        if test.log_e_scalar(n if test.upper else 0, n) >= bound:
            return n
    return None


def test_min_crossing_samples_and_edges() -> None:
    fail = BernoulliMixture.fail_form(0.005)
    bound = crossing_bound(ALPHA_I)
    assert fail.log_e_scalar(2, 2) < bound <= fail.log_e_scalar(3, 3)
    assert min_crossing_samples(fail, ALPHA_I) == 3
    assert crossing_edge(fail, ALPHA_I, 2) == 3  # nothing crosses with two samples
    passing = BernoulliMixture.pass_form(0.005)
    n_min = min_crossing_samples(passing, BETA_I)
    assert n_min is not None
    assert passing.log_e_scalar(0, n_min - 1) < crossing_bound(BETA_I) <= passing.log_e_scalar(0, n_min)
    assert crossing_edge(passing, BETA_I, n_min - 1) == -1
    assert sample_sizes(passing, 0.002, BETA_I).n_min == n_min


def test_unreachable_within_limit() -> None:
    size = sample_sizes(BernoulliMixture.pass_form(0.005), 0.0049, BETA_I, limit=3000)
    assert size.n50 is None and size.n90 is None and size.limit == 3000


def test_detectable_rate_is_caught_with_ninety_percent() -> None:
    test = BernoulliMixture.fail_form(0.005)
    rate = detectable_rate(test, ALPHA_I, 450)
    assert rate is not None
    edge = crossing_edge(test, ALPHA_I, 450)
    assert stats.binom.sf(edge - 1, 450, rate) == pytest.approx(0.9, abs=1e-6)
    bigger_stage = detectable_rate(test, ALPHA_I, 45000)
    assert bigger_stage is not None and 0.005 < bigger_stage < rate
    assert detectable_rate(test, ALPHA_I, 2) is None
    with pytest.raises(ValueError):
        detectable_rate(BernoulliMixture.pass_form(0.005), BETA_I, 100)
