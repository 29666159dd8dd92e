"""Release checks of one rollout stage. Run them with ``pytest --canary-version V --stage N``;
the canary plugin provides every fixture used here (canary_stage, canary_check, clients...)."""

from __future__ import annotations

import pytest

from canary_harness.pytest_plugin.fixtures import judged_latency_groups


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``latency_group``: every latency group the judge checks (fragrance-ai: its three LLM modes)."""
    if "latency_group" in metafunc.fixturenames:
        metafunc.parametrize("latency_group", judged_latency_groups(metafunc.config))
