"""Builds the ensemble's providers from model names; other provider kinds plug in by name prefix."""

from __future__ import annotations

from collections.abc import Callable

from fragrance_ai.errors import SettingsError
from fragrance_ai.providers.base import Provider
from fragrance_ai.providers.openai_compat import PREFIX as OPENAI_PREFIX
from fragrance_ai.providers.openai_compat import OpenAICompatProvider
from fragrance_ai.providers.simulated import SimulatedProvider
from fragrance_ai.settings import Settings

# prefix -> factory(name, settings); names without a registered prefix are simulated offline.
Factory = Callable[[str, Settings], Provider]
_FACTORIES: dict[str, Factory] = {}


def register_provider(prefix: str, factory: Factory) -> None:
    """Make model names starting with ``prefix`` (e.g. ``"openai:"``) use ``factory``."""
    _FACTORIES[prefix] = factory


def _openai(name: str, settings: Settings) -> Provider:
    if not settings.openai_base_url:
        raise SettingsError(f"LLM_ENSEMBLE_MODELS: model {name!r} needs OPENAI_BASE_URL to be set")
    return OpenAICompatProvider(
        name,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
    )


register_provider(OPENAI_PREFIX, _openai)


def build_providers(settings: Settings) -> list[Provider]:
    """The active providers, in the order of LLM_ENSEMBLE_MODELS."""
    names = settings.active_models
    providers: list[Provider] = []
    for name in names:
        factory = next((f for prefix, f in _FACTORIES.items() if name.startswith(prefix)), None)
        if factory is not None:
            providers.append(factory(name, settings))
        else:
            providers.append(
                SimulatedProvider(
                    name, seed=settings.seed, latency_scale=settings.latency_scale, n_providers=len(names)
                )
            )
    return providers
