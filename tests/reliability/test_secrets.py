"""Issue 11 item 1: the services' environment never leaks, and the run directory is private.

A real rollout 5 → 100 % and a promotion run with a planted ``OPENAI_API_KEY`` for the canary and a planted
``DB_PASSWORD`` for production. Asserted afterwards: neither value appears in any process's argv while the
stage runs, in any file of the run directory, in the Allure results, or in anything the commands printed
(including a refused ``--canary-env`` entry), except the private store ``service-env.json`` (0600) that
promotion reads them from; the run directory is 0700 and every file in it 0600; the
promotion still restarts production with the canary's environment (read back from its /proc environ).
"""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from canary_harness.deploy.pids import children_of, process_start_time
from canary_harness.envstore import VALUES_FILE
from canary_harness.waiting import wait_until
from tests.integration.rolloutfixtures import (
    CANARY_VERSION,
    RolloutCli,
    describe,
    process_group_members,
    rollout_args,
)

pytest_plugins = ("tests.integration.rolloutfixtures",)
pytestmark = pytest.mark.integration


def _all_cmdlines() -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return found


def _files_containing(root: Path, needles: tuple[bytes, ...]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {needle[:6]!r}..." for needle in needles if needle in data]
    return hits


def _group_or_other_access(root: Path) -> list[str]:
    loose = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISSOCK(mode) or stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            loose.append(f"{path} {stat.filemode(mode)}")
    return loose


def test_planted_secrets_appear_nowhere_and_the_run_dir_is_private(
    rollout_cli: RolloutCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = rollout_cli
    canary_secret, production_secret = f"sk-canary-{secrets.token_hex(12)}", f"pw-prod-{secrets.token_hex(12)}"
    needles = (canary_secret.encode(), production_secret.encode())
    allure = tmp_path / "allure"
    # The canary's key by name from the rollout's environment (as CI passes secrets); production's given
    # as KEY=VALUE, so that it is on the operator's own command line and must go no further.
    args = rollout_args(
        "--canary-env",
        "OPENAI_API_KEY",
        "--production-env",
        f"DB_PASSWORD={production_secret}",
        stages="5,100",
        period=4,
        pytest_args=("-q", f"--alluredir={allure}"),
    )
    monkeypatch.setenv("OPENAI_API_KEY", canary_secret)
    run = cli.start(*args)
    monkeypatch.delenv("OPENAI_API_KEY")  # later commands (promote) do not have it: it must come from the store

    # While a stage session runs: its argv (and every other process's) holds neither value.
    def stage_child() -> int | None:
        # The stage session runs in its own process group, as a child of the rollout.
        for pid in [*process_group_members(run.pid), *children_of(run.pid)]:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"--canary-version" in argv and b"pytest" in argv:
                return pid
        if run.process.poll() is not None:
            raise AssertionError(f"the rollout exited before its stage ran:\n{run.output()[-3000:]}")
        return None

    child = wait_until(stage_child, 60, 0.05, "the first stage session of the rollout")
    assert child is not None
    leaking = {
        pid: argv
        for pid, argv in _all_cmdlines().items()
        if any(needle in argv for needle in needles) and pid != run.pid
    }
    assert not leaking, f"secret on a command line: {sorted(leaking)}"
    assert needles[0] not in Path(f"/proc/{run.pid}/cmdline").read_bytes()
    code = run.wait()
    assert code == 0, run.output()[-4000:]
    assert "OPENAI_API_KEY=***" in run.output() and "DB_PASSWORD=***" in run.output(), run.output()[:2000]

    promoted = cli("promote", "--version", CANARY_VERSION)
    assert promoted.returncode == 0, describe(promoted)
    state = cli.state()
    assert state is not None and state.production is not None and state.production.pid is not None
    assert state.production.pid_start_time == process_start_time(state.production.pid)
    # Promotion restarted production with the environment the canary was verified with.
    environ = Path(f"/proc/{state.production.pid}/environ").read_bytes().split(b"\0")
    assert b"OPENAI_API_KEY=" + needles[0] in environ

    # Error paths: a refused entry and a status listing print no value either.
    refused = cli("stack", "up", "--canary-version", CANARY_VERSION, "--canary-env", f"1BAD={canary_secret}")
    assert refused.returncode == 2 and "'1BAD'=***" in refused.stderr, describe(refused)
    status = cli("stack", "status")
    outputs = [promoted.stdout, promoted.stderr, refused.stdout, refused.stderr, status.stdout, status.stderr]
    assert not [text for text in outputs if canary_secret in text or production_secret in text]

    # Every file written: run directory (state, journal, records, logs, nginx, load stats), Allure, outputs.
    assert list(allure.glob("*-result.json")), "no Allure results were written"
    # The one exception by design: the private store promotion reads the values from (0600, never printed).
    store = cli.run_dir / VALUES_FILE
    assert store.is_file() and stat.S_IMODE(store.stat().st_mode) == 0o600
    assert [hit for hit in _files_containing(tmp_path, needles) if not hit.startswith(f"{store}:")] == []
    assert stat.S_IMODE(cli.run_dir.stat().st_mode) == 0o700
    assert _group_or_other_access(cli.run_dir) == []
    assert '"env"' not in (cli.run_dir / "state.json").read_text()
