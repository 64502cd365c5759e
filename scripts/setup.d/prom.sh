#!/usr/bin/env bash
# meshmon-prom: what its end-to-end tests need (idempotent, fresh Debian, root).
#  - prometheus-node-exporter (Debian package) for scripts/it/prom.sh (the `scrape` feature)
#  - a Python venv with Datadog's check toolkit (datadog-checks-base==38.5.0) for the
#    mapping oracle (scripts/prom-oracle/)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

need=()
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
# python3 -m venv needs python3-venv on Debian (not when python3 comes from elsewhere)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # --no-install-recommends: only the binaries are needed. The exporter package's
  # postinst may start a service on :9100; the end-to-end test uses its own port.
  apt-get install -y --no-install-recommends "${need[@]}"
fi

bash "$root/scripts/prom-oracle/venv.sh"
