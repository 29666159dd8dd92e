"""canary_harness.judge: stage judges, verdicts and the planner (pure code, no I/O).

``make_judge("sequential" | "fixed", settings)`` builds the judge the observation loop feeds;
``plan_stage`` / ``format_plan`` say before a stage how long each check needs. The statistics
are explained in the repository's docs/judge.md.
"""

from __future__ import annotations

from canary_harness.errors import ConfigError
from canary_harness.judge.check_names import COVERAGE, ERROR_RATE, RL_LOSS, SCHEMA, SPLIT, latency_check
from canary_harness.judge.fixed import FixedJudge
from canary_harness.judge.plan_text import format_plan
from canary_harness.judge.planner import plan_stage
from canary_harness.judge.protocol import Judge
from canary_harness.judge.sequential import SequentialJudge
from canary_harness.judge.settings import JudgeSettings
from canary_harness.judge.stage_plan import StagePlan, TestPlan
from canary_harness.judge.verdict import CheckVerdict, StageVerdict, State

JUDGE_KINDS = ("sequential", "fixed")
DEFAULT_JUDGE = "sequential"


def make_judge(kind: str, settings: JudgeSettings, shadow_share: float = 0.0) -> Judge:
    """A fresh judge for one stage: "sequential" (the default) or "fixed"; ``shadow_share`` (0..1) for a shadow
    stage (stage 0: the canary judged on copies of that share of production's requests)."""
    if kind == "sequential":
        return SequentialJudge(settings, shadow_share)
    if kind == "fixed":
        return FixedJudge(settings, shadow_share)
    raise ConfigError(f"judge {kind!r}: must be one of {', '.join(JUDGE_KINDS)}")


__all__ = [
    "CheckVerdict",
    "ERROR_RATE",
    "RL_LOSS",
    "SCHEMA",
    "SPLIT",
    "COVERAGE",
    "DEFAULT_JUDGE",
    "FixedJudge",
    "JUDGE_KINDS",
    "Judge",
    "JudgeSettings",
    "SequentialJudge",
    "StagePlan",
    "StageVerdict",
    "State",
    "TestPlan",
    "format_plan",
    "latency_check",
    "make_judge",
    "plan_stage",
]
