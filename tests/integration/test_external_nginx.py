"""External-NGINX mode against the compose NGINX container ``fragrance-ai-nginx``.

The harness writes only ``conf.d/upstream.conf`` into the mounted directory, checks it with
``docker exec fragrance-ai-nginx nginx -t``, reloads with SIGHUP to the container and confirms the
generation NGINX reports; a refused file is replaced by the last good one and nothing else changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from canary_harness.config import TrafficSettings
from canary_harness.errors import TrafficError
from canary_harness.traffic.external import ExternalNginxController
from tests.integration.composefixtures import NGINX_CONTAINER, REPO, ComposeProject
from tests.integration.stackfixtures import free_port

pytest_plugins = ("tests.integration.composefixtures",)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER_FILE = "zz-user.conf"
USER_TEXT = "# the user's own configuration, never touched\nmap $http_x_user $user_flag { default 0; }\n"


@pytest.fixture
def compose_stack(compose_project: ComposeProject, compose_test_image: str) -> Iterator[ComposeProject]:
    """Production, canary and the compose NGINX (canary configuration) up and healthy, plus a user file."""
    project = compose_project
    for key in ("PRODUCTION_VERSION", "CANARY_VERSION"):
        project.env[key] = compose_test_image
    project.env["CANARY_IMAGE"] = f"fragrance-ai-app:{compose_test_image}"
    (project.conf_dir / USER_FILE).write_text(USER_TEXT)
    project.compose("up", "-d", "app-canary", "nginx")
    # `up -d` returns once the containers started, not once NGINX listens: wait on their healthchecks.
    project.wait_healthy("app-canary")
    project.wait_healthy("nginx")
    yield project


def settings_for(project: ComposeProject, run_dir: Path) -> TrafficSettings:
    """External-mode settings for the project's NGINX container."""
    return TrafficSettings(
        nginx="external", nginx_dir=project.conf_dir.parent, nginx_url=f"http://127.0.0.1:{project.ports['nginx']}",
        nginx_container=NGINX_CONTAINER, production=f"127.0.0.1:{project.ports['production']}",
        canary=f"127.0.0.1:{project.ports['canary']}", lock_dir=run_dir,
    )  # fmt: skip


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def canary_share(base_url: str, requests: int = 200) -> int:
    """How many of ``requests`` fresh requests through NGINX the canary served (X-Upstream header)."""
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        return sum(client.get("/health").headers.get("x-upstream") == "canary" for _ in range(requests))


