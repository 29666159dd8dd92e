"""The gate: each check of the stage verdict (latency per group, errors, counter ratios, schema, RL loss, split;
at the shadow stage, stage 0, the mirror coverage instead of the split).

Each failure message names the metric, the measured value, the threshold and the sample size. The check
names come from the judge's own builders, so a renamed check breaks here at import, not silently at run time.
"""

from __future__ import annotations

from collections.abc import Callable

from canary_harness.judge import COVERAGE, ERROR_RATE, RL_LOSS, SCHEMA, SPLIT, CheckVerdict, latency_check
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.stages import SHADOW_STAGE

CheckFn = Callable[[str], CheckVerdict]


def test_p95_latency(canary_check: CheckFn, latency_group: str) -> None:
    canary_check(latency_check(latency_group))


def test_5xx_error_rate(canary_check: CheckFn) -> None:
    canary_check(ERROR_RATE)


def test_counter_ratio(canary_check: CheckFn, ratio_check: str) -> None:
    canary_check(ratio_check)


def test_zero_schema_failures(canary_check: CheckFn) -> None:
    canary_check(SCHEMA)


def test_rl_loss_against_production_baseline(canary_check: CheckFn) -> None:
    canary_check(RL_LOSS)


def test_traffic_split(canary_check: CheckFn, canary_stage: StageRecord) -> None:
    if canary_stage.stage == SHADOW_STAGE:
        # Users stay on production: the copies the canary received stand in for its share of traffic.
        canary_check(COVERAGE)
        assert canary_stage.weight_in_force == 0 and canary_stage.shadow_share, (
            f"shadow stage with canary weight {canary_stage.weight_in_force} % and {canary_stage.shadow_share} % "
            "copied in force: users must stay on production while requests are copied"
        )
        return
    canary_check(SPLIT)
    if not canary_stage.dry_run:
        assert canary_stage.weight_in_force == canary_stage.stage, (
            f"weight in force {canary_stage.weight_in_force} % differs from the stage {canary_stage.stage} %"
        )
