#!/usr/bin/env bash
# Installs what scripts/it/trace.sh needs: a Python venv with real tracing clients
# (Datadog's ddtrace and the OpenTelemetry Zipkin JSON exporter). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${MESHMON_TRACE_VENV:-$root/target/trace-e2e-venv}"
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update
    apt-get install -y python3 python3-venv python3-pip
  else
    echo "setup trace: python3 with venv is required" >&2
    exit 1
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import ddtrace, opentelemetry.exporter.zipkin.json, opentelemetry.sdk' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'ddtrace>=4,<5' 'opentelemetry-sdk>=1.30' 'opentelemetry-exporter-zipkin-json>=1.30'
fi
"$venv/bin/python" -c 'import ddtrace; print("setup trace: ddtrace", ddtrace.__version__)'
