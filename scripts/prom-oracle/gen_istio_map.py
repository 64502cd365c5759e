#!/usr/bin/env python3
"""Regenerates meshmon-prom/src/mapping/istio_map.rs from the shared Datadog Istio map.

    python3 scripts/prom-oracle/gen_istio_map.py ../shared/data/istio-fixtures/datadog-istio-metrics-mapping.json
"""
import json
import sys
from pathlib import Path

src = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[3] / "shared/data/istio-fixtures/datadog-istio-metrics-mapping.json")
m = json.load(open(src))["maps"]
out = [
    "//! Datadog's Istio metric-name maps (generated from `datadog-istio-metrics-mapping.json`,",
    "//! the dict literals of DataDog/integrations-core `istio/datadog_checks/istio/metrics.py`;",
    "//! BSD-3-Clause, Datadog, Inc.). Keys are raw Prometheus names, values Datadog names",
    "//! without the namespace. Regenerate with `scripts/prom-oracle/gen_istio_map.py`.",
    "",
]


def emit(name, dd, doc):
    out.append(f"/// {doc}")
    out.append(f"pub const {name}: &[(&str, &str)] = &[")
    for k, v in dd.items():
        out.append(f"    ({json.dumps(k)}, {json.dumps(v)}),")
    out.append("];")
    out.append("")


emit("MESH_METRICS", m["MESH_METRICS"], "`MESH_METRICS`: the mesh (Envoy sidecar) endpoint, namespace `istio.mesh`.")
emit("ISTIOD_METRICS", m["ISTIOD_METRICS"], "`ISTIOD_METRICS`: the istiod endpoint, namespace `istio`.")
emit("GENERIC_METRICS", m["GENERIC_METRICS"], "`GENERIC_METRICS`: Go runtime and process metrics, added to every legacy (Istio 1.4) control-plane scraper.")
emit("MIXER_METRICS", m["MIXER_METRICS"], "`MIXER_METRICS`: the legacy check's mixer endpoint, namespace `istio.mixer`.")
emit("PILOT_METRICS", m["PILOT_METRICS"], "`PILOT_METRICS`: the legacy check's pilot endpoint, namespace `istio.pilot`.")
emit("GALLEY_METRICS", m["GALLEY_METRICS"], "`GALLEY_METRICS`: the legacy check's galley endpoint, namespace `istio.galley`.")
emit("CITADEL_METRICS", m["CITADEL_METRICS"], "`CITADEL_METRICS`: the legacy check's citadel endpoint, namespace `istio.citadel`.")
out.append("/// `NON_CONFORMING_METRICS`: raw names ending in `_total` that are not counters, so")
out.append("/// their `_total` is kept.")
out.append("pub const NON_CONFORMING_METRICS: &[&str] = &[")
for k in m["NON_CONFORMING_METRICS"]:
    out.append(f"    {json.dumps(k)},")
out.append("];")
dest = Path(__file__).resolve().parents[2] / "meshmon-prom/src/mapping/istio_map.rs"
dest.write_text("\n".join(out) + "\n")
print(f"wrote {dest}")
