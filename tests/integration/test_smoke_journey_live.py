"""A journey declared in canary.toml walked by ``canary smoke`` against a real fragrance-ai canary: it
passes, a failing assertion exits 1 naming the field, a bad step exits 2 naming step and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_harness.stack import LocalStack
from tests.integration.stackfixtures import CANARY_VERSION
from tests.integration.test_runbook_scripts import canary

pytest_plugins = ("tests.integration.stackfixtures",)

pytestmark = pytest.mark.integration

BALANCED_JOURNEY = """
[[smoke]]
path = "/health"
expect = [{ field = "version", equals = "{version}" }, { field = "status", one_of = ["healthy"] }]

[[smoke]]
method = "POST"
path = "/dna/create"
json = { brief = "Smoky vetiver for a rainy afternoon", mode = "balanced" }
expect = [{ field = "dna_id", prefix = "dna_" }]
capture = { dna_id = "dna_id" }

[[smoke]]
name = "two options for {dna_id}"
method = "POST"
path = "/evolve/options"
json = { dna_id = "{dna_id}", brief = "Smoky vetiver", mode = "balanced", algorithm = "PPO", num_options = 2 }
expect = [{ field = "options", length = 2 }, { field = "options.1.id", exists = true }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "canary.toml"
    path.write_text(text)
    return path


def test_a_declared_journey_passes_against_the_canary(canary_stack_at_zero: LocalStack, tmp_path: Path) -> None:
    config = write(tmp_path, BALANCED_JOURNEY)
    done = canary("smoke", "--canary", "--config", str(config), run_dir=canary_stack_at_zero.run_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ok   GET /health (HTTP 200) version ok; status ok")
    assert lines[2].startswith("ok   two options for dna_") and f"smoke passed: canary {CANARY_VERSION}" in lines[-1]


def test_a_failing_assertion_exits_1_naming_the_field(canary_stack_at_zero: LocalStack, tmp_path: Path) -> None:
    config = write(tmp_path, BALANCED_JOURNEY.replace("length = 2", "length = 5"))
    failed = canary("smoke", "--canary", "--config", str(config), run_dir=canary_stack_at_zero.run_dir)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL two options for dna_" in failed.stdout and "field 'options' has length 2, expected 5" in failed.stdout


def test_a_bad_step_exits_2_naming_step_and_key(canary_stack_at_zero: LocalStack, tmp_path: Path) -> None:
    config = write(tmp_path, BALANCED_JOURNEY.replace('path = "/evolve/options"', 'path = "/evolve/{experiment}"'))
    bad = canary("smoke", "--canary", "--config", str(config), run_dir=canary_stack_at_zero.run_dir)
    assert bad.returncode == 2 and "step 3: uses {experiment} before any step captures it" in bad.stderr, bad.stderr
    assert bad.stdout == ""
