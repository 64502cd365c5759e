//! The status page as a person uses it: `meshmon-agent run` fed with a Bookinfo-shaped
//! mesh (Datadog v0.4 JSON spans carrying Envoy's `guid:x-request-id`, Istio-shaped
//! `/metrics` with advancing counters, CRI pod logs: Envoy access logs with the same
//! request ids and an app's JSON lines with `dd.trace_id`), then
//!
//! 1. the API: `/api/v1/traces/{id}` lists the trace's log lines matched both ways, the
//!    service time series has points, the page and its assets are served with their
//!    types and a strict CSP;
//! 2. real headless Chromium (Debian's `/usr/bin/chromium`, driven by `playwright-core`
//!    from `tests/ui/node_modules`, installed by `scripts/setup.d/ui.sh`) runs
//!    `tests/ui/status_page.mjs` against the page; screenshots go to
//!    `target/ui-screenshots/`.
//!
//! Without chromium, node or playwright-core the browser part is skipped with a message;
//! under `MESHMON_REQUIRE_CORPUS=1` it fails.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_meshmon-agent");

fn require() -> bool {
    std::env::var("MESHMON_REQUIRE_CORPUS").is_ok_and(|v| v == "1")
}

fn http(addr: &str, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = resp[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(p) = body[i..].windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(std::str::from_utf8(&body[i..i + p]).unwrap().trim(), 16)
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&body[i + p + 2..i + p + 2 + n]);
            i += p + 2 + n + 2;
        }
        body = out;
    }
    (status, head, body)
}

fn get_json(addr: &str, path: &str) -> Value {
    let (code, _, body) = http(addr, "GET", path, "text/plain", b"");
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn wait_for_opt<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("meshmon-ui-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn rfc3339(ns: i64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A small seeded generator (xorshift) so a run is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn ms(&mut self, lo: u64, hi: u64) -> i64 {
        ((lo + self.next() % (hi - lo + 1)) * 1_000_000) as i64
    }
}

/// Istio-shaped sidecar metrics for the mesh's calls; counters advance with `n`.
fn istio_metrics(n: u64) -> String {
    let mut out = String::from("# TYPE istio_requests_total counter\n");
    for (src, dst, code, per) in [
        ("istio-ingressgateway", "productpage", "200", 10),
        ("productpage", "details", "200", 10),
        ("productpage", "reviews", "200", 8),
        ("productpage", "reviews", "500", 2),
        ("reviews", "ratings", "200", 6),
    ] {
        out.push_str(&format!(
            "istio_requests_total{{reporter=\"destination\",source_workload=\"{src}\",source_workload_namespace=\"bookinfo\",destination_workload=\"{dst}\",destination_workload_namespace=\"bookinfo\",destination_service=\"{dst}.bookinfo.svc.cluster.local\",destination_service_name=\"{dst}\",destination_service_namespace=\"bookinfo\",request_protocol=\"http\",response_code=\"{code}\",response_flags=\"-\"}} {}\n",
            100 + per * n
        ));
    }
    out
}

fn serve_metrics() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let n = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let b = istio_metrics(n.fetch_add(1, Ordering::SeqCst));
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    addr
}

/// What the feeder sent, for the assertions.
#[derive(Default)]
struct Sent {
    /// (trace id, request id, error) of every request.
    requests: Vec<(u64, String, bool)>,
}