def test_external_weights_apply_and_refusal_keeps_last_good(compose_stack: ComposeProject, tmp_path: Path) -> None:
    """30 % applied and confirmed; a refused template and an unreachable NGINX change nothing."""
    project = compose_stack
    controller = ExternalNginxController(settings_for(project, tmp_path / "run"))
    assert controller.weights_in_force().generation == "initial"  # the fixture's first upstream
    before = snapshot(project.conf_dir.parent)

    controller.set_canary_weight(30, reason="test")
    in_force = controller.weights_in_force()
    assert (in_force.canary_weight, in_force.production_weight) == (30, 70)
    assert f'"{in_force.generation}"' in controller.upstream_conf.read_text()
    after = snapshot(project.conf_dir.parent)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert changed == {"conf.d/upstream.conf"}, changed
    # 200 requests at 30 %: the binomial 99.9 % interval is about 40..80.
    assert 35 <= canary_share(controller.base_url) <= 85

    good = controller.upstream_conf.read_bytes()
    broken = tmp_path / "templates"
    shutil.copytree(REPO / "nginx", broken)
    template = broken / "conf.d" / "upstream.conf.template"
    template.write_text(template.read_text() + "\nbogus_directive on;\n")
    with pytest.raises(TrafficError, match=r"(?s)nginx -t.*unknown directive \"bogus_directive\".*restored"):
        ExternalNginxController(settings_for(project, tmp_path / "run"), template_dir=broken).set_canary_weight(50)
    assert controller.upstream_conf.read_bytes() == good
    assert controller.weights_in_force() == in_force
    assert (project.conf_dir / USER_FILE).read_text() == USER_TEXT

    unreachable = replace(settings_for(project, tmp_path / "run"), nginx_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(TrafficError, match="cannot read the split in force"):
        ExternalNginxController(unreachable).set_canary_weight(50)
    assert controller.upstream_conf.read_bytes() == good


def test_update_nginx_weights_script_on_external_nginx(compose_stack: ComposeProject, tmp_path: Path) -> None:
    """`scripts/update_nginx_weights.sh N --config canary.toml` drives the compose NGINX in external mode."""
    project = compose_stack
    config = tmp_path / "canary.toml"
    config.write_text(
        f"[stack]\nproduction_port = {project.ports['production']}\ncanary_port = {project.ports['canary']}\n"
        f'run_dir = "{tmp_path / "run"}"\n\n'
        f'[traffic]\nnginx = "external"\nnginx_dir = "{project.conf_dir.parent}"\n'
        f'nginx_url = "http://127.0.0.1:{project.ports["nginx"]}"\nnginx_container = "{NGINX_CONTAINER}"\n'
    )
    env = {**project.env, "PYTHONPATH": f"{REPO / 'src'}:{REPO / 'app' / 'src'}"}
    env = {k: v for k, v in env.items() if not k.startswith("CANARY_") or k == "CANARY_API_PORT"}
    script = [str(REPO / "scripts" / "update_nginx_weights.sh")]
    done = subprocess.run([*script, "100", "--config", str(config)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"canary 100% (127.0.0.1:{project.ports['canary']})" in done.stdout
    assert canary_share(f"http://127.0.0.1:{project.ports['nginx']}", 50) == 50
    assert "nginx -t accepts" in done.stderr and "generation" in done.stdout

    bad = subprocess.run([*script, "abc", "--config", str(config)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "weight 'abc'" in bad.stderr, bad.stderr


def run_stage(project: ComposeProject, version: str, config: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    """A 25 % stage session over the compose services (given by URL) and the compose NGINX (external)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARY_", "PYTEST_", "FRAGRANCE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "app" / "src"), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-m", "pytest", "--canary-version", version, "--stage", "25",
            "--observation-period", "4", "--canary-url", f"http://127.0.0.1:{project.ports['canary']}",
            "--production-url", f"http://127.0.0.1:{project.ports['production']}", "--config", str(config),
            f"--canary-run-dir={run_dir}", "-p", "no:cacheprovider", "-q"]  # fmt: skip
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)


def test_stage_over_compose_services_and_external_nginx(
    compose_stack: ComposeProject, compose_test_image: str, tmp_path: Path
) -> None:
    """A healthy canary passes at 25 % through the user's NGINX; a faulty one is rolled back to 0 % there,
    and the services, which the harness does not own, keep running."""
    project = compose_stack
    config = tmp_path / "canary.toml"
    config.write_text(
        f'[traffic]\nnginx = "external"\nnginx_dir = "{project.conf_dir.parent}"\n'
        f'nginx_url = "http://127.0.0.1:{project.ports["nginx"]}"\nnginx_container = "{NGINX_CONTAINER}"\n'
    )
    controller = ExternalNginxController(settings_for(project, tmp_path / "run"))
    passed = run_stage(project, compose_test_image, config, tmp_path / "run")
    assert passed.returncode == 0, passed.stdout[-4000:] + passed.stderr[-2000:]
    assert controller.weights_in_force().canary_weight == 25

    # The same canary, now failing one request in five: recreated by compose with the fault.
    project.env["CANARY_FAULTS"] = "error_rate=0.2"
    project.compose("up", "-d", "app-canary")
    project.wait_healthy("app-canary")
    failed = run_stage(project, compose_test_image, config, tmp_path / "run2")
    assert failed.returncode != 0, failed.stdout[-4000:]
    assert "rolling back" in failed.stdout and "ROLLBACK FAILED" not in failed.stdout, failed.stdout[-4000:]
    assert re.search(r"FAILED \S*test_release_gates\.py::test_5xx_error_rate", failed.stdout), failed.stdout[-4000:]
    assert "roll back: 5xx rate" in failed.stdout and "canary left running" in failed.stdout, failed.stdout[-4000:]
    assert controller.weights_in_force().canary_weight == 0
    assert canary_share(controller.base_url, 50) == 0
    assert project.health("app-canary") == "healthy" and project.health("app") == "healthy"
