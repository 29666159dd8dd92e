"""The smoke journey: declared as ``[[smoke]]`` steps (fragrance-ai's is built in) and walked against one URL."""

from canary_harness.smoke.journey import Journey, JourneyStep, default_journey, journey_from, parse_journey
from canary_harness.smoke.runner import SmokeStep, require_smoke, run_smoke

# The brief of fragrance-ai's journey, for release checks that build their own requests.
SMOKE_BRIEF = "A fresh citrus fragrance with a woody base for summer evenings"

__all__ = [
    "SMOKE_BRIEF",
    "Journey",
    "JourneyStep",
    "SmokeStep",
    "default_journey",
    "journey_from",
    "parse_journey",
    "require_smoke",
    "run_smoke",
]
