"""The side-effect policy of a shadow stage: ``[shadow]`` of canary.toml (the target's profile).

NGINX copies every production request to the canary at stage 0 unless its route is listed in ``drop``:
a route whose effect must not happen twice (a payment, an e-mail, a write to a store the canary shares with
production) is dropped, not copied. fragrance-ai drops nothing: its writes (``/dna/create``,
``/evolve/feedback``) only change the canary's own in-memory state and learner, and the RL-loss check needs
the feedback copies (docs/shadow.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary_harness.errors import ConfigError, TrafficError
from canary_harness.traffic.render import Shadow


@dataclass(frozen=True)
class ShadowPolicy:
    """Routes (path prefixes) a shadow stage never copies to the canary."""

    drop: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> ShadowPolicy:
        """Read ``[shadow]``; ConfigError naming the bad key or value and ``source``."""
        for key in data:
            if key != "drop":
                raise ConfigError(f"{source}: unknown key {key!r} (known: drop)")
        raw = data.get("drop", [])
        if not isinstance(raw, list) or not all(isinstance(route, str) for route in raw):
            raise ConfigError(f'{source} drop = {raw!r}: must be a list of paths, e.g. ["/payments"]')
        try:
            Shadow(100, tuple(raw))  # the routes NGINX can render
        except TrafficError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        return cls(tuple(raw))
