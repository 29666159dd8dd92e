"""Release checks of one rollout stage. Run them with ``pytest --canary-version V --stage N``;
the canary plugin provides every fixture used here (canary_stage, canary_check, clients...)."""

from __future__ import annotations

import pytest

from canary_harness.pytest_plugin.fixtures import judged_latency_groups, judged_ratio_checks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``latency_group``: every latency group the judge checks (fragrance-ai: its three LLM modes);
    ``ratio_check``: every counter-ratio check of ``[[judge.ratios]]``."""
    if "latency_group" in metafunc.fixturenames:
        metafunc.parametrize("latency_group", judged_latency_groups(metafunc.config))
    if "ratio_check" in metafunc.fixturenames:  # none: the test is skipped as an empty parameter set
        metafunc.parametrize("ratio_check", judged_ratio_checks(metafunc.config))
