"""Fixtures for the runbook's compose files on the real Docker engine and docker-compose 1.29.

Load them in a test module::

    pytest_plugins = ("tests.integration.composefixtures",)

``compose_project`` gives a project of its own (unique ``COMPOSE_PROJECT_NAME``, free loopback ports, a
private NGINX ``conf.d``, a canary image tag of its own) and removes every container and image tag it
made in its finalizer, also when the test fails, including the fixed-name ``fragrance-ai-nginx``
(only when it belongs to this project). PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from canary_harness.traffic.render import render_upstream
from canary_harness.waiting import wait_until
from tests.integration.stackfixtures import free_ports

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("-f", "compose/docker-compose.production.yml", "-f", "compose/docker-compose.canary.yml")
NGINX_CONTAINER = "fragrance-ai-nginx"
NGINX_BASE = ("canary/nginx:1.22", "nginx", "nginx-common", "libpcre2-8-0", "libselinux1")
PROMETHEUS_BASE = ("canary/prometheus:2.42", "prometheus")
PROJECT_LABEL = "com.docker.compose.project"
WHEEL_DEPS = ("fastapi", "uvicorn", "pydantic", "prometheus_client", "numpy", "jsonschema", "httpx", "redis")


def run(
    argv: list[str], *, env: Mapping[str, str] | None = None, timeout: float = 180.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the repository root; with ``check`` a non-zero exit fails the test with its output."""
    done = subprocess.run(
        argv,
        cwd=REPO,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def ensure_wheels() -> None:
    """The offline build context of app-canary: the app's wheel and its dependencies' in app/wheels."""
    wheels = REPO / "app" / "wheels"
    if any(wheels.glob("fragrance_ai-*.whl")) and any(wheels.glob("fastapi-*.whl")):
        return
    run(["pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), "./app"])
    run(
        [
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--platform",
            "manylinux2014_x86_64",
            "--implementation",
            "cp",
            "-d",
            str(wheels),
            *WHEEL_DEPS,
        ]
    )


def container_state(ref: str) -> dict[str, object] | None:
    """``docker inspect``'s State of a container, None if it does not exist."""
    done = run(["docker", "inspect", "--format", "{{json .State}}", ref], check=False, timeout=30)
    return json.loads(done.stdout) if done.returncode == 0 else None


@pytest.fixture(scope="session")
def compose_images() -> None:
    """Docker answers; the NGINX images and the app's wheels are up to date (idempotent, seconds)."""
    if shutil.which("docker-compose") is None or run(["docker", "info"], check=False, timeout=30).returncode:
        pytest.fail("the compose tests need docker-compose and a running Docker engine (scripts/docker-up.sh)")
    run(["scripts/build-base-image.sh", *NGINX_BASE], timeout=300)
    run(["scripts/build-base-image.sh", *PROMETHEUS_BASE], timeout=300)
    # `up` never rebuilds an existing image: build it here so a changed compose/nginx/ is what runs.
    run(["docker-compose", *COMPOSE_FILES, "build", "nginx"], timeout=300)
    ensure_wheels()


@pytest.fixture(scope="session")
def compose_test_image(compose_images: None) -> Iterator[str]:
    """A version label whose ``fragrance-ai-app:<label>`` image this session built offline (then removed)."""
    label = f"v0.2.0-s{secrets.token_hex(4)}"
    image = f"fragrance-ai-app:{label}"
    env = {**os.environ, "CANARY_IMAGE": image, "CANARY_VERSION": label}
    run(["docker-compose", *COMPOSE_FILES, "build", "app-canary"], env=env, timeout=300)
    try:
        yield label
    finally:
        run(["docker", "rmi", image], check=False, timeout=60)


@dataclass
class ComposeProject:
    """One compose project of a test: its name, environment (ports, versions, conf.d) and helpers."""

    name: str
    env: dict[str, str]
    conf_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    # Image tags the test may create (build, production tag, promotion), removed by cleanup.
    tags: tuple[str, ...] = ()

    def compose(self, *args: str, timeout: float = 180.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``docker-compose -f production -f canary ARGS`` as the runbook writes it, in this project."""
        return run(["docker-compose", *COMPOSE_FILES, *args], env=self.env, timeout=timeout, check=check)

    def container(self, service: str) -> str | None:
        """The id of the (first) container of ``service`` in this project, running or not."""
        done = run(
            [
                "docker",
                "ps",
                "-aq",
                "--filter",
                f"label={PROJECT_LABEL}={self.name}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ],
            timeout=30,
        )
        ids = done.stdout.split()
        return ids[0] if ids else None

    def service_containers(self, service: str) -> list[str]:
        """Ids of every container (replica) of ``service`` in this project."""
        done = run(
            ["docker", "ps", "-aq", "--filter", f"label={PROJECT_LABEL}={self.name}",
             "--filter", f"label=com.docker.compose.service={service}"],
            timeout=30,
        )  # fmt: skip
        return done.stdout.split()

    def containers(self) -> list[str]:
        """Ids of every container of this project, running or not."""
        done = run(["docker", "ps", "-aq", "--filter", f"label={PROJECT_LABEL}={self.name}"], timeout=30)
        return done.stdout.split()

    def health(self, service: str) -> str | None:
        """Docker's health status of ``service`` (healthy, starting, unhealthy), None without a container."""
        ref = self.container(service)
        state = container_state(ref) if ref else None
        health = state.get("Health") if state else None
        return str(health["Status"]) if isinstance(health, dict) else None

    def wait_healthy(self, service: str, timeout: float = 60.0) -> None:
        """Until Docker reports ``service``'s healthcheck healthy (``up -d`` returns before that)."""
        wait_until(lambda: self.health(service) == "healthy", timeout, 0.2, f"{service} healthy in docker")

    def write_upstream(self, canary_weight: int, generation: str) -> None:
        """Render conf.d/upstream.conf for this project's ports (what external-NGINX mode writes)."""
        template = (REPO / "nginx" / "conf.d" / "upstream.conf.template").read_text()
        text = render_upstream(
            template,
            100 - canary_weight,
            canary_weight,
            production=f"127.0.0.1:{self.ports['production']}",
            canary=f"127.0.0.1:{self.ports['canary']}",
            generation=generation,
        )
        tmp = self.conf_dir / ".upstream.conf.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.conf_dir / "upstream.conf")

    def tag_production_image(self) -> None:
        """Give the test's canary build the production tag too, so no release image is needed."""
        run(["docker", "tag", self.env["CANARY_IMAGE"], f"fragrance-ai-app:{self.env['PRODUCTION_VERSION']}"])

    def cleanup(self) -> None:
        """Remove every container of the project, the fixed-name NGINX if it is ours, and the test's tags."""
        self.compose("--profile", "canary-workers", "--profile", "monitoring", "down", "--timeout", "5", check=False)
        leftovers = self.containers()
        if leftovers:
            run(["docker", "rm", "-f", *leftovers], check=False, timeout=60)
        label = run(
            ["docker", "inspect", "--format", f'{{{{ index .Config.Labels "{PROJECT_LABEL}" }}}}', NGINX_CONTAINER],
            check=False,
            timeout=30,
        )
        if label.returncode == 0 and label.stdout.strip() == self.name:
            run(["docker", "rm", "-f", NGINX_CONTAINER], check=False, timeout=60)
        for tag in self.tags:
            run(["docker", "rmi", tag], check=False, timeout=60)


@pytest.fixture
def compose_project(compose_images: None, tmp_path: Path) -> Iterator[ComposeProject]:
    """A compose project on free ports with its own conf.d and canary image tag; removed afterwards."""
    suffix = secrets.token_hex(4)
    production, canary, nginx, llm, rl, prometheus = free_ports(6)
    # The runbook's layout: <nginx dir>/conf.d/upstream.conf, the directory mounted into the NGINX container.
    conf_dir = tmp_path / "nginx" / "conf.d"
    conf_dir.mkdir(parents=True)
    name = f"canarytest{suffix}"
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": name,
        # Version labels of the test's own, so that its `docker tag`s never move a real release's image.
        "PRODUCTION_VERSION": f"v0.1.0-t{suffix}",
        "CANARY_VERSION": f"v0.2.0-t{suffix}",
        "CANARY_IMAGE": f"fragrance-ai-app:canary-t{suffix}",
        "PRODUCTION_API_PORT": str(production),
        "CANARY_API_PORT": str(canary),
        "NGINX_PORT": str(nginx),
        "LLM_WORKER_CANARY_PORT": str(llm),
        "RL_WORKER_CANARY_PORT": str(rl),
        "PROMETHEUS_PORT": str(prometheus),
        "NGINX_CONF_DIR": str(conf_dir),
        "FRAGRANCE_LATENCY_SCALE": "0",
    }
    project = ComposeProject(
        name,
        env,
        conf_dir,
        {"production": production, "canary": canary, "nginx": nginx, "llm": llm, "rl": rl, "prometheus": prometheus},
        tags=(
            env["CANARY_IMAGE"],
            *(f"fragrance-ai-app:{env[key]}" for key in ("PRODUCTION_VERSION", "CANARY_VERSION")),
        ),
    )
    project.write_upstream(0, "initial")
    # A leftover fixed-name NGINX of an earlier, killed run would make `up` fail: name it instead.
    if container_state(NGINX_CONTAINER) is not None:
        pytest.fail(f"a container named {NGINX_CONTAINER} already exists (docker rm -f {NGINX_CONTAINER})")
    try:
        yield project
    finally:
        project.cleanup()
