"""The counter-ratio check's false-FAIL rate at its null boundary, by simulation (600 stages per case)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from canary_harness.judge.eprocess_engine import EProcessEngine
from canary_harness.judge.tick import RatioTick, Tick
from tests.unit.judge.test_judge_ratios import CHECK, ratio, settings

ALPHA = 0.45  # the largest budget a stage may have: enough hits in 600 runs to tell a broken test
RUNS = 600


def _ratio_rejections(share: float, relative: bool, seed: int) -> tuple[float, float]:
    """(Share of simulated stages whose ratio check FAILs with the canary's true share = ``share``, the
    check's α budget)."""
    table = ratio(max=0.02, relative=1.0) if relative else ratio(max=0.02)
    config = settings(table, alpha=ALPHA, p95_thresholds={"all": 1.0})
    engine = EProcessEngine(config, shape=(RUNS,))
    rng = np.random.default_rng(seed)
    for tick in range(1, 301):
        trials_c, trials_p = rng.poisson(10, RUNS), rng.poisson(10, RUNS)
        ratios = {"order_failures": RatioTick(rng.binomial(trials_c, share), trials_c,
                                              rng.binomial(trials_p, 0.02), trials_p)}  # fmt: skip
        engine.update(Tick(weight=0.5, ratios=ratios), float(tick))
    fails = np.zeros(RUNS, dtype=bool)
    for spec in engine.tests_of(CHECK):
        if spec.role == "fail":
            fails |= engine.crossed[spec.key]
    return float(fails.mean()), engine.alpha_i * sum(s.role == "fail" for s in engine.tests_of(CHECK))


@pytest.mark.parametrize("relative", [False, True], ids=["slo", "slo+relative"])
def test_type_one_error_at_the_boundary_stays_within_the_checks_budget(relative: bool) -> None:
    at_null, budget = _ratio_rejections(0.02, relative, seed=3)
    hits = round(at_null * RUNS)
    lower = 0.0 if hits == 0 else float(stats.beta.ppf(0.01, hits, RUNS - hits + 1))
    assert lower <= budget, f"rejection rate {at_null:.2%} at share = max is above the budget {budget:.2%}"
    # The same simulation notices a share twice the max: the check can fail.
    violated, _ = _ratio_rejections(0.04, relative, seed=4)
    assert violated > 0.9
