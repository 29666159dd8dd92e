#!/usr/bin/env bash
# The classic runbook's manual smoke test: curl the service's four journey paths by hand.
#
#   scripts/smoke_test_manual.sh URL [CONTAINER]
#
# GET /health, POST /dna/create, POST /evolve/options, POST /evolve/feedback against URL (e.g.
# http://127.0.0.1:8001 for the canary, or NGINX), each answer printed; with CONTAINER also the last
# lines of `docker logs` of that container. Exits non-zero at the first failing request, with curl's
# own exit code (22: the service answered an HTTP error). The automated journey is `canary smoke`.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/smoke_test_manual.sh URL [CONTAINER]" >&2
  exit 2
fi
url=${1%/}
container=${2:-}
case $url in
  http://*|https://*) ;;
  *) echo "smoke_test_manual: URL ${1@Q} is not an http(s) URL" >&2; exit 2 ;;
esac
brief='A fresh citrus fragrance with a woody base for summer evenings'

call() {  # METHOD PATH [JSON]: print the step and the answer; fail on an HTTP error
  local method=$1 path=$2 body=${3:-}
  echo "== $method $path" >&2
  if [ -n "$body" ]; then
    curl -sS --fail-with-body --max-time 30 -X "$method" -H 'content-type: application/json' -d "$body" "$url$path"
  else
    curl -sS --fail-with-body --max-time 30 "$url$path"
  fi
}
field() {  # JSON_TEXT KEY.PATH: one value out of a JSON answer (python3 is there wherever the harness is)
  python3 -c '
import json, sys
value = json.loads(sys.argv[1])
for key in sys.argv[2].split("."):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$1" "$2"
}

health=$(call GET /health); echo "$health"
created=$(call POST /dna/create "{\"brief\": \"$brief\", \"mode\": \"fast\"}"); echo "$created"
dna_id=$(field "$created" dna_id)
options=$(call POST /evolve/options \
  "{\"dna_id\": \"$dna_id\", \"brief\": \"$brief\", \"mode\": \"creative\", \"algorithm\": \"PPO\", \"num_options\": 3}")
echo "$options"
experiment=$(field "$options" experiment_id)
chosen=$(field "$options" options.0.id)
call POST /evolve/feedback "{\"experiment_id\": \"$experiment\", \"chosen_id\": \"$chosen\", \"rating\": 4}"
echo
if [ -n "$container" ]; then
  echo "== docker logs --tail 20 $container" >&2
  docker logs --tail 20 "$container"
fi
echo "smoke_test_manual: all four requests answered 2xx at $url" >&2
