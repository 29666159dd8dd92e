"""Exceptions of the service.

FragranceError          root
├── SettingsError       a flag, environment variable or fault spec is invalid (the CLI exits 2)
├── ProviderError       an LLM provider failed to answer usably (messages never carry API keys)
├── NotFoundError       an unknown (or evicted) DNA, experiment or option id (HTTP 404)
└── BrokerError         the workers' Redis broker is unreachable (HTTP 503)
"""

from __future__ import annotations


class FragranceError(Exception):
    """Root of the errors the service raises on purpose."""


class SettingsError(FragranceError):
    """An invalid setting; the message names the value and where it came from."""


class ProviderError(FragranceError):
    """An LLM provider could not produce a usable reply."""


class NotFoundError(FragranceError):
    """An id that the service does not know (never created, or evicted from the bounded store)."""


class BrokerError(FragranceError):
    """The Redis broker of the workers cannot be reached or refused a command (HTTP 503)."""
