"""The stage planner and `canary plan`."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.cli import main
from canary_harness.errors import ConfigError
from canary_harness.judge import JudgeSettings, format_plan, plan_stage
from canary_harness.judge.eprocess import BernoulliMixture
from canary_harness.judge.power import sample_sizes
from canary_harness.judge.stage_plan import LIKELY, NEVER, NOT_APPLICABLE

ONE_MODE = JudgeSettings(p95_thresholds={"fast": 2.5})  # five FAIL tests: α_i = 0.002 (docs/judge.md)


def test_stage_five_percent_at_fifty_rps() -> None:
    plan = plan_stage(5, 50, ONE_MODE)
    assert plan.alpha_i == pytest.approx(0.002) and plan.beta_i == pytest.approx(0.05 / 3)
    assert plan.canary_rps == pytest.approx(2.5)
    by_key = {t.key: t for t in plan.tests}
    slo = by_key["error_rate:fail_slo"]
    assert (slo.n50, slo.n90) == (243, 500)  # the design's reference figures (docs/judge.md)
    assert slo.seconds50 == pytest.approx(243 / 2.5) and slo.reach == LIKELY
    loss = by_key["rl_loss:fail"]
    # One single-update block every 1.25 s on each arm: a pair every 1.25 s, loss ×3 decided well inside.
    assert loss.unit == "pairs" and loss.seconds50 == pytest.approx(loss.n50 * 1.25)  # type: ignore[operator]
    assert loss.seconds50 is not None and loss.seconds50 < 120 and loss.reach == LIKELY
    relative = by_key["error_rate:fail_relative"]
    assert relative.seconds50 is not None and relative.seconds50 < slo.seconds50  # type: ignore[operator]
    passing = by_key["error_rate:pass_slo"]
    assert passing.n50 == sample_sizes(BernoulliMixture.pass_form(0.005), 0.002, plan.beta_i).n50
    assert passing.reach != LIKELY  # 2 250 canary requests in 900 s cannot show 0.2 % < 0.5 % reliably


def test_a_stage_that_can_never_pass_says_so() -> None:
    plan = plan_stage(1, 5, ONE_MODE)
    assert not plan.can_pass
    text = format_plan(plan)
    assert "This stage can never reach a PASS verdict within 900 s at 5 rps" in text
    assert "error_rate needs at least" in text and "the stage gets ~45" in text
    assert {t.reach for t in plan.tests if t.key == "error_rate:pass_slo"} == {NEVER}


def test_a_large_stage_gives_a_pass_estimate() -> None:
    plan = plan_stage(25, 50, ONE_MODE)
    assert plan.can_pass
    t50, t90 = plan.pass_seconds
    assert t50 is not None and t90 is not None and 60 <= t50 < t90 <= 900
    assert f"A healthy canary should PASS after ~{t50:.0f} s" in format_plan(plan)


def test_full_weight_has_no_relative_tests() -> None:
    plan = plan_stage(100, 50, ONE_MODE)
    relative = [t for t in plan.tests if t.key.endswith("fail_relative")]
    assert relative and all(t.reach == NOT_APPLICABLE for t in relative)


def test_table_lists_every_test() -> None:
    plan = plan_stage(5, 50, JudgeSettings())
    text = format_plan(plan)
    assert text.splitlines()[1].split() == [
        "check",
        "test",
        "true",
        "effect",
        "n50",
        "n90",
        "t50",
        "t90",
        "in",
        "window",
    ]
    for mode in ("fast", "balanced", "creative"):
        assert f"p95_latency[{mode}]" in text
    assert len(plan.tests) == 3 + 3 * 3 + 2


@pytest.mark.parametrize(
    ("stage", "rps", "mix", "pattern"),
    [
        (101, 50.0, None, r"stage 101: must be an integer percentage"),
        (5, 0.0, None, r"request rate 0.0: must be a positive number"),
        (5, 50.0, {"turbo": 1.0}, r"mode mix entry 'turbo'"),
        (5, 50.0, {"fast": -1.0}, r"mode mix entry fast=-1.0"),
        (5, 50.0, {"fast": 0.0}, r"must add up to more than 0"),
    ],
)
def test_bad_plan_input(stage: int, rps: float, mix: dict[str, float] | None, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        plan_stage(stage, rps, ONE_MODE, mix)


def test_cli_prints_the_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "canary.toml"
    config.write_text("[judge]\np95_thresholds = { fast = 2.5 }\n", encoding="utf-8")
    assert main(["plan", "--stage", "5", "--rps", "50", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Stage 5 % at 50 rps" in out and "243 req" in out and "α_i = 0.002" in out
    assert main(["plan", "--stage", "5", "--rps", "50", "--observation-period", "120", "--config", str(config)]) == 0
    assert "window 120 s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stage", "150", "--rps", "50"], "weight '150' (from --stage)"),
        (["--stage", "5", "--rps", "fast"], "value 'fast' (from --rps)"),
        (
            ["--stage", "5", "--rps", "50", "--observation-period", "-3"],
            "value '-3' (from --observation-period)",
        ),
    ],
)
def test_cli_bad_values_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no canary.toml here: defaults
    assert main(["plan", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_cli_bad_config_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "canary.toml"
    config.write_text("[judge]\nalpha = 2\n", encoding="utf-8")
    assert main(["plan", "--stage", "5", "--rps", "50", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "judge setting 'alpha' = 2.0" in err and str(config) in err


def test_rate_to_decide_sizes_the_load_for_the_slowest_test() -> None:
    from canary_harness.judge.plan_text import rate_to_decide

    settings = JudgeSettings(p95_thresholds={"fast": 2.5}, max_duration_s=900)
    plan = plan_stage(25, 20, settings)
    rate, why = rate_to_decide(plan, max_rps=500)
    assert 20 < rate < 500 and "error_rate (PASS" in why
    # At that rate every request-counted test's n90 fits the window (the planner's own figures agree).
    again = plan_stage(25, rate, settings)
    fits = [t for t in again.tests if t.unit == "requests" and t.n90 is not None and t.reach != "n/a"]
    assert fits and all(t.seconds90 is not None and t.seconds90 <= 900 + 1e-6 for t in fits)
    # The same need from a plan made at another rate: n90 does not depend on the rate.
    assert rate_to_decide(plan_stage(25, 80, settings), max_rps=500)[0] == pytest.approx(rate, abs=0.2)
    capped, why = rate_to_decide(plan_stage(1, 20, settings), max_rps=60)
    assert capped == 60 and "capped at the load's maximum 60 req/s" in why and "undecided" in why
    with pytest.raises(ConfigError, match="load max rate 0"):
        rate_to_decide(plan, max_rps=0)
