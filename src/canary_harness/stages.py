"""Stage numbers as people read them: 1..100 is the canary's share of users' traffic in percent, 0 is the
shadow stage (users stay on production; the canary is judged on copies of their requests, docs/shadow.md)."""

from __future__ import annotations

SHADOW_STAGE = 0


def stage_label(stage: int | None) -> str:
    """``"shadow"`` for stage 0, ``"5%"`` for stage 5, ``"?"`` when unknown."""
    if stage is None:
        return "?"
    return "shadow" if stage == SHADOW_STAGE else f"{stage}%"


def shadow_plan_point(share: float, users_rps: float) -> tuple[int, float]:
    """The (stage percent, total req/s) a planner that knows only weights sizes a shadow stage at. Copying a
    share s (0..1] of users' R req/s gives the canary s·R and production R: the split s / (1 + s) of
    (1 + s)·R requests."""
    return max(1, round(100 * share / (1 + share))), users_rps * (1 + share)