/// One Bookinfo request: ingress → productpage → details, reviews (→ ratings); every 4th
/// fails in reviews. Spans as Envoy's Datadog tracer sends them, one chunk per trace;
/// an Envoy access log line per hop with the request id; the failing reviews pod writes a
/// JSON error line with `dd.trace_id`.
fn one_request(rng: &mut Rng, i: u64, traces: &str, logs: &Path, sent: &Mutex<Sent>) {
    let tid = rng.next() >> 1;
    let rid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.next() as u32,
        rng.next() as u16,
        rng.next() & 0xfff,
        rng.next() & 0xfff,
        rng.next() & 0xffff_ffff_ffff
    );
    let error = i % 4 == 3;
    let t0 = now_ns() - 200_000_000;
    let ids: Vec<u64> = (0..5).map(|_| rng.next() >> 1).collect();
    let reviews_ms = if error {
        rng.ms(80, 140)
    } else {
        rng.ms(12, 30)
    };
    let span =
        |k: usize, parent: u64, service: &str, resource: &str, start: i64, dur: i64, err: bool| {
            json!({
                "trace_id": tid, "span_id": ids[k], "parent_id": parent,
                "name": "envoy.proxy", "service": service, "resource": resource, "type": "web",
                "start": start, "duration": dur, "error": i32::from(err),
                "meta": {
                    "guid:x-request-id": rid, "http.method": "GET",
                    "http.status_code": if err { "500" } else { "200" },
                    "component": "proxy",
                },
                "metrics": { "_sampling_priority_v1": 1 },
            })
        };
    let total = reviews_ms + rng.ms(15, 25);
    let mut spans = vec![
        span(
            0,
            0,
            "istio-ingressgateway",
            "GET /productpage",
            t0,
            total + 2_000_000,
            error,
        ),
        span(
            1,
            ids[0],
            "productpage",
            "GET /productpage",
            t0 + 1_000_000,
            total,
            error,
        ),
        span(
            2,
            ids[1],
            "details",
            "GET /details/0",
            t0 + 2_000_000,
            rng.ms(2, 6),
            false,
        ),
        span(
            3,
            ids[1],
            "reviews",
            "GET /reviews/0",
            t0 + 9_000_000,
            reviews_ms,
            error,
        ),
    ];
    if !error {
        spans.push(span(
            4,
            ids[3],
            "ratings",
            "GET /ratings/0",
            t0 + 10_000_000,
            rng.ms(1, 4),
            false,
        ));
    }
    let body = serde_json::to_vec(&json!([spans])).unwrap();
    if TcpStream::connect(traces).is_err() {
        return; // the agent is gone (the test is ending)
    }
    let (code, _, resp) = http(traces, "PUT", "/v0.4/traces", "application/json", &body);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&resp));
    let ts = rfc3339(t0);
    let code = if error { 500 } else { 200 };
    append(
        &logs.join("bookinfo_productpage-v1-6b746f74dc-9stvz_0a1b2c3d/istio-proxy/0.log"),
        &format!(
            "{ts} stdout F [{ts}] \"GET /reviews/0 HTTP/1.1\" {code} - via_upstream - \"-\" 0 {} {} {} \"-\" \"python-requests/2.31\" \"{rid}\" \"reviews:9080\" \"10.0.0.7:9080\" outbound|9080||reviews.bookinfo.svc.cluster.local 10.0.0.5:40000 10.96.0.10:9080 10.0.0.5:39999 - default\n",
            if error { 91 } else { 358 },
            reviews_ms / 1_000_000,
            reviews_ms / 1_000_000 - 1
        ),
    );
    if error {
        append(
            &logs.join("bookinfo_reviews-v3-7dbcdcbc56-x2x9k_0b6c6a3e/reviews/0.log"),
            &format!(
                "{ts} stderr F {}\n",
                json!({"level": "error", "message": format!("ratings call failed for product {}: connection reset", i % 7),
                       "dd.trace_id": tid.to_string(), "dd.span_id": ids[3].to_string(), "logger": "reviews.app"})
            ),
        );
    }
    sent.lock().unwrap().requests.push((tid, rid, error));
}

/// Where the page test lives and what it needs; `None` (with a message) when something is
/// missing and the test may skip.
fn browser_kit() -> Option<(PathBuf, PathBuf)> {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let chromium = std::env::var_os("MESHMON_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let pw = ui.join("node_modules/playwright-core/package.json");
    let missing: Vec<String> = [
        (!chromium.exists()).then(|| chromium.display().to_string()),
        (!node_ok).then(|| "node".to_owned()),
        (!pw.exists()).then(|| pw.display().to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some((ui, chromium));
    }
    let msg = format!("{} missing (run scripts/setup.d/ui.sh)", missing.join(", "));
    if require() {
        panic!("{msg} and MESHMON_REQUIRE_CORPUS=1");
    }
    eprintln!("SKIPPED the Chromium status-page test: {msg}");
    None
}

fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots")
}

/// Runs `status_page.mjs` against `api` with `expect`; panics with its output on failure.
fn run_page_script(ui: &Path, chromium: &Path, api: &str, expect: &Value, shots: &Path) -> String {
    let out = Command::new("node")
        .arg(ui.join("status_page.mjs"))
        .current_dir(ui)
        .env("MESHMON_UI_URL", format!("http://{api}"))
        .env("MESHMON_UI_SCREENSHOTS", shots)
        .env("MESHMON_UI_EXPECT", expect.to_string())
        .env("MESHMON_CHROMIUM", chromium)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "status page test failed:\n{text}");
    text
}

