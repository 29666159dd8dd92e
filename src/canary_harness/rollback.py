"""Rollback: canary weight 0, verified by real requests, canary stopped, a journal entry.

Shared by the stage session (automatic, on any failed session) and ``canary rollback`` (manual).
Idempotent: rolling back a stack already at 0 % verifies and records again, and changes nothing.

Two steps so that the stage session can take traffic away the moment its verdict is FAIL, before the
release checks run, and stop the canary only at the end: ``withdraw`` (weight 0 in force, proven by
requests that production answers) and ``finish`` (canary stopped, one journal entry). ``rollback``
does both. The journal is written after the work, and a journal that cannot be written never turns a
done rollback into a failed one: it becomes a note on the result.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from canary_harness import journal
from canary_harness.config import StackSettings
from canary_harness.errors import CanaryError, RollbackError
from canary_harness.stack import LocalStack
from canary_harness.stack_state import load_state
from canary_harness.traffic.probe import probe_split
from canary_harness.traffic.protocol import TrafficController

VERIFY_REQUESTS = 200


def verify_requests_for(split_probe: int) -> int:
    """A stage's rollback verification: half its split probe ([stage] split_probe; 400 -> 200), at least 20."""
    return max(20, split_probe // 2)


NEXT_STEP_PRODUCTION_DOWN = (
    "production does not answer: the canary was kept running (it may be the only working version). "
    "Next: `canary stack status`, bring production back (`canary stack up`), then `canary rollback`"
)


@dataclass
class RollbackResult:
    """What a rollback found and left."""

    version: str | None
    stage: int | None
    reason: str
    weight_before: int | None = None
    weight_after: int | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    canary_stopped: bool = False
    notes: list[str] = field(default_factory=list)
    seconds_to_zero: float | None = None  # from the call to weight 0 confirmed by NGINX (before the probe)
    rewrote_upstream: bool = False  # 0 % was in force but the live file said otherwise: rewritten
    # Stage 0: the share of requests NGINX copied to the canary before the rollback, and after (must be 0).
    shadow_before: int | None = None
    shadow_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """One line for people: the weight in force, what the verification requests saw, the canary."""
        if self.weight_after is None:
            return f"nothing to roll back: {'; '.join(self.notes)}"
        canary = "stopped" if self.canary_stopped else "not running" if self.version is None else "left running"
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"rolled back {self.version or '(no canary running)'}: weight {self.weight_after}% in force, "
            f"{self.probe.get('canary', 0)}/{self.probe.get('total', 0)} verification requests reached "
            f"the canary, canary {canary}{notes}"
        )


def _journal(settings: StackSettings, event: str, result: RollbackResult | None, **fields: Any) -> None:
    """Append to the journal; a failure to write (disk full, permissions) becomes a note, never an error."""
    try:
        journal.append(settings.run_dir, event, **fields)
    except (OSError, ValueError) as exc:
        note = f"journal not written ({event}): {exc}"
        if result is not None:
            result.notes.append(note)


def _upstream_file_weight(traffic: TrafficController) -> int | None:
    """The canary weight the router's configuration holds (what the next reload would load), None if unknown."""
    try:
        return traffic.configured_canary_weight()
    except (CanaryError, OSError):
        return None


