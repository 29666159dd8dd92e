"""The runbook's compose files: the rules docker-compose 1.29 on these hosts needs, read from the files.

(The files run for real in tests/integration/test_compose_runbook.py; this catches a rule broken by an
edit in a second.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canary_harness.deploy.compose import render_override
from canary_harness.deploy.protocol import ServiceSpec
from canary_harness.traffic.render import render_upstream

yaml = pytest.importorskip("yaml")

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
REPO = COMPOSE.parent


def services() -> dict[str, dict[str, object]]:
    """Every service of both files (the canary file's entries merged over production's)."""
    merged: dict[str, dict[str, object]] = {}
    for name in ("docker-compose.production.yml", "docker-compose.canary.yml"):
        for service, body in yaml.safe_load((COMPOSE / name).read_text())["services"].items():
            merged.setdefault(service, {}).update(body)
    return merged


def test_every_service_uses_host_networking_and_a_python_healthcheck() -> None:
    for name, body in services().items():
        assert body.get("network_mode") == "host", name
        if name != "grafana":
            test = body["healthcheck"]["test"]  # type: ignore[index]
            assert test[:2] == ["CMD", "python3"] and "curl" not in " ".join(test), name


def test_runbook_names_and_profiles() -> None:
    found = services()
    names = {"app", "app-canary", "nginx", "worker-llm-canary", "worker-rl-canary", "prometheus", "grafana"}
    assert names <= set(found)
    assert found["nginx"]["container_name"] == "fragrance-ai-nginx"
    assert found["nginx"]["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert found["app"]["image"] == "fragrance-ai-app:${PRODUCTION_VERSION:-v0.1.0}"
    assert "../nginx/nginx.canary.conf:/etc/nginx/templates/nginx.conf:ro" in found["nginx"]["volumes"]  # type: ignore[operator]
    for worker in ("worker-llm-canary", "worker-rl-canary"):
        assert found[worker]["profiles"] == ["canary-workers"]
    canary_env = found["app-canary"]["environment"]
    assert canary_env["USE_LLM_ENSEMBLE"] == "${USE_LLM_ENSEMBLE:-true}"  # type: ignore[index]
    assert "LLM_ENSEMBLE_MODELS" in canary_env  # type: ignore[operator]
    assert found["app-canary"]["command"] == ["--port", "${CANARY_API_PORT:-8001}"]


def test_env_example_names_the_runbook_variables() -> None:
    keys = {line.split("=", 1)[0] for line in (COMPOSE / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")}  # fmt: skip
    assert {"CANARY_VERSION", "CANARY_API_PORT", "USE_LLM_ENSEMBLE", "LLM_ENSEMBLE_MODELS",
            "LLM_WORKER_CANARY_REPLICAS", "RL_WORKER_CANARY_REPLICAS"} <= keys  # fmt: skip


def test_shipped_upstream_is_the_template_rendered_at_zero() -> None:
    template = (REPO / "nginx" / "conf.d" / "upstream.conf.template").read_text()
    expected = render_upstream(template, 100, 0, generation="compose-initial")
    assert (COMPOSE / "nginx" / "conf.d" / "upstream.conf").read_text() == expected


def test_override_names_the_environment_without_its_values_and_mounts_the_log_directory(tmp_path: Path) -> None:
    spec = ServiceSpec("canary", "v0.2.0", port=18001, env={"OPENAI_API_KEY": "sk-planted-secret"},
                       log_path=tmp_path / "logs" / "canary.log")  # fmt: skip
    text = render_override(spec)
    assert "sk-planted-secret" not in text
    body = json.loads(text)["services"]["app-canary"]
    assert body["environment"] == ["OPENAI_API_KEY"]
    assert body["command"] == ["--port", "18001", "--log-file", "/var/log/fragrance-ai/canary.jsonl"]
    assert body["volumes"] == [f"{tmp_path / 'logs'}:/var/log/fragrance-ai"]
    assert body["labels"]["canary-harness.run-dir"] == str(tmp_path)


def test_override_schedules_the_role_in_its_own_cgroup_only_when_asked(tmp_path: Path) -> None:
    spec = ServiceSpec("canary", "v0.2.0", port=18001, log_path=tmp_path / "logs" / "canary.log")
    assert "cgroup_parent" not in json.loads(render_override(spec))["services"]["app-canary"]
    body = json.loads(render_override(spec, "/canary-harness-canary"))["services"]["app-canary"]
    assert body["cgroup_parent"] == "/canary-harness-canary"
