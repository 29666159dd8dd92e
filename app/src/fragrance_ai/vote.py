"""Weighted voting: several providers' replies into one ``llm_brief`` document (pure, no I/O).

A provider's say is its configured weight times its own confidence. Categorical fields go to the
weighted plurality (ties to the earlier provider in LLM_ENSEMBLE_MODELS order), intensity is the
weighted mean, and notes per tier are a weighted Borda count over the providers' rankings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fragrance_ai import TIERS
from fragrance_ai.providers.base import ProviderReply

SCHEMA_VERSION = "1.0"
MIN_SAY = 1e-6


def _plurality(values: Sequence[str], says: Sequence[float]) -> tuple[str, dict[str, float]]:
    totals: dict[str, float] = {}
    for value, say in zip(values, says, strict=True):
        totals[value] = totals.get(value, 0.0) + say
    # max() keeps the first maximal key and dicts keep insertion order: ties go to the earlier provider.
    winner = max(totals, key=lambda key: totals[key])
    return winner, {key: round(total, 6) for key, total in totals.items()}


def _borda(rankings: Sequence[Sequence[str]], says: Sequence[float], keep: int) -> list[str]:
    points: dict[str, float] = {}
    for ranking, say in zip(rankings, says, strict=True):
        size = len(ranking)
        for rank, note in enumerate(ranking):
            points[note] = points.get(note, 0.0) + say * (size - rank) / size
    return sorted(points, key=lambda note: (-points[note], note))[:keep]


def weighted_vote(replies: Sequence[ProviderReply], weights: Sequence[float], *, mode: str) -> dict[str, Any]:
    """Combine replies (with their providers' weights) into an llm_brief document."""
    if not replies:
        raise ValueError("weighted_vote needs at least one reply")
    if len(replies) != len(weights):
        raise ValueError(f"{len(replies)} replies but {len(weights)} weights")
    says = [max(weight * reply.confidence, MIN_SAY) for reply, weight in zip(replies, weights, strict=True)]
    total = sum(says)
    style, style_votes = _plurality([r.style for r in replies], says)
    season, season_votes = _plurality([r.season for r in replies], says)
    gender, gender_votes = _plurality([r.gender for r in replies], says)
    keep = round(sum(len(r.notes["heart"]) * s for r, s in zip(replies, says, strict=True)) / total)
    notes = {tier: _borda([r.notes[tier] for r in replies], says, max(1, min(keep, 6))) for tier in TIERS}
    return {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "models": [r.model for r in replies],
        "style": style,
        "season": season,
        "gender": gender,
        "intensity": round(sum(r.intensity * s for r, s in zip(replies, says, strict=True)) / total, 4),
        "notes": notes,
        "confidence": round(style_votes[style] / total, 4),
        "votes": {"style": style_votes, "season": season_votes, "gender": gender_votes},
    }
