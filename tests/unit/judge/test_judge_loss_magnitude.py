"""The magnitude loss test (ExcessTest fed as SnapshotFeed feeds it): type-I error and power.

Blocks are simulated as the feed sees them: production's log block means N(0, σ) (or a heavy-tailed
t₃ scaled to the same spread), B their running median and s their running standard deviation,
every canary block judged against the reference of the moment with the feed's margin. Vectorised
over runs (2 000 per case) and seeded, so the figures are exact and the test takes seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from canary_harness.judge.engine import LOSS_NULL, Engine
from canary_harness.judge.eprocess import (
    LOSS_FAIL_GRID,
    LOSS_PASS_GRID,
    BernoulliMixture,
    ExcessTest,
    crossing_bound,
)
from canary_harness.judge.feed import MIN_LOSS_SPREAD, SIGN_REFERENCE_MARGIN, log_spread, reference_margin
from canary_harness.judge.settings import JudgeSettings

RUNS = 2000
BLOCKS = 60
REFERENCE = 8  # loss_reference_blocks: production blocks before B is trusted
SIGMA = 0.3  # spread of log block means (docs/judge.md's planning model)
RATIO = 2.0
Noise = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def _normal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.standard_normal(shape)


def _t3(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Student t with 3 degrees of freedom scaled to unit variance: heavy tails, outliers."""
    return rng.standard_t(3, shape) / math.sqrt(3)


def _excess(canary_logs: np.ndarray, production_logs: np.ndarray, per_canary: int) -> tuple[np.ndarray, np.ndarray]:
    """Per canary block: the capped standardised excess ζ and the sign Y, as the feed computes them."""
    test = ExcessTest()
    runs, blocks = canary_logs.shape
    zeta = np.zeros((runs, blocks))
    above = np.zeros((runs, blocks))
    for i in range(blocks):
        # As the feed does: blocks that arrived before production had REFERENCE blocks wait, and
        # are all judged against the first trusted reference.
        n = max(REFERENCE, (i + 1) * per_canary)
        reference = production_logs[:, :n]
        cut = math.log(RATIO) + np.median(reference, axis=1)
        spread = np.maximum(reference.std(axis=1, ddof=1), MIN_LOSS_SPREAD)
        zeta[:, i] = test.clip((canary_logs[:, i] - cut) / spread - reference_margin(n))
        above[:, i] = canary_logs[:, i] > cut + spread * reference_margin(n, SIGN_REFERENCE_MARGIN)
    return zeta, above


def _simulate(
    factor: float, noise: Noise, seed: int, per_canary: int = 1, blocks: int = BLOCKS
) -> tuple[np.ndarray, np.ndarray]:
    """log E of the magnitude test and of the sign test after each canary block, per run."""
    rng = np.random.default_rng(seed)
    production = SIGMA * noise(rng, (RUNS, max(REFERENCE, blocks * per_canary)))
    canary = math.log(factor) + SIGMA * noise(rng, (RUNS, blocks))
    zeta, above = _excess(canary, production, per_canary)
    n = np.arange(1, blocks + 1)
    magnitude = ExcessTest().log_e(zeta.cumsum(axis=1), n)
    sign = BernoulliMixture(LOSS_NULL, LOSS_FAIL_GRID).log_e(above.cumsum(axis=1), n)
    return magnitude, sign


def _upper95(rate: float) -> float:
    hits = round(rate * RUNS)
    return 1.0 if hits >= RUNS else float(stats.beta.ppf(0.95, hits + 1, RUNS - hits))


def test_the_vectorised_excess_is_the_feeds_formula() -> None:
    """The simulation's s is log_spread of the same blocks (so the figures below are the feed's)."""
    rng = np.random.default_rng(3)
    logs = SIGMA * rng.standard_normal(REFERENCE)
    assert log_spread(np.exp(logs).tolist()) == pytest.approx(max(float(logs.std(ddof=1)), MIN_LOSS_SPREAD))
    assert log_spread([1.0]) is None
    assert reference_margin(8) > reference_margin(32) > 0


