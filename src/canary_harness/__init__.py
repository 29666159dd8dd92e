"""canary-harness: pytest-native release verification for progressive rollouts."""

__version__ = "0.1.0"
