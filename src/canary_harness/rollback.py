"""Rollback: canary weight 0, verified by real requests, canary stopped, a journal entry.

Shared by the stage session (automatic, on any failed session) and ``canary rollback`` (manual).
Idempotent: rolling back a stack already at 0 % verifies and records again, and changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from canary_harness import journal
from canary_harness.config import StackSettings
from canary_harness.errors import CanaryError, RollbackError
from canary_harness.stack import LocalStack, load_state
from canary_harness.traffic.external import ExternalNginxController
from canary_harness.traffic.nginx import probe_split

VERIFY_REQUESTS = 200


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """One line for people: the weight in force, what the verification requests saw, the canary."""
        if self.weight_after is None:
            return f"nothing to roll back: {'; '.join(self.notes)}"
        canary = "stopped" if self.canary_stopped else "not running" if self.version is None else "left running"
        return (f"rolled back {self.version or '(no canary running)'}: weight {self.weight_after}% in force, "
                f"{self.probe.get('canary', 0)}/{self.probe.get('total', 0)} verification requests reached "
                f"the canary, canary {canary}")


def rollback(
    settings: StackSettings,
    *,
    version: str | None,
    stage: int | None,
    reason: str,
    keep_canary: bool = False,
    actor: str | None = None,
    external: ExternalNginxController | None = None,
) -> RollbackResult:
    """Put the canary at 0 % and prove it with traffic; raise RollbackError if that cannot be proven.

    ``external``: the user's NGINX to roll back instead of the recorded stack's (services given by URL,
    which are never stopped).
    """
    result = RollbackResult(version, stage, reason)
    state = load_state(settings.run_dir)
    if state is None and external is None:
        result.notes.append(f"no stack recorded in {settings.run_dir}: no traffic to move")
    else:
        stack = LocalStack(settings)
        traffic = external if external is not None else stack.traffic()
        try:
            result.weight_before = traffic.canary_weight()
            if result.weight_before != 0:
                traffic.set_canary_weight(0, reason=f"rollback: {reason}")
            result.weight_after = traffic.canary_weight()
            split = probe_split(traffic.base_url, VERIFY_REQUESTS)
        except CanaryError as exc:
            journal.append(settings.run_dir, "rollback_failed", version=version, stage=stage,
                           reason=f"{reason}: {exc}", actor=actor)
            what = version or "the canary"
            raise RollbackError(f"rollback of {what} could not set or verify weight 0: {exc}") from exc
        result.probe = split.to_dict()
        if result.weight_after != 0 or split.canary != 0:
            journal.append(settings.run_dir, "rollback_failed", version=version, stage=stage, reason=reason,
                           actor=actor, weight_after=result.weight_after, probe=result.probe)
            raise RollbackError(
                f"rollback of {version}: weight in force {result.weight_after}, "
                f"{split.canary} of {split.total} verification requests still reached the canary"
            )
        if not keep_canary and external is None and state is not None and state.canary is not None:
            stack.stop_canary()
            result.canary_stopped = True
    journal.append(settings.run_dir, "rollback", version=version, stage=stage, reason=reason, actor=actor,
                   **{k: v for k, v in result.to_dict().items() if k not in ("version", "stage", "reason")})
    return result
