#!/usr/bin/env bash
# meshmon-prom end to end:
#  1. a real prometheus-node-exporter on a loopback port, scraped (feature `scrape`),
#     parsed and mapped by tests/scrape.rs::node_exporter_scraped_and_mapped;
#  2. Datadog's own check (datadog-checks-base, venv from scripts/prom-oracle/venv.sh)
#     re-run on the Istio fixtures: its output must equal the committed oracle data that
#     tests/oracle.rs compares meshmon-prom with;
#  3. the CLI on a fixture (`prom parse`, `prom map`).
# Needs scripts/setup.d/prom.sh to have run.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
data="${MESHMON_DATA:-$root/../shared/data}"
. scripts/it/lib.bash

exporter="$(command -v prometheus-node-exporter || true)"
[ -n "$exporter" ] || { echo "prometheus-node-exporter missing: run scripts/setup.d/prom.sh" >&2; exit 1; }
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
log="$(mktemp)"
"$exporter" --web.listen-address="127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 50); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/metrics', timeout=1)" 2>/dev/null; then break; fi
  sleep 0.2
done
echo "== prom: node exporter $($exporter --version 2>&1 | head -1) on 127.0.0.1:$port"
MESHMON_NODE_EXPORTER_URL="http://127.0.0.1:$port/metrics" \
  it_crate_tests meshmon-prom --features scrape -- --nocapture scrape::node_exporter

echo "== prom: Datadog oracle reproduces the committed expected outputs"
venv="${MESHMON_PROM_VENV:-$HOME/.cache/meshmon/prom-oracle-venv}"
if [ -d "$data/istio-fixtures" ]; then
  out="$(mktemp -d)"
  MESHMON_ORACLE_OUT="$out" MESHMON_DATA="$data" "$venv/bin/python" scripts/prom-oracle/oracle.py
  for f in meshmon-prom/testdata/oracle/*.jsonl; do
    cmp "$f" "$out/$(basename "$f")" || { echo "oracle output differs: $f" >&2; exit 1; }
  done
  rm -rf "$out"
  it_crate_tests meshmon-prom -- oracle::
else
  echo "shared data absent ($data): oracle skipped"
  # scripts/test exports MESHMON_REQUIRE_CORPUS=1: a missing corpus fails, never passes.
  if [ "${MESHMON_REQUIRE_CORPUS:-0}" = 1 ]; then
    echo "MESHMON_REQUIRE_CORPUS=1: $data/istio-fixtures is required" >&2
    exit 1
  fi
fi

echo "== prom: CLI"
bin="$(it_agent_bin --no-default-features --features prom)"
if [ -f "$data/istio-fixtures/1.5/istio-proxy.txt" ]; then
  got="$("$bin" prom parse "$data/istio-fixtures/1.5/istio-proxy.txt")"
  [ "$got" = "families=254 samples=773" ] || { echo "unexpected: $got" >&2; exit 1; }
  n="$("$bin" prom map "$data/istio-fixtures/1.5/istio-proxy.txt" --preset istio | grep -c '"name":"istio.mesh.request.count"')"
  [ "$n" -gt 0 ] || { echo "no istio.mesh.request.count" >&2; exit 1; }
fi
printf 'a 1\nb{x="y} 2\n' >"$log"
if "$bin" prom parse "$log" >/dev/null; then
  echo "invalid input accepted" >&2; exit 1
fi
echo "== prom: end-to-end passed"
