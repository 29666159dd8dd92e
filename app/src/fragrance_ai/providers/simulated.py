"""The offline provider: a deterministic (for a seed) keyword reader with realistic, scalable latency.

Each named model reads the brief through the same lexicon but with its own prior over families and a
mode-dependent amount of "creativity" noise, so the providers of an ensemble mostly agree and sometimes
do not: what the weighted vote is for.
"""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np

from fragrance_ai import TIERS
from fragrance_ai.latency import LogNormal, provider_latency
from fragrance_ai.providers.base import ProviderReply
from fragrance_ai.vocab import (
    FAMILIES,
    FAMILY_SEASON,
    GENDER_WORDS,
    INTENSITY_WORDS,
    KEYWORDS,
    NOTES,
    SEASON_WORDS,
    words,
)

# Standard deviation of the noise added to family scores, per mode (creative reads more freely).
MODE_NOISE: dict[str, float] = {"fast": 0.25, "balanced": 0.4, "creative": 0.8}
NOTES_PER_TIER: dict[str, int] = {"fast": 3, "balanced": 3, "creative": 4}


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from arbitrary parts, stable across processes (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class SimulatedProvider:
    """An offline LLM stand-in: deterministic replies for (seed, model, mode, brief), lognormal latency."""

    def __init__(self, name: str, *, seed: int, latency_scale: float, n_providers: int) -> None:
        self.name = name
        self.latency_scale = latency_scale
        self._latency: dict[str, LogNormal] = {
            mode: provider_latency(mode, n_providers) for mode in MODE_NOISE
        }
        self._latency_rng = np.random.default_rng(stable_seed(seed, name, "latency"))
        self._seed = seed
        prior_rng = np.random.default_rng(stable_seed(seed, name, "prior"))
        self._prior = prior_rng.normal(0.0, 0.15, len(FAMILIES))

    def latency_s(self, mode: str) -> float:
        """The next simulated latency in seconds (already multiplied by the scale)."""
        if self.latency_scale == 0.0:
            return 0.0
        return self._latency[mode].sample(self._latency_rng) * self.latency_scale

    async def interpret(self, brief: str, mode: str) -> ProviderReply:
        """Wait the simulated latency (without blocking the loop), then read the brief."""
        delay = self.latency_s(mode)
        if delay > 0.0:
            await asyncio.sleep(delay)
        return self.read(brief, mode)

    def read(self, brief: str, mode: str) -> ProviderReply:
        """The deterministic interpretation (no latency)."""
        rng = np.random.default_rng(stable_seed(self._seed, self.name, mode, brief))
        tokens = words(brief)
        scores = self._prior.copy()
        for token in tokens:
            family = KEYWORDS.get(token)
            if family is not None:
                scores[FAMILIES.index(family)] += 1.0
        scores += rng.normal(0.0, MODE_NOISE[mode], len(FAMILIES))
        order = np.argsort(-scores, kind="stable")
        style = FAMILIES[int(order[0])]
        weights = np.exp(scores - scores.max())
        confidence = float(np.clip(weights[order[0]] / weights.sum(), 0.05, 0.99))

        seasons = [SEASON_WORDS[t] for t in tokens if t in SEASON_WORDS]
        season = max(set(seasons), key=seasons.count) if seasons else FAMILY_SEASON[style]
        genders = [GENDER_WORDS[t] for t in tokens if t in GENDER_WORDS]
        gender = max(set(genders), key=genders.count) if genders else "unisex"
        intensity = 0.5 + sum(INTENSITY_WORDS.get(t, 0.0) for t in tokens) + rng.normal(0.0, 0.05)

        family_score = dict(zip(FAMILIES, scores.tolist(), strict=True))
        notes: dict[str, tuple[str, ...]] = {}
        for tier in TIERS:
            names = sorted(NOTES[tier])
            jitter = rng.normal(0.0, MODE_NOISE[mode] / 2, len(names))
            note_scores = [family_score[NOTES[tier][n]] + j for n, j in zip(names, jitter, strict=True)]
            ranked = [names[i] for i in np.argsort(-np.asarray(note_scores), kind="stable")]
            notes[tier] = tuple(ranked[: NOTES_PER_TIER[mode]])
        return ProviderReply(
            model=self.name,
            style=style,
            season=season,
            gender=gender,
            intensity=float(np.clip(intensity, 0.0, 1.0)),
            notes=notes,
            confidence=round(confidence, 4),
        )

    async def aclose(self) -> None:
        """Nothing to release."""
