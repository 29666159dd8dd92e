"""canary_harness.traffic."""
