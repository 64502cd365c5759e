#!/usr/bin/env bash
# Installs what the status-page test (examples/meshmon-agent/tests/ui.rs, driving
# tests/ui/status_page.mjs) needs: Debian's `chromium` and Node.js, and the pinned
# `playwright-core` from npm (package-lock.json) into the gitignored
# examples/meshmon-agent/tests/ui/node_modules. playwright-core downloads no browser: the
# test launches /usr/bin/chromium. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
ui="$root/examples/meshmon-agent/tests/ui"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" fonts-dejavu-core
  else
    echo "setup ui: missing ${need[*]} (run as root to install them)" >&2
    exit 1
  fi
fi
if [ ! -f "$ui/node_modules/playwright-core/package.json" ]; then
  (cd "$ui" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup ui: $(chromium --version 2>/dev/null | head -1), node $(node --version), playwright-core $(node -p "require('$ui/node_modules/playwright-core/package.json').version")"
