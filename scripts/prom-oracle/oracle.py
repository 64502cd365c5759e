#!/usr/bin/env python3
"""Datadog's own OpenMetrics v2 check as the oracle for meshmon-prom's mapping.

For every case in meshmon-prom/testdata/oracle/cases.json it serves the Istio fixture on
a loopback HTTP port (Content-Type text/plain; version=0.0.4, as Envoy and istiod
answer), runs `OpenMetricsBaseCheckV2` from datadog-checks-base (the version pinned in
venv.sh) once with the case's instance options plus the Istio preset (Datadog's
construct_metrics_config over the shared metric map), and writes every submission the
check made, one JSON object per line, sorted, to testdata/oracle/<id>.jsonl:
  {"name", "type", "value", "tags": [sorted]}                       (metrics)
  {"name", "type": "histogram_bucket", "value", "lower_bound", "upper_bound", "monotonic", "tags"}

Regenerate (from the workspace root):
    bash scripts/prom-oracle/venv.sh
    ~/.cache/meshmon/prom-oracle-venv/bin/python scripts/prom-oracle/oracle.py
"""
import copy
import http.server
import json
import math
import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("MESHMON_DATA", ROOT.parent / "shared" / "data"))
FIXTURES = DATA / "istio-fixtures"
CASES = ROOT / "meshmon-prom" / "testdata" / "oracle" / "cases.json"
# Where the expected outputs go (the committed test data unless told otherwise).
OUT = Path(os.environ.get("MESHMON_ORACLE_OUT", ROOT / "meshmon-prom" / "testdata" / "oracle"))

# The stub aggregator rejects "generic" tag names (version, host…) that Istio labels use.
os.environ.setdefault("DDEV_SKIP_GENERIC_TAGS_CHECK", "1")

from datadog_checks.base import OpenMetricsBaseCheckV2  # noqa: E402
from datadog_checks.base.stubs import aggregator  # noqa: E402


class OracleCheck(OpenMetricsBaseCheckV2):
    __NAMESPACE__ = ""
    DEFAULT_METRIC_LIMIT = 0


def construct_metrics_config(metric_map, non_conforming):
    # istio/datadog_checks/istio/check.py (Datadog's Istio integration)
    metrics = []
    for raw, name in metric_map.items():
        if raw.endswith("_total") and raw not in non_conforming:
            raw = raw[:-6]
            name = name[:-6]
        metrics.append({raw: {"name": name}})
    return metrics


def preset(name, maps):
    nc = maps["NON_CONFORMING_METRICS"]
    if name == "istio-mesh":
        return "istio.mesh", construct_metrics_config(maps["MESH_METRICS"], nc)
    if name == "istiod":
        return "istio", construct_metrics_config(maps["ISTIOD_METRICS"], nc)
    raise SystemExit(f"unknown preset {name}")


class Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", Handler.content_type)
        self.send_header("Content-Length", str(len(Handler.body)))
        self.end_headers()
        self.wfile.write(Handler.body)

    def log_message(self, *args):
        pass


def num(v):
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return str(v)
    return v


def run_case(case, maps, port):
    Handler.body = (FIXTURES / case["fixture"]).read_bytes()
    # a case may set the Content-Type (OpenMetrics makes the check use its OM parser)
    Handler.content_type = case.get("content_type", "text/plain; version=0.0.4; charset=utf-8")
    namespace, metrics = preset(case["preset"], maps)
    instance = copy.deepcopy(case["options"])
    v1 = any(k in instance for k in ("send_histograms_buckets", "labels_mapper"))
    # v1 cases run through Datadog's OpenMetricsCompatibilityScraper (which translates
    # the v1 option names); the preset goes in `extra_metrics`, which it leaves alone
    # (it would turn every `metrics` key into an fnmatch regex and drop the renames).
    instance.update({
        "openmetrics_endpoint": f"http://127.0.0.1:{port}/metrics",
        "namespace": namespace,
        ("extra_metrics" if v1 else "metrics"): metrics,
    })
    aggregator.reset()
    if v1:
        from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsCompatibilityScraper

        class V1Check(OracleCheck):
            def create_scraper(self, config):
                return OpenMetricsCompatibilityScraper(self, self.get_config_with_defaults(config))

        check = V1Check("oracle", {}, [instance])
    else:
        check = OracleCheck("oracle", {}, [instance])
    err = check.run()
    if err:
        raise SystemExit(f"{case['id']}: check failed: {err}")
    rows = []
    for name, stubs in aggregator._metrics.items():
        for s in stubs:
            if name.endswith("openmetrics.health") or ".telemetry." in name:
                continue
            rows.append({
                "name": s.name,
                "type": aggregator.METRIC_ENUM_MAP_REV[s.type],
                "value": num(s.value),
                "tags": sorted(s.tags),
            })
    for name, stubs in aggregator._histogram_buckets.items():
        for s in stubs:
            rows.append({
                "name": s.name,
                "type": "histogram_bucket",
                "value": num(s.value),
                "lower_bound": num(s.lower_bound),
                "upper_bound": num(s.upper_bound),
                "monotonic": bool(s.monotonic),
                "tags": sorted(s.tags),
            })
    lines = sorted(json.dumps(r, sort_keys=True) for r in rows)
    (OUT / f"{case['id']}.jsonl").write_text("".join(line + "\n" for line in lines))
    return len(lines)


def main():
    maps = json.loads((FIXTURES / "datadog-istio-metrics-mapping.json").read_text())["maps"]
    cases = json.loads(CASES.read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for case in cases:
            n = run_case(case, maps, port)
            print(f"{case['id']}: {n} submissions")
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
