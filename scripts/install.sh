#!/usr/bin/env bash
# Installs everything the harness, its tests and the demo need on a fresh Debian machine (root):
# the real nginx, prometheus and redis-server binaries, the reference service and the harness with its
# extras, the Allure CLI (npm) and Debian's chromium for the report.
# With CANARY_DOCKER=1 also Docker (scripts/docker-up.sh: installs and starts the engine if needed), the
# docker SDK extra and the release images (canary images build).
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
# The workers' broker (docs/workers.md): the harness starts its own instance on loopback, never the system one.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The report: Debian's chromium for the browser test (Playwright's own browser download is not used),
# npm for the Allure 3 CLI (no Java needed).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install: apt packages ${need_apt[*]}"
  # Keep Debian's postinst from starting system-wide services: the harness runs its own instances.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi
fi

extras=load,report,dev
if [ "${CANARY_DOCKER:-0}" = 1 ]; then extras=$extras,docker; fi
python3 -m pip install -q --disable-pip-version-check -e ./app -e ".[$extras]"
# canary report builds the HTML with the Allure 3 CLI.
if ! allure --version 2>/dev/null | grep -q '^3\.'; then
  echo "install: npm package allure@3"
  npm install -g --silent allure@3 >/dev/null
fi

if [ "${CANARY_DOCKER:-0}" = 1 ]; then
  bash scripts/docker-up.sh
  canary images build
fi
echo "install: done ($(nginx -v 2>&1), $(prometheus --version 2>&1 | head -1), allure $(allure --version))"
