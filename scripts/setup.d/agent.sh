#!/usr/bin/env bash
# meshmon-agent: what its end-to-end script (scripts/it/agent.sh) and benchmark
# (scripts/bench/agent-load.sh) need (idempotent, fresh Debian, root):
#  - prometheus (Debian) scraping the agent's /metrics
#  - prometheus-node-exporter (Debian) scraped by the agent's openmetrics check
#  - hey (Debian), the HTTP load generator of the trace-intake benchmark
# The ddtrace venv comes from scripts/setup.d/trace.sh.
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v hey >/dev/null 2>&1 || need+=(hey)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # The packages' postinst may start services on their default ports; the tests use
  # their own loopback ports and stop what they start.
  apt-get install -y --no-install-recommends "${need[@]}"
fi
echo "setup agent: $(prometheus --version 2>&1 | head -1)"
