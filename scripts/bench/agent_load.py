#!/usr/bin/env python3
"""meshmon-agent benchmarks on loopback (results are printed as a table):

  capacity   the trace intake's sustained spans per agent CPU-second (decode + normalise
             + sample + RED stats + service map + assembly + store), v0.4 and v0.5, driven
             by Debian's `hey` at full speed with the synthetic Envoy payloads (30 spans).
  footprint  idle RSS, then RSS and CPU under a defined mesh load for --seconds:
             100 Istio sidecar targets scraped every 15 s (the real 1.5 istio-proxy
             fixture), 10 k spans/s (hey, rate-limited), 10 k CRI log lines/s written to a
             pod-log tree the agent tails.

  python3 scripts/bench/agent_load.py [--seconds 300] [--only capacity|footprint]

Needs: a release build (cargo build --release -p meshmon-agent), `hey`
(scripts/setup.d/agent.sh) and ../shared/data.
"""
import argparse, http.server, json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("MESHMON_DATA", os.path.join(ROOT, "..", "shared", "data"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "meshmon-agent")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / TICK
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return cpu, rss


def metric(api, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def start_agent(work, cfg_text):
    path = os.path.join(work, "agent.yaml")
    with open(path, "w") as f:
        f.write(cfg_text)
    log = open(os.path.join(work, "agent.log"), "w")
    p = subprocess.Popen([BIN, "run", "--config", path], stderr=log, stdout=subprocess.DEVNULL)
    return p


def wait(api):
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{api}/health", timeout=1); return
        except Exception:
            time.sleep(0.05)
    sys.exit("agent did not start")


def hey(port, payload, path, seconds, rate=None, conc=4):
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(conc), "-m", "PUT", "-T", "application/msgpack",
           "-H", "X-Datadog-Trace-Count: 3", "-D", payload]
    if rate:
        cmd += ["-q", str(rate)]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def capacity(seconds):
    rows = []
    for ver in ["v0.4", "v0.5"]:
        payload = os.path.join(DATA, "trace-payloads", "synthetic-envoy-istio", f"envoy30.{ver.replace('.', '')}.msgpack")
        with tempfile.TemporaryDirectory() as work:
            api, apm = free_port(), free_port()
            p = start_agent(work, f"data_dir: {work}/d\napi:\n  listen: 127.0.0.1:{api}\napm:\n  receiver_port: {apm}\n  zipkin_port: null\n  queue_requests: 256\n")
            wait(api)
            hey(apm, payload, f"/{ver}/traces", 3).communicate()  # warm-up
            c0, _ = proc(p.pid); s0 = metric(api, "meshmon_spans_received_total"); t0 = time.time()
            out, _ = hey(apm, payload, f"/{ver}/traces", seconds, conc=8).communicate()
            c1, rss = proc(p.pid); s1 = metric(api, "meshmon_spans_received_total"); t1 = time.time()
            rej = metric(api, "meshmon_trace_requests_rejected_queue_full_total")
            p.terminate(); p.wait(30)
            spans = s1 - s0; cpu = c1 - c0
            codes = [l.strip() for l in out.splitlines() if "responses" in l]
            rows.append((ver, spans / (t1 - t0), spans / cpu if cpu else 0, cpu / (t1 - t0), rss / 2**20, int(rej), " ".join(codes)))
    print("\n| payload | spans/s (wall) | spans per agent CPU-second | agent cores used | RSS MiB | 429s | hey status codes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} Envoy 30-span | {r[1]:,.0f} | {r[2]:,.0f} | {r[3]:.2f} | {r[4]:.1f} | {r[5]} | {r[6]} |")


class Targets(http.server.BaseHTTPRequestHandler):
    body = b""
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)
    def log_message(self, *a):
        pass


