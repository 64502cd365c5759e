#!/usr/bin/env bash
# Exports (examples/meshmon-agent/src/export/): the real servers its tests send to
# (idempotent, fresh Debian, root).
#  - prometheus (Debian), started by tests/exports.rs with --web.enable-remote-write-receiver
#  - victoria-metrics (Debian, 1.79.x), whose /datadog/api/v1/series receives the
#    Datadog export
# Neither package's service is used: the test starts each on loopback ports it picks,
# with its own data dir.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${need[@]}"
fi
vm="$(dpkg-query -W -f='${Package} ${Version}' victoria-metrics 2>/dev/null || echo victoria-metrics)"
echo "setup exports: $(prometheus --version 2>&1 | head -1); $vm"
