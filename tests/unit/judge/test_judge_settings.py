"""JudgeSettings from a canary.toml [judge] table: defaults and clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from canary_harness.errors import ConfigError
from canary_harness.judge import JudgeSettings

SOURCE = "canary.toml [judge]"


def test_defaults_are_the_classic_thresholds() -> None:
    settings = JudgeSettings()
    assert (settings.alpha, settings.beta) == (0.01, 0.05)
    assert settings.p95_thresholds == {"fast": 2.5, "balanced": 3.2, "creative": 4.5}
    assert settings.error_rate_slo == 0.005 and settings.loss_ratio == 2.0
    assert settings.on_inconclusive == "extend_if_suspect" and settings.max_duration_s == 900
    assert settings.modes == ("fast", "balanced", "creative")
    # The loop may run into the extension; a stage without a suspect check still ends at 900 s.
    assert settings.observation_limit_s == 1800
    assert settings.replace(on_inconclusive="pass_with_warning").observation_limit_s == 900


def test_from_mapping_reads_every_kind_of_value() -> None:
    settings = JudgeSettings.from_mapping(
        {
            "alpha": 0.02,
            "max_duration_s": 600,
            "early_pass": False,
            "on_inconclusive": "extend",
            "extend_limit_s": 300,
            "loss_block_updates": 8,
            "p95_thresholds": {"fast": 2, "creative": 4.5},
        },
        SOURCE,
    )
    assert settings.alpha == 0.02 and settings.max_duration_s == 600.0 and settings.early_pass is False
    assert settings.p95_thresholds == {"fast": 2.0, "creative": 4.5}
    assert settings.modes == ("fast", "creative")
    assert settings.observation_limit_s == 900


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"alpah": 0.01}, r"unknown judge setting 'alpah' \(canary.toml \[judge\]\); known settings: alpha"),
        (
            {"alpha": 1.5},
            r"judge setting 'alpha' = 1.5: must be a number in \(0, 0.5\) \(canary.toml \[judge\]\)",
        ),
        (
            {"alpha": "0.01"},
            r"judge setting 'alpha' = '0.01' \(canary.toml \[judge\]\): must be a finite number",
        ),
        ({"early_pass": 1}, r"'early_pass' = 1 .*must be true or false"),
        ({"loss_block_updates": 2.5}, r"'loss_block_updates' = 2.5 .*must be an integer"),
        ({"loss_block_updates": 0}, r"'loss_block_updates' = 0: must be a number ≥ 1"),
        (
            {"on_inconclusive": "ignore"},
            r"'on_inconclusive' = 'ignore': must be one of pass_with_warning, fail, extend",
        ),
        ({"p95_thresholds": {"turbo mode": 2.0}}, r"has group 'turbo mode': a latency group"),
        ({"checks": ["latency", "vibes"]}, r"'checks' = \['latency', 'vibes'\]: must name some of error_rate"),
        ({"checks": []}, r"'checks' = \[\]: must name some of"),
        ({"checks": "latency"}, r"'checks' = 'latency' .*must be a list of names"),
        ({"p95_thresholds": {"fast": -1}}, r"'p95_thresholds.fast' = -1.0: must be a positive number"),
        ({"p95_thresholds": 2.5}, r"'p95_thresholds' = 2.5 .*must be a table"),
        ({"healthy_error_rate": 0.01}, r"'healthy_error_rate' = 0.01: must be below error_rate_slo"),
        ({"min_soak_s": 1000}, r"'min_soak_s' = 1000.0: must be at most max_duration_s"),
        ({"max_duration_s": float("inf")}, r"'max_duration_s' = inf .*must be a finite number"),
    ],
)
def test_bad_values_name_key_value_and_source(data: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as caught:
        JudgeSettings.from_mapping(data, SOURCE)
    assert SOURCE in str(caught.value)


def test_not_a_table() -> None:
    with pytest.raises(ConfigError, match=r"judge settings \(x.toml\): must be a table"):
        JudgeSettings.from_mapping([1, 2], "x.toml")  # type: ignore[arg-type]


def test_replace_validates_again() -> None:
    with pytest.raises(ConfigError, match="'beta' = 0.0"):
        JudgeSettings().replace(beta=0.0)


def test_any_latency_group_may_be_judged_llm_modes_first() -> None:
    settings = JudgeSettings.from_mapping({"p95_thresholds": {"checkout": 0.8, "fast": 2.5, "search": 0.3}}, "t")
    assert settings.modes == ("fast", "checkout", "search")
