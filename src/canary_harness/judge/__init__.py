"""canary_harness.judge."""
