"""The progressive rollout: one pytest stage session per stage, stop at the first failure, promotion.

Each stage runs ``python -m pytest --canary-version V --stage N ...`` in a child process: exactly
the session a person would run by hand, so the stage's own plugin rolls back when it fails. The
child runs in its own process group, so a terminal's Ctrl-C reaches it only once: the rollout
forwards the first SIGINT/SIGTERM/SIGHUP to the running stage as SIGINT (the stage session then rolls
back as it does on Ctrl-C) and records its own start and end in the journal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from canary_harness import journal
from canary_harness.config import StackSettings
from canary_harness.errors import ConfigError, RolloutError
from canary_harness.lock import RolloutLock
from canary_harness.redact import show_env
from canary_harness.reporting.allure_cli import rollout_allure_args
from canary_harness.rollback import rollback
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.stages import stage_label
from canary_harness.traffic.probe import probe_split

DEFAULT_STAGES: tuple[int, ...] = (1, 5, 25, 100)
# How long a stage may take to roll back after it was asked to stop.
STOP_GRACE_S = 120.0
# The environment twins of the stage session's --canary-env / --production-env (JSON objects).
CANARY_ENV_VAR = "CANARY_ENV"
PRODUCTION_ENV_VAR = "CANARY_PRODUCTION_ENV"


def parse_stages(raw: str, source: str, *, require_full: bool = True) -> tuple[int, ...]:
    """``"1,5,25,100"`` → (1, 5, 25, 100): ascending integers in 1..100, ending at 100 unless told otherwise;
    0 (or ``shadow``), the shadow stage, may come first."""
    parts = [part.strip() for part in str(raw).split(",")]
    stages: list[int] = []
    for part in parts:
        part = "0" if part.lower() == "shadow" else part
        if not (part.isascii() and part.isdigit()) or not 0 <= int(part) <= 100:
            raise ConfigError(
                f"stages {raw!r} ({source}): {part!r} is not an integer percentage in 1..100 (or 0: shadow)"
            )
        stages.append(int(part))
    if any(later <= earlier for earlier, later in zip(stages, stages[1:], strict=False)):
        raise ConfigError(f"stages {raw!r} ({source}): must be strictly ascending")
    if require_full and stages[-1] != 100:
        raise ConfigError(f"stages {raw!r} ({source}): must end at 100 (or pass --partial)")
    return tuple(stages)


@dataclass
class StageOutcome:
    """How one stage of the rollout ended."""

    stage: int
    exit_code: int
    seconds: float
    reason: str = ""
    record: str | None = None

    @property
    def passed(self) -> bool:
        """The stage session exited 0."""
        return self.exit_code == 0


@dataclass
class RolloutPlan:
    """What a rollout will run."""

    version: str
    stages: tuple[int, ...]
    stack: StackSettings
    observation_period: float | None = None
    dry_run: bool = False
    judge: str | None = None
    canary_env: dict[str, str] = field(default_factory=dict)
    production_env: dict[str, str] = field(default_factory=dict)
    config_file: str | None = None
    pytest_args: tuple[str, ...] = ()
    workdir: Path = field(default_factory=Path.cwd)

    def stage_command(self, stage: int) -> list[str]:
        """The pytest command line of one stage (printed in the banner so it can be re-run by hand)."""
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--canary-version",
            self.version,
            "--canary-stage",
            str(stage),
            "--canary-production-version",
            self.stack.production_version,
            f"--canary-run-dir={self.stack.run_dir}",
            "--canary-backend",
            self.stack.backend,
        ]
        if self.observation_period is not None:
            command += ["--canary-observation-period", f"{self.observation_period:g}"]
        if self.dry_run:
            command.append("--canary-dry-run")
        if self.judge:
            command += ["--canary-judge", self.judge]
        if self.config_file:
            command.append(f"--canary-config={self.config_file}")  # '=': pytest must not take it as a root
        # --canary-env/--production-env travel in the environment (stage_environ), never in argv.
        command += rollout_allure_args(self.stack.run_dir, self.pytest_args, first_stage=stage == self.stages[0])
        return command + ["-p", "no:cacheprovider", *self.pytest_args]

    def stage_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """The stage child's environment: ``base`` plus the services' environment as JSON in the twins of
        --canary-env/--production-env (``/proc/PID/environ`` is private to the user, argv is not)."""
        environ = {key: value for key, value in base.items() if key not in (CANARY_ENV_VAR, PRODUCTION_ENV_VAR)}
        if self.canary_env:
            environ[CANARY_ENV_VAR] = json.dumps(dict(self.canary_env))
        if self.production_env:
            environ[PRODUCTION_ENV_VAR] = json.dumps(dict(self.production_env))
        return environ

    def env_note(self) -> str:
        """How the banner shows the services' environment: names only (``KEY=***``)."""
        parts = [
            f"--{flag} {show_env({key: value})}"
            for flag, env in (("canary-env", self.canary_env), ("production-env", self.production_env))
            for key, value in env.items()
        ]
        return f" (plus {' '.join(parts)}, passed by environment)" if parts else ""


