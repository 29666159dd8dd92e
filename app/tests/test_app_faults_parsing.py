"""Unit tests: FRAGRANCE_FAULTS parsing and the latency fault arithmetic."""

from __future__ import annotations

import pytest

from fragrance_ai.errors import SettingsError
from fragrance_ai.faults import FaultInjector, Faults, parse_faults


def test_empty_spec_is_a_healthy_release() -> None:
    for text in (None, "", " , "):
        faults = parse_faults(text)
        assert faults == Faults()
        assert not faults.active


def test_every_key_is_parsed() -> None:
    faults = parse_faults(
        "error_rate=0.2, schema_rate=0.1,loss_factor=3,crash_after_s=30,latency_factor=2,latency_add_ms=150"
    )
    assert (faults.error_rate, faults.schema_rate, faults.loss_factor, faults.crash_after_s) == (
        0.2,
        0.1,
        3,
        30,
    )
    assert dict(faults.latency_factor) == {"fast": 2.0, "balanced": 2.0, "creative": 2.0}
    assert dict(faults.latency_add_ms) == {"fast": 150.0, "balanced": 150.0, "creative": 150.0}
    assert faults.active and faults.given["error_rate"] == 0.2


def test_per_mode_value_overrides_the_global_one_for_that_mode_only() -> None:
    faults = parse_faults("latency_factor=1.5,latency_factor.creative=2,latency_add_ms.fast=300")
    assert dict(faults.latency_factor) == {"fast": 1.5, "balanced": 1.5, "creative": 2.0}
    assert dict(faults.latency_add_ms) == {"fast": 300.0, "balanced": 0.0, "creative": 0.0}


def test_extra_latency_is_factor_on_elapsed_plus_unscaled_milliseconds() -> None:
    faults = parse_faults("latency_factor.creative=3,latency_add_ms.fast=300")
    assert faults.extra_latency_s("creative", 0.5) == pytest.approx(1.0)  # 0.5 s becomes 1.5 s
    assert faults.extra_latency_s("fast", 0.0) == pytest.approx(0.3)
    assert faults.extra_latency_s("balanced", 2.0) == 0.0


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("error_rate=abc", "FRAGRANCE_FAULTS: error_rate='abc' is not a number in [0, 1]"),
        ("error_rate=1.5", "error_rate='1.5' is not a number in [0, 1]"),
        ("schema_rate=-0.1", "schema_rate='-0.1' is not a number in [0, 1]"),
        ("error_rate=nan", "error_rate='nan'"),
        ("loss_factor=0", "loss_factor='0' is not a number > 0"),
        ("latency_factor=0.5", "latency_factor='0.5' is not a number >= 1"),
        ("latency_add_ms=-5", "latency_add_ms='-5'"),
        ("crash_after_s=inf", "crash_after_s='inf'"),
        ("latency_factor.turbo=2", "unknown mode 'turbo'"),
        ("error_rate.fast=0.1", "only latency_factor, latency_add_ms take a .mode suffix"),
        ("eror_rate=0.1", "unknown fault 'eror_rate'"),
        ("error_rate", "'error_rate' is not key=value"),
        ("error_rate=0.1,error_rate=0.2", "fault 'error_rate' is given twice"),
    ],
)
def test_bad_specs_are_refused_naming_the_value(spec: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_faults(spec)
    assert expected in str(caught.value)
    assert str(caught.value).startswith("FRAGRANCE_FAULTS: ")


def test_injector_draws_at_the_configured_rate_and_never_without_a_fault() -> None:
    draws = 20_000
    injector = FaultInjector(parse_faults("error_rate=0.25"), seed=7)
    hits = sum(injector.fail_request() for _ in range(draws))
    # 0.25 * 20000 = 5000, sd ~61: a 6-sigma band.
    assert 5000 - 370 < hits < 5000 + 370
    healthy = FaultInjector(Faults(), seed=7)
    assert not any(healthy.fail_request() or healthy.break_schema() for _ in range(draws))


def test_loss_nan_fault_is_a_flag() -> None:
    """``loss_nan=1`` makes every reported loss NaN (a diverged model); other values are refused."""
    assert parse_faults("loss_nan=1").loss_nan is True
    assert parse_faults("loss_nan=0").loss_nan is False and parse_faults("").loss_nan is False
    with pytest.raises(SettingsError, match="loss_nan='2' is not 0 or 1"):
        parse_faults("loss_nan=2")
