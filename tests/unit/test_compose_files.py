"""The runbook's compose files: the rules docker-compose 1.29 on these hosts needs, read from the files.

(The files run for real in tests/integration/test_compose_runbook.py; this catches a rule broken by an
edit in a second.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canary_harness.deploy.compose import recorded_target, render_override, runbook_target
from canary_harness.deploy.compose_target import ComposeRole, ComposeTarget
from canary_harness.deploy.protocol import ServiceSpec
from canary_harness.errors import BackendError
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


RUNBOOK = runbook_target(COMPOSE)


def test_override_names_the_environment_without_its_values_and_mounts_the_log_directory(tmp_path: Path) -> None:
    spec = ServiceSpec("canary", "v0.2.0", port=18001, env={"OPENAI_API_KEY": "sk-planted-secret"},
                       log_path=tmp_path / "logs" / "canary.log")  # fmt: skip
    text = render_override(spec, RUNBOOK)
    assert "sk-planted-secret" not in text
    body = json.loads(text)["services"]["app-canary"]
    assert body["environment"] == ["OPENAI_API_KEY"]
    assert body["command"] == ["--port", "18001", "--log-file", "/var/log/fragrance-ai/canary.jsonl"]
    assert body["volumes"] == [f"{tmp_path / 'logs'}:/var/log/fragrance-ai"]
    assert body["labels"]["canary-harness.run-dir"] == str(tmp_path)


def test_override_schedules_the_role_in_its_own_cgroup_only_when_asked(tmp_path: Path) -> None:
    spec = ServiceSpec("canary", "v0.2.0", port=18001, log_path=tmp_path / "logs" / "canary.log")
    assert "cgroup_parent" not in json.loads(render_override(spec, RUNBOOK))["services"]["app-canary"]
    body = json.loads(render_override(spec, RUNBOOK, "/canary-harness-canary"))["services"]["app-canary"]
    assert body["cgroup_parent"] == "/canary-harness-canary"


def test_another_services_override_keeps_its_argv_and_labels_its_role(tmp_path: Path) -> None:
    target = ComposeTarget(
        files=(tmp_path / "shop.yml",),
        roles={"production": ComposeRole("shop", "V", "P"), "canary": ComposeRole("shop-next", "CV", "CP")},
    )
    spec = ServiceSpec("canary", "v$2", port=18001, env={"SHOP_FAULT": "1"}, log_path=tmp_path / "logs" / "canary.log")
    document = json.loads(render_override(spec, target))
    assert list(document["services"]) == ["shop-next"]
    body = document["services"]["shop-next"]
    # No runbook argv, log mount or user: the team's own file decides how the service runs.
    assert "command" not in body and "volumes" not in body and "user" not in body, body
    assert body["environment"] == ["SHOP_FAULT"]
    assert body["labels"]["canary-harness.role"] == "canary"
    assert body["labels"]["canary-harness.version"] == "v$$2"  # docker-compose would interpolate a bare $


def test_the_override_records_its_target_for_a_later_process(tmp_path: Path) -> None:
    target = ComposeTarget(
        files=(Path("shop.yml"),),
        roles={"production": ComposeRole("shop", "V", "P"), "canary": ComposeRole("shop-next", "CV", "CP")},
        image="shop:{version}",
    )
    log = tmp_path / "logs" / "canary.log"
    assert recorded_target(log) is None  # nothing written yet: the runbook's
    log.parent.mkdir()
    log.with_suffix(".compose.yml").write_text(render_override(ServiceSpec("canary", "v2", log_path=log), target))
    again = recorded_target(log)
    assert again is not None
    assert again.files == (Path("shop.yml").resolve(),)  # absolute: `canary stack down` may run elsewhere
    assert (again.roles, again.image, again.service_log) == (target.roles, "shop:{version}", False)
    assert again.variables("canary", "v2", 9001) == {"CV": "v2", "CP": "9001"}
    assert RUNBOOK.variables("canary", "v2", 9001) == {
        "CANARY_VERSION": "v2", "CANARY_API_PORT": "9001", "CANARY_IMAGE": "fragrance-ai-app:v2",
    }  # fmt: skip


def test_a_damaged_record_is_named_not_guessed(tmp_path: Path) -> None:
    log = tmp_path / "canary.log"
    log.with_suffix(".compose.yml").write_text('{"x-canary-harness": {"files": ["a.yml"]}, "services": {}}')
    with pytest.raises(BackendError, match=r"canary.compose.yml: damaged x-canary-harness record: KeyError\('roles'\)"):
        recorded_target(log)
    log.with_suffix(".compose.yml").write_text("{not json")
    with pytest.raises(BackendError, match=r"canary.compose.yml: unreadable"):
        recorded_target(log)
    # An override written before targets were recorded: the runbook's services.
    log.with_suffix(".compose.yml").write_text('{"services": {"app-canary": {}}}')
    assert recorded_target(log) is None
