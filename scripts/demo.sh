#!/usr/bin/env bash
# The demo: the sequential judge deciding on the embedded default stack, in about two minutes.
#
#   1. a healthy release (production v0.1.0 -> canary VERSION) at 25 %: every check decided PASS
#   2. the same release at 100 %, then promoted (production runs it)
#   3. a bad release (the canary with FRAGRANCE_FAULTS: 5 % of requests answered 500) at 5 %: caught in seconds,
#      rolled back (weight 0, verified by requests), the message naming metric, value, threshold, sample
#      and evidence
#   4. the HTML report of all of it (canary report), and where it is
#
#   scripts/demo.sh [VERSION [PERIOD [BACKEND]]]     BACKEND: process (default), docker, compose
#
# PERIOD bounds the 25 % stage's window (default 120 s). The stage ends at its first decided PASS after
# the 60 s soak: at the ~200 req/s --load-rate auto sends on 2 cores every check has its evidence after
# 35-70 s (the latency checks need ~800 canary requests per LLM mode, healthy p95s being 0.85-0.9 of their
# thresholds), later when other work shares the cores; the window leaves room for that.
# DEMO_FULL_PERIOD (default 15 s) is the 100 % stage's window: the canary gets all the load there and its
# checks decide in ~10 s, except the RL-loss check, which has no production reference at 100 %.
# DEMO_BAD_PERIOD (default 30 s) bounds the bad release's stage; it is caught in a few seconds. Its stage is
# 5 %, as a rollout starts small (and the report keeps it apart from the healthy 25 % stage).
# CANARY_RUN_DIR (default .canary) and CANARY_NGINX_PORT / CANARY_PRODUCTION_PORT / CANARY_CANARY_PORT
# place the stack. DEMO_KEEP_STACK=1 leaves the stack running at the end (stop it with
# `canary stack down --run-dir DIR`).
# A backend other than process first starts Docker (scripts/docker-up.sh) and builds the release images.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-v0.2.0}
period=${2:-120}
backend=${3:-${BACKEND:-process}}
full_period=${DEMO_FULL_PERIOD:-15}
bad_period=${DEMO_BAD_PERIOD:-30}
bad_faults=${DEMO_BAD_FAULTS:-error_rate=0.05}
run_dir=${CANARY_RUN_DIR:-.canary}
started=$SECONDS

# The process backend is the commands' default: passing nothing keeps the commands as a user types them.
backend_args=()
if [ "$backend" != process ]; then
  backend_args=(--backend "$backend")
  bash scripts/docker-up.sh
  canary images build
fi
# Every LLM mode's latency check needs its own ~800 canary samples: an even mix lets the slowest mode
# (creative, 15 % of journeys by default) decide as soon as the others. The rate is --load-rate auto's.
mix=(--load-mix fast=34,balanced=33,creative=33)
# One HTML report of the three rollouts: every stage writes to one results directory, emptied only by the
# first (a rollout given no --alluredir empties it at its own first stage).
results=(--alluredir="$run_dir/allure-results")

say() { printf '\n=== [demo %3ds] %s\n' "$((SECONDS - started))" "$*"; }

# stack down and status need no backend: each service is stopped the way it was started (recorded).
cleanup() {
  if [ "${DEMO_KEEP_STACK:-0}" = 1 ]; then
    echo "demo: the stack is left running (DEMO_KEEP_STACK=1): canary stack down --run-dir $run_dir"
  else
    canary stack down --run-dir "$run_dir" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

canary stack down --run-dir "$run_dir" >/dev/null 2>&1 || true
canary precheck --version "$version"

say "1/4 healthy release $version at 25 % for up to ${period} s: the judge should decide PASS on every check"
canary rollout --version "$version" --stages 25 --partial --observation-period "$period" --run-dir "$run_dir" \
  "${backend_args[@]}" -- "${mix[@]}" "${results[@]}" --clean-alluredir

say "2/4 $version at 100 % for up to ${full_period} s, then promoted"
canary rollout --version "$version" --stages 100 --observation-period "$full_period" --run-dir "$run_dir" \
  "${backend_args[@]}" -- "${mix[@]}" "${results[@]}"
canary promote --version "$version" --run-dir "$run_dir" "${backend_args[@]}"

say "3/4 a bad release: $version with FRAGRANCE_FAULTS=$bad_faults at 5 %: it must be caught and rolled back"
if canary rollout --version "$version" --stages 5 --partial --observation-period "$bad_period" \
    --canary-env "FRAGRANCE_FAULTS=$bad_faults" --run-dir "$run_dir" "${backend_args[@]}" -- "${mix[@]}" \
    "${results[@]}"; then
  echo "demo: the bad release was NOT caught: that is a failure of the harness" >&2
  exit 1
fi
canary stack status --run-dir "$run_dir"
canary history --run-dir "$run_dir" --limit 20

say "4/4 the HTML report of the three rollouts"
canary report --run-dir "$run_dir"
say "done: $version promoted, the bad release caught and rolled back; the report is above (index.html)"
