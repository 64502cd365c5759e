"""Asserts what `meshmon-agent trace serve` wrote for the two-service program."""
import json
import sys

spans_file, summary_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
spans = [json.loads(l) for l in open(spans_file) if l.strip()]
summary = json.load(open(summary_file))


def fail(msg):
    print(f"trace e2e ({mode}): FAIL: {msg}", file=sys.stderr)
    print(json.dumps(summary, indent=1)[:3000], file=sys.stderr)
    sys.exit(1)


want_endpoint = {"v05": "/v0.5/traces", "v04": "/v0.4/traces", "zipkin": "/api/v2/spans"}[mode]
if set(summary["chunks_by_endpoint"]) != {want_endpoint}:
    fail(f"expected traffic on {want_endpoint} only, got {summary['chunks_by_endpoint']}")
if len(spans) != 9:
    fail(f"expected 9 spans (3 requests x 3), got {len(spans)}")
services = {s["service"] for s in spans}
if services != {"productpage", "reviews"}:
    fail(f"services {services}")
traces = {}
for s in spans:
    traces.setdefault(s["trace_id_128"], []).append(s)
if len(traces) != 3:
    fail(f"expected 3 traces, got {len(traces)}")
for tid, ss in traces.items():
    if int(tid, 16) >> 64 == 0:
        fail(f"trace {tid} is not a 128-bit id")
    ids = {s["span_id"] for s in ss}
    roots = [s for s in ss if s["parent_id"] == 0]
    if len(roots) != 1:
        fail(f"trace {tid}: {len(roots)} roots")
    for s in ss:
        if s["parent_id"] != 0 and s["parent_id"] not in ids:
            fail(f"trace {tid}: span {s['span_id']} has a dangling parent")
    rv = [s for s in ss if s["service"] == "reviews"]
    if len(rv) != 1:
        fail(f"trace {tid}: {len(rv)} reviews spans")
    parent = next(s for s in ss if s["span_id"] == rv[0]["parent_id"])
    if parent["service"] != "productpage":
        fail(f"trace {tid}: reviews' parent is {parent['service']}")
errors = [s for s in spans if s["error"]]
if len(errors) != 1 or errors[0]["service"] != "reviews":
    fail(f"expected one error span in reviews, got {[(s['service'], s['name']) for s in errors]}")
edges = {(e["caller"], e["callee"]): e for e in summary["service_map"]}
e = edges.get(("productpage", "reviews"))
if not e or e["calls"] != 3 or e["errors"] != 1:
    fail(f"service-map edge productpage -> reviews: {e}")
if not summary["counters"]["balanced"] or summary["counters"]["spans_received"] != 9:
    fail(f"counters {summary['counters']}")
print(f"trace e2e ({mode}): ok: {want_endpoint}, 9 spans, 3 traces with 128-bit ids, parent links, 1 error span, edge productpage -> reviews (3 calls, 1 error)")