#[test]
fn status_page_and_trace_logs() {
    let dir = TempDir::new("page");
    let pods = dir.0.join("pods");
    for d in [
        "bookinfo_productpage-v1-6b746f74dc-9stvz_0a1b2c3d/istio-proxy",
        "bookinfo_reviews-v3-7dbcdcbc56-x2x9k_0b6c6a3e/reviews",
    ] {
        std::fs::create_dir_all(pods.join(d)).unwrap();
    }
    let target = serve_metrics();
    let cfg = dir.0.join("agent.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"
data_dir: {data}
api:
  listen: 127.0.0.1:0
env: ui
checks:
  - name: istio
    instances:
      - use_openmetrics: true
        istio_mesh_endpoint: http://{target}/metrics
        min_collection_interval: 1
apm:
  receiver_port: 0
  zipkin_port: 0
  stats_flush_interval: 1s
  trace_timeout: 1s
dogstatsd:
  port: 0
logs:
  enabled: true
  container_collect_all: true
  pod_logs_root: {pods}
  scan_interval: 1s
  read_interval: 200ms
"#,
            data = dir.0.join("data").display(),
            pods = pods.display()
        ),
    )
    .unwrap();
    let agent = crate::run::Agent::start(&cfg, &[]);
    let api = agent.api.clone();

    // The feeder: ~6 requests a second until the test ends.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let fed_at = Instant::now();
    let feeder = {
        let (stop, sent, traces, pods) = (
            stop.clone(),
            sent.clone(),
            agent.traces.clone().unwrap_or_default(),
            pods.clone(),
        );
        std::thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                one_request(&mut rng, i, &traces, &pods, &sent);
                i += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };

    // 1. The page and its assets: types, CSP, nothing inline.
    let (code, head, body) = http(&api, "GET", "/", "text/plain", b"");
    assert_eq!(code, 200);
    let head_l = head.to_ascii_lowercase();
    assert!(head_l.contains("content-type: text/html"), "{head}");
    assert!(
        head_l.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("/ui/app.js"));
    for (path, ty) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let (code, head, _) = http(&api, "GET", path, "text/plain", b"");
        assert_eq!(code, 200, "{path}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-type: {ty}")),
            "{head}"
        );
    }
    assert_eq!(
        http(&api, "GET", "/ui/nothing.js", "text/plain", b"").0,
        404
    );

    // 2. A failing request's trace lists its logs: the access log line by x-request-id
    //    and the app's JSON line by dd.trace_id.
    let mut last = String::new();
    let found = wait_for_opt(60, || {
        let failed: Vec<(u64, String)> = sent
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.2)
            .map(|r| (r.0, r.1.clone()))
            .collect();
        for (tid, rid) in failed.iter().rev().take(5) {
            let (code, _, body) = http(
                &api,
                "GET",
                &format!("/api/v1/traces/{tid}"),
                "text/plain",
                b"",
            );
            if code != 200 {
                continue;
            }
            let t: Value = serde_json::from_slice(&body).unwrap();
            let logs = t["logs"].as_array().cloned().unwrap_or_default();
            let by_rid = logs
                .iter()
                .any(|l| l["matched_by"] == "x-request-id" && l["key"] == rid.as_str());
            let by_tid = logs
                .iter()
                .any(|l| l["matched_by"] == "trace_id" && l["key"] == tid.to_string().as_str());
            if by_rid && by_tid {
                return Some((t, logs));
            }
            last = format!("trace {tid} / {rid}: {t}");
        }
        None
    });
    let Some((trace, logs)) = found else {
        let st = get_json(&api, "/api/v1/status");
        panic!(
            "no error trace with both kinds of log lines; last: {last}\ncomponents: {}\nagent: {}",
            st["components"],
            agent.stderr.lock().unwrap()
        );
    };
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(
        logs.iter()
            .any(|l| l["source"] == "envoy"
                && l["message"].as_str().unwrap().contains("GET /reviews/0")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l["service"] == "reviews" && l["status"] == "error"),
        "{logs:?}"
    );
    assert_eq!(trace["logs_truncated"], 0);
    // A trace no line names lists none.
    let ok_trace = get_json(&api, "/api/v1/traces?service=ratings&limit=1");
    let ok_id = ok_trace["traces"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = get_json(&api, &format!("/api/v1/traces/{ok_id}"));
    assert!(
        t["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["matched_by"] == "x-request-id"),
        "{t}"
    );

    // 3. The service time series: rates and percentiles with points; scraped Istio series.
    let ts = wait_for(60, "reviews time series with points", || {
        let v = get_json(&api, "/api/v1/services/reviews/timeseries");
        (v["rate"].as_array()?.len() >= 2
            && !v["p95_ms"].as_array()?.is_empty()
            && !v["metrics"].as_array()?.is_empty())
        .then_some(v)
    });
    assert!(
        ts["error_rate"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["v"].as_f64().unwrap() > 0.0),
        "{ts}"
    );
    assert!(
        ts["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["tags"][0] == "destination_service_name:reviews"),
        "{ts}"
    );
    // The RED table's rate is the rate sent (a flush covering two buckets divides by two).
    let mut rates: Vec<f64> = (0..6)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(500));
            let v = get_json(&api, "/api/v1/services");
            v["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["service"] == "reviews")
                .and_then(|s| s["rate"].as_f64())
                .unwrap_or(0.0)
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let sent_rate = sent.lock().unwrap().requests.len() as f64 / fed_at.elapsed().as_secs_f64();
    let median = rates[rates.len() / 2];
    assert!(
        median > 0.5 * sent_rate && median < 1.5 * sent_rate,
        "RED rate {rates:?} vs {sent_rate:.2} requests/s sent"
    );
    let m = http(&api, "GET", "/metrics", "text/plain", b"").2;
    let m = String::from_utf8_lossy(&m);
    let held = m
        .lines()
        .find_map(|l| l.strip_prefix("meshmon_store_correlated_logs "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(held >= 2.0, "correlation index size not published: {m}");

    // 4. The page in Chromium.
    if let Some((ui, chromium)) = browser_kit() {
        wait_for(60, "patterns and a healthy check", || {
            let p = get_json(&api, "/api/v1/patterns");
            let c = get_json(&api, "/api/v1/checks");
            (!p["patterns"].as_array()?.is_empty() && c["checks"][0]["status"] == "up")
                .then_some(())
        });
        let monitors = http(&api, "GET", "/api/v1/monitors", "text/plain", b"").0 == 200;
        let expect = json!({
            "services": ["istio-ingressgateway", "productpage", "details", "reviews", "ratings"],
            "edges": [["istio-ingressgateway", "productpage"], ["productpage", "details"],
                      ["productpage", "reviews"], ["reviews", "ratings"]],
            "chart_service": "reviews",
            "trace_service": "reviews",
            "trace_logs": true,
            "scraped_metrics": true,
            "monitors": if monitors { "listed" } else { "absent" },
            "alert": null,
        });
        let shots = screenshots_dir().join("fed");
        let out = run_page_script(&ui, &chromium, &api, &expect, &shots);
        eprintln!("{out}");
    }
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    let log = agent.stderr.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
}

/// The page against `meshmon-agent demo` (a short `--duration`, `MESHMON_UI_DEMO_DURATION`
/// to change it): the five services and their edges, reviews marked while its fault lasts
/// and a monitor in ALERT then OK (when the agent has monitors), a chart with points, a
/// trace's spans and logs, a pattern with its count; the demo then exits 0.
#[test]
fn status_page_on_the_demo() {
    let help = Command::new(BIN).args(["demo", "--help"]).output().unwrap();
    if !help.status.success() {
        eprintln!("SKIPPED: this build has no `meshmon-agent demo`");
        return;
    }
    let Some((ui, chromium)) = browser_kit() else {
        return;
    };
    let duration = std::env::var("MESHMON_UI_DEMO_DURATION").unwrap_or_else(|_| "120s".into());
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--duration",
            &duration,
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let text = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let text = text.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.trim_start().strip_prefix("status page  http://")
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(rest.trim_end_matches('/').to_owned());
                }
                let mut g = text.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
    }
    let errs = Arc::new(Mutex::new(String::new()));
    {
        let errs = errs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut g = errs.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
    }
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let api = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "the demo printed no status page URL: {}",
                text.lock().unwrap()
            )
        });
    let monitors = http(&api, "GET", "/api/v1/monitors", "text/plain", b"").0 == 200;
    let secs: f64 = duration.trim_end_matches('s').parse().unwrap_or(120.0);
    let expect = json!({
        "services": ["istio-ingressgateway.istio-system", "productpage.default", "details.default",
                     "reviews.default", "ratings.default"],
        "edges": [["istio-ingressgateway.istio-system", "productpage.default"],
                  ["productpage.default", "details.default"],
                  ["productpage.default", "reviews.default"],
                  ["reviews.default", "ratings.default"]],
        "chart_service": "reviews.default",
        "trace_service": "reviews.default",
        "trace_logs": true,
        "monitors": if monitors { "listed" } else { "absent" },
        "alert": if monitors {
            json!({ "service": "reviews.default", "monitor_recovers": true,
                    "timeout_s": secs * 2.0 / 3.0, "recover_timeout_s": secs })
        } else { Value::Null },
    });
    let shots = screenshots_dir().join("demo");
    let page = run_page_script(&ui, &chromium, &api, &expect, &shots);
    eprintln!("{page}");
    let deadline = Instant::now() + Duration::from_secs_f64(secs + 60.0);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not end: {}",
            text.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = text.lock().unwrap().clone();
    assert!(
        status.success(),
        "demo exit {status}\n{stdout}\n{}",
        errs.lock().unwrap()
    );
    assert!(stdout.contains("DEMO-FIGURES "), "{stdout}");
    if !monitors {
        eprintln!(
            "NOTE: this agent has no monitors API: the ALERT marking and the ALERT → OK monitor were not asserted"
        );
    }
}
