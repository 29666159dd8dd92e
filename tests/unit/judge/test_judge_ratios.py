"""Counter-ratio checks ([[judge.ratios]]): settings, both judges on canned snapshots, type-I error at the
null boundary, and the planner's rows."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from canary_harness.errors import ConfigError
from canary_harness.judge import JudgeSettings, plan_stage
from canary_harness.judge.eprocess_engine import EProcessEngine
from canary_harness.judge.fixed import FixedJudge
from canary_harness.judge.ratio_settings import refuse_uncountable
from canary_harness.judge.sequential import SequentialJudge
from canary_harness.judge.tick import RatioTick, Tick
from canary_harness.judge.verdict import StageVerdict, State
from canary_harness.report import format_progress, format_table
from canary_harness.testing.metrics import ArmRates, CannedMetricsSource

SOURCE = "shop.toml [judge]"
NUM = 'orders_total{outcome="failed"}'
DEN = "orders_total"
CHECK = "ratio[order_failures]"


def ratio(**changes: Any) -> dict[str, Any]:
    """One valid [[judge.ratios]] table with ``changes`` (None drops the key)."""
    table = {"name": "order_failures", "numerator": NUM, "denominator": DEN, "max": 0.01, **changes}
    return {key: value for key, value in table.items() if value is not None}


def settings(*ratios: dict[str, Any], **judge: Any) -> JudgeSettings:
    return JudgeSettings.from_mapping({"ratios": list(ratios or [ratio()]), **judge}, SOURCE)


# ---------------------------------------------------------------------- settings
def test_a_ratio_check_is_read_with_its_counters_and_defaults() -> None:
    [check] = settings(ratio(relative=1.5)).ratios
    assert check.check == CHECK and check.max == 0.01 and check.relative == 1.5
    assert check.numerator.name == "orders_total" and check.numerator.matchers == (("outcome", "=", "failed"),)
    assert check.numerator.text == NUM and check.denominator.text == DEN
    assert check.planned_mde == pytest.approx(0.02) and check.planned_healthy == pytest.approx(0.004)
    assert "ratio" in JudgeSettings().checks and JudgeSettings().ratios == ()


@pytest.mark.parametrize(
    ("table", "pattern"),
    [
        (ratio(name="order failures"), r"#1 \(shop.toml \[judge\]\) name = 'order failures': must be an identifier"),
        (ratio(name="1st"), r"name = '1st': must be an identifier"),
        (ratio(name=None), r"key 'name' is missing"),
        (ratio(numerator="orders-total"), r"numerator = 'orders-total': after the name only"),
        (ratio(numerator="orders_total{outcome=failed}"), r"matcher 'outcome=failed' must be label=\"value\""),
        (ratio(numerator='orders_total{outcome~"x"}'), r"matcher 'outcome~\"x\"'"),
        (ratio(numerator='orders_total{job="shop"}'), r"label 'job' is the harness's own"),
        (ratio(numerator='orders_total{outcome=~"(x"}'), r"bad regular expression"),
        (ratio(denominator=""), r"denominator = '': must be a counter name"),
        (ratio(denominator=3), r"denominator = 3: must be a counter name"),
        (ratio(numerator=DEN), r"the same series as the denominator"),
        (ratio(max=0), r"max = 0: must be a number in \(0, 1\)"),
        (ratio(max=1), r"max = 1: must be a number in \(0, 1\)"),
        (ratio(max="1%"), r"max = '1%': must be a number"),
        (ratio(max=True), r"max = True: must be a number"),
        (ratio(relative=0.9), r"relative = 0.9: must be a number >= 1"),
        (ratio(mde=0.005), r"mde = 0.005: must be a number in \(0.01, 1\)"),
        (ratio(healthy=0.02), r"healthy = 0.02: must be a number in \(0, 0.01\)"),
        (ratio(threshold=0.01), r"unknown key 'threshold'; known keys: name, numerator"),
        ("order_failures", r"#1 \(shop.toml \[judge\]\): must be a table"),
    ],
)
def test_each_bad_field_is_named_with_its_value_and_source(table: Any, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        JudgeSettings.from_mapping({"ratios": [table]}, SOURCE)


def test_names_must_be_unique_and_ratios_an_array() -> None:
    with pytest.raises(ConfigError, match=r"#2 .* name = 'order_failures': already used"):
        settings(ratio(), ratio(numerator='orders_total{outcome="late"}'))
    with pytest.raises(ConfigError, match=r"\[\[judge.ratios\]\] \(shop.toml \[judge\]\): must be an array"):
        JudgeSettings.from_mapping({"ratios": {"name": "x"}}, SOURCE)


# ---------------------------------------------------------------------- judges on canned snapshots
def run_stage(judge: SequentialJudge | FixedJudge, canary_share: float, production_share: float = 0.0,
              rps: float = 100.0, seconds: int = 120) -> StageVerdict:  # fmt: skip
    """Feed ``judge`` one canned snapshot per second at weight 50 %: every request is one order."""
    now = [0.0]
    source = CannedMetricsSource(
        {
            "production": ArmRates(rps=rps, ratios=((NUM, DEN, production_share),)),
            "canary": ArmRates(rps=rps, ratios=((NUM, DEN, canary_share),)),
        },
        clock=lambda: now[0],
    )
    verdict = None
    for second in range(1, seconds + 1):
        now[0] = float(second)
        arms = source.snapshots(["canary", "production"])
        verdict = judge.observe(float(second), arms["canary"], arms["production"], 50)
        if verdict.decided:
            return verdict
    return judge.conclude(float(seconds), arms["canary"], arms["production"], 50)


def ratio_verdict(verdict: StageVerdict) -> Any:
    [check] = [check for check in verdict.checks if check.name == CHECK]
    return check


SHORT = {"min_soak_s": 5.0, "max_duration_s": 120.0, "on_inconclusive": "pass_with_warning"}


def test_sequential_judge_fails_a_canary_above_max_and_names_metric_share_and_counts() -> None:
    verdict = run_stage(SequentialJudge(settings(**SHORT)), canary_share=0.05)
    assert verdict.state is State.FAIL
    check = ratio_verdict(verdict)
    assert check.state is State.FAIL and check.evidence["decided_by"] == "fail_slo"
    assert f"{NUM} / {DEN} 5.00%" in check.message and "> max 1.00%" in check.message
    assert f"of {check.evidence['canary_trials']:.0f}, canary" in check.message
    assert verdict.elapsed_s < 30  # 5 × the SLO is caught within seconds at 50 orders/s
    assert {c.name for c in verdict.checks if c.state is State.FAIL} == {CHECK}


def test_sequential_judge_passes_a_healthy_canary() -> None:
    verdict = run_stage(SequentialJudge(settings(**SHORT)), canary_share=0.0)
    check = ratio_verdict(verdict)
    assert check.state is State.PASS and "< max 1.00% shown" in check.message, check.message
    assert check.evidence["canary_events"] == 0 and check.evidence["canary_trials"] > 0


def test_relative_fails_a_canary_below_max_but_above_production() -> None:
    # 0.8 % is under the 1 % SLO, but four times production's 0.2 %.
    loose = settings(ratio(relative=1.0), **SHORT)
    verdict = run_stage(SequentialJudge(loose), canary_share=0.008, production_share=0.002, rps=400)
    check = ratio_verdict(verdict)
    assert check.state is State.FAIL and check.evidence["decided_by"] == "fail_relative", check.message
    assert "vs production 0.1" in check.message and "more than 1× production's" in check.message
    # Without relative the same canary is not failed by the ratio check.
    plain = run_stage(SequentialJudge(settings(**SHORT)), canary_share=0.008, production_share=0.002, rps=400)
    assert ratio_verdict(plain).state is not State.FAIL


def test_declared_ratios_with_checks_that_leave_out_ratio_are_refused() -> None:
    # A profile's checks copied without "ratio" would leave declared checks never gating: refused at load.
    checks = ["error_rate", "latency", "traffic_split"]
    with pytest.raises(ConfigError, match=r"leaves out 'ratio' while \[\[judge.ratios\]\] declares order_failures"):
        JudgeSettings.from_mapping({"checks": checks, "ratios": [ratio()]}, "my.toml [judge]")
    assert JudgeSettings.from_mapping({"checks": checks, "ratios": []}, "my.toml [judge]").ratios == ()


def test_fixed_judge_compares_the_window_share_with_max_and_production() -> None:
    failed = ratio_verdict(run_stage(FixedJudge(settings(**SHORT)), canary_share=0.05))
    assert failed.state is State.FAIL and "5.00% ≥ max 1.00%" in failed.message
    healthy = ratio_verdict(run_stage(FixedJudge(settings(**SHORT)), canary_share=0.0))
    assert healthy.state is State.PASS
    relative = settings(ratio(relative=1.0), **SHORT)
    above = ratio_verdict(run_stage(FixedJudge(relative), canary_share=0.008, production_share=0.002))
    assert above.state is State.FAIL and "relative limit 1×" in above.message


def test_more_numerator_than_denominator_is_capped_not_a_crash() -> None:
    engine = EProcessEngine(settings())
    engine.update(Tick(weight=0.5, ratios={"order_failures": RatioTick(canary_events=5, canary_trials=3)}), 1.0)
    assert np.isfinite(engine.log_e[f"{CHECK}:fail_slo"])


# ---------------------------------------------------------------------- planner
def test_the_planner_has_a_row_per_ratio_test_and_the_alpha_budget_counts_them() -> None:
    base = JudgeSettings(p95_thresholds={"fast": 2.5})
    with_ratio = base.replace(ratios=settings(ratio(relative=1.0)).ratios)
    plan = plan_stage(25, 40, with_ratio)
    rows = {test.key: test for test in plan.tests if test.check == CHECK}
    assert set(rows) == {f"{CHECK}:fail_slo", f"{CHECK}:fail_relative", f"{CHECK}:pass_slo"}
    assert rows[f"{CHECK}:fail_slo"].effect == "share 2.00%" and rows[f"{CHECK}:pass_slo"].n90 is not None
    # Two more FAIL tests share α: 5 → 7.
    assert plan.alpha_i == pytest.approx(plan_stage(25, 40, base).alpha_i * 5 / 7)


def test_a_ratio_check_without_counters_to_read_is_refused_at_load() -> None:
    checks = settings()
    with pytest.raises(ConfigError, match=r"shop.toml: \[\[judge.ratios\]\] 'order_failures' divides counters, but "
                                          r"\[metrics\] counters = \"none\""):  # fmt: skip
        refuse_uncountable(checks.ratios, checks.checks, "none", "shop.toml")
    refuse_uncountable(checks.ratios, checks.checks, "service", "shop.toml")
    refuse_uncountable(checks.ratios, ("error_rate",), "none", "shop.toml")  # the family is off: nothing to read
    refuse_uncountable((), checks.checks, "none", "shop.toml")


def test_the_progress_line_table_and_record_show_a_ratio_check_like_the_others() -> None:
    verdict = run_stage(SequentialJudge(settings(**SHORT)), canary_share=0.05)
    line = format_progress(verdict, 25)
    assert "| order_failures 5.00% F |" in line, line
    table = format_table(verdict)
    assert any(row.startswith(f"{CHECK}  ") and "FAIL" in row for row in table.splitlines()), table
    again = StageVerdict.from_dict(json.loads(json.dumps(verdict.to_dict())))
    assert again.check(CHECK).evidence["numerator"] == NUM and again.check(CHECK).state is State.FAIL
