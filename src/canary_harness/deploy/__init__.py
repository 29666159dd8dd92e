"""canary_harness.deploy."""
