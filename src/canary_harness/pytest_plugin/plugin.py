"""The canary pytest plugin (entry point ``pytest11: canary``). Inert without --canary-version."""
