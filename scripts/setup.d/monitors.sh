#!/usr/bin/env bash
# meshmon-agent monitors: what the Alertmanager test (tests/monitors.rs,
# `alertmanager_lists_the_alert_and_resolves_it`) needs (idempotent, fresh Debian, root):
#  - prometheus-alertmanager (Debian): the real Alertmanager the agent's notifier posts
#    to; the test starts its own instance on loopback ports it picks, with its own
#    storage folder and configuration, and stops it.
set -euo pipefail
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # The package's postinst may start a service on :9093; the test uses its own ports.
  apt-get install -y --no-install-recommends prometheus-alertmanager
fi
echo "setup monitors: $(prometheus-alertmanager --version 2>&1 | head -1)"
