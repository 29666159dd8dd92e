"""The CPU cgroup parent of each role's container, by the engine's cgroup driver."""

from __future__ import annotations

from typing import Any

import pytest

from canary_harness.deploy.container_cgroups import cgroup_parent_for, scheduling_options


@pytest.mark.parametrize("role", ["production", "canary", "worker-rl"])
def test_cgroupfs_gives_each_role_its_own_parent(role: str) -> None:
    assert cgroup_parent_for(role, "cgroupfs") == f"/canary-harness-{role}"


@pytest.mark.parametrize("driver", ["systemd", ""])
def test_other_drivers_keep_the_engines_default(driver: str) -> None:
    assert cgroup_parent_for("canary", driver) is None


class EngineInfo:
    """An SDK client's ``info()`` and nothing else."""

    def __init__(self, driver: str) -> None:
        self.driver = driver

    def info(self) -> dict[str, Any]:
        return {"CgroupDriver": self.driver}


def test_run_options_ask_for_the_parent_only_under_cgroupfs() -> None:
    assert scheduling_options(EngineInfo("cgroupfs"), "canary") == {"cgroup_parent": "/canary-harness-canary"}
    assert scheduling_options(EngineInfo("systemd"), "canary") == {}