class _StopRequest:
    """Turns SIGINT/SIGTERM into 'stop the running stage', remembered for the summary."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._forwarded_to: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = self.signal or signum
        child = self.child
        if child is not None and child.poll() is None and self._forwarded_to != child.pid:
            # Once per stage: the stage session treats SIGINT as Ctrl-C (it rolls back and exits); a
            # second one would only be deferred by it, so repeating it adds nothing.
            self._forwarded_to = child.pid
            child.send_signal(signal.SIGINT)


def _rolled_back_since(run_dir: Path, version: str, since: float) -> bool:
    return any(
        entry.time >= since and entry.version == version and entry.event in ("rollback", "rollback_failed")
        for entry in journal.read(run_dir)
    )


def _last_stage_verdict(run_dir: Path, version: str, stage: int, since: float) -> journal.JournalEntry | None:
    found = None
    for entry in journal.read(run_dir):
        if entry.time >= since and entry.event == "stage_verdict" and entry.version == version and entry.stage == stage:
            found = entry
    return found


def run_rollout(plan: RolloutPlan, say: Callable[[str], None], lock: RolloutLock | None = None) -> list[StageOutcome]:
    """Run every stage in order; stop at the first that fails. Returns the outcomes so far. The stage
    sessions inherit ``lock`` (held by the caller) instead of being refused by it."""
    outcomes: list[StageOutcome] = []
    run_dir = plan.stack.run_dir
    journal.append(
        run_dir,
        "rollout_start",
        version=plan.version,
        reason="canary rollout",
        stages=list(plan.stages),
        dry_run=plan.dry_run,
    )
    with _StopRequest() as stop:
        for stage in plan.stages:
            if stop.signal is not None:
                break
            say(f"--- stage {stage_label(stage)} of {plan.version} ---")
            started, wall = time.monotonic(), time.time()
            environ = plan.stage_environ({**os.environ, "CANARY_ACTOR": os.environ.get("CANARY_ACTOR", "rollout")})
            # Its own process group: the terminal's Ctrl-C goes to the rollout only, which forwards it once.
            stop.child = subprocess.Popen(
                plan.stage_command(stage),
                cwd=plan.workdir,
                process_group=0,
                env=lock.child_environ(environ) if lock else environ,
            )
            code = _wait(stop.child, stop)
            stop.child = None
            if (
                code != 0
                and not {"--no-rollback", "--canary-no-rollback"} & set(plan.pytest_args)
                and not plan.dry_run
                and not _rolled_back_since(run_dir, plan.version, wall)
            ):
                # The stage session died before its own rollback (killed, out of memory): do it here.
                rollback(
                    plan.stack,
                    version=plan.version,
                    stage=stage,
                    actor="rollout",
                    reason=f"stage session exited {code} without rolling back",
                )
            entry = _last_stage_verdict(run_dir, plan.version, stage, wall)
            if code == 0 and (entry is None or not entry.details.get("passed")):
                code = 1  # exit 0 without a passing verdict: the session ran no stage (e.g. --collect-only)
            outcome = StageOutcome(
                stage,
                code,
                time.monotonic() - started,
                reason=entry.reason if entry else f"stage session exited {code} without a verdict",
                record=entry.details.get("record") if entry else None,
            )
            outcomes.append(outcome)
            say(
                f"--- stage {stage_label(stage)}: {'PASSED' if outcome.passed else 'FAILED'} in {outcome.seconds:.0f}s"
                f": {outcome.reason} ---"
            )
            if not outcome.passed:
                break
    completed = len(outcomes) == len(plan.stages) and all(item.passed for item in outcomes)
    signal_name = signal.Signals(stop.signal).name if stop.signal is not None else None
    journal.append(
        run_dir,
        "rollout_end",
        version=plan.version,
        reason="completed" if completed else ("interrupted" if signal_name else "stage failed"),
        passed=completed,
        stages=list(plan.stages),
        dry_run=plan.dry_run,
        outcomes=[vars(item) for item in outcomes],
        signal=signal_name,
    )
    if signal_name and not plan.dry_run and not (outcomes and not outcomes[-1].passed):
        # The signal came between stages (or the stage ended first): nothing rolled back yet.
        rollback(
            plan.stack,
            version=plan.version,
            stage=outcomes[-1].stage if outcomes else None,
            reason=f"rollout interrupted by {signal_name}",
            actor="rollout",
        )
    return outcomes


def _wait(child: subprocess.Popen[bytes], stop: _StopRequest) -> int:
    deadline: float | None = None
    while True:
        try:
            return child.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            if stop.signal is not None:
                deadline = deadline or time.monotonic() + STOP_GRACE_S
                if time.monotonic() > deadline:
                    child.kill()
                    return child.wait()


def completed_rollout(run_dir: Path, version: str) -> journal.JournalEntry | None:
    """The last successful, non-dry-run rollout of ``version`` reaching 100 %, unless rolled back since."""
    found: journal.JournalEntry | None = None
    for entry in journal.read(run_dir, strict=True):  # promotion is not decided on a damaged journal
        if entry.version != version:
            continue
        if entry.event == "rollout_end":
            full = (
                entry.details.get("passed")
                and not entry.details.get("dry_run")
                and (entry.details.get("stages") or [0])[-1] == 100
            )
            found = entry if full else None
        elif entry.event in ("rollback", "promote"):
            found = None
    return found


def require_completed_rollout(run_dir: Path, version: str) -> journal.JournalEntry:
    """The journal entry that allows promotion, or RolloutError saying why not."""
    entry = completed_rollout(run_dir, version)
    if entry is None:
        raise RolloutError(
            f"promotion of {version} refused: the journal in {run_dir} shows no complete successful rollout "
            f"of {version} to 100 % (or it was rolled back or promoted since). Run `canary rollout --version "
            f"{version}` first; `canary history --version {version}` shows what happened."
        )
    return entry


def rollback_failed_since(run_dir: Path, version: str, since: float) -> bool:
    """The last rollback of ``version`` since ``since`` failed (journal ``rollback_failed``)."""
    last = None
    for entry in journal.read(run_dir):
        if entry.time >= since and entry.version == version and entry.event in ("rollback", "rollback_failed"):
            last = entry.event
    return last == "rollback_failed"


def format_summary(plan: RolloutPlan, outcomes: Sequence[StageOutcome], *, rollback_failed: bool = False) -> str:
    """The end-of-rollout summary with next steps."""
    lines = [f"Rollout summary for {plan.version}{' (dry run: no traffic moved)' if plan.dry_run else ''}"]
    done = {item.stage: item for item in outcomes}
    for stage in plan.stages:
        item = done.get(stage)
        status = "not run" if item is None else ("PASSED" if item.passed else "FAILED")
        detail = "" if item is None else f"{item.seconds:6.0f}s  {item.reason}"
        lines.append(f"  stage {stage_label(stage):>4}  {status:<8} {detail}")
    if len(outcomes) == len(plan.stages) and all(item.passed for item in outcomes):
        if plan.dry_run:
            lines.append("Next: run it for real: canary rollout --version " + plan.version)
        elif plan.stages[-1] != 100:
            lines.append(f"Partial rollout: the canary serves {plan.stages[-1]} %. Promotion needs a rollout to 100 %.")
        else:
            lines.append(f"Next: canary promote --version {plan.version}   (production becomes {plan.version})")
    elif rollback_failed:
        lines.append(
            "ROLLBACK FAILED: the canary may still receive traffic or users may get errors (see the "
            "stage output above). Next: canary stack status; canary rollback; canary history"
        )
    elif plan.dry_run:
        lines.append("Dry run failed: no traffic was moved and nothing was rolled back. Next: the stage output above")
    else:
        lines.append(
            "The canary was rolled back to 0 %. Next: canary history; the stage output above; "
            f"canary logs in {plan.stack.run_dir}/logs"
        )
    return "\n".join(lines)


def promote(settings: StackSettings, version: str, say: Callable[[str], None]) -> None:
    """Production becomes ``version``: restart production at it (with the environment the canary was
    verified with) while the canary serves, move all traffic back to production, stop the canary."""
    run_dir = settings.run_dir
    require_completed_rollout(run_dir, version)
    state = load_state(run_dir)
    if state is None or state.canary is None or state.production is None or state.canary.version != version:
        raise RolloutError(
            f"promotion of {version} refused: no canary {version} is running in the stack "
            f"recorded in {run_dir} (see canary stack status)"
        )
    stack = LocalStack(settings)
    traffic = stack.traffic()
    if traffic.canary_weight() != 100:
        say(f"canary: moving all traffic to the canary {version} before production restarts")
        traffic.set_canary_weight(100, reason=f"promote {version}")
        journal.append(run_dir, "weight", version=version, reason="promote: canary takes all traffic", weight=100)
    say(f"canary: restarting production at {version}")
    stack.restart_production(version, env=stack.service_env("canary"))
    traffic.set_canary_weight(0, reason=f"promote {version}: production runs it")
    journal.append(run_dir, "weight", version=version, reason="promote: production runs the release", weight=0)
    split = probe_split(traffic.base_url, 100)
    versions = dict(split.by_version)
    if split.canary != 0 or set(versions) - {version}:
        raise RolloutError(f"promotion of {version}: after the switch the traffic probe saw {versions}")
    stack.stop_canary()
    journal.append(
        run_dir,
        "promote",
        version=version,
        reason="production now runs the release",
        previous_production=state.production.version,
        probe=split.to_dict(),
    )
    say(f"canary: {version} promoted: production serves it, canary stopped, weight 0 %")
