#!/usr/bin/env bash
# End-to-end: real tracing clients (Datadog's ddtrace with its default v0.5 encoding, again
# with DD_TRACE_API_VERSION=v0.4, and the OpenTelemetry Zipkin JSON exporter) send a
# two-service program's traces to `meshmon-agent trace serve` on loopback; the spans,
# services, parent links, error span, 128-bit ids and service-map edge are asserted.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv="${MESHMON_TRACE_VENV:-$root/target/trace-e2e-venv}"
[ -x "$venv/bin/python" ] || bash scripts/setup.d/trace.sh
. scripts/it/lib.bash
bin="$(it_agent_bin --no-default-features --features trace)"
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_case() {
  local mode="$1"; shift
  local dd zk
  dd="$(free_port)"; zk="$(free_port)"
  "$bin" trace serve --listen "127.0.0.1:$dd" --zipkin "127.0.0.1:$zk" --trace-timeout 1 \
    --output "$work/$mode.jsonl" --summary "$work/$mode.summary.json" 2>"$work/$mode.log" &
  pid=$!
  for _ in $(seq 50); do
    "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$dd/info', timeout=1)" 2>/dev/null && break
    sleep 0.1
  done
  if [ "$mode" = zipkin ]; then
    "$venv/bin/python" scripts/trace-e2e/two_services.py zipkin "http://127.0.0.1:$zk/api/v2/spans"
  else
    env DD_TRACE_AGENT_URL="http://127.0.0.1:$dd" DD_INSTRUMENTATION_TELEMETRY_ENABLED=false \
      DD_REMOTE_CONFIGURATION_ENABLED=false DD_TRACE_STARTUP_LOGS=false DD_ENV=e2e "$@" \
      "$venv/bin/python" scripts/trace-e2e/two_services.py ddtrace
  fi
  sleep 0.5
  kill -TERM "$pid"
  wait "$pid"
  pid=""
  "$venv/bin/python" scripts/trace-e2e/check.py "$work/$mode.jsonl" "$work/$mode.summary.json" "$mode" || { cat "$work/$mode.log" >&2; exit 1; }
}

run_case v05
run_case v04 DD_TRACE_API_VERSION=v0.4
run_case zipkin
echo "trace e2e: all passed"
