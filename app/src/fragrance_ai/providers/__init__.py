"""LLM providers: the Provider protocol, the offline simulated provider, the OpenAI-compatible HTTP one
and the registry that builds them from model names."""

from fragrance_ai.providers.base import Provider, ProviderReply, reply_from_json
from fragrance_ai.providers.registry import build_providers, register_provider

__all__ = ["Provider", "ProviderReply", "build_providers", "register_provider", "reply_from_json"]
