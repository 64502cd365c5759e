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

It also runs Datadog's OpenMetrics V1 base check (`OpenMetricsBaseCheck`) configured as
the `istio` check's V1 classes configure it, for every case in
testdata/oracle/v1-cases.json: `LegacyIstioCheck_1_4` (integrations-core
istio/datadog_checks/istio/legacy_1_4.py: one scraper per endpoint key, namespaces
istio.mesh / .mixer / .pilot / .galley / .citadel, GENERIC_METRICS added to the control
plane, galley's ignore list, BLACKLIST_LABELS) and the V1 istiod `Istio` check
(istio.py), reproduced below from those files (the integration itself is not on the
oracle's path, only datadog-checks-base). Each fixture is served at its own path, so an
instance may name several endpoints. Output rows as above plus
  {"name", "type": "service_check", "status", "tags"}  and "hostname" on every metric.

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
        if self.path.startswith("/fixture/"):
            # V1 cases: /fixture/<path under istio-fixtures>
            rel = self.path[len("/fixture/"):]
            # testdata/<file>: meshmon-prom/testdata/oracle/<file> (synthetic inputs)
            if rel.startswith("testdata/"):
                src = ROOT / "meshmon-prom" / "testdata" / "oracle" / rel[len("testdata/"):]
            else:
                src = FIXTURES / rel
            body = src.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
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


# --- OpenMetrics V1: the istio check's V1 classes -----------------------------------

V1_CASES = ROOT / "meshmon-prom" / "testdata" / "oracle" / "v1-cases.json"
# istio/datadog_checks/istio/constants.py
BLACKLIST_LABELS = ["connectionID"]
LEGACY_ORDER = ["istio_mesh_endpoint", "mixer_endpoint", "pilot_endpoint", "galley_endpoint", "citadel_endpoint"]


def legacy_generic_instances(instance, maps):
    """LegacyIstioCheck_1_4.create_generic_instances (legacy_1_4.py), one instance."""
    from copy import deepcopy

    generic = maps["GENERIC_METRICS"]
    exclude_labels = instance.get("exclude_labels", [])
    exclude_labels.extend(BLACKLIST_LABELS)
    instance.update({"exclude_labels": exclude_labels})
    result = []
    if "istio_mesh_endpoint" in instance:
        endpoint = instance.get("istio_mesh_endpoint")
        i = deepcopy(instance)
        i.update({
            "namespace": "istio.mesh",
            "prometheus_url": endpoint,
            "label_to_hostname": endpoint,
            "metrics": [dict(maps["MESH_METRICS"])],
            "send_monotonic_counter": instance.get("send_monotonic_counter", False),
            "health_service_check": instance.get("health_service_check", False),
            "send_monotonic_with_gauge": instance.get("send_monotonic_with_gauge", True),
        })
        result.append(i)
    if "mixer_endpoint" in instance:
        i = deepcopy(instance)
        m = dict(maps["MIXER_METRICS"])
        m.update(generic)
        i.update({
            "namespace": "istio.mixer",
            "prometheus_url": instance.get("mixer_endpoint"),
            "metrics": [m],
            "send_monotonic_counter": instance.get("send_monotonic_counter", False),
            "health_service_check": instance.get("health_service_check", False),
        })
        result.append(i)
    if "pilot_endpoint" in instance:
        i = deepcopy(instance)
        m = dict(maps["PILOT_METRICS"])
        m.update(generic)
        i.update({"namespace": "istio.pilot", "prometheus_url": instance.get("pilot_endpoint"), "metrics": [m]})
        result.append(i)
    if "galley_endpoint" in instance:
        i = deepcopy(instance)
        m = dict(maps["GALLEY_METRICS"])
        m.update(generic)
        i.update({
            "namespace": "istio.galley",
            "prometheus_url": instance.get("galley_endpoint"),
            "metrics": [m],
            "ignore_metrics": ["galley_mcp_source_message_size_bytes", "galley_mcp_source_request_acks_total"],
        })
        i["ignore_metrics"].extend(instance.get("ignore_metrics", []))
        result.append(i)
    if "citadel_endpoint" in instance:
        i = deepcopy(instance)
        m = dict(maps["CITADEL_METRICS"])
        m.update(generic)
        i.update({"namespace": "istio.citadel", "prometheus_url": instance.get("citadel_endpoint"), "metrics": [m]})
        result.append(i)
    return result


def istiod_v1_instance(instance, maps):
    """The V1 istiod `Istio.__init__` (istio.py)."""
    if instance.get("istio_mesh_endpoint"):
        raise SystemExit("istio_mesh_endpoint needs to be configured in a separate instance.")
    metrics = instance.get("metrics", []) + [dict(maps["ISTIOD_METRICS"])]
    exclude_labels = instance.get("exclude_labels", []) + BLACKLIST_LABELS
    instance.update({
        "prometheus_url": instance.get("istiod_endpoint"),
        "namespace": "istio",
        "metrics": metrics,
        "metadata_metric_name": "istio_build",
        "metadata_label_map": {"version": "tag"},
        "exclude_labels": exclude_labels,
    })
    return [instance]


def run_v1_case(case, maps, port):
    from datadog_checks.base import OpenMetricsBaseCheck

    base = f"http://127.0.0.1:{port}/fixture/"
    instance = copy.deepcopy(case["options"])
    for key, fixture in case["endpoints"].items():
        instance[key] = base + fixture
    original = copy.deepcopy(instance)
    if instance.get("use_openmetrics"):
        raise SystemExit(f"{case['id']}: V1 cases only")
    legacy = not instance.get("istiod_endpoint")
    generic = legacy_generic_instances(instance, maps) if legacy else istiod_v1_instance(instance, maps)

    class V1Check(OpenMetricsBaseCheck):
        DEFAULT_METRIC_LIMIT = 0

        def check(self, inst):
            if not legacy:
                return OpenMetricsBaseCheck.check(self, inst)
            # LegacyIstioCheck_1_4.check: every key of the original instance, in order,
            # through the URL-keyed config_map.
            for key in LEGACY_ORDER:
                url = original.get(key)
                if url:
                    self.process(self.config_map[url])

    aggregator.reset()
    check = V1Check("istio", {}, generic)
    err = check.run()
    if err:
        raise SystemExit(f"{case['id']}: check failed: {err}")
    rows = []
    for name, stubs in aggregator._metrics.items():
        for s in stubs:
            if ".telemetry." in name:
                continue
            rows.append({
                "name": s.name,
                "type": aggregator.METRIC_ENUM_MAP_REV[s.type],
                "value": num(s.value),
                "tags": sorted(s.tags),
                "hostname": s.hostname or "",
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
                "hostname": s.hostname or "",
            })
    for name, stubs in aggregator._service_checks.items():
        for s in stubs:
            rows.append({"name": s.name, "type": "service_check", "status": s.status,
                         "tags": sorted(t.replace(base, "<base>/") for t in s.tags)})
    # The served URL's port changes from run to run: written as <base>/<fixture>.
    lines = sorted(json.dumps(r, sort_keys=True).replace(base, "<base>/") for r in rows)
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
        for case in json.loads(V1_CASES.read_text()):
            n = run_v1_case(case, maps, port)
            print(f"{case['id']}: {n} submissions (V1)")
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
