"""`canary rollout`, `canary promote` and `canary rollback` on the real stack: NGINX, two fragrance-ai
processes, one pytest stage session per stage, locust load. Every figure is read back from the journal
and from real requests through NGINX, never from what the commands say about themselves."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from canary_harness.deploy.pids import children_of, cmdline, is_alive, port_is_free
from canary_harness.journal import JournalEntry
from canary_harness.lock import RolloutLock
from canary_harness.traffic.probe import SplitCount
from tests.integration.rolloutfixtures import (
    CANARY_VERSION,
    FAULTY_FLAGS,
    PRODUCTION_VERSION,
    RolloutCli,
    describe,
    process_group_members,
    rollout_args,
    rollout_cli_in,
)

pytest_plugins = ("tests.integration.rolloutfixtures",)
pytestmark = pytest.mark.integration

FULL_STAGES = (1, 5, 25, 100)
# Long enough that a stage is certainly still observing when a test signals the rollout (no PASS can
# end it early before min_soak_s, 60 s by default), short enough to bound the test if the signal is lost.
LONG_PERIOD_S = 60
# Printed by the observation loop at each progress report ("[stage   5% t=    1s] 5xx ...").
PROGRESS_LINE = "% t="


def is_weight(stage: int) -> Callable[[JournalEntry], bool]:
    """Matcher: the journal entry of ``stage`` being applied."""
    return lambda entry: entry.event == "weight" and entry.stage == stage and entry.details.get("weight") == stage


def trail(entries: list[JournalEntry], version: str = CANARY_VERSION) -> list[tuple[str, int | None]]:
    """(event, stage) of a version's entries, oldest first."""
    return [(entry.event, entry.stage) for entry in entries if entry.version == version]


def only_production(split: SplitCount) -> bool:
    """Every probe request was answered 200 by production."""
    return split.canary == 0 and split.production == split.total == split.ok and split.total > 0


def canary_is_stopped(cli: RolloutCli) -> bool:
    """No canary recorded in the stack and nothing listens on the canary port."""
    state = cli.state()
    return state is not None and state.canary is None and port_is_free("127.0.0.1", cli.canary_port)


def start_stack_with_canary(cli: RolloutCli, weight: int) -> None:
    """`canary stack up` with production v0.1.0 and canary v0.2.0 at ``weight`` %."""
    up = cli("stack", "up", "--canary-version", CANARY_VERSION, "--canary-weight", str(weight))
    assert up.returncode == 0, describe(up)


# ---------------------------------------------------------------------------------------------- 1 and 6
@dataclass(frozen=True)
class CompletedRollout:
    """A healthy rollout 1 → 5 → 25 → 100 and what the stack looked like right after it."""

    cli: RolloutCli
    result: subprocess.CompletedProcess[str]
    journal: list[JournalEntry]
    split: SplitCount


@pytest.fixture(scope="module")
def completed_rollout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompletedRollout]:
    """One full healthy rollout for the module; the journal and a traffic probe are taken at once, so
    tests that later change the stack (promotion) cannot affect what the others assert."""
    with rollout_cli_in(tmp_path_factory.mktemp("full-rollout")) as cli:
        result = cli(*rollout_args(), timeout=180)
        yield CompletedRollout(cli, result, cli.journal(), cli.probe(200))


def test_healthy_release_goes_through_every_stage(completed_rollout: CompletedRollout) -> None:
    result, entries = completed_rollout.result, completed_rollout.journal
    assert result.returncode == 0, describe(result)
    expected: list[tuple[str, int | None]] = [("rollout_start", None)]
    for stage in FULL_STAGES:
        expected += [("weight", stage), ("stage_verdict", stage)]
    expected.append(("rollout_end", None))
    assert trail(entries) == expected, [entry.to_dict() for entry in entries]
    weights = [entry.details["weight"] for entry in entries if entry.event == "weight"]
    assert weights == list(FULL_STAGES)
    verdicts = [entry for entry in entries if entry.event == "stage_verdict"]
    assert all(entry.details["passed"] is True and entry.details["dry_run"] is False for entry in verdicts), [
        entry.to_dict() for entry in verdicts
    ]
    end = entries[-1]
    assert end.details["passed"] is True and end.reason == "completed", end.to_dict()
    assert [outcome["exit_code"] for outcome in end.details["outcomes"]] == [0, 0, 0, 0]
    # The weight in force is 100 %: every request reaches the canary.
    split = completed_rollout.split
    assert split.canary == split.total == split.ok == 200, split.to_dict()
    assert dict(split.by_version) == {CANARY_VERSION: 200}, split.to_dict()
    assert f"Next: canary promote --version {CANARY_VERSION}" in result.stdout