@pytest.mark.parametrize("noise", [_normal, _t3], ids=["log-normal", "heavy-tailed-t3"])
@pytest.mark.parametrize(("alpha", "per_canary"), [(0.05, 1), (0.05, 3), (0.01, 1)])
def test_magnitude_test_holds_alpha_at_the_null_boundary(noise: Noise, alpha: float, per_canary: int) -> None:
    """Canary loss exactly ratio × production's, B and s estimated: rejections stay below α."""
    magnitude, _ = _simulate(RATIO, noise, seed=11 + per_canary, per_canary=per_canary)
    rate = float((magnitude >= crossing_bound(alpha)).any(axis=1).mean())
    if alpha >= 0.05:
        # 2 000 runs resolve 5 %: the one-sided 95 % upper bound itself must be below α.
        assert _upper95(rate) <= alpha, f"rejection rate {rate:.2%} (95 % UB {_upper95(rate):.2%}) vs α {alpha}"
    else:
        assert rate <= alpha, f"rejection rate {rate:.2%} vs α {alpha}"
    # The same simulation notices a false null (canary 1.5× over the boundary), so it can fail.
    false_null, _ = _simulate(1.5 * RATIO, noise, seed=21)
    assert float((false_null >= crossing_bound(alpha)).any(axis=1).mean()) > 0.5


@pytest.mark.parametrize("noise", [_normal, _t3], ids=["log-normal", "heavy-tailed-t3"])
def test_the_loss_fail_test_holds_alpha_at_the_null_boundary(noise: Noise) -> None:
    """The FAIL test itself — the average of the sign and magnitude parts — over 180 blocks at α = 1 %."""
    magnitude, sign = _simulate(RATIO, noise, seed=41, blocks=180)
    combined = np.logaddexp(magnitude, sign) - math.log(2)
    rate = float((combined >= crossing_bound(0.01)).any(axis=1).mean())
    assert rate <= 0.01, f"rejection rate {rate:.2%} vs α 1 %"


def test_the_loss_pass_test_holds_beta_at_the_null_boundary() -> None:
    """The PASS test counts blocks above a cut lowered by the margin: B's noise cannot prove a boundary canary."""
    rng = np.random.default_rng(51)
    blocks = 180
    production = SIGMA * rng.standard_normal((RUNS, blocks))
    canary = math.log(RATIO) + SIGMA * rng.standard_normal((RUNS, blocks))
    above_low = np.zeros((RUNS, blocks))
    for i in range(blocks):
        n = max(REFERENCE, i + 1)
        reference = production[:, :n]
        spread = np.maximum(reference.std(axis=1, ddof=1), MIN_LOSS_SPREAD)
        cut = math.log(RATIO) + np.median(reference, axis=1) - spread * reference_margin(n, SIGN_REFERENCE_MARGIN)
        above_low[:, i] = canary[:, i] > cut
    log_e = BernoulliMixture(LOSS_NULL, LOSS_PASS_GRID).log_e(above_low.cumsum(axis=1), np.arange(1, blocks + 1))
    rate = float((log_e >= crossing_bound(0.05)).any(axis=1).mean())
    assert _upper95(rate) <= 0.05, f"wrong PASS rate {rate:.2%} at the boundary vs β 5 %"


def _median_blocks(log_e: np.ndarray, bound: float) -> float:
    hit = log_e >= bound
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, np.inf)
    return float(np.quantile(first, 0.5, method="inverted_cdf"))


def power_table(seed: int = 5) -> dict[float, tuple[float, float, float]]:
    """Median canary blocks to a FAIL at the default α_i: sign test, magnitude test, their average."""
    bound = crossing_bound(Engine(JudgeSettings()).alpha_i)
    table = {}
    for factor in (2.5, 3.0, 3.76, 4.0, 6.0):
        magnitude, sign = _simulate(factor, _normal, seed=seed)
        combined = np.logaddexp(magnitude, sign) - math.log(2)
        table[factor] = (
            _median_blocks(sign, bound),
            _median_blocks(magnitude, bound),
            _median_blocks(combined, bound),
        )
    return table


def test_power_table_the_better_of_the_two_decides() -> None:
    """Large regressions decide far sooner than the sign test allows; moderate ones lose little."""
    table = power_table()
    print("\nloss factor  sign  magnitude  average (median canary blocks to FAIL, α_i = 1/900)")
    for factor, (sign, magnitude, combined) in table.items():
        print(f"  ×{factor:<9g} {sign:>5g} {magnitude:>10g} {combined:>8g}")
    for sign, magnitude, combined in table.values():
        # The average pays at most a factor 2 in e: a block or two over the better part.
        assert combined <= min(sign, magnitude) + 2
    # The live case of issue 15 (×3.76, 9 blocks): the sign test alone needs ≥ 13 blocks however
    # large the regression; the average decides within the 9 blocks in half the runs.
    sign, magnitude, combined = table[3.76]
    assert sign >= 13 and combined <= 9
    assert table[4.0][2] <= 7 < table[4.0][0] and table[6.0][2] <= 4
