"""The rollback guard of a stage session: traffic withdrawn at the verdict, rollback on every exit path.

* The moment the stage fails (verdict FAIL or a harness error) ``early_withdraw`` puts the canary at
  0 % and verifies it, inside the stage run, before the load stops and before any release check runs;
  the time from the failure to 0 % in force goes into the stage record.
* ``finish_session`` runs first in ``pytest_sessionfinish`` (an outermost wrapper of the stage plugin,
  ``stage_plugin.CanaryStagePlugin``, before any other plugin's sessionfinish can raise) and again from
  its ``pytest_unconfigure`` if it never ran; the rollback itself is ``rollback.rollback_stage``. Any exit
  status but OK, whatever its value (``pytest.exit(returncode=42)``), rolls back; the journal is written
  after the rollback and a journal that cannot be written never prevents or masks it; a rollback that
  cannot be proven (NGINX gone, production not answering) makes the session exit 3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from canary_harness import journal
from canary_harness.errors import CanaryError, RollbackError
from canary_harness.judge.verdict import StageVerdict, outcome_summary
from canary_harness.pytest_plugin.keys import OPTIONS_KEY, RECORD_KEY, RECORD_PATH_KEY
from canary_harness.pytest_plugin.options import StageOptions
from canary_harness.pytest_plugin.record import StageRecord
from canary_harness.pytest_plugin.signals import SignalGuard
from canary_harness.pytest_plugin.smoke import SMOKE_BACKEND
from canary_harness.pytest_plugin.stage_services import external_traffic
from canary_harness.rollback import RollbackResult, rollback_stage, verify_requests_for, withdraw
from canary_harness.stages import stage_label

ACTOR = "pytest"


@dataclass
class ExitState:
    """What the guard knows about this session's rollback."""

    guard: SignalGuard
    early: RollbackResult | None = None  # traffic withdrawn at the failure, canary not stopped yet
    early_error: str | None = None
    finished: bool = False
    notes: list[str] = field(default_factory=list)


EXIT_KEY = pytest.StashKey[ExitState]()


def status_text(code: int) -> str:
    """``2 (INTERRUPTED)``, or ``42`` for a status that is not a pytest.ExitCode."""
    try:
        return f"{int(code)} ({pytest.ExitCode(code).name})"
    except ValueError:
        return str(code)


def stage_failure(record: StageRecord | None) -> str | None:
    """Why the stage itself failed (harness error or verdict FAIL), None if it did not."""
    if record is None:
        return None
    if record.verdict and record.verdict.get("state") == "FAIL":
        # The verdict is why traffic left; an error after it (a load that failed to stop) comes second.
        after = f"; then {record.error}" if record.error else ""
        return f"verdict FAIL: {record.verdict.get('reason')}{after}"
    return record.error or None


def passed_reason(record: StageRecord | None) -> str:
    """A passing stage's outcome as the rollout summary shows it: proven, or passed undecided."""
    if record is None or not record.verdict:
        return "all release checks passed"
    return f"all release checks passed; {outcome_summary(StageVerdict.from_dict(record.verdict))}"


def early_withdraw(
    options: StageOptions, record: StageRecord, state: ExitState, say: Callable[[str], None]
) -> Callable[[str], None]:
    """The stage's ``on_failed``: weight 0 now, verified; the canary is stopped at session end."""

    def withdraw_now(reason: str) -> None:
        started = time.monotonic()
        with state.guard.deferred():
            try:
                result = withdraw(
                    options.stack,
                    version=options.canary_version,
                    stage=options.stage,
                    reason=reason,
                    actor=ACTOR,
                    since=started,
                    external=external_traffic(options),
                    verify_requests=verify_requests_for(options.split_probe),
                )
            except (RollbackError, CanaryError) as exc:
                state.early_error = str(exc)
                record.rollback = {"ok": False, "error": str(exc)}
                say(f"canary: TRAFFIC NOT WITHDRAWN at the failure: {exc}")
                return
            state.early = result
            if result.weight_after is None:
                record.rollback = {"ok": True, "reason": reason, "notes": result.notes}
                say(f"canary: stage failed ({reason}): no traffic to withdraw ({'; '.join(result.notes)})")
                return
            zero_s = result.seconds_to_zero if result.seconds_to_zero is not None else 0.0
            record.rollback = {
                "ok": True,
                "reason": reason,
                "verdict_to_zero_s": zero_s,
                "weight_before": result.weight_before,
                "weight_after": result.weight_after,
                "shadow_before": result.shadow_before,
                "shadow_after": result.shadow_after,
                "probe": result.probe,
            }
            say(
                f"canary: stage failed ({reason}): canary weight 0 % in force {zero_s:.2f} s after the failure, "
                f"{result.probe.get('canary', 0)}/{result.probe.get('total', 0)} verification requests reached "
                "the canary; the release checks now report on the record"
            )

    return withdraw_now