def test_promote_after_a_completed_rollout(completed_rollout: CompletedRollout) -> None:
    cli = completed_rollout.cli
    assert completed_rollout.result.returncode == 0, describe(completed_rollout.result)
    state = cli.state()
    assert state is not None and state.canary is not None
    canary = state.canary

    promoted = cli("promote", "--version", CANARY_VERSION)
    assert promoted.returncode == 0, describe(promoted)
    status = cli("stack", "status")
    assert status.returncode == 0, describe(status)
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    assert CANARY_VERSION in lines["production"] and "healthy" in lines["production"], status.stdout
    assert "canary" not in lines, status.stdout
    assert "canary 0%" in lines["weights"], status.stdout
    split = cli.probe(200)
    assert only_production(split) and dict(split.by_version) == {CANARY_VERSION: 200}, split.to_dict()
    assert canary_is_stopped(cli) and not is_alive(canary.pid or 0, canary.pid_start_time)
    entry = cli.journal()[-1]
    assert (entry.event, entry.version) == ("promote", CANARY_VERSION), entry.to_dict()
    assert entry.details["previous_production"] == PRODUCTION_VERSION

    count = len(cli.journal())
    again = cli("promote", "--version", CANARY_VERSION)
    assert again.returncode == 1, describe(again)
    assert "refused" in again.stderr and "no complete successful rollout" in again.stderr, again.stderr
    assert len(cli.journal()) == count
    assert only_production(cli.probe(100))


