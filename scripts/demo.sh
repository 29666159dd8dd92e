#!/usr/bin/env bash
# The main job on the embedded default stack: a full local rollout of the reference service
# (production v0.1.0 → canary VERSION at 1 → 5 → 25 → 100 %), promotion, the journal, then teardown.
#
#   scripts/demo.sh [VERSION [PERIOD [BACKEND]]]     BACKEND: process (default), docker, compose
#
# A backend other than process first starts Docker (scripts/docker-up.sh) and builds the release images.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-v0.2.0}
period=${2:-20}
backend=${3:-${BACKEND:-process}}
run_dir=${CANARY_RUN_DIR:-.canary}

# The process backend is the commands' default: passing nothing keeps `make demo` exactly as it was.
backend_args=()
if [ "$backend" != process ]; then
  backend_args=(--backend "$backend")
  bash scripts/docker-up.sh
  canary images build
fi

# stack down and status need no backend: each service is stopped the way it was started (recorded).
cleanup() { canary stack down --run-dir "$run_dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT

canary stack down --run-dir "$run_dir" >/dev/null 2>&1 || true
canary precheck --version "$version"
canary rollout --version "$version" --observation-period "$period" --run-dir "$run_dir" "${backend_args[@]}"
canary promote --version "$version" --run-dir "$run_dir" "${backend_args[@]}"
canary stack status --run-dir "$run_dir"
canary history --run-dir "$run_dir" --limit 20
