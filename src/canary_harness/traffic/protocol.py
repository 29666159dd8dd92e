"""The traffic-controller contract: set the canary's share of traffic and read back what is in force.

Implementations: ``NginxTrafficController`` (the harness's own NGINX, ``canary_harness.traffic.nginx``),
``ExternalNginxController`` (the user's NGINX, ``canary_harness.traffic.external``) and the in-memory
test double ``MemoryTrafficController`` (``canary_harness.testing.traffic``). Another router (for
instance ingress-nginx canary annotations on Kubernetes) plugs in by providing the same members and
passing ``tests/unit/test_traffic_compliance.py``. Callers (stage session, rollback, rollout) use
nothing else.

``ManagedTrafficController`` adds the lifecycle a stack needs for a router it starts and stops itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class InForce:
    """The split a router has loaded, as it reports it (``generation`` changes with every change)."""

    generation: str
    production_weight: int
    canary_weight: int
    production: str
    canary: str
    # Stage 0 (shadow): the share in percent of production's requests copied to the canary; 0: no copies.
    shadow_share: int = 0


@runtime_checkable
class TrafficController(Protocol):
    """Routes an integer percentage of requests to the canary and the rest to production."""

    @property
    def base_url(self) -> str:
        """The entry URL clients (load, split probes, verification requests) use to reach the service
        through the router; each answer carries ``X-Upstream: canary|production``."""
        ...

    def set_canary_weight(self, percent: int, *, reason: str = "") -> None:
        """Make ``percent`` (0..100) of new requests go to the canary, production getting the rest.

        Returns only once the new split serves. Raises TrafficError on any failure (including a
        percentage outside 0..100), in which case the previous configuration is still the one in force.
        """
        ...

    def canary_weight(self) -> int:
        """The canary percentage in force, read from the running router (not a remembered value)."""
        ...

    def set_shadow(self, share: int, *, drop: tuple[str, ...] = (), reason: str = "") -> None:
        """Stage 0: users are served by production only (canary weight 0) and ``share`` % (1..100) of their
        requests are copied to the canary with ``X-Canary-Shadow: 1``, except the ``drop`` routes (path
        prefixes); the canary's answers are discarded and never delay the user's.

        Returns only once it serves; TrafficError otherwise (the previous configuration stays in force).
        ``set_canary_weight`` (any weight, 0 included: a rollback) ends the copies.
        """
        ...

    def shadow_share(self) -> int:
        """The share of requests copied to the canary in force (0: none), read from the running router."""
        ...

    def weights_in_force(self) -> InForce:
        """The whole split in force, as the router reports it; TrafficError if it does not answer."""
        ...

    def configured_canary_weight(self) -> int | None:
        """The canary weight the router's configuration holds for its next reload (a rollback rewrites it
        when it differs from 0); None when the router keeps no configuration apart from what is in force."""
        ...

    def config_text(self) -> str | None:
        """The routing configuration in force as text, for the stage record (None if there is none)."""
        ...


@runtime_checkable
class ManagedTrafficController(TrafficController, Protocol):
    """A router the stack starts, watches and stops itself (the managed NGINX, the in-memory double)."""

    def start(self, canary_weight: int = 0, *, timeout: float = 10.0) -> int | None:
        """Start routing at ``canary_weight``; returns the router's PID (None for an in-process router)."""
        ...

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the router. Idempotent."""
        ...

    def is_running(self) -> bool:
        """True while the router runs."""
        ...

    @property
    def pid(self) -> int | None:
        """The router's process (None for an in-process router or when not running)."""
        ...

    @property
    def start_time(self) -> int | None:
        """The router process's start time (guards against a reused PID), None if unknown."""
        ...
