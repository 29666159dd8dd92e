"""`canary stack up|status|down` and `canary weights N` as a user runs them: real processes, free ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary_harness.config import StackSettings
from canary_harness.deploy import pids
from canary_harness.deploy.pids import port_is_free
from canary_harness.errors import TrafficError
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.traffic.nginx import probe_split
from tests.integration.stackfixtures import CANARY_VERSION, PRODUCTION_VERSION, free_ports, stack_settings

pytestmark = pytest.mark.integration


@dataclass
class Cli:
    """Runs the `canary` command in a working directory holding a canary.toml with free ports."""

    cwd: Path
    run_dir: Path
    nginx_port: int

    def __call__(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
        env["FRAGRANCE_LATENCY_SCALE"] = "0"  # production inherits the command's environment
        return subprocess.run(
            [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())",
             *args],
            cwd=self.cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def upstream_conf(self) -> Path:
        return self.run_dir / "nginx" / "conf.d" / "upstream.conf"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A `canary` runner whose canary.toml [stack] puts NGINX, production and canary on free ports.

    Whatever the commands leave recorded is stopped by PID at teardown.
    """
    nginx_port, production_port, canary_port = free_ports(3)
    work = tmp_path / "work"
    work.mkdir()
    (work / "canary.toml").write_text(
        f"[stack]\nnginx_port = {nginx_port}\nproduction_port = {production_port}\ncanary_port = {canary_port}\n"
    )
    runner = Cli(cwd=work, run_dir=work / ".canary", nginx_port=nginx_port)
    yield runner
    LocalStack(StackSettings(run_dir=runner.run_dir)).down()


def recorded_pids(run_dir: Path) -> list[tuple[int, int | None]]:
    state = load_state(run_dir)
    assert state is not None and state.nginx is not None
    entries = [(state.nginx.pid, state.nginx.pid_start_time)]
    entries += [(h.pid, h.pid_start_time) for h in (state.production, state.canary) if h is not None]
    assert all(pid is not None for pid, _ in entries)
    return [(int(pid), start) for pid, start in entries if pid is not None]


