#!/usr/bin/env bash
# Installs Docker (Debian's docker.io and docker-compose) if absent and starts an engine if none answers.
#
#   scripts/docker-up.sh          then: docker info, canary images build, ...
#   scripts/docker-down.sh        stops the engine again, only if this script started it
#
# A running engine (systemd's, another user's, one started by hand) is left alone. The engine this script
# starts is `dockerd --storage-driver=overlay2` in the background, its PID in $CANARY_DOCKERD_PID_FILE
# (default /var/run/canary-dockerd.pid) and its output in $CANARY_DOCKERD_LOG (default
# /var/log/canary-dockerd.log). Waits at most $CANARY_DOCKERD_TIMEOUT seconds (default 60) for it to
# answer. Idempotent; needs root.
set -euo pipefail
pid_file=${CANARY_DOCKERD_PID_FILE:-/var/run/canary-dockerd.pid}
log_file=${CANARY_DOCKERD_LOG:-/var/log/canary-dockerd.log}
timeout=${CANARY_DOCKERD_TIMEOUT:-60}

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "docker-up: apt packages ${need_apt[*]}"
  # Keep Debian's postinst from starting the system-wide service: this script decides what runs.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  remove_policy() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
  trap remove_policy EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  remove_policy
  trap - EXIT
fi

# The engine's own CLI: a newer client-only `docker` earlier on PATH talks to it too, but this one always can.
docker_cli=${DOCKER:-/usr/bin/docker}
[ -x "$docker_cli" ] || docker_cli=docker

if "$docker_cli" info >/dev/null 2>&1; then
  echo "docker-up: an engine already answers ($("$docker_cli" version -f '{{.Server.Version}}' 2>/dev/null)): left alone"
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ]; then
  # Starting a local engine would not help a client pointed elsewhere.
  echo "docker-up: DOCKER_HOST=$DOCKER_HOST does not answer; unset it to use a local engine" >&2
  exit 1
fi

is_our_dockerd() {  # PID -> true when it is still a running dockerd
  [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = dockerd ]
}

pid=$(cat "$pid_file" 2>/dev/null || true)
if is_our_dockerd "$pid"; then
  echo "docker-up: dockerd $pid (started earlier by this script) is not answering yet; waiting"
else
  [ -e "$pid_file" ] && rm -f "$pid_file"  # stale: its process is gone or is something else now
  if [ -e /var/run/docker.pid ] && is_our_dockerd "$(cat /var/run/docker.pid 2>/dev/null)"; then
    echo "docker-up: a dockerd runs (PID $(cat /var/run/docker.pid)) but does not answer; see its log" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$log_file")" "$(dirname "$pid_file")"
  # setsid: the engine outlives this shell and a Ctrl-C in it.
  setsid dockerd --storage-driver=overlay2 >>"$log_file" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$pid_file"
  echo "docker-up: started dockerd $pid (log $log_file)"
fi

deadline=$((SECONDS + timeout))
until "$docker_cli" info >/dev/null 2>&1; do
  if ! is_our_dockerd "$pid"; then
    echo "docker-up: dockerd $pid exited; last lines of $log_file:" >&2
    tail -n 15 "$log_file" >&2 || true
    rm -f "$pid_file"
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "docker-up: dockerd $pid not answering after ${timeout}s; last lines of $log_file:" >&2
    tail -n 15 "$log_file" >&2 || true
    exit 1
  fi
  sleep 0.2
done
echo "docker-up: engine ready ($("$docker_cli" version -f '{{.Server.Version}}'), storage $("$docker_cli" info -f '{{.Driver}}'))"
