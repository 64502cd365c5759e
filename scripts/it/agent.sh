#!/usr/bin/env bash
# meshmon-agent run, end to end with real parts on loopback:
#  - the Debian prometheus-node-exporter, scraped by the agent's `openmetrics` check;
#  - the real ddtrace client (scripts/trace-e2e/two_services.py) sending to the agent's
#    Datadog intake;
#  - the Debian prometheus server scraping the agent's own /metrics;
# then asserts what the agent's API and Prometheus' query API return, and that SIGTERM
# ends the agent with exit 0. Needs scripts/setup.d/{agent,trace}.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv="${MESHMON_TRACE_VENV:-$root/target/trace-e2e-venv}"
[ -x "$venv/bin/python" ] || bash scripts/setup.d/trace.sh
for b in prometheus prometheus-node-exporter; do
  command -v "$b" >/dev/null || { echo "$b missing: run scripts/setup.d/agent.sh" >&2; exit 1; }
done
. scripts/it/lib.bash
bin="$(it_agent_bin)"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
py="$venv/bin/python"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do "$py" -c "import urllib.request; urllib.request.urlopen('$1', timeout=1)" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

ne="$(free_port)"; api="$(free_port)"; apm="$(free_port)"; pp="$(free_port)"
prometheus-node-exporter --web.listen-address="127.0.0.1:$ne" >"$work/ne.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$ne/metrics"

cat >"$work/agent.yaml" <<YAML
data_dir: $work/data
api:
  listen: 127.0.0.1:$api
env: it
checks:
  - name: openmetrics
    instances:
      - openmetrics_endpoint: http://127.0.0.1:$ne/metrics
        namespace: node
        metrics: ["node_cpu_seconds", "node_memory_MemAvailable_bytes", "node_network_receive_bytes"]
        min_collection_interval: 1
apm:
  receiver_port: $apm
  zipkin_port: null
  stats_flush_interval: 1s
YAML
"$bin" config check "$work/agent.yaml"
"$bin" run --config "$work/agent.yaml" 2>"$work/agent.log" &
agent=$!
pids+=($agent)
wait_http "http://127.0.0.1:$api/health"

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: meshmon-agent
    static_configs:
      - targets: ["127.0.0.1:$api"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pp" >"$work/prom.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$pp/-/ready"

env DD_TRACE_AGENT_URL="http://127.0.0.1:$apm" DD_INSTRUMENTATION_TELEMETRY_ENABLED=false \
  DD_REMOTE_CONFIGURATION_ENABLED=false DD_TRACE_STARTUP_LOGS=false DD_ENV=it \
  "$py" scripts/trace-e2e/two_services.py ddtrace

"$py" - "$api" "$pp" <<'PY' || { echo "--- agent log"; cat "$work/agent.log"; exit 1; } >&2
import json, sys, time, urllib.request
api, pp = sys.argv[1], sys.argv[2]
def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)
def until(what, f, secs=40):
    end = time.time() + secs
    while time.time() < end:
        try:
            v = f()
            if v:
                return v
        except Exception as e:  # not there yet
            last = e
        time.sleep(0.5)
    sys.exit(f"timed out waiting for {what}")
# node exporter through the openmetrics check: a counter as deltas, a gauge.
s = until("node.cpu.seconds.count deltas", lambda: [x for x in get(f"http://127.0.0.1:{api}/api/v1/series?name=node.node_cpu_seconds.count")["series"] if len(x["points"]) >= 2])
assert all(t in s[0]["tags"] for t in ["env:it"]), s[0]["tags"]
assert any(t.startswith("cpu:") for t in s[0]["tags"]), s[0]["tags"]
g = until("memory gauge", lambda: get(f"http://127.0.0.1:{api}/api/v1/series?name=node.node_memory_MemAvailable_bytes")["series"])
assert g[0]["type"] == "gauge" and g[0]["points"][-1]["v"] > 0, g
chk = get(f"http://127.0.0.1:{api}/api/v1/checks")["checks"][0]
assert chk["status"] == "up" and chk["runs"] >= 2, chk
print(f"agent: node exporter scraped {chk['runs']} times, {chk['samples']} samples, last {chk['duration_ms']:.1f} ms")
# ddtrace: RED per service and the productpage -> reviews edge.
m = until("service map edge", lambda: [e for e in get(f"http://127.0.0.1:{api}/api/v1/servicemap")["edges"] if e["from"] == "productpage" and e["to"] == "reviews"])
assert m[0]["calls"] == 3 and m[0]["errors"] == 1, m
svcs = until("RED stats", lambda: {s["service"]: s for s in get(f"http://127.0.0.1:{api}/api/v1/services")["services"] if s["total_hits"] > 0})
assert {"productpage", "reviews"} <= set(svcs), svcs
assert svcs["reviews"]["total_errors"] == 1, svcs["reviews"]
# Traces are stored once complete (5 s without a new span).
tr = until("3 stored traces", lambda: [t for t in get(f"http://127.0.0.1:{api}/api/v1/traces?service=reviews")["traces"]] if len(get(f"http://127.0.0.1:{api}/api/v1/traces?service=reviews")["traces"]) >= 3 else None)
assert len(tr) == 3, tr
one = get(f"http://127.0.0.1:{api}/api/v1/traces/{tr[0]['trace_id']}")
assert {s["service"] for s in one["spans"]} == {"productpage", "reviews"}, one
print("agent: ddtrace -> service map edge productpage->reviews (3 calls, 1 error), 3 traces stored")
# Prometheus scraped the agent's /metrics.
def q(expr):
    r = get(f"http://127.0.0.1:{pp}/api/v1/query?query={urllib.request.quote(expr)}")
    return r["data"]["result"]
up = until("prometheus sees meshmon_check_up", lambda: q('meshmon_check_up{job="meshmon-agent"}'))
assert up[0]["value"][1] == "1", up
spans = until("prometheus sees spans", lambda: [x for x in q("meshmon_spans_received_total") if float(x["value"][1]) >= 9])
print(f"agent: prometheus scraped /metrics: meshmon_check_up=1, meshmon_spans_received_total={spans[0]['value'][1]}")
PY
"$bin" status --addr "127.0.0.1:$api" | head -20
kill -TERM "$agent"
wait "$agent"
echo "agent e2e: passed"
