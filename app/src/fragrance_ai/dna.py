"""Fragrance DNA: notes with concentrations (percent of the concentrate) in top/heart/base tiers,
built from an llm_brief vote, changed by the mutation actions the PPO policy chooses, and described to
the policy as a feature vector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fragrance_ai import MODES, TIERS
from fragrance_ai.vocab import FAMILIES, NOTES

Dna = dict[str, list[dict[str, Any]]]  # tier -> [{"name": str, "concentration": float}, ...]

MAX_NOTES_PER_TIER = 6
ACTIONS: tuple[str, ...] = (
    "boost_top",
    "boost_heart",
    "boost_base",
    "soften_top",
    "soften_heart",
    "soften_base",
    "add_top",
    "add_heart",
    "add_base",
    "drop_weakest",
    "swap_weakest",
    "rebalance",
)
FEATURE_DIM = 3 + 3 + len(FAMILIES) + len(MODES) + 1 + 1


def _normalise(dna: Dna) -> Dna:
    """Scale concentrations to sum to 100 and round to 2 decimals."""
    total = sum(n["concentration"] for tier in TIERS for n in dna[tier]) or 1.0
    return {
        tier: [
            {"name": n["name"], "concentration": round(100.0 * n["concentration"] / total, 2)}
            for n in dna[tier]
        ]
        for tier in TIERS
    }


def tier_shares(intensity: float) -> dict[str, float]:
    """How much of the concentrate each tier gets: intense briefs lean on the base."""
    top = 0.25 - 0.10 * intensity
    base = 0.35 + 0.15 * intensity
    return {"top": top, "heart": 1.0 - top - base, "base": base}


def dna_from_vote(vote: Mapping[str, Any]) -> Dna:
    """Concentrations from the ranked notes of an (intact) llm_brief vote: earlier notes weigh more."""
    shares = tier_shares(float(vote["intensity"]))
    dna: Dna = {}
    for tier in TIERS:
        names = list(vote["notes"][tier])
        weights = np.array([1.0 / (rank + 1) for rank in range(len(names))])
        weights = shares[tier] * weights / weights.sum()
        dna[tier] = [{"name": n, "concentration": float(w)} for n, w in zip(names, weights, strict=True)]
    return _normalise(dna)


def _scale_tier(dna: Dna, tier: str, factor: float) -> Dna:
    changed = {t: [dict(n) for n in dna[t]] for t in TIERS}
    for note in changed[tier]:
        note["concentration"] *= factor
    return _normalise(changed)


def _candidates(tier: str, present: set[str], style: str) -> list[str]:
    """Notes of ``tier`` not in the DNA, those of the brief's style family first."""
    free = sorted(n for n in NOTES[tier] if n not in present)
    return sorted(free, key=lambda n: NOTES[tier][n] != style)


def apply_action(dna: Dna, action: str, style: str, rng: np.random.Generator) -> Dna:
    """The DNA after one mutation action (a new object; ``dna`` is not modified)."""
    changed = {t: [dict(n) for n in dna[t]] for t in TIERS}
    kind, _, tier = action.partition("_")
    if kind == "boost":
        return _scale_tier(dna, tier, 1.3)
    if kind == "soften":
        return _scale_tier(dna, tier, 0.7)
    if kind == "add":
        present = {n["name"] for n in changed[tier]}
        options = _candidates(tier, present, style)
        if options:
            pick = (
                options[0] if NOTES[tier][options[0]] == style else options[int(rng.integers(len(options)))]
            )
            mean = sum(n["concentration"] for n in changed[tier]) / max(len(changed[tier]), 1)
            if len(changed[tier]) >= MAX_NOTES_PER_TIER:
                changed[tier].sort(key=lambda n: n["concentration"])
                changed[tier].pop(0)
            changed[tier].append({"name": pick, "concentration": mean})
        return _normalise(changed)
    if action in ("drop_weakest", "swap_weakest"):
        candidates = [(n["concentration"], t, i) for t in TIERS for i, n in enumerate(changed[t])]
        _, weakest_tier, index = min(candidates)
        if action == "drop_weakest":
            if len(changed[weakest_tier]) > 1:
                changed[weakest_tier].pop(index)
        else:
            present = {n["name"] for n in changed[weakest_tier]}
            options = _candidates(weakest_tier, present, style)
            if options:
                changed[weakest_tier][index]["name"] = options[int(rng.integers(len(options)))]
        return _normalise(changed)
    if action == "rebalance":
        shares = tier_shares(0.5)
        for t in TIERS:
            for note in changed[t]:
                note["concentration"] = shares[t] / len(changed[t])
        return _normalise(changed)
    raise ValueError(f"unknown action {action!r}")


def features(dna: Dna, style: str, mode: str, intensity: float) -> np.ndarray:
    """The policy's view of a (DNA, brief) pair: tier shares, note counts, style, mode, intensity, bias."""
    shares = [sum(n["concentration"] for n in dna[t]) / 100.0 for t in TIERS]
    counts = [len(dna[t]) / MAX_NOTES_PER_TIER for t in TIERS]
    style_hot = [1.0 if f == style else 0.0 for f in FAMILIES]
    mode_hot = [1.0 if m == mode else 0.0 for m in MODES]
    return np.array(shares + counts + style_hot + mode_hot + [intensity, 1.0], dtype=np.float64)
