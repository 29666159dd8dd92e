#!/usr/bin/env bash
# The classic runbook's release step, as a thin wrapper: `canary release-manifest --version V` builds
# the service's reproducible archive into releases/artifacts/ and records releases/V.toml with its
# SHA-256 (run it from the repository root). Same output and exit codes as the command.
#
#   scripts/create_release.sh V [--notes TEXT] [--date YYYY-MM-DD]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/create_release.sh VERSION [canary release-manifest options]" >&2
  exit 2
fi
version=$1
shift
exec "${CANARY:-canary}" release-manifest --version "$version" "$@"
