"""Stage numbers as people read them: 1..100 is the canary's share of users' traffic in percent, 0 is the
shadow stage (users stay on production; the canary is judged on copies of their requests, docs/shadow.md)."""

from __future__ import annotations

SHADOW_STAGE = 0


def stage_label(stage: int | None) -> str:
    """``"shadow"`` for stage 0, ``"5%"`` for stage 5, ``"?"`` when unknown."""
    if stage is None:
        return "?"
    return "shadow" if stage == SHADOW_STAGE else f"{stage}%"
