"""fragrance-ai: the reference service that canary-harness verifies.

It turns a text brief into a fragrance "DNA" through an ensemble of LLM providers, proposes
variations with a PPO policy and learns from user feedback. Faults can be injected on demand
(``FRAGRANCE_FAULTS``) so that every release gate can be shown to catch a bad release.
"""

MODES: tuple[str, ...] = ("fast", "balanced", "creative")
TIERS: tuple[str, ...] = ("top", "heart", "base")

__all__ = ["MODES", "TIERS"]
