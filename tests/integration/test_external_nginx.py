"""External-NGINX mode against the compose NGINX container ``fragrance-ai-nginx``.

The harness writes only ``conf.d/upstream.conf`` into the mounted directory, checks it with
``docker exec fragrance-ai-nginx nginx -t``, reloads with SIGHUP to the container and confirms the
generation NGINX reports; a refused file is replaced by the last good one and nothing else changes.
"""

from __future__ import annotations

import shutil
import subprocess
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
