"""The names of a stage's checks, as the judges, the release checks and the report spell them."""

from __future__ import annotations

from canary_harness.judge.ratio_settings import RATIO

ERROR_RATE = "error_rate"
SCHEMA = "schema_failures"
RL_LOSS = "rl_loss"
SPLIT = "traffic_split"
COVERAGE = "mirror_coverage"


def latency_check(mode: str) -> str:
    """Check name of the p95 latency of one LLM mode."""
    return f"p95_latency[{mode}]"


def check_family(check: str) -> str:
    """The family of a check (JudgeSettings.checks): ``latency`` for every ``p95_latency[...]``, and
    ``traffic_split`` for the mirror coverage, the split check of a shadow stage."""
    if check.startswith("p95_latency["):
        return "latency"
    if check.startswith(f"{RATIO}["):
        return RATIO
    return SPLIT if check == COVERAGE else check
