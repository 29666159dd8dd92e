"""Root wiring only: site-specific hook implementations live in plugins/."""
