"""The NGINX grouping header as a setting: hello-service's requests tagged ``X-Route-Class: read|write`` (the
load's own request headers), ``[traffic] group_header = "X-Route-Class"``, latency judged per group from the
harness's NGINX access log on the real stack."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.stack_state import load_state
from tests.integration.stagefixtures import REPO, StageRunner

pytest_plugins = ("tests.integration.stagefixtures",)
pytestmark = pytest.mark.integration

PROFILE = ("--canary-target", str(REPO / "examples" / "hello-service.toml"))
CONFIG = """\
[traffic]
group_header = "X-Route-Class"

[metrics]
default_group = ""          # every request carries its group

[judge]
p95_thresholds = { read = 0.5, write = 0.5 }

[[load.requests]]
path = "/items"
weight = 3
headers = { X-Route-Class = "read" }

[[load.requests]]
method = "POST"
path = "/orders"
json = { item = "tea" }
status = [201]
headers = { X-Route-Class = "write" }
"""
GROUPS = {"p95_latency[read]", "p95_latency[write]"}


def test_latency_is_judged_per_group_of_the_configured_header(stage_runner: StageRunner, tmp_path: Path) -> None:
    # A first stage starts the stack with the default header (X-LLM-Mode); its verdict does not matter here.
    stage_runner.run(25, 3, *PROFILE)
    first = load_state(stage_runner.run_dir)
    assert first is not None and first.nginx is not None and first.nginx.pid is not None
    access_log = stage_runner.run_dir / "nginx" / "logs" / "canary_access.jsonl"
    before = len(access_log.read_text().splitlines())  # the first stage's lines: no group

    config = tmp_path / "canary.toml"
    config.write_text(CONFIG)
    run = stage_runner.run(25, 20, *PROFILE, "--canary-config", str(config))
    assert run.returncode == pytest.ExitCode.OK, run.describe()
    assert "logs another group header than X-Route-Class: restarting it" in run.output, run.describe()
    verdict = StageRecord.read(run.record_files()[-1]).verdict  # the second stage's record
    assert verdict is not None and verdict["state"] == "PASS", verdict
    states = {check["name"]: check["state"] for check in verdict["checks"]}
    assert all(states[name] == "PASS" for name in GROUPS), states
    assert {name for name in states if name.startswith("p95_latency[")} == GROUPS, states

    second = load_state(stage_runner.run_dir)
    assert second is not None and second.nginx is not None and second.nginx.pid != first.nginx.pid
    nginx = stage_runner.run_dir / "nginx"
    assert "$http_x_route_class" in (nginx / "nginx.conf").read_text()
    lines = [json.loads(line) for line in access_log.read_text().splitlines()[before:] if line]
    groups = Counter((entry["route"], entry["group_asked"]) for entry in lines if entry["route"] != "/health")
    assert groups[("/items", "read")] > 0 and groups[("/orders", "write")] > 0, groups
    # Every load request carries its group. The only untagged ones are the release checks' smoke journey
    # walked once through NGINX (GET /items, POST /orders): each reaches this canary log when the stage's
    # 25 % weight sends it to the canary, so at most once per step.
    untagged = {key: count for key, count in groups.items() if key[1] == ""}
    assert set(groups) - set(untagged) == {("/items", "read"), ("/orders", "write")}, groups
    assert set(untagged) <= {("/items", ""), ("/orders", "")} and max(untagged.values(), default=0) <= 1, groups
