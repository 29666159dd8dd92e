"""How many workers a canary runs: ``[workers]`` in canary.toml, overridden by the runbook's variables."""

from __future__ import annotations

from typing import Any

import pytest

from canary_harness.deploy.workers import WorkerPlan, resolve_worker_plan
from canary_harness.errors import ConfigError


def test_no_workers_by_default() -> None:
    plan = resolve_worker_plan({}, {})
    assert plan == WorkerPlan(0, 0) and not plan and plan.roles == ()


def test_toml_gives_replicas_and_the_environment_wins() -> None:
    toml = {"workers": {"llm": 2, "rl": 1}}
    assert resolve_worker_plan(toml, {}) == WorkerPlan(llm=2, rl=1)
    plan = resolve_worker_plan(toml, {"RL_WORKER_CANARY_REPLICAS": "0", "LLM_WORKER_CANARY_REPLICAS": " 1 "})
    assert plan == WorkerPlan(llm=1, rl=0) and plan.roles == ("llm",)


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ({"workers": {"llm": -1}}, {}, "worker replicas -1 (canary.toml [workers] llm)"),
        ({"workers": {"rl": True}}, {}, "worker replicas True (canary.toml [workers] rl)"),
        ({"workers": {"gpu": 1}}, {}, "unknown keys ['gpu']"),
        ({"workers": 3}, {}, "[workers]: must be a table"),
        ({}, {"RL_WORKER_CANARY_REPLICAS": "two"}, "worker replicas 'two' (from RL_WORKER_CANARY_REPLICAS)"),
        ({}, {"LLM_WORKER_CANARY_REPLICAS": "17"}, "must be an integer in 0..16"),
    ],
)
def test_bad_replicas_name_the_value_and_its_source(toml: dict[str, Any], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_worker_plan(toml, env)
    assert message in str(caught.value)
