#!/usr/bin/env bash
# Installs what the DogStatsD real-client test needs (examples/meshmon-agent/tests/
# dogstatsd_client.rs): a Python venv under target/ with the PyPI `datadog` package, the
# official DogStatsD client (`datadog.DogStatsd`, `datadog.statsd`). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${MESHMON_DOGSTATSD_VENV:-$root/target/dogstatsd-venv}"
version="0.56.0"
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update
    apt-get install -y python3 python3-venv python3-pip
  else
    echo "setup dogstatsd: python3 with venv is required" >&2
    exit 1
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import datadog, sys; sys.exit(datadog.__version__ != '$version')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "datadog==$version"
fi
"$venv/bin/python" -c 'import datadog; print("setup dogstatsd: datadog", datadog.__version__)'
