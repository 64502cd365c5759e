#!/usr/bin/env python3
"""Seeded synthetic Prometheus text for the V1 oracle: shapes the Istio fixtures lack
(negative and zero bounds, unsorted buckets, a histogram with only +Inf, NaN/Inf
values, escaped label values, connectionID labels, summaries with odd quantile text,
OpenMetrics-style `_total` samples under `# TYPE x counter`, untyped samples), named as
the mesh scraper's map so LegacyIstioCheck_1_4's mesh scraper takes them.

    python3 scripts/prom-oracle/gen_v1_synthetic.py [SEED]   # writes meshmon-prom/testdata/oracle/synthetic-v1-<SEED>.txt
"""
import random
import sys
from pathlib import Path

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
rnd = random.Random(seed)
out = []


def labels(extra=None):
    ls = {}
    for k in rnd.sample(["source_app", "destination_app", "response_code", "reporter", "connectionID", "path"], rnd.randint(0, 4)):
        v = rnd.choice(["a", "b-c", "x.y", "200", "with \\\"quote\\\"", "back\\\\slash", "new\\nline", "", "ü"])
        ls[k] = v
    if extra:
        ls.update(extra)
    if not ls:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in ls.items()) + "}"


def value():
    return rnd.choice([str(rnd.randint(0, 10**6)), f"{rnd.random() * 1000:.6g}", "0", "1e-05", "2.5e+20", "NaN", "+Inf", "-Inf", "-3"])


for name in ["istio_requests_total", "istio_tcp_sent_bytes_total", "istio_request_messages_total"]:
    out.append(f"# HELP {name} synthetic")
    out.append(f"# TYPE {name} counter")
    for _ in range(rnd.randint(1, 4)):
        out.append(f"{name}{labels()} {value()}")
# OpenMetrics style: family x, samples x_total (V1 drops them)
out.append("# TYPE istio_tcp_connections_opened counter")
out.append(f"istio_tcp_connections_opened_total{labels()} 3")
for name in ["istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"]:
    out.append(f"# TYPE {name} histogram")
    for _ in range(rnd.randint(1, 3)):
        base = labels()
        inner = base[1:-1] + "," if base else ""
        bounds = sorted(rnd.sample([-5, -1, 0, 0.001, 0.5, 1, 2.5, 10, 100, 1e6], rnd.randint(0, 5)))
        if rnd.random() < 0.3:
            rnd.shuffle(bounds)
        acc = 0
        for b in bounds:
            acc += rnd.randint(0, 5)
            btxt = rnd.choice([repr(float(b)), str(b)]) if b == int(b) else str(b)
            out.append(f'{name}_bucket{{{inner}le="{btxt}"}} {acc}')
        acc += rnd.randint(0, 5)
        out.append(f'{name}_bucket{{{inner}le="+Inf"}} {acc}')
        out.append(f"{name}_sum{base} {value()}")
        out.append(f"{name}_count{base} {acc}")
out.append("# TYPE istio_agent_go_gc_duration_seconds summary")
for q in ["0", "0.25", "0.5", "1", "1e-3", "0.99"]:
    out.append(f'istio_agent_go_gc_duration_seconds{{quantile="{q}"}} {value()}')
out.append(f"istio_agent_go_gc_duration_seconds_sum {value()}")
out.append(f"istio_agent_go_gc_duration_seconds_count {rnd.randint(0, 100)}")
out.append("# TYPE istio_agent_go_goroutines gauge")
out.append(f"istio_agent_go_goroutines{labels()} {value()}")
out.append(f"istio_agent_go_threads {value()}")  # untyped
dest = Path(__file__).resolve().parents[2] / f"meshmon-prom/testdata/oracle/synthetic-v1-{seed}.txt"
dest.write_text("\n".join(out) + "\n")
print(f"wrote {dest}")
