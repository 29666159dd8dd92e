#!/usr/bin/env bash
# Stops the dockerd that scripts/docker-up.sh started, and nothing else: the PID recorded in
# $CANARY_DOCKERD_PID_FILE (default /var/run/canary-dockerd.pid), only while it is still a dockerd.
# An engine this project did not start is left running. SIGTERM, then SIGKILL after
# $CANARY_DOCKERD_STOP_TIMEOUT seconds (default 30). Idempotent.
set -euo pipefail
pid_file=${CANARY_DOCKERD_PID_FILE:-/var/run/canary-dockerd.pid}
timeout=${CANARY_DOCKERD_STOP_TIMEOUT:-30}

if [ ! -e "$pid_file" ]; then
  echo "docker-down: no dockerd started by docker-up.sh ($pid_file absent): nothing to stop"
  exit 0
fi
pid=$(cat "$pid_file")
if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
  echo "docker-down: PID ${pid:-?} from $pid_file is no longer a dockerd: nothing to stop"
  rm -f "$pid_file"
  exit 0
fi
kill -TERM "$pid"
deadline=$((SECONDS + timeout))
while [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; do
  # A zombie (our own child in the same shell) counts as stopped.
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "docker-down: dockerd $pid still running after ${timeout}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    break
  fi
  sleep 0.2
done
rm -f "$pid_file"
echo "docker-down: stopped dockerd $pid"
