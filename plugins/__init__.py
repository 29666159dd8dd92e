"""Site plugins of the canary harness, registered by the root conftest.py.

Each module implements the ``pytest_canary_*`` hooks (see canary_harness.pytest_plugin.hookspecs):
``webhook`` posts rollout events to chat or incident tools, ``approval`` holds a stage until a person
approves it. Both are inert unless their options are given.
"""
