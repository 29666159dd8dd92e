#!/usr/bin/env bash
# Builds hello-service:<version> offline, FROM the local base image canary/python:3.11
# (scripts/build-base-image.sh makes it from the host's Debian files), and tags it once per version:
#
#   examples/build-hello-image.sh v1 v2            # hello-service:v1, hello-service:v2
#   IMAGE=my-hello examples/build-hello-image.sh v2   # my-hello:v2
#
# Wheels: fastapi, uvicorn, prometheus_client (its /metrics) and their dependencies for CPython 3.11 /
# manylinux2014 x86_64, taken with `pip download --no-index` from a wheel directory (WHEELS, default:
# canary-harness's wheel cache, filled by `canary images build`). With an index at hand, `pip download`
# without --no-index fills it as well.
# Prints the image id. Needs a running Docker engine; nothing is pulled.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 VERSION [VERSION ...]" >&2; exit 2; }
image=${IMAGE:-hello-service}
base=${BASE_IMAGE:-canary/python:3.11}
cache=${CANARY_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/canary-harness/wheels}
wheels=${WHEELS:-$cache/deps}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
"$python" -m pip download --quiet --no-index --find-links "$wheels" --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 --implementation cp --dest "$context/wheels" fastapi uvicorn prometheus_client \
    || { echo "$0: fastapi/uvicorn/prometheus_client wheels for CPython 3.11 not found in $wheels (set WHEELS)" >&2
         exit 1; }
cp "$here/hello-service.Dockerfile" "$context/Dockerfile"
cp "$here/hello_service.py" "$context/"
chmod -R a+rX "$context"   # COPY keeps modes: the image's user must read what it runs

docker build --quiet --build-arg "BASE_IMAGE=$base" --tag "$image:$1" "$context" >/dev/null
for version in "${@:2}"; do docker tag "$image:$1" "$image:$version"; done
docker image inspect --format '{{.Id}}' "$image:$1"
