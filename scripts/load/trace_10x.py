#!/usr/bin/env python3
"""The trace intake at 10x its measured sustained capacity, full length (issue 14, "Overload").

  sudo python3 scripts/load/trace_10x.py [--seconds 60] [--cpu-percent 10] [--csv rss.csv]

What it does, on loopback:
  1. Puts meshmon-agent in a cgroup-v1 CPU group limited to --cpu-percent of one core
     (/sys/fs/cgroup/cpu/<group>/cpu.cfs_quota_us over a 100 ms period), so that Debian's
     `hey` on the same machine can really offer 10x what the agent sustains. The group is
     created and removed by this script.
  2. Measures the sustained capacity: offers the captured payload with the header at a rising
     rate (x1.6 per 5 s step) until some are refused, then saturates for 10 s at 1.5x that
     rate; capacity = payloads accepted per second there. The steady-state RSS is the
     median RSS of that saturated step (the store's bounds are small, so that it is full
     by then: what grows after is the intake's).
  3. Offers 10x the capacity for --seconds with two `hey`s (half each): a captured
     ddtrace 4.16 request with the tracer's own headers (`Datadog-Send-Real-Http-Status:
     1`: excess answered 429) and another without that header (excess answered 200 with
     `rate_by_service`, as the Datadog Agent does). Meanwhile RSS
     (/proc/PID/status VmRSS) and the latency of GET /health are sampled every 0.5 s into
     the CSV.
  4. Prints the figures and checks them: /health answered every time, RSS peak <= 2x
     steady, with --decoder-timeout 0s hey sent >= 2x capacity (refusals are immediate),
     otherwise (the default 1s: payloads wait for the budget, so the closed-loop hey slows
     to what the agent takes) the goodput held, accepted >= 0.7x capacity, every request hey sent is counted by the
     agent as queued or refused, hey's 429s are the agent's refusals answered 429, and the
     trace and span books balance exactly (received = kept + sampled out + dropped;
     offered = received + refused). Exit status 1 when a check fails.

Payloads (provenance): ../shared/data/trace-payloads (see its README): requests captured on
loopback from PyPI ddtrace 4.16.0 (libdatadog native writer, v0.4 API) tracing a
bookinfo-like client, the two largest of the corpus: ddtrace-4.16.0-v04-agentrate0.25/
0007_v0.4_traces (16 traces, 32 spans, 17299 bytes; replayed with all its headers,
`Datadog-Send-Real-Http-Status: 1` included) and ddtrace-4.16.0-v04-clientstats-rule0.5/
0003_v0.4_traces (8 traces, 24 spans, 14192 bytes, client-computed stats; replayed without
that header). The captures are small, so the per-request HTTP cost weighs about a third of
an acceptance: a refusal is not 10x cheaper than an acceptance, and `hey`, a closed loop,
sends only as fast as the agent answers. The figures say what was offered (-q x -c) and
what was sent.

Needs: root, cgroup v1 CPU controller, `hey` (scripts/setup.d/agent.sh), a release build
(cargo build --release -p meshmon-agent; --bin to point elsewhere).
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("MESHMON_DATA", os.path.join(ROOT, "..", "shared", "data"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CG_ROOT = "/sys/fs/cgroup/cpu"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def get(api, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def traces(api):
    return get(api, "/api/v1/status")["components"]["traces"]


class Payload:
    def __init__(self, rel, stem, real_status):
        d = os.path.join(DATA, "trace-payloads", rel)
        meta = json.load(open(os.path.join(d, stem + ".json")))
        self.file = os.path.join(d, stem + ".bin")
        self.path = meta["path"]
        self.headers = {k: v for k, v in meta["headers"].items()
                        if k not in ("host", "content-length", "content-type", "user-agent")
                        and (real_status or k != "datadog-send-real-http-status")}
        self.traces = int(self.headers["x-datadog-trace-count"])
        self.spans = meta["summary"]["span_count"]
        self.name = f"{rel}/{stem}"


HEY_NICE = 0


def hey(port, p, rate, conns, secs):
    cmd = ["nice", "-n", str(HEY_NICE), "hey", "-z", f"{secs}s", "-c", str(conns), "-q", f"{rate / conns:.3f}", "-t", "30",
           "-m", "PUT", "-T", "application/msgpack", "-D", p.file]
    for k, v in p.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://127.0.0.1:{port}{p.path}")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def hey_result(proc):
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"hey failed: {err}")
    codes, errors, secs, section = {}, 0, 0.0, ""
    for line in out.splitlines():
        t = line.strip()
        if t.startswith("Status code distribution"):
            section = "codes"
        elif t.startswith("Error distribution"):
            section = "errors"
        elif t.startswith("Total:"):
            secs = float(t.split()[1])
        elif t.startswith("[") and "]" in t:
            a, b = t[1:].split("]", 1)
            if section == "codes":
                codes[int(a)] = codes.get(int(a), 0) + int(b.split()[0])
            elif section == "errors":
                # `[count]	Put "url": what went wrong`
                errors += int(a)
                print(f"  hey error: {t}", file=sys.stderr)
    return {"codes": codes, "errors": errors, "secs": secs, "total": sum(codes.values()) + errors, "out": out}


def http_metrics(api):
    """The intake listener's connection counters (meshmon_http_*{listener="apm"})."""
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {l.split("{")[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
            if l.startswith("meshmon_http_") and 'listener="apm"' in l}


def settled(api, requests):
    for _ in range(200):
        t = traces(api)
        answered = (t["requests_queued"] + t["requests_refused_queue_full"] + t["requests_refused_memory"]
                    + t["requests_rejected"])
        if t["requests"] >= requests and answered == t["requests"] and t["payloads"] >= t["requests_queued"]:
            return t
        time.sleep(0.1)
    sys.exit(f"the agent's counters did not settle: {t}\nconnections: {http_metrics(api)}")


class Sampler(threading.Thread):
    """RSS and /health latency every 0.5 s."""
    def __init__(self, pid, api, phase, t0, health=True):
        super().__init__(daemon=True)
        self.pid, self.api, self.phase, self.t0, self.health = pid, api, phase, t0, health
        self.rows, self.stop, self.failures = [], threading.Event(), []

    def run(self):
        while not self.stop.is_set():
            ms = ""
            if self.health:
                t = time.time()
                try:
                    ok = get(self.api, "/health", timeout=10).get("status") == "ok"
                except Exception as e:  # noqa: BLE001 - recorded as a failure
                    ok = False
                    self.failures.append(str(e))
                ms = (time.time() - t) * 1e3
                if not ok:
                    self.failures.append(f"/health not ok at {time.time() - self.t0:.1f} s")
            self.rows.append((time.time() - self.t0, self.phase, rss_kib(self.pid), ms))
            self.stop.wait(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60, help="length of the 10x run (default 60)")
    ap.add_argument("--cpu-percent", type=int, default=10, help="the agent's CPU quota, %% of one core")
    ap.add_argument("--factor", type=float, default=10.0, help="offered load / capacity (default 10)")
    ap.add_argument("--csv", default="trace_10x_rss.csv", help="RSS and /health curve")
    ap.add_argument("--bin", default=os.path.join(TARGET, "release", "meshmon-agent"))
    ap.add_argument("--hey-nice", type=int, default=-10,
                    help="nice value of hey (default -10: on a machine shared with builds the load "
                         "generator must not be starved, or it cannot offer the load)")
    ap.add_argument("--decoder-timeout", default="1s",
                    help="apm.decoder_timeout of the agent (default 1s, the agent's default): how "
                         "long a payload waits for the memory budget before it is refused; 0s "
                         "refuses at once, the most expensive case for the agent")
    ap.add_argument("--max-header-bytes", type=int, default=None,
                    help="apm.max_header_bytes of the agent (default: the agent's default); it "
                         "also sizes each connection's read buffer (max_header_bytes + 16 KiB)")
    ap.add_argument("--latency-budget", type=float, default=0.05,
                    help="hey connections = offered rate x this many seconds (default 0.05)")
    a = ap.parse_args()
    global HEY_NICE
    HEY_NICE = a.hey_nice
    if os.geteuid() != 0 or not os.path.exists(os.path.join(CG_ROOT, "cpu.cfs_quota_us")):
        sys.exit("needs root and a cgroup-v1 CPU controller at /sys/fs/cgroup/cpu")
    if subprocess.run(["sh", "-c", "command -v hey"], capture_output=True).returncode != 0:
        sys.exit("needs hey (scripts/setup.d/agent.sh)")
    if not os.path.exists(a.bin):
        sys.exit(f"no agent binary at {a.bin} (cargo build --release -p meshmon-agent)")
    v04 = Payload("ddtrace-4.16.0-v04-agentrate0.25", "0007_v0.4_traces", True)
    v05 = Payload("ddtrace-4.16.0-v04-clientstats-rule0.5", "0003_v0.4_traces", False)
    group = os.path.join(CG_ROOT, f"meshmon-trace10x-{os.getpid()}")
    os.makedirs(group, exist_ok=True)
    agent = None
    try:
        open(os.path.join(group, "cpu.cfs_period_us"), "w").write("100000")
        open(os.path.join(group, "cpu.cfs_quota_us"), "w").write(str(a.cpu_percent * 1000))
        work = tempfile.mkdtemp(prefix="meshmon-trace10x-")
        api, apm = free_port(), free_port()
        cfg = os.path.join(work, "agent.yaml")
        open(cfg, "w").write(
            f"data_dir: {work}/data\napi:\n  listen: 127.0.0.1:{api}\napm:\n  receiver_port: {apm}\n"
            "  zipkin_port: null\n  max_body_bytes: 65536\n  max_inflight_body_bytes: 262144\n"
            # hey, one address, stands for the tracers of many pods: the per-client
            # connection limit (256 by default) is lifted to the listener's.
            f"  queue_requests: 1024\n  max_connections_per_client: 1024\n  decoder_timeout: {a.decoder_timeout}\n"
            + (f"  max_header_bytes: {a.max_header_bytes}\n" if a.max_header_bytes else "")
            + "  stats_flush_interval: 1s\ndogstatsd:\n  enabled: false\n"
            "store:\n  max_traces: 200\n  max_points_per_series: 20\n")
        procs = os.path.join(group, "cgroup.procs")
        agent = subprocess.Popen([a.bin, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(work, "agent.log"), "w"),
                                 preexec_fn=lambda: open(procs, "w").write(str(os.getpid())))
        for _ in range(300):
            try:
                get(api, "/health", timeout=1); break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        else:
            sys.exit("the agent did not start")
        t0 = time.time()
        print(f"agent pid {agent.pid} in {group}: {a.cpu_percent} % of one core; payloads {v04.name} "
              f"(with Datadog-Send-Real-Http-Status), {v05.name} (without)")

        # 1. Capacity.
        conns_for = lambda r: max(8, min(256, int(r * a.latency_budget)))
        rate = 20.0
        while True:
            b0 = traces(api)
            h = hey_result(hey(apm, v04, rate, conns_for(rate), 5))
            b1 = settled(api, b0["requests"] + h["total"])
            refused = b1["requests_refused_answered_429"] - b0["requests_refused_answered_429"]
            achieved = h["total"] / h["secs"]
            print(f"ramp: offered {rate:7.0f}/s, achieved {achieved:7.0f}/s: {h['total']} sent, {refused} refused")
            if refused * 50 > h["total"] or achieved < 0.5 * rate or rate > 50_000:
                break
            rate *= 1.6
        b0 = traces(api)
        s = Sampler(agent.pid, api, "capacity", t0, health=False); s.start()
        h = hey_result(hey(apm, v04, rate * 1.5, conns_for(rate * 1.5), 10))
        s.stop.set(); s.join()
        b1 = settled(api, b0["requests"] + h["total"])
        capacity = (b1["requests_queued"] - b0["requests_queued"]) / h["secs"]
        steady = statistics.median(r[2] for r in s.rows)
        print(f"capacity: {capacity:.0f} payloads/s accepted while {rate * 1.5:.0f}/s were offered "
              f"({capacity * v04.spans:.0f} spans/s); steady-state RSS {steady:.0f} KiB")

        # 2. factor x capacity.
        offered = a.factor * capacity
        conns = conns_for(offered / 2)
        before = traces(api)
        s2 = Sampler(agent.pid, api, "overload", t0); s2.start()
        ha, hb = hey(apm, v04, offered / 2, conns, a.seconds), hey(apm, v05, offered / 2, conns, a.seconds)
        ra, rb = hey_result(ha), hey_result(hb)
        s2.stop.set(); s2.join()
        after = settled(api, before["requests"] + ra["total"] + rb["total"])
        d = {k: after[k] - before[k] for k in after if isinstance(after[k], int) and not isinstance(after[k], bool)}
        with open(a.csv, "w") as f:
            f.write("t_s,phase,rss_kib,health_ms\n")
            for r in s.rows + s2.rows:
                f.write(f"{r[0]:.2f},{r[1]},{r[2]},{r[3] if r[3] == '' else f'{r[3]:.1f}'}\n")
        achieved = (ra["total"] + rb["total"]) / max(ra["secs"], rb["secs"])
        peak = max(r[2] for r in s2.rows)
        health = [r[3] for r in s2.rows]
        refused = d["requests_refused_queue_full"] + d["requests_refused_memory"]
        acc04 = ra["codes"].get(200, 0)
        acc05 = d["requests_queued"] - acc04
        accepted = d["requests_queued"] / ra["secs"]
        waits_none = a.decoder_timeout.strip() in ("0", "0s", "0ms")
        checks = [
            ("/health answered ok every 0.5 s", not s2.failures, "; ".join(s2.failures[:3])),
            # With a decoder timeout the closed-loop hey slows to what the intake takes
            # (requests wait instead of being refused): what must hold is the goodput.
            # Without one, refusals are immediate and hey must get well past saturation.
            ("load sent >= 2 x capacity (hey is closed-loop)", achieved >= 2 * capacity, f"{achieved:.0f}/s sent of {offered:.0f}/s offered")
            if waits_none else
            ("goodput held: accepted under overload >= 0.7 x capacity", accepted >= 0.7 * capacity,
             f"{accepted:.0f}/s accepted, capacity {capacity:.0f}/s; {achieved:.0f}/s sent of {offered:.0f}/s offered"),
            ("RSS peak <= 2 x steady", peak <= 2 * steady, f"{peak} KiB vs {steady:.0f} KiB"),
            ("hey: every request answered", ra["errors"] + rb["errors"] == 0, f"{ra['errors']} + {rb['errors']} errors"),
            ("agent requests == hey sent", d["requests"] == ra["total"] + rb["total"], f"{d['requests']} vs {ra['total'] + rb['total']}"),
            ("requests == queued + refused (+0 rejected)", d["requests"] == d["requests_queued"] + refused and d["requests_rejected"] == 0,
             f"{d['requests']} = {d['requests_queued']} + {refused} + {d['requests_rejected']}"),
            ("hey 429s == refusals answered 429 (header)", ra["codes"].get(429, 0) == d["requests_refused_answered_429"],
             f"{ra['codes'].get(429, 0)} vs {d['requests_refused_answered_429']}"),
            ("no 429 without the header", rb["codes"].get(429, 0) == 0, str(rb["codes"])),
            ("hey 200s == queued + refusals answered 200",
             ra["codes"].get(200, 0) + rb["codes"].get(200, 0) == d["requests_queued"] + d["requests_refused_answered_200"], ""),
            ("traces received == accepted x traces per payload", d["traces_received"] == acc04 * v04.traces + acc05 * v05.traces, ""),
            ("spans received == accepted x spans per payload", d["spans_received"] == acc04 * v04.spans + acc05 * v05.spans, ""),
            ("traces received == kept + sampled out + dropped",
             d["traces_received"] == d["traces_kept"] + d["traces_sampled_out"] + d["traces_dropped"], ""),
            ("spans received == kept + sampled out + dropped",
             d["spans_received"] == d["spans_kept"] + d["spans_sampled_out"] + d["spans_dropped"], ""),
            ("traces offered == received + refused",
             ra["total"] * v04.traces + rb["total"] * v05.traces == d["traces_received"] + d["traces_refused"], ""),
        ]
        print(f"\noverload: {a.factor:.0f} x {capacity:.0f} = {offered:.0f} payloads/s offered for {a.seconds} s over "
              f"{conns}+{conns} connections; achieved {achieved:.0f}/s ({achieved / capacity:.1f} x capacity)")
        print(f"  hey {v04.name} (header): {ra['codes']}, errors {ra['errors']}; hey {v05.name} (no header): {rb['codes']}, errors {rb['errors']}")
        print(f"  agent: {d['requests']} requests = {d['requests_queued']} queued + {refused} refused "
              f"({d['requests_refused_queue_full']} queue full, {d['requests_refused_memory']} memory budget; "
              f"answered 429: {d['requests_refused_answered_429']}, 200: {d['requests_refused_answered_200']}) + {d['requests_rejected']} rejected")
        print(f"  accepted {accepted:.0f} payloads/s under overload (apm.decoder_timeout {a.decoder_timeout}; "
              f"{d.get('requests_waited_for_budget', 0)} requests waited for the budget and got it)")
        print(f"  traces: offered {ra['total'] * v04.traces + rb['total'] * v05.traces} = received {d['traces_received']} "
              f"(kept {d['traces_kept']} + sampled out {d['traces_sampled_out']} + dropped {d['traces_dropped']}) + refused {d['traces_refused']}")
        print(f"  spans: received {d['spans_received']} = kept {d['spans_kept']} + sampled out {d['spans_sampled_out']} + dropped {d['spans_dropped']}")
        print(f"  RSS: steady {steady:.0f} KiB, peak {peak} KiB ({peak / steady:.2f} x); curve in {a.csv}")
        print(f"  /health: {len(health)} polls, slowest {max(health):.0f} ms, median {statistics.median(health):.0f} ms")
        ok = True
        for name, good, detail in checks:
            print(f"  [{'ok' if good else 'FAIL'}] {name} {detail}")
            ok &= bool(good)
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        agent = None
        return 0 if ok else 1
    finally:
        if agent is not None:
            agent.kill(); agent.wait()
        for _ in range(50):
            try:
                os.rmdir(group); break
            except OSError:
                time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
