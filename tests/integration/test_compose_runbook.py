"""The runbook's compose commands, verbatim with the ``compose/`` prefix, on the real engine.

One journey, as an operator runs it: build the canary offline, start it, read its health and logs,
send it traffic through the compose NGINX and read the canary access log inside the container, stop it,
start and stop the canary workers of their profile, promote (``docker tag`` + ``up -d app``), and
``down`` leaves no container behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from canary_harness.deploy.broker import BrokerRecord, start_broker, stop_broker
from canary_harness.deploy.workers import consumers
from canary_harness.ports import free_port
from canary_harness.waiting import wait_until
from tests.integration.composefixtures import NGINX_CONTAINER, ComposeProject, container_state, run

pytest_plugins = ("tests.integration.composefixtures",)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = "gpt-3.5-turbo,claude-3-haiku"


def get_json(url: str) -> dict[str, object]:
    """GET ``url`` and its JSON body (raises on a connection error or a non-JSON answer)."""
    response = httpx.get(url, timeout=2.0)
    response.raise_for_status()
    data = response.json()
    assert isinstance(data, dict)
    return data


def container_health(ref: str) -> str | None:
    """Docker's health status of one container (None without a healthcheck or a container)."""
    state = container_state(ref)
    health = state.get("Health") if state else None
    return str(health["Status"]) if isinstance(health, dict) else None


def container_health_is(ref: str, status: str) -> bool:
    """True once the container's health status is ``status``."""
    return container_health(ref) == status


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerRecord]:
    """A redis-server on a free loopback port for the canary workers; stopped at teardown."""
    record = start_broker(tmp_path / "redis", "127.0.0.1", free_port("127.0.0.1"))
    yield record
    stop_broker(record)