def footprint(seconds):
    fixture = open(os.path.join(DATA, "istio-fixtures", "1.5", "istio-proxy.txt"), "rb").read()
    Targets.body = fixture
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Targets)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    tport = srv.server_address[1]
    payload = os.path.join(DATA, "trace-payloads", "synthetic-envoy-istio", "envoy30.v04.msgpack")
    with tempfile.TemporaryDirectory() as work:
        api, apm = free_port(), free_port()
        pods = os.path.join(work, "pods")
        logdir = os.path.join(pods, "bookinfo_reviews-v3-7dbcdcbc56-x2x9k_0b6c", "istio-proxy")
        os.makedirs(logdir)
        instances = "".join(
            f"      - istio_mesh_endpoint: http://127.0.0.1:{tport}/metrics/{i}\n        tags: [\"pod:p{i}\"]\n" for i in range(100))
        cfg = (f"data_dir: {work}/d\napi:\n  listen: 127.0.0.1:{api}\napm:\n  receiver_port: {apm}\n  zipkin_port: null\n"
               f"logs:\n  enabled: true\n  container_collect_all: true\n  pod_logs_root: {pods}\n"
               f"checks:\n  - name: istio\n    instances:\n{instances}")
        p = start_agent(work, cfg)
        wait(api)
        time.sleep(20)  # every target scraped once or more, the agent at rest
        _, idle_rss = proc(p.pid)
        stop = threading.Event()
        def writer():
            path = os.path.join(logdir, "0.log")
            n = 0
            with open(path, "a") as f:
                while not stop.is_set():
                    t = time.time()
                    lines = []
                    for _ in range(1000):
                        lines.append(f'2024-05-01T12:00:00.000000000Z stdout F [2024-05-01T12:00:00.000Z] "GET /reviews/{n % 97} HTTP/1.1" {200 if n % 50 else 503} - via_upstream - "-" 0 {n % 900} {n % 40} {n % 37} "-" "curl/8" "{n:08x}-req" "reviews:9080" "10.0.0.{n % 250}:9080" inbound|9080|| 10.0.1.{n % 250}:9080 10.0.2.{n % 250}:443 outbound_.9080_._.reviews default\n')
                        n += 1
                    f.write("".join(lines)); f.flush()
                    time.sleep(max(0, 0.1 - (time.time() - t)))
            return n
        res = {}
        wt = threading.Thread(target=lambda: res.setdefault("lines", writer()))
        wt.start()
        h = hey(apm, payload, "/v0.4/traces", seconds, rate=167, conc=2)  # 2 x 167 req/s x 30 spans = 10 k spans/s
        c0, _ = proc(p.pid); t0 = time.time()
        samples = []
        while h.poll() is None:
            time.sleep(5)
            c, rss = proc(p.pid)
            samples.append((time.time() - t0, c - c0, rss))
        stop.set(); wt.join()
        c1, rss_end = proc(p.pid); t1 = time.time()
        spans = metric(api, "meshmon_spans_received_total")
        lines = metric(api, "meshmon_logs_lines_total")
        scrapes = metric(api, "meshmon_check_runs_total")
        p.terminate(); p.wait(30)
    srv.shutdown()
    steady = [s[2] for s in samples if s[0] > 30] or [rss_end]
    print(f"\nfootprint over {t1 - t0:.0f} s: idle RSS {idle_rss / 2**20:.1f} MiB; under load RSS median "
          f"{sorted(steady)[len(steady) // 2] / 2**20:.1f} MiB, max {max(s[2] for s in samples) / 2**20:.1f} MiB; "
          f"CPU {(c1 - c0) / (t1 - t0) * 100:.1f} % of one core")
    print(f"load delivered: {spans / (t1 - t0):,.0f} spans/s, {lines / (t1 - t0):,.0f} log lines/s "
          f"({res.get('lines', 0):,} written), {scrapes:.0f} scrapes of 100 targets")
    print("RSS curve (s, MiB): " + ", ".join(f"{s[0]:.0f}:{s[2] / 2**20:.1f}" for s in samples[:: max(1, len(samples) // 12)]))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--capacity-seconds", type=int, default=20)
    ap.add_argument("--only", choices=["capacity", "footprint"])
    a = ap.parse_args()
    if a.only != "footprint":
        capacity(a.capacity_seconds)
    if a.only != "capacity":
        footprint(a.seconds)
