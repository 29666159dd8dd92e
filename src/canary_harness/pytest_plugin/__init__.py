"""canary_harness.pytest_plugin."""
