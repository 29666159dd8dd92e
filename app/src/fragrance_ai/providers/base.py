"""What an LLM provider is: a named async interpreter of a brief into a ProviderReply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fragrance_ai import TIERS
from fragrance_ai.errors import ProviderError
from fragrance_ai.vocab import FAMILIES, GENDERS, NOTES, SEASONS


@dataclass(frozen=True)
class ProviderReply:
    """One provider's reading of a brief: categorical choices, an intensity, ranked notes per tier."""

    model: str
    style: str
    season: str
    gender: str
    intensity: float
    notes: Mapping[str, tuple[str, ...]]
    confidence: float


class Provider(Protocol):
    """An LLM provider of the ensemble. Implementations must be safe to call concurrently."""

    name: str

    async def interpret(self, brief: str, mode: str) -> ProviderReply:
        """Read ``brief`` in ``mode``; raise ProviderError when no usable reply can be had."""
        ...

    async def aclose(self) -> None:
        """Release connections (a no-op for offline providers)."""
        ...


def reply_from_json(model: str, data: Any) -> ProviderReply:
    """Validate a provider's JSON answer (e.g. an HTTP LLM's message content) into a ProviderReply."""
    if not isinstance(data, Mapping):
        raise ProviderError(f"{model}: reply is not a JSON object")

    def choice(key: str, allowed: tuple[str, ...]) -> str:
        value = data.get(key)
        if value not in allowed:
            raise ProviderError(f"{model}: reply field {key!r}={value!r} is not one of {', '.join(allowed)}")
        return str(value)

    def unit(key: str) -> float:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise ProviderError(f"{model}: reply field {key!r}={value!r} is not a number in [0, 1]")
        return float(value)

    raw_notes = data.get("notes")
    if not isinstance(raw_notes, Mapping):
        raise ProviderError(f"{model}: reply field 'notes' is not an object of tiers")
    notes: dict[str, tuple[str, ...]] = {}
    for tier in TIERS:
        ranked = raw_notes.get(tier)
        if not isinstance(ranked, list) or not ranked:
            raise ProviderError(f"{model}: reply notes.{tier} is not a non-empty list")
        # Unknown notes are dropped rather than failing the whole reply: LLMs embellish.
        known = tuple(dict.fromkeys(str(n).lower() for n in ranked if str(n).lower() in NOTES[tier]))
        if not known:
            raise ProviderError(f"{model}: reply notes.{tier} names no known {tier} note")
        notes[tier] = known
    return ProviderReply(
        model=model,
        style=choice("style", FAMILIES),
        season=choice("season", SEASONS),
        gender=choice("gender", GENDERS),
        intensity=unit("intensity"),
        notes=notes,
        confidence=unit("confidence"),
    )
