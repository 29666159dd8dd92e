"""The LLM ensemble: ask every provider concurrently, vote, apply latency/schema faults, validate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fragrance_ai.errors import ProviderError
from fragrance_ai.faults import FaultInjector
from fragrance_ai.providers.base import Provider, ProviderReply
from fragrance_ai.schema import break_document, schema_errors
from fragrance_ai.vote import weighted_vote


class AllProvidersFailed(ProviderError):
    """No provider of the ensemble produced a usable reply."""


@dataclass(frozen=True)
class BriefResult:
    """One ensemble reading: the served document, the intact vote and how it went."""

    document: dict[str, Any]
    vote: dict[str, Any]
    models: list[str]
    elapsed_ms: float
    schema_ok: bool
    schema_errors: list[str] = field(default_factory=list)
    provider_errors: list[str] = field(default_factory=list)


class Ensemble:
    """Weighted-voting ensemble over pluggable providers."""

    def __init__(self, providers: Sequence[Provider], weights: Sequence[float], injector: FaultInjector):
        if not providers or len(providers) != len(weights):
            raise ValueError("an ensemble needs providers and one weight per provider")
        self.providers = list(providers)
        self.weights = list(weights)
        self.injector = injector

    @property
    def models(self) -> list[str]:
        """Names of the providers, in voting order."""
        return [p.name for p in self.providers]

    async def brief(self, text: str, mode: str) -> BriefResult:
        """Read ``text`` in ``mode``; AllProvidersFailed when nobody answered usably."""
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(p.interpret(text, mode) for p in self.providers), return_exceptions=True
        )
        replies: list[ProviderReply] = []
        weights: list[float] = []
        failures: list[str] = []
        for provider, weight, outcome in zip(self.providers, self.weights, outcomes, strict=True):
            if isinstance(outcome, ProviderReply):
                replies.append(outcome)
                weights.append(weight)
            elif isinstance(outcome, ProviderError):
                failures.append(str(outcome))
            elif isinstance(outcome, Exception):
                # Only the class: arbitrary exception text could carry request details.
                failures.append(f"{provider.name}: unexpected {outcome.__class__.__name__}")
            else:
                raise outcome  # CancelledError and friends must propagate
        if not replies:
            raise AllProvidersFailed("every LLM provider failed: " + "; ".join(failures))
        vote = weighted_vote(replies, weights, mode=mode)
        extra = self.injector.faults.extra_latency_s(mode, time.perf_counter() - started)
        if extra > 0.0:
            await asyncio.sleep(extra)
        document = vote
        if self.injector.break_schema():
            document = break_document(vote, np.random.default_rng(self.injector.seed_for_damage()))
        problems = schema_errors(document)
        return BriefResult(
            document=document,
            vote=vote,
            models=[r.model for r in replies],
            elapsed_ms=round((time.perf_counter() - started) * 1000.0, 3),
            schema_ok=not problems,
            schema_errors=problems,
            provider_errors=failures,
        )

    async def aclose(self) -> None:
        """Close every provider."""
        for provider in self.providers:
            await provider.aclose()