def withdraw(
    settings: StackSettings,
    *,
    version: str | None,
    stage: int | None,
    reason: str,
    actor: str | None = None,
    since: float | None = None,
    external: TrafficController | None = None,
    verify_requests: int = VERIFY_REQUESTS,
) -> RollbackResult:
    """Weight 0 in force, proven by ``verify_requests`` requests: none reaches the canary and production
    answers every one with 2xx. Raises RollbackError (journal ``rollback_failed``) otherwise.

    ``seconds_to_zero`` counts from ``since`` (a ``time.monotonic()`` value, default: this call) to the
    moment NGINX reports 0 % in force. ``external``: the user's NGINX to roll back instead of the
    recorded stack's (services given by URL).
    """
    result = RollbackResult(version, stage, reason)
    state = load_state(settings.run_dir)
    if state is None and external is None:
        result.notes.append(f"no stack recorded in {settings.run_dir}: no traffic to move")
        return result
    traffic = external if external is not None else LocalStack(settings).traffic()
    started = time.monotonic() if since is None else since
    try:
        before = traffic.weights_in_force()
        result.weight_before, result.shadow_before = before.canary_weight, before.shadow_share
        # 0 % in force is not enough: a live file that says otherwise comes back at the next reload. A shadow
        # stage is at 0 % too, but NGINX still copies requests to the canary: weight 0 ends the copies.
        if result.weight_before != 0 or result.shadow_before or _upstream_file_weight(traffic) not in (0, None):
            result.rewrote_upstream = result.weight_before == 0 and not result.shadow_before
            traffic.set_canary_weight(0, reason=f"rollback: {reason}")
        after = traffic.weights_in_force()
        result.weight_after, result.shadow_after = after.canary_weight, after.shadow_share
        result.seconds_to_zero = round(time.monotonic() - started, 3)
        split = probe_split(traffic.base_url, verify_requests)
    except CanaryError as exc:
        _journal(
            settings, "rollback_failed", None, version=version, stage=stage, reason=f"{reason}: {exc}", actor=actor
        )
        raise RollbackError(
            f"rollback of {version or 'the canary'} could not set or verify weight 0: {exc}. "
            "Next: `canary stack status`, then `canary rollback`"
        ) from exc
    result.probe = split.to_dict()
    if result.weight_after != 0 or split.canary != 0 or result.shadow_after:
        _journal(
            settings,
            "rollback_failed",
            None,
            version=version,
            stage=stage,
            reason=reason,
            actor=actor,
            weight_after=result.weight_after,
            probe=result.probe,
        )
        raise RollbackError(
            f"rollback of {version}: weight in force {result.weight_after}, {result.shadow_after or 0} % of "
            f"requests still copied to the canary, {split.canary} of {split.total} verification requests still "
            "reached the canary. "
            "Next: `canary stack status`, then `canary rollback`"
        )
    if split.ok != split.total or split.production != split.total:
        # 0 requests reached the canary, but users get errors: that is not a successful rollback.
        _journal(
            settings,
            "rollback_failed",
            None,
            version=version,
            stage=stage,
            actor=actor,
            reason=f"{reason}: production does not answer",
            weight_after=result.weight_after,
            probe=result.probe,
            canary_kept=True,
        )
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(split.by_status.items()))
        raise RollbackError(
            f"rollback of {version}: weight 0 % in force but only {split.ok} of {split.total} verification "
            f"requests through NGINX got a 2xx from production (statuses {statuses or 'none'}; "
            f"{split.failures} without answer{': ' + split.errors[0] if split.errors else ''}). "
            + NEXT_STEP_PRODUCTION_DOWN
        )
    return result


def finish(
    settings: StackSettings,
    result: RollbackResult,
    *,
    keep_canary: bool = False,
    actor: str | None = None,
    external: TrafficController | None = None,
) -> RollbackResult:
    """After a successful ``withdraw``: stop the canary (unless kept, or behind the user's own NGINX:
    services given by URL are never stopped), then one journal ``rollback`` entry."""
    state = load_state(settings.run_dir)
    if not keep_canary and external is None and state is not None and state.canary is not None:
        LocalStack(settings).stop_canary()
        result.canary_stopped = True
    _journal(
        settings,
        "rollback",
        result,
        version=result.version,
        stage=result.stage,
        reason=result.reason,
        actor=actor,
        **{k: v for k, v in result.to_dict().items() if k not in ("version", "stage", "reason")},
    )
    return result


def rollback(
    settings: StackSettings,
    *,
    version: str | None,
    stage: int | None,
    reason: str,
    keep_canary: bool = False,
    actor: str | None = None,
    external: TrafficController | None = None,
) -> RollbackResult:
    """Put the canary at 0 % and prove it with traffic; raise RollbackError if that cannot be proven.

    ``external``: the user's NGINX to roll back instead of the recorded stack's (services given by URL,
    which are never stopped).
    """
    result = withdraw(settings, version=version, stage=stage, reason=reason, actor=actor, external=external)
    return finish(settings, result, keep_canary=keep_canary, actor=actor, external=external)


def rollback_stage(
    settings: StackSettings,
    *,
    version: str,
    stage: int,
    reason: str,
    actor: str,
    keep_canary: bool = False,
    external: TrafficController | None = None,
    early: RollbackResult | None = None,
    verdict_to_zero_s: float | None = None,
    verify_requests: int = VERIFY_REQUESTS,
) -> RollbackResult:
    """The rollback at the end of a failed stage session: weight 0 verified again (even after an early
    withdrawal: nothing may have moved the weight since), canary stopped, one journal entry.

    ``early``: the withdrawal made the moment the stage failed, before the release checks; its weight before
    and ``verdict_to_zero_s`` (the failure to 0 % in force) are what the result reports then.
    """
    result = withdraw(
        settings,
        version=version,
        stage=stage,
        reason=reason,
        actor=actor,
        external=external,
        verify_requests=verify_requests,
    )
    if early is not None:
        result.weight_before = early.weight_before
        if verdict_to_zero_s is not None:
            result.seconds_to_zero = verdict_to_zero_s
        result.notes.append("traffic withdrawn at the stage failure, before the release checks")
    return finish(settings, result, keep_canary=keep_canary, actor=actor, external=external)