def test_up_weights_status_down(cli: Cli) -> None:
    up = cli("stack", "up", "--production-version", PRODUCTION_VERSION, "--canary-version", CANARY_VERSION,
             "--canary-env", "FRAGRANCE_LATENCY_SCALE=0")  # fmt: skip
    assert up.returncode == 0, up.stderr
    state = json.loads((cli.run_dir / "state.json").read_text())
    versions = (state["production"]["version"], state["canary"]["version"])
    assert versions == (PRODUCTION_VERSION, CANARY_VERSION)
    assert state["nginx"]["port"] == cli.nginx_port
    processes = recorded_pids(cli.run_dir)
    assert len(processes) == 3 and all(pids.is_alive(pid, start) for pid, start in processes)

    again = cli("stack", "up", "--canary-version", CANARY_VERSION)
    assert again.returncode == 1 and "already up" in again.stderr

    status = cli("stack", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "production 100% / canary 0%" in status.stdout
    assert status.stdout.count("healthy") == 3

    five = cli("weights", "5", "--reason", "first stage")
    assert five.returncode == 0, five.stderr
    assert "in force: production 95%" in five.stdout and "canary 5%" in five.stdout
    for step in ("rendered", "nginx -t", "replaced", "SIGHUP", "in force"):
        assert step in five.stderr, f"step {step!r} not logged:\n{five.stderr}"
    split = probe_split(cli.base_url, 400, concurrency=4)
    assert split.failures == 0 and 1 <= split.canary <= 60

    assert cli("weights", "0").returncode == 0
    before = cli.upstream_conf.read_bytes()
    for bad in ("150", "-1", "abc", "5.5"):
        result = cli("weights", bad)
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        assert repr(bad) in result.stderr, result.stderr
        assert cli.upstream_conf.read_bytes() == before, f"config changed by `canary weights {bad}`"
    split = probe_split(cli.base_url, 300, concurrency=3)
    assert (split.canary, split.production) == (0, 300), "a refused weight changed the traffic"
    shown = cli("weights")
    assert shown.returncode == 0 and "canary 0%" in shown.stdout

    down = cli("stack", "down")
    assert down.returncode == 0, down.stderr
    assert not any(pids.is_alive(pid, start) for pid, start in processes)
    assert not (cli.run_dir / "state.json").exists()
    assert "nothing recorded" in cli("stack", "down").stdout
    gone = cli("stack", "status")
    assert gone.returncode == 1 and "no stack recorded" in gone.stdout


def test_weights_without_a_stack_exits_2_naming_the_run_dir(cli: Cli) -> None:
    result = cli("weights", "5", "--run-dir", "elsewhere")
    assert result.returncode == 2
    assert "elsewhere" in result.stderr and "from --run-dir" in result.stderr
    assert not (cli.cwd / "elsewhere").exists()


def test_bad_port_exits_2_and_starts_nothing(cli: Cli) -> None:
    result = cli("stack", "up", "--nginx-port", "70000")
    assert result.returncode == 2 and "'70000'" in result.stderr and "--nginx-port" in result.stderr
    assert load_state(cli.run_dir) is None


def test_no_canary_share_without_a_healthy_canary(cli: Cli) -> None:
    up = cli("stack", "up")
    assert up.returncode == 0, up.stderr
    before = cli.upstream_conf.read_bytes()
    result = cli("weights", "5")
    assert result.returncode == 1 and "no healthy canary" in result.stderr
    assert cli.upstream_conf.read_bytes() == before
    assert cli("weights", "0").returncode == 0  # weight 0 is always allowed (rollback)


# ------------------------------------------------------------------ the LocalStack API behind the commands
def test_canary_restart_promotion_and_status(tmp_path: Path) -> None:
    """start_canary / stop_canary / restart_production as the rollout uses them, checked through NGINX."""
    stack = LocalStack(stack_settings(tmp_path / "run"))
    try:
        stack.up(with_canary=False)
        assert [c.name for c in stack.status().components] == ["nginx", "production"]
        traffic = stack.traffic()

        canary = stack.start_canary("v0.3.0", {"FRAGRANCE_LATENCY_SCALE": "0"})
        assert stack.state().canary == canary
        traffic.set_canary_weight(100, reason="promote")
        assert probe_split(traffic.base_url, 50).by_version == {"v0.3.0": 50}

        # Production is rendered down at 100 %, so replacing it meets no traffic.
        production = stack.restart_production("v0.3.0")
        assert stack.state().production == production
        traffic.set_canary_weight(0, reason="promoted")
        stack.stop_canary()
        assert stack.state().canary is None
        assert canary.pid is not None and not pids.is_alive(canary.pid, canary.pid_start_time)
        split = probe_split(traffic.base_url, 50)
        assert (split.production, split.by_version) == (50, {"v0.3.0": 50})

        status = stack.status()
        assert status.ok and status.canary_weight == 0 and status.production_weight == 100
    finally:
        stack.down()
    assert load_state(stack.run_dir) is None
    stack.down()  # idempotent


def test_failed_up_cleans_up_what_it_started(tmp_path: Path) -> None:
    """NGINX cannot bind its port: production, already started, is stopped again; nothing is recorded."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = stack_settings(tmp_path / "run", nginx_port=busy.getsockname()[1])
        stack = LocalStack(settings)
        with pytest.raises(TrafficError, match="already in use"):
            stack.up(with_canary=True)
    assert load_state(stack.run_dir) is None
    log = stack.run_dir / "logs" / "production.log"
    assert log.exists(), "production was never started, so the cleanup was not exercised"
    assert port_is_free("127.0.0.1", settings.production_port)
    assert port_is_free("127.0.0.1", settings.canary_port)
