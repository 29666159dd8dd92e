#!/usr/bin/env bash
# The classic runbook's weight command, as a thin wrapper: `canary weights N` (same output, exit codes).
#
#   scripts/update_nginx_weights.sh N      send N % of the traffic to the canary (0..100)
#
# Extra arguments pass through (--run-dir DIR, --reason TEXT). CANARY overrides the `canary` executable.
set -euo pipefail
exec "${CANARY:-canary}" weights "$@"