def _append(run_dir_journal: Callable[[], object], say: Callable[[str], None]) -> None:
    try:
        run_dir_journal()
    except (OSError, ValueError) as exc:
        say(f"canary: WARNING: the journal could not be written ({exc}); the rollback itself is not affected")


def finish_session(session: pytest.Session, say: Callable[[str], None]) -> None:
    """Roll back unless the session passed; then the journal. Runs once per session, on the controller."""
    config = session.config
    options = config.stash.get(OPTIONS_KEY, None)
    state = config.stash.get(EXIT_KEY, None)
    if options is None or state is None or state.finished or options.backend == SMOKE_BACKEND:
        return  # a smoke run moved no traffic and records nothing: nothing to roll back
    state.finished = True
    state.guard.defer_all()
    record = config.stash.get(RECORD_KEY, None)
    if record is None and (config.option.collectonly or session.exitstatus == pytest.ExitCode.USAGE_ERROR):
        say("canary: no stage ran (collection only or usage error): nothing changed, nothing recorded")
        return
    failure = stage_failure(record)
    if session.exitstatus == pytest.ExitCode.OK and failure is not None:
        say(f"canary: the stage failed ({failure}) although no selected test did")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    failed = session.exitstatus != pytest.ExitCode.OK
    if state.guard.first:
        reason = f"interrupted by {state.guard.first}"
    else:
        reason = failure or f"pytest exit status {status_text(session.exitstatus)}"

    def verdict_entry() -> None:
        journal.append(
            options.stack.run_dir,
            "stage_verdict",
            version=options.canary_version,
            stage=options.stage,
            reason=reason if failed else passed_reason(record),
            passed=not failed,
            dry_run=options.dry_run,
            record=str(config.stash[RECORD_PATH_KEY]),
        )

    if not failed:
        _append(verdict_entry, say)
        say(
            f"canary: stage {stage_label(options.stage)} PASSED for {options.canary_version}"
            f"{' (dry run)' if options.dry_run else f'; weight left at {stage_label(options.stage)}'}"
        )
        return
    if options.no_rollback:
        _append(verdict_entry, say)
        say(f"canary: stage FAILED ({reason}); --canary-no-rollback given: weight left as it is")
        return
    if options.dry_run:
        _append(verdict_entry, say)
        say(f"canary: dry run FAILED ({reason}): no traffic was moved, so nothing is rolled back")
        return
    say(f"canary: stage {stage_label(options.stage)} FAILED ({reason}): rolling back {options.canary_version}")
    try:
        result = rollback_stage(
            options.stack,
            version=options.canary_version,
            stage=options.stage,
            reason=reason,
            actor=ACTOR,
            keep_canary=options.keep_canary,
            external=external_traffic(options),
            early=state.early,
            verdict_to_zero_s=(record.rollback or {}).get("verdict_to_zero_s") if record is not None else None,
            verify_requests=verify_requests_for(options.split_probe),
        )
    except (RollbackError, CanaryError) as exc:
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        _append(verdict_entry, say)
        say("canary: " + "!" * 70)
        say(f"canary: ROLLBACK FAILED: {exc}")
        say(
            "canary: the canary may still receive traffic, or users may get errors. Next: `canary stack status`, "
            "`canary rollback`"
        )
        say("canary: " + "!" * 70)
        return
    _append(verdict_entry, say)
    for note in result.notes:
        if note.startswith("journal not written"):
            say(f"canary: WARNING: {note}; the rollback itself is done")
    config.hook.pytest_canary_rollback(
        config=config, version=options.canary_version, stage=options.stage, reason=reason, result=result
    )
    say(f"canary: {result.summary()}")
