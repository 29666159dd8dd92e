"""The classic runbook's scripts, run verbatim: thin wrappers whose exit codes and messages are the
wrapped ``canary`` command's own (each bad-input case is compared with the command run directly).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from canary_harness.stack import LocalStack
from tests.integration.stackfixtures import CANARY_VERSION, PRODUCTION_VERSION, free_port

pytest_plugins = ("tests.integration.stackfixtures",)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], *, run_dir: Path | None = None, cwd: Path = REPO, timeout: float = 120):
    """Run a script or the command as an operator would, with this checkout's packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "app" / "src"), env.get("PYTHONPATH", "")])
    if run_dir is not None:
        env["CANARY_RUN_DIR"] = str(run_dir)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def canary(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """The ``canary`` command itself."""
    return run(
        [sys.executable, "-c", "import sys; from canary_harness.cli import main; sys.exit(main())", *args], **kwargs
    )  # type: ignore[arg-type]


def same_outcome(script: subprocess.CompletedProcess[str], command: subprocess.CompletedProcess[str]) -> None:
    """The script exited and complained exactly as the command did."""
    assert (script.returncode, script.stderr) == (command.returncode, command.stderr), (script, command)


def test_update_nginx_weights(canary_stack_at_zero: LocalStack) -> None:
    """`update_nginx_weights.sh N` moves NGINX's split; a bad N exits 2 with `canary weights`' message."""
    stack = canary_stack_at_zero
    done = run(["scripts/update_nginx_weights.sh", "10"], run_dir=stack.run_dir)
    assert done.returncode == 0, done.stderr
    assert "canary 10%" in done.stdout and stack.traffic().canary_weight() == 10

    bad = run(["scripts/update_nginx_weights.sh", "150"], run_dir=stack.run_dir)
    assert bad.returncode == 2 and "'150'" in bad.stderr, bad.stderr
    same_outcome(bad, canary("weights", "150", run_dir=stack.run_dir))
    assert stack.traffic().canary_weight() == 10


def test_smoke_test_api(canary_stack_at_zero: LocalStack, tmp_path: Path) -> None:
    """`smoke_test_api.py [--canary]` walks the journey against the recorded service; failures exit 1/2."""
    stack = canary_stack_at_zero
    production = run([sys.executable, "scripts/smoke_test_api.py"], run_dir=stack.run_dir)
    assert production.returncode == 0, production.stdout + production.stderr
    assert f"smoke passed: production {PRODUCTION_VERSION}" in production.stdout
    assert production.stdout.count("ok   ") == 4
    canary_run = run([sys.executable, "scripts/smoke_test_api.py", "--canary"], run_dir=stack.run_dir)
    assert canary_run.returncode == 0 and f"smoke passed: canary {CANARY_VERSION}" in canary_run.stdout

    wrong = run([sys.executable, "scripts/smoke_test_api.py", "--canary", "--version", "v9.9.9"], run_dir=stack.run_dir)
    assert wrong.returncode == 1 and "FAIL GET /health" in wrong.stdout, wrong.stdout
    empty = tmp_path / "empty-run-dir"
    no_stack = run([sys.executable, "scripts/smoke_test_api.py"], run_dir=empty)
    assert no_stack.returncode == 2 and "no stack recorded" in no_stack.stderr, no_stack.stderr
    same_outcome(no_stack, canary("smoke", run_dir=empty))


def test_smoke_test_manual(canary_stack_at_zero: LocalStack) -> None:
    """`smoke_test_manual.sh URL` curls the four paths; a bad URL or a dead service exits non-zero."""
    canary_url = canary_stack_at_zero.state().canary.url  # type: ignore[union-attr]
    done = run(["scripts/smoke_test_manual.sh", canary_url])
    assert done.returncode == 0, done.stderr
    for path in ("GET /health", "POST /dna/create", "POST /evolve/options", "POST /evolve/feedback"):
        assert f"== {path}" in done.stderr
    assert '"accepted"' in done.stdout and CANARY_VERSION in done.stdout

    bad = run(["scripts/smoke_test_manual.sh", "127.0.0.1:8001"])
    assert bad.returncode == 2 and "'127.0.0.1:8001' is not an http(s) URL" in bad.stderr
    dead = run(["scripts/smoke_test_manual.sh", f"http://127.0.0.1:{free_port()}"])
    assert dead.returncode == 7, dead.stderr  # curl: could not connect


def test_pre_deployment_check() -> None:
    """`pre_deployment_check.py --version V [--strict]` prints and exits exactly as `canary precheck`."""
    for args in (["--version", CANARY_VERSION], ["--version", CANARY_VERSION, "--strict"], ["--version", "v9.9.9"]):
        script = run([sys.executable, "scripts/pre_deployment_check.py", *args])
        command = canary("precheck", *args)
        assert script.returncode == command.returncode, (args, script.stdout, command.stdout)
        assert script.stdout.splitlines()[-1] == command.stdout.splitlines()[-1]
    assert run([sys.executable, "scripts/pre_deployment_check.py", "--version", "v9.9.9"]).returncode == 1
    missing = run([sys.executable, "scripts/pre_deployment_check.py"])
    assert missing.returncode == 2 and "--version" in missing.stderr
    same_outcome(missing, canary("precheck"))


def test_canary_deployment_bad_input(tmp_path: Path) -> None:
    """`canary_deployment.py` refuses bad stages or periods as `canary rollout` does, starting nothing."""
    for args in (
        ["--version", CANARY_VERSION, "--stages", "1,10,abc,100"],
        ["--version", CANARY_VERSION, "--observation-period", "-5"],
    ):
        script = run([sys.executable, "scripts/canary_deployment.py", *args], run_dir=tmp_path)
        assert script.returncode == 2, script.stderr
        same_outcome(script, canary("rollout", *args, run_dir=tmp_path))
    assert not (tmp_path / "state.json").exists()


def test_create_release(tmp_path: Path) -> None:
    """`create_release.sh V` records releases/V.toml with its archive's SHA-256; a bad V changes nothing."""
    shutil.copytree(REPO / "app", tmp_path / "app", ignore=shutil.ignore_patterns("wheels", "__pycache__", "tests"))
    script = REPO / "scripts" / "create_release.sh"
    done = run([str(script), "v9.8.7"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = tomllib.loads((tmp_path / "releases" / "v9.8.7.toml").read_text())
    (artifact,) = manifest["artifacts"]
    digest = hashlib.sha256((tmp_path / artifact["path"]).read_bytes()).hexdigest()
    assert artifact["sha256"] == digest and digest in done.stdout

    bad = run([str(script), "nine"], cwd=tmp_path)
    assert bad.returncode == 2 and "'nine'" in bad.stderr, bad.stderr
    same_outcome(bad, canary("release-manifest", "--version", "nine", cwd=tmp_path))
    assert not (tmp_path / "releases" / "nine.toml").exists()
    usage = run([str(script)], cwd=tmp_path)
    assert usage.returncode == 2 and "usage: scripts/create_release.sh VERSION" in usage.stderr
