"""The service's behaviour without HTTP: create DNAs, propose variations, learn from feedback.

It owns the bounded state, the ensemble, the learner and the telemetry calls for llm_brief and
rl_update events; the HTTP layer (api.py) only validates bodies and maps errors to statuses.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fragrance_ai.dna import ACTIONS, Dna, apply_action, dna_from_vote, features
from fragrance_ai.ensemble import AllProvidersFailed, BriefResult, Ensemble
from fragrance_ai.errors import NotFoundError
from fragrance_ai.faults import FaultInjector
from fragrance_ai.jsonlog import JsonLogger
from fragrance_ai.learner import Learner, rating_reward
from fragrance_ai.metrics import ServiceMetrics
from fragrance_ai.providers import Provider, build_providers
from fragrance_ai.settings import Settings
from fragrance_ai.store import LRUStore


@dataclass(frozen=True)
class Experiment:
    """The options proposed for one DNA: what the policy saw and which action each option took."""

    dna_id: str
    mode: str
    features: np.ndarray
    options: dict[str, tuple[int, float]]  # option id -> (action index, log-prob)


def new_id(prefix: str) -> str:
    """A fresh id such as ``dna_3f2a...`` (16 hex digits)."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class FragranceService:
    """Everything behind the API, for one running version."""

    def __init__(
        self,
        settings: Settings,
        *,
        logger: JsonLogger,
        metrics: ServiceMetrics,
        providers: Sequence[Provider] | None = None,
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.metrics = metrics
        self.injector = FaultInjector(settings.faults, settings.seed)
        active = list(providers) if providers is not None else build_providers(settings)
        weights = settings.active_weights if providers is None else (1.0,) * len(active)
        self.ensemble = Ensemble(active, weights, self.injector)
        self.learner = Learner(
            batch_size=settings.ppo_batch_size,
            seed=settings.seed,
            loss_factor=settings.faults.loss_factor,
            loss_nan=settings.faults.loss_nan,
        )
        self._mutation_rng = np.random.default_rng(settings.seed + 1)
        self.dnas: LRUStore[str, Dna] = LRUStore(settings.store_size)
        self.experiments: LRUStore[str, Experiment] = LRUStore(settings.store_size)

    async def _brief(self, text: str, mode: str) -> BriefResult:
        try:
            result = await self.ensemble.brief(text, mode)
        except AllProvidersFailed as exc:
            self.logger.emit("llm_error", mode=mode, models=self.ensemble.models, error=str(exc))
            raise
        fields: dict[str, Any] = {
            "mode": mode,
            "models": result.models,
            "elapsed_ms": result.elapsed_ms,
            "schema_ok": result.schema_ok,
        }
        if result.schema_errors:
            fields["schema_errors"] = result.schema_errors[:3]
        if result.provider_errors:
            fields["provider_errors"] = result.provider_errors
        self.logger.emit("llm_brief", **fields)
        self.metrics.observe_brief(mode, result.elapsed_ms / 1000.0, result.schema_ok)
        return result

    async def create_dna(self, brief: str, mode: str) -> dict[str, Any]:
        """Read the brief with the ensemble and derive a DNA from the vote."""
        result = await self._brief(brief, mode)
        dna = dna_from_vote(result.vote)
        dna_id = new_id("dna")
        self.dnas.put(dna_id, dna)
        return {"dna_id": dna_id, "version": self.settings.version, "brief": result.document, "notes": dna}

    async def evolve_options(self, dna_id: str, brief: str, mode: str, count: int) -> dict[str, Any]:
        """``count`` variations of a DNA: the ensemble reads the brief, the policy picks the mutations."""
        dna = self.dnas.get(dna_id)
        if dna is None:
            raise NotFoundError(f"unknown dna_id {dna_id!r}")
        result = await self._brief(brief, mode)
        style, intensity = result.vote["style"], float(result.vote["intensity"])
        x = features(dna, style, mode, intensity)
        options: list[dict[str, Any]] = []
        chosen: dict[str, tuple[int, float]] = {}
        for action, logp in self.learner.propose(x, count):
            option_id = new_id("opt")
            chosen[option_id] = (action, logp)
            name = ACTIONS[action]
            options.append(
                {"id": option_id, "action": name, "dna": apply_action(dna, name, style, self._mutation_rng)}
            )
        experiment_id = new_id("exp")
        self.experiments.put(experiment_id, Experiment(dna_id, mode, x, chosen))
        return {"experiment_id": experiment_id, "dna_id": dna_id, "mode": mode, "options": options}

    def _option(self, experiment_id: str, chosen_id: str) -> tuple[Experiment, int, float]:
        experiment = self.experiments.get(experiment_id)
        if experiment is None:
            raise NotFoundError(f"unknown experiment_id {experiment_id!r}")
        option = experiment.options.get(chosen_id)
        if option is None:
            raise NotFoundError(f"chosen_id {chosen_id!r} is not an option of experiment {experiment_id!r}")
        return experiment, option[0], option[1]

    def feedback(self, experiment_id: str, chosen_id: str, rating: int) -> dict[str, Any]:
        """Record the rating of the chosen option as a reward; run a PPO update when the batch is full."""
        experiment, action, logp = self._option(experiment_id, chosen_id)
        update = self.apply_transition(experiment.features, action, logp, rating_reward(rating))
        return {"status": "accepted", "experiment_id": experiment_id, "update": update}

    def transition_for(self, experiment_id: str, chosen_id: str, rating: int) -> dict[str, str]:
        """The feedback as the fields of an rl job (validated here, applied by the rl worker)."""
        experiment, action, logp = self._option(experiment_id, chosen_id)
        return {
            "experiment_id": experiment_id,
            "features": json.dumps([float(v) for v in experiment.features]),
            "action": str(action),
            "logp": repr(float(logp)),
            "reward": repr(rating_reward(rating)),
        }

    def apply_transition(
        self, x: np.ndarray, action: int, logp: float, reward: float
    ) -> dict[str, Any] | None:
        """Feed one transition to the learner; when it completes a batch, log and count the PPO update and
        return its figures (None otherwise)."""
        started = time.perf_counter()
        stats = self.learner.record(x, action, logp, reward)
        if stats is None:
            return None
        update: dict[str, Any] = {
            "algo": "PPO",
            "loss": stats.loss,
            "reward": stats.reward,
            "entropy": stats.entropy,
            "clip_frac": stats.clip_frac,
            "steps": stats.steps,
        }
        extra = {} if self.metrics.component is None else {"component": self.metrics.component}
        self.logger.emit(
            "rl_update",
            **update,
            approx_kl=stats.approx_kl,
            update_ms=round((time.perf_counter() - started) * 1000.0, 3),
            **extra,
        )
        self.metrics.observe_update(stats)
        return update

    async def aclose(self) -> None:
        """Release provider connections."""
        await self.ensemble.aclose()
