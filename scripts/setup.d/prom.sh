#!/usr/bin/env bash
# meshmon-prom: what its end-to-end tests need (idempotent, fresh Debian, root).
#  - prometheus-node-exporter (Debian package) for scripts/it/prom.sh (the `scrape` feature)
#  - a Python venv with Datadog's check toolkit (datadog-checks-base==38.5.0) for the
#    mapping oracle (scripts/prom-oracle/)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # --no-install-recommends: we only need the binary, not its systemd units' friends
  apt-get install -y --no-install-recommends prometheus-node-exporter
  # The package's postinst may start a service on :9100; our test uses its own port.
fi

bash "$root/scripts/prom-oracle/venv.sh"
