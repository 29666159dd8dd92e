"""Release checks of one rollout stage. Run them with ``pytest --canary-version V --stage N``;
the canary plugin provides every fixture used here (canary_stage, canary_check, clients...)."""
