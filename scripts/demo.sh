#!/usr/bin/env bash
# The main job on the embedded default stack: a full local rollout of the reference service
# (production v0.1.0 → canary VERSION at 1 → 5 → 25 → 100 %), promotion, the journal, then teardown.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-v0.2.0}
period=${2:-20}
run_dir=${CANARY_RUN_DIR:-.canary}

cleanup() { canary stack down --run-dir "$run_dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT

canary stack down --run-dir "$run_dir" >/dev/null 2>&1 || true
canary precheck --version "$version"
canary rollout --version "$version" --observation-period "$period" --run-dir "$run_dir"
canary promote --version "$version" --run-dir "$run_dir"
canary stack status --run-dir "$run_dir"
canary history --run-dir "$run_dir" --limit 20
