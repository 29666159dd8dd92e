"""canary_harness.metrics."""
