"""The measured rates a stage leaves for the next one: written atomically, read back, a damaged file ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.errors import ConfigError
from canary_harness.judge.rates import StreamRates
from canary_harness.pytest_plugin.options import parse_load_rate
from canary_harness.pytest_plugin.rates_store import RATES_FILE, load_rates, save_rates

RATES = StreamRates({"fast": 30.0, "balanced": 12.0}, 0.004, 0.0038, "measured over 180 s of the 5 % stage", 180.0)


def test_saved_rates_are_read_back(tmp_path: Path) -> None:
    assert load_rates(tmp_path) == (None, "")  # no stage ran yet: defaults, nothing to say
    save_rates(tmp_path, RATES)
    assert load_rates(tmp_path) == (RATES, "")
    assert [p.name for p in tmp_path.iterdir()] == [RATES_FILE]  # no temporary file left behind


@pytest.mark.parametrize("text", ["{not json", '{"mode_rps": {"fast": "x"}}', "[1, 2]"])
def test_a_damaged_file_is_reported_and_ignored(tmp_path: Path, text: str) -> None:
    (tmp_path / RATES_FILE).write_text(text, encoding="utf-8")
    rates, problem = load_rates(tmp_path)
    assert rates is None and problem.startswith(f"measured rates in {tmp_path / RATES_FILE} ignored: ")


def test_load_rate_takes_auto_or_a_positive_number() -> None:
    assert parse_load_rate("auto", "from --load-rate") == "auto"
    assert parse_load_rate(" AUTO ", "from --load-rate") == "auto"
    assert parse_load_rate("12.5", "from --load-rate") == 12.5
    with pytest.raises(ConfigError, match=r"load rate 'fast' \(from --load-rate\): must be a positive number"):
        parse_load_rate("fast", "from --load-rate")