def test_promote_is_refused_without_a_completed_rollout(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    start_stack_with_canary(cli, 25)
    before = (
        (cli.run_dir / "state.json").read_text(),
        len(cli.journal()),
        (cli.run_dir / "nginx" / "conf.d" / "upstream.conf").read_text(),
    )

    refused = cli("promote", "--version", CANARY_VERSION)

    assert refused.returncode == 1, describe(refused)
    assert "refused" in refused.stderr and "no complete successful rollout" in refused.stderr, refused.stderr
    assert f"canary rollout --version {CANARY_VERSION}" in refused.stderr  # says what to do instead
    after = (
        (cli.run_dir / "state.json").read_text(),
        len(cli.journal()),
        (cli.run_dir / "nginx" / "conf.d" / "upstream.conf").read_text(),
    )
    assert after == before
    # Nothing moved: production still runs the old version and the canary still gets its 25 %.
    split = cli.probe(400)
    assert 40 <= split.canary <= 160 and split.ok == split.total == 400, split.to_dict()
    assert set(split.by_version) == {PRODUCTION_VERSION, CANARY_VERSION}, split.to_dict()


# ---------------------------------------------------------------------------------------------- 2
def test_faulty_release_stops_at_the_first_stage_and_is_rolled_back(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    result = cli(*rollout_args(*FAULTY_FLAGS, stages="5,25,100", period=6), timeout=120)

    assert result.returncode == 1, describe(result)
    entries = cli.journal()
    events = trail(entries)
    assert events[:2] == [("rollout_start", None), ("weight", 5)], events
    assert ("stage_verdict", 5) in events and ("rollback", 5) in events, events
    assert events[-1] == ("rollout_end", None), events
    assert not [stage for event, stage in events if stage in (25, 100)], f"later stages ran: {events}"
    verdict = next(entry for entry in entries if entry.event == "stage_verdict")
    assert verdict.details["passed"] is False and "5xx" in verdict.reason, verdict.to_dict()
    rollback = next(entry for entry in entries if entry.event == "rollback")
    assert rollback.details["weight_after"] == 0 and rollback.details["canary_stopped"] is True
    end = entries[-1]
    assert end.details["passed"] is False and end.reason == "stage failed", end.to_dict()
    assert len(end.details["outcomes"]) == 1
    assert "stage  25%  not run" in result.stdout and "stage 100%  not run" in result.stdout, result.stdout
    # Rolled back, measured: weight 0 by traffic, and the canary process is gone.
    split = cli.probe(200)
    assert only_production(split) and dict(split.by_version) == {PRODUCTION_VERSION: 200}, split.to_dict()
    assert canary_is_stopped(cli)


# ---------------------------------------------------------------------------------------------- 3
def test_dry_run_moves_no_traffic(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    start_stack_with_canary(cli, 0)
    assert only_production(cli.probe(200))

    result = cli(*rollout_args("--dry-run", stages="5,100"), timeout=120)

    assert result.returncode == 0, describe(result)
    assert "DRY RUN: no traffic will move" in result.stdout, result.stdout[-3000:]
    assert "dry run: no traffic moved" in result.stdout, result.stdout[-3000:]
    entries = cli.journal()
    moved = [entry.to_dict() for entry in entries if entry.event == "weight" and entry.details.get("weight")]
    assert not moved, moved
    verdicts = [entry for entry in entries if entry.event == "stage_verdict"]
    assert [entry.stage for entry in verdicts] == [5, 100] and all(e.details["dry_run"] for e in verdicts)
    assert entries[-1].event == "rollout_end" and entries[-1].details["dry_run"] is True
    split = cli.probe(200)
    assert only_production(split), split.to_dict()
    # A dry run proves nothing about real traffic: it does not allow promotion.
    refused = cli("promote", "--version", CANARY_VERSION)
    assert refused.returncode == 1 and "refused" in refused.stderr, describe(refused)


# ---------------------------------------------------------------------------------------------- 4
def test_a_second_rollout_on_the_same_run_dir_is_refused(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    first = cli.start(*rollout_args(stages="5,100"))
    refusals = []
    for stage in (5, 100):  # during a stage and again in the next one: the lock spans the whole rollout
        cli.wait_for_entry(f"the weight entry of stage {stage}", is_weight(stage), run=first)
        started = time.monotonic()
        second = cli(*rollout_args(version="v0.3.0", stages="5,100"), timeout=30)
        refusals.append((second, time.monotonic() - started))

    for second, seconds in refusals:
        assert second.returncode == 1, describe(second)
        assert f"rollout of {CANARY_VERSION} already running (pid {first.pid}" in second.stderr, second.stderr
        assert seconds < 15, f"the refusal took {seconds:.1f}s"
        assert "=== canary rollout" not in second.stdout  # refused before its banner, nothing started
    assert first.wait() == 0, first.output()[-4000:]
    entries = cli.journal()
    assert not [entry.to_dict() for entry in entries if entry.version == "v0.3.0"]
    assert trail(entries) == [
        ("rollout_start", None),
        ("weight", 5),
        ("stage_verdict", 5),
        ("weight", 100),
        ("stage_verdict", 100),
        ("rollout_end", None),
    ]
    assert entries[-1].details["passed"] is True


# ---------------------------------------------------------------------------------------------- 5
def test_sigterm_rolls_a_running_rollout_back(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    run = cli.start(*rollout_args(stages="5,100", period=LONG_PERIOD_S))
    cli.wait_for_entry("the weight entry of stage 5", is_weight(5), run=run)
    cli.wait_for_output(run, PROGRESS_LINE)  # the observation loop has reported its first tick
    assert cli.probe(400).canary > 0  # the canary really had its share before the signal

    signalled = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    code = run.wait(timeout=90)
    seconds = time.monotonic() - signalled

    assert code == 1, f"exit {code}\n{run.output()[-4000:]}"
    assert seconds < LONG_PERIOD_S / 2, f"the rollout took {seconds:.0f}s to stop: the stage was not interrupted"
    entries = cli.journal()
    events = trail(entries)
    assert ("rollback", 5) in events, events
    assert not [stage for event, stage in events if stage == 100], f"stage 100 ran: {events}"
    end = entries[-1]
    assert end.event == "rollout_end" and end.reason == "interrupted", end.to_dict()
    assert end.details["signal"] == "SIGTERM" and end.details["passed"] is False, end.to_dict()
    split = cli.probe(200)
    assert only_production(split), split.to_dict()
    assert canary_is_stopped(cli)


# ---------------------------------------------------------------------------------------------- 7
def test_manual_rollback_is_idempotent(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    start_stack_with_canary(cli, 25)
    assert cli.probe(200).canary > 0

    results = [cli("rollback", "--reason", "test"), cli("rollback", "--reason", "test")]

    for result in results:
        assert result.returncode == 0, describe(result)
    split = cli.probe(200)
    assert only_production(split), split.to_dict()
    assert canary_is_stopped(cli)
    rollbacks = [entry for entry in cli.journal() if entry.event == "rollback"]
    assert [
        (entry.details["weight_before"], entry.details["weight_after"], entry.details["canary_stopped"])
        for entry in rollbacks
    ] == [(25, 0, True), (0, 0, False)], [entry.to_dict() for entry in rollbacks]
    assert all(entry.details["probe"]["canary"] == 0 for entry in rollbacks)


def test_manual_rollback_after_a_killed_rollout(rollout_cli: RolloutCli) -> None:
    cli = rollout_cli
    run = cli.start(*rollout_args(stages="5,100", period=LONG_PERIOD_S))
    cli.wait_for_entry("the weight entry of stage 5", is_weight(5), run=run)
    cli.wait_for_output(run, PROGRESS_LINE)
    run.kill_group()  # no handler runs: only the state on disk is left
    state = cli.state()
    assert state is not None and state.canary is not None
    canary = state.canary
    assert cli.probe(400).canary > 0  # the dead rollout left the canary at 5 %
    assert not [entry for entry in cli.journal() if entry.event in ("rollback", "rollout_end")]

    result = cli("rollback")

    assert result.returncode == 0, describe(result)
    split = cli.probe(200)
    assert only_production(split), split.to_dict()
    assert canary_is_stopped(cli) and not is_alive(canary.pid or 0, canary.pid_start_time)
    entry = cli.journal()[-1]
    assert (entry.event, entry.version) == ("rollback", CANARY_VERSION), entry.to_dict()
    assert entry.details["weight_before"] == 5 and entry.details["canary_stopped"] is True, entry.to_dict()
    # The kernel dropped the dead rollout's lock: the next rollout may start.
    with RolloutLock(cli.run_dir, version=CANARY_VERSION) as lock:
        assert lock.held


def test_a_stage_session_that_dies_is_still_rolled_back(rollout_cli: RolloutCli) -> None:
    """A stage session killed outright (OOM killer, SIGKILL) cannot roll itself back: the rollout must."""
    cli = rollout_cli
    run = cli.start(*rollout_args(stages="5,100", period=LONG_PERIOD_S))
    cli.wait_for_entry("the weight entry of stage 5", is_weight(5), run=run)
    cli.wait_for_output(run, PROGRESS_LINE)
    [stage_pid] = [pid for pid in children_of(run.pid) if "--canary-version" in cmdline(pid)]
    # Its own process group (a terminal's Ctrl-C reaches the rollout only, which forwards it once).
    assert os.getpgid(stage_pid) == stage_pid and stage_pid not in process_group_members(run.pid)
    stage_tree = process_group_members(stage_pid)
    for pid in stage_tree:  # the stage session and its load processes, not the rollout
        os.kill(pid, signal.SIGKILL)

    code = run.wait(timeout=90)

    assert code == 1, f"exit {code}\n{run.output()[-4000:]}"
    events = trail(cli.journal())
    assert ("weight", 100) not in events, events
    split = cli.probe(200)
    assert only_production(split), f"the canary still gets traffic after its stage died: {split.to_dict()}"
    assert ("rollback", 5) in events, events
    assert canary_is_stopped(cli)
