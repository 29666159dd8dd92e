"""The traffic-controller contract: set the canary's share of traffic and read back what is in force.

NGINX weighted upstreams implement it (``canary_harness.traffic.nginx``); other controllers (for
instance ingress-nginx canary annotations on Kubernetes) can plug in by providing the same two methods.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TrafficController(Protocol):
    """Routes an integer percentage of requests to the canary and the rest to production."""

    def set_canary_weight(self, percent: int, *, reason: str = "") -> None:
        """Make ``percent`` (0..100) of new requests go to the canary, production getting the rest.

        Returns only once the new split serves. Raises TrafficError on any failure, in which case the
        previous configuration is still the one in force.
        """
        ...

    def canary_weight(self) -> int:
        """The canary percentage in force, read from the running router (not a remembered value)."""
        ...
