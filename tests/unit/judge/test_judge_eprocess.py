"""The e-processes against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canary_harness.judge.eprocess import (
    FAIL_MULTIPLIERS,
    LATENCY_FAIL_GRID,
    BernoulliMixture,
    ShareTest,
    beta_confidence_interval,
)


def test_single_alternative_is_the_likelihood_ratio() -> None:
    test = BernoulliMixture(0.5, (0.75,))
    assert math.exp(test.log_e(2, 2)) == pytest.approx(2.25)  # (0.75/0.5)^2
    assert math.exp(test.log_e(1, 2)) == pytest.approx(0.75)  # 1.5 * 0.5


def test_two_alternatives_average_their_ratios() -> None:
    test = BernoulliMixture(0.5, (0.6, 0.8))
    assert math.exp(test.log_e(1, 1)) == pytest.approx((1.2 + 1.6) / 2)
    assert math.exp(test.log_e(0, 1)) == pytest.approx((0.8 + 0.4) / 2)
    assert math.exp(test.log_e(0, 0)) == pytest.approx(1.0)


def test_fail_form_on_the_slo_matches_the_formula_of_judge_md() -> None:
    p0, x, n = 0.005, 3, 100
    test = BernoulliMixture.fail_form(p0)
    grid = [p0 * m for m in FAIL_MULTIPLIERS]
    by_hand = sum((p / p0) ** x * ((1 - p) / (1 - p0)) ** (n - x) for p in grid) / len(grid)
    assert math.exp(test.log_e(x, n)) == pytest.approx(by_hand, rel=1e-12)
    assert test.log_e_scalar(x, n) == pytest.approx(math.log(by_hand), rel=1e-12)
    assert test.upper


def test_pass_form_grid_and_direction() -> None:
    test = BernoulliMixture.pass_form(0.005)
    assert test.grid == pytest.approx((0.004, 0.003, 0.002, 0.001))
    assert not test.upper
    # No error in 1000 requests is evidence the rate is below 0.5 %; 10 errors is not.
    assert test.log_e(0, 1000) > 0 > test.log_e(10, 1000)


def test_fail_form_caps_alternatives_below_one() -> None:
    test = BernoulliMixture.fail_form(0.05)
    assert test.grid == pytest.approx((0.075, 0.1, 0.15, 0.25, 0.5, 0.99))


def test_vectorised_equals_scalar() -> None:
    test = BernoulliMixture(0.05, LATENCY_FAIL_GRID)
    x = np.array([[0, 3], [20, 7]])
    n = np.array([[10, 40], [100, 41]])
    values = test.log_e(x, n)
    assert values.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            assert values[i, j] == pytest.approx(test.log_e_scalar(int(x[i, j]), int(n[i, j])))


@pytest.mark.parametrize(("p0", "grid"), [(0.0, (0.1,)), (0.5, ()), (0.5, (0.4, 0.6)), (0.5, (1.2,))])
def test_invalid_mixtures_are_refused(p0: float, grid: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        BernoulliMixture(p0, grid)


def test_share_test_hand_values() -> None:
    test = ShareTest(1.0, (3.0,))  # share 0.5: θ(1) = 0.5, θ(3) = 0.75
    state = test.update(test.initial(), 2, 0, 0.5)
    assert math.exp(test.log_e(state)) == pytest.approx(2.25)
    state = test.update(state, 0, 1, 0.5)
    assert math.exp(test.log_e(state)) == pytest.approx(1.125)  # × 0.25 / 0.5


def test_share_test_with_r0_and_small_share() -> None:
    test = ShareTest(1.5, (2.0,))
    theta0 = 0.05 * 1.5 / (0.05 * 1.5 + 0.95)
    theta1 = 0.05 * 3.0 / (0.05 * 3.0 + 0.95)
    assert test.canary_probability(1.5, 0.05) == pytest.approx(theta0)
    state = test.update(test.initial(), 1, 4, 0.05)
    expected = (theta1 / theta0) * ((1 - theta1) / (1 - theta0)) ** 4
    assert math.exp(test.log_e(state)) == pytest.approx(expected)


def test_share_test_ignores_ticks_without_exposure_on_one_side() -> None:
    test = ShareTest(1.0)
    state = test.initial((3,))
    state = test.update(state, np.array([0, 2, 1]), np.array([3, 0, 1]), np.array([0.0, 1.0, np.nan]))
    assert np.all(test.log_e(state) == pytest.approx(0.0))


def test_share_test_equals_one_sample_test_at_constant_share() -> None:
    test = ShareTest(1.5)
    rng = np.random.default_rng(3)
    state = test.initial()
    canary = production = 0
    for _ in range(50):
        x_c, x_p = int(rng.poisson(0.3)), int(rng.poisson(2.0))
        state = test.update(state, x_c, x_p, 0.05)
        canary, production = canary + x_c, production + x_p
    equivalent = test.as_bernoulli(0.05)
    assert float(test.log_e(state)) == pytest.approx(equivalent.log_e_scalar(canary, canary + production))


def test_confidence_interval_hand_value_and_coverage() -> None:
    # n = 1, x = 0: E(p) = B(1, 2) / (1 − p) = 1 / (2(1 − p)) < 1/α  ⇔  p < 1 − α/2.
    assert beta_confidence_interval(0, 1, 0.1) == pytest.approx((0.0, 0.95), abs=1e-9)
    low, high = beta_confidence_interval(30, 1000, 0.01)
    assert low < 0.03 < high
    narrower = beta_confidence_interval(300, 10000, 0.01)
    assert narrower[1] - narrower[0] < high - low
    assert beta_confidence_interval(0, 0, 0.01) == (0.0, 1.0)