def test_runbook_commands_verbatim(compose_project: ComposeProject, broker: BrokerRecord) -> None:
    """build, up -d, health, logs, canary.log, stop, workers, promotion and down, as the runbook says."""
    project = compose_project
    project.env["LLM_ENSEMBLE_MODELS"] = MODELS
    canary_url = f"http://127.0.0.1:{project.ports['canary']}"
    version = project.env["CANARY_VERSION"]

    project.compose("build", "app-canary", timeout=300)
    assert run(["docker", "image", "inspect", project.env["CANARY_IMAGE"]], check=False).returncode == 0
    production_version = project.env["PRODUCTION_VERSION"]
    project.tag_production_image()

    project.compose("up", "-d", "app-canary")
    project.wait_healthy("app-canary")
    health = get_json(canary_url + "/health")
    assert health["status"] == "healthy" and health["version"] == version, health
    # Only the canary: no production app, no NGINX.
    assert project.container("app") is None and container_state(NGINX_CONTAINER) is None

    logs = project.compose("logs", "--no-color", "--tail", "50", "app-canary", timeout=30).stdout
    startup = [json.loads(line.split("|", 1)[1]) for line in logs.splitlines() if '"event":"startup"' in line]
    assert startup, logs
    assert startup[0]["models"] == MODELS.split(",") and startup[0]["use_ensemble"] is True, startup[0]
    assert startup[0]["version"] == version

    # The manual smoke script against the canary container, with its docker logs.
    container = project.container("app-canary")
    assert container is not None
    manual = run(["scripts/smoke_test_manual.sh", canary_url, container])
    assert "== docker logs --tail 20" in manual.stderr and f'"version":"{version}"' in manual.stdout, manual

    # Production and NGINX (up -d nginx brings app first: depends_on service_healthy), then half the
    # traffic to the canary through the mounted conf.d and a SIGHUP to the container.
    project.compose("up", "-d", "nginx")
    project.wait_healthy("nginx")
    nginx_url = f"http://127.0.0.1:{project.ports['nginx']}"
    assert get_json(nginx_url + "/health")["version"] == production_version
    project.write_upstream(50, "half")
    run(["docker", "exec", NGINX_CONTAINER, "nginx", "-t"])
    run(["docker", "kill", "-s", "HUP", NGINX_CONTAINER])
    wait_until(
        lambda: get_json(nginx_url + "/__canary/state")["generation"] == "half",
        10,
        0.05,
        "NGINX serving generation half",
        ignore=(httpx.HTTPError,),
    )
    served = {get_json(nginx_url + "/health")["version"] for _ in range(60)}
    assert served == {production_version, version}, served
    canary_log = run(["docker", "exec", NGINX_CONTAINER, "tail", "-n", "5", "/var/log/nginx/canary.log"]).stdout
    lines = [json.loads(line) for line in canary_log.splitlines()]
    assert len(lines) == 5 and {line["upstream"] for line in lines} == {"canary"}, canary_log
    assert {line["version"] for line in lines} == {version}

    project.compose("stop", "app-canary")
    state = container_state(project.container("app-canary") or "")
    assert state is not None and state["Status"] == "exited" and state["ExitCode"] == 0, state
    with pytest.raises(httpx.ConnectError):
        httpx.get(canary_url + "/health", timeout=2.0)

    # Two LLM worker replicas on host networking: each takes its own port from the base port up. They consume
    # the canary's queue on the broker CANARY_REDIS_URL (a redis-server of the test's own).
    project.env["LLM_WORKER_CANARY_REPLICAS"] = "2"
    project.env["CANARY_REDIS_URL"] = broker.url
    workers = ("worker-llm-canary", "worker-rl-canary")
    project.compose("--profile", "canary-workers", "up", "-d", *workers)
    replicas = {worker: project.service_containers(worker) for worker in workers}
    assert [len(replicas[worker]) for worker in workers] == [2, 1], replicas
    ports: set[str] = set()
    for worker, role in zip(workers, ("worker-llm", "worker-rl"), strict=True):
        project.wait_healthy(worker)
        for replica in replicas[worker]:
            wait_until(partial(container_health_is, replica, "healthy"), 60, 0.2, f"replica {replica[:12]} healthy")
            port = run(["docker", "exec", replica, "cat", "/tmp/worker.port"]).stdout.strip()
            data = get_json(f"http://127.0.0.1:{port}/health")
            assert data["component"] == role and data["version"] == version, data
            ports.add(port)
    assert len(ports) == 3 and str(project.ports["llm"]) in ports and str(project.ports["rl"]) in ports
    assert len(consumers(broker.url, version)) == 3
    # The workers alone: the stopped canary stays stopped.
    assert container_state(project.container("app-canary") or "")["Status"] == "exited"  # type: ignore[index]
    project.compose("--profile", "canary-workers", "stop", *workers)
    for replica in (r for worker in workers for r in replicas[worker]):
        state = container_state(replica)
        assert state is not None and state["Status"] == "exited" and state["ExitCode"] == 0, (replica, state)

    # Prometheus, made offline, under its profile.
    project.compose("--profile", "monitoring", "up", "-d", "prometheus")
    project.wait_healthy("prometheus")
    ready = httpx.get(f"http://127.0.0.1:{project.ports['prometheus']}/-/ready", timeout=2.0)
    assert ready.status_code == 200, ready.text

    # Promotion: the tested canary image gets its release name, production moves to it.
    run(["docker", "tag", project.env["CANARY_IMAGE"], f"fragrance-ai-app:{version}"])
    project.env["PRODUCTION_VERSION"] = version
    project.compose("up", "-d", "app")
    production_url = f"http://127.0.0.1:{project.ports['production']}"
    wait_until(
        lambda: get_json(production_url + "/health")["version"] == version,
        60,
        0.2,
        f"production reporting {version}",
        ignore=(httpx.HTTPError,),
    )
    project.wait_healthy("app")

    project.compose("--profile", "canary-workers", "--profile", "monitoring", "down", "--timeout", "5")
    assert project.containers() == []
    assert container_state(NGINX_CONTAINER) is None
