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
    if "ratio_check" in metafunc.fixturenames:  # none: deselected below
        metafunc.parametrize("ratio_check", judged_ratio_checks(metafunc.config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A stage without counter-ratio checks has no ratio gate: deselected, not a skipped empty parameter set
    (every gate of a passing stage passes)."""
    if judged_ratio_checks(config):
        return
    gateless = [item for item in items if "ratio_check" in getattr(item, "fixturenames", ())]
    if gateless:
        config.hook.pytest_deselected(items=gateless)
        items[:] = [item for item in items if item not in gateless]
