"""Root wiring only: site-specific hook implementations live in plugins/."""

# The site plugins: each is inert unless its options (--canary-notify, --canary-approval-*) are given.
pytest_plugins = ("plugins.webhook", "plugins.approval")
