"""Testing doubles of the harness's seams, shipped for the plugin's own tests and for anyone adding a
router or a backend (docs/extending.md). None of them is ever a default.

* ``MemoryTrafficController`` (``[traffic] nginx = "memory"``): weights in a dict, a new generation per
  change, programmable refusals, served by an in-thread HTTP router that sets ``X-Upstream``.
* ``FakeBackend`` (``--backend fake``): services that are tiny in-thread HTTP servers answering health,
  the smoke journey and synthetic ``/metrics`` programmed by ``FAKE_*`` environment variables.
* ``CannedMetricsSource``: snapshots computed from per-arm rates, for judge and loop tests.

Everything lives in the current process: a stack started with them is gone when the process ends.
"""

from canary_harness.testing.backend import Behaviour, FakeBackend, FakeService, fake_service
from canary_harness.testing.metrics import ArmRates, CannedMetricsSource
from canary_harness.testing.traffic import MemoryTrafficController, memory_router

__all__ = [
    "ArmRates",
    "Behaviour",
    "CannedMetricsSource",
    "FakeBackend",
    "FakeService",
    "MemoryTrafficController",
    "fake_service",
    "memory_router",
]
