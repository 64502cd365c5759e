//! End-to-end tests of `meshmon-agent run`: the real binary, a config in a temporary
//! folder, HTTP targets serving the real Istio fixtures with advancing counters, the
//! captured trace payloads replayed over HTTP, CRI log files written and rotated while it
//! runs; assertions on what the API returns; `kill -9` and restart.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshmon-agent");

/// A temporary folder removed on drop (also when a test panics).
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("meshmon-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A corpus file from `../shared/data`, or `None` with a message; under
/// `MESHMON_REQUIRE_CORPUS=1` a missing corpus fails the test.
pub(crate) fn corpus(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("MESHMON_REQUIRE_CORPUS").is_ok_and(|v| v == "1") {
        panic!(
            "corpus {} is missing and MESHMON_REQUIRE_CORPUS=1",
            p.display()
        );
    }
    eprintln!(
        "SKIPPED: corpus {} not found (set MESHMON_REQUIRE_CORPUS=1 to fail instead)",
        p.display()
    );
    None
}

/// A loopback HTTP server answering every GET with `body(n)` (n = request number).
pub(crate) struct Target {
    pub(crate) addr: String,
    pub(crate) hits: Arc<AtomicU64>,
}

pub(crate) fn serve(body: impl Fn(u64) -> String + Send + Sync + 'static) -> Target {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let n = h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let b = body(n);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    Target { addr, hits }
}

/// The fixture with every `istio_requests_total` and duration-histogram sample raised by
/// `10 * n`: counters that advance with each scrape, histograms that stay cumulative.
pub(crate) fn advancing(fixture: &str, n: u64) -> String {
    let mut out = String::with_capacity(fixture.len());
    for line in fixture.lines() {
        let bump = line.starts_with("istio_requests_total{")
            || line.starts_with("istio_request_duration_milliseconds_bucket{")
            || line.starts_with("istio_request_duration_milliseconds_count{");
        match (bump, line.rsplit_once(' ')) {
            (true, Some((head, v))) => match v.parse::<f64>() {
                Ok(x) => out.push_str(&format!("{head} {}\n", x + 10.0 * n as f64)),
                Err(_) => {
                    out.push_str(line);
                    out.push('\n');
                }
            },
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("content-length")
            && !k.eq_ignore_ascii_case("host")
            && !k.eq_ignore_ascii_case("connection")
        {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text_end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..text_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = resp[text_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = b[i..].windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[i..i + p]).unwrap().trim(), 16)
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + p + 2..i + p + 2 + n]);
        i += p + 2 + n + 2;
    }
    out
}

pub(crate) fn get_json(addr: &str, path: &str) -> Value {
    let (code, body) = http(addr, "GET", path, &[], b"");
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// The agent process; killed on drop.
pub(crate) struct Agent {
    child: Child,
    pub(crate) api: String,
    pub(crate) traces: Option<String>,
    pub(crate) stderr: Arc<std::sync::Mutex<String>>,
}

impl Agent {
    pub(crate) fn start(config: &Path, env: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new(BIN);
        cmd.arg("run").arg("--config").arg(config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.starts_with("meshmon-agent: API http://")
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(line.clone());
                }
                let mut g = l2.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("agent did not start: {}", log.lock().unwrap()));
        let api = line["meshmon-agent: API http://".len()..]
            .split(',')
            .next()
            .unwrap()
            .trim()
            .to_owned();
        let traces = line
            .split(", traces http://")
            .nth(1)
            .map(|s| s.split(',').next().unwrap().trim().to_owned());
        Agent {
            child,
            api,
            traces,
            stderr: log,
        }
    }

    /// The agent's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not stop: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns `Some`, at most `secs`.
pub(crate) fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn cri(ts_sec: u64, msg: &str) -> String {
    format!(
        "2024-05-01T12:{:02}:{:02}.000000000Z stdout F {msg}\n",
        (ts_sec / 60) % 60,
        ts_sec % 60
    )
}

pub(crate) fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub(crate) fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("agent.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

fn replay(traces: &str, folder: &Path) -> usize {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    let mut n = 0;
    for side in entries {
        let meta: Value = serde_json::from_slice(&std::fs::read(&side).unwrap()).unwrap();
        let path = meta["path"].as_str().unwrap();
        if !path.contains("traces") && !path.contains("spans") {
            continue;
        }
        let body = std::fs::read(side.with_extension("bin")).unwrap();
        let headers: Vec<(String, String)> = meta["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect();
        let (code, resp) = http(
            traces,
            meta["method"].as_str().unwrap_or("POST"),
            path,
            &headers,
            &body,
        );
        assert!(
            code == 200 || code == 202,
            "{path}: {code} {}",
            String::from_utf8_lossy(&resp)
        );
        n += 1;
    }
    n
}

#[test]
fn scrape_traces_logs_end_to_end() {
    let Some(fixture) = corpus("istio-fixtures/1.5/istio-proxy.txt") else {
        return;
    };
    let Some(payloads) = corpus("trace-payloads/ddtrace-4.16.0-v04") else {
        return;
    };
    let fixture = std::fs::read_to_string(fixture).unwrap();
    let target = serve(move |n| advancing(&fixture, n));
    let dir = TempDir::new("e2e");
    let pods = dir.path().join("pods");
    let proxy_dir = pods.join("bookinfo_reviews-v3-7dbcdcbc56-x2x9k_0b6c6a3e/istio-proxy");
    let agent_dir = pods.join("datadog_datadog-agent-abcde_77c1/datadog-agent");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    std::fs::create_dir_all(&agent_dir).unwrap();
    let proxy_log = proxy_dir.join("0.log");
    for i in 0..20 {
        append(
            &proxy_log,
            &cri(
                i,
                &format!(
                    "upstream connect error to 10.0.0.{i}:9080 after {}ms",
                    10 + i
                ),
            ),
        );
    }
    append(
        &agent_dir.join("0.log"),
        &cri(0, "agent's own line, must be excluded"),
    );
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"
data_dir: {data}
api:
  listen: 127.0.0.1:0
tags: ["team:mesh"]
env: e2e
checks:
  - name: istio
    instances:
      - istio_mesh_endpoint: http://{target}/metrics
        min_collection_interval: 1
        tags: ["kube_service:reviews"]
        bogus_key: 1
apm:
  receiver_port: 0
  zipkin_port: 0
  stats_flush_interval: 1s
dogstatsd:
  port: 0
logs:
  enabled: true
  container_collect_all: true
  pod_logs_root: {pods}
  scan_interval: 1s
  read_interval: 200ms
"#,
            data = dir.path().join("data").display(),
            target = target.addr,
            pods = pods.display()
        ),
    );
    let agent = Agent::start(
        &cfg,
        &[(
            "DD_AC_EXCLUDE",
            "name:datadog-agent name:datadog-cluster-agent",
        )],
    );
    let api = agent.api.clone();
    assert_eq!(http(&api, "GET", "/health", &[], b"").0, 200);

    // Scrape: counters become deltas across two scrapes, with the Datadog name and tags.
    // Datadog's V1 mesh scraper sends a counter twice: a gauge of the raw value and a
    // `.total` monotonic count, which the agent turns into deltas.
    let series = wait_for(30, "request count deltas", || {
        let v = get_json(
            &api,
            "/api/v1/series?name=istio.mesh.request.count.total&tag=response_code:200",
        );
        let s = v["series"].as_array()?.first()?.clone();
        (s["points"].as_array()?.len() >= 2).then_some(s)
    });
    let tags: Vec<&str> = series["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "kube_service:reviews",
        "team:mesh",
        "env:e2e",
        "response_code:200",
    ] {
        assert!(tags.contains(&t), "{t} missing from {tags:?}");
    }
    // The seed's instance (no `use_openmetrics`) selects Datadog's legacy Istio 1.4 check,
    // an OpenMetrics V1 check, which tags no `endpoint:` (meshmon-prom's V1 oracle).
    assert!(!tags.iter().any(|t| t.starts_with("endpoint:")), "{tags:?}");
    assert_eq!(series["type"], "count");
    for p in series["points"].as_array().unwrap() {
        // Each scrape adds exactly 10 to every istio_requests_total series.
        assert_eq!(p["v"].as_f64().unwrap(), 10.0, "{series}");
    }
    let gauge = get_json(
        &api,
        "/api/v1/series?name=istio.mesh.request.count&tag=response_code:200",
    );
    assert_eq!(gauge["series"][0]["type"], "gauge", "{gauge}");
    // V1 buckets: `<name>.count` gauges tagged `upper_bound:` in V1's float text.
    let buckets = get_json(
        &api,
        "/api/v1/series?name=istio.mesh.request.duration.milliseconds.count&tag=upper_bound:*",
    );
    assert!(
        !buckets["series"].as_array().unwrap().is_empty(),
        "{buckets}"
    );
    let checks = get_json(&api, "/api/v1/checks");
    let c = &checks["checks"][0];
    assert_eq!(c["status"], "up", "{checks}");
    assert_eq!(c["unknown_keys"][0], "bogus_key");
    assert!(c["samples"].as_u64().unwrap() > 100);

    // Traces: replay the captured ddtrace payloads; RED per service and kept traces.
    let traces = agent.traces.clone().unwrap();
    let sent = replay(&traces, &payloads);
    assert!(sent >= 2);
    let svc = wait_for(30, "RED stats", || {
        let v = get_json(&api, "/api/v1/services");
        let s = v["services"]
            .as_array()?
            .iter()
            .find(|s| s["total_hits"].as_u64() > Some(0))?
            .clone();
        Some(s)
    });
    assert!(svc["p95_ms"].as_f64().unwrap() > 0.0, "{svc}");
    let hits = wait_for(10, "APM hits series", || {
        let v = get_json(&api, "/api/v1/series");
        v["names"]
            .as_array()?
            .iter()
            .find(|n| {
                let n = n["name"].as_str().unwrap_or("");
                n.starts_with("trace.") && n.ends_with(".hits")
            })
            .cloned()
    });
    assert!(hits["series"].as_u64().unwrap() >= 1);
    let list = wait_for(20, "a stored trace", || {
        let v = get_json(&api, "/api/v1/traces");
        (!v["traces"].as_array()?.is_empty()).then_some(v)
    });
    let id = list["traces"][0]["trace_id"].as_str().unwrap().to_owned();
    let one = get_json(&api, &format!("/api/v1/traces/{id}"));
    assert!(!one["spans"].as_array().unwrap().is_empty());
    assert_eq!(
        http(
            &api,
            "GET",
            "/api/v1/traces/ffffffffffffffffffffffffffffffff",
            &[],
            b""
        )
        .0,
        404
    );

    // Logs: one pattern for the twenty proxy lines, the excluded container absent.
    let pats = wait_for(20, "log patterns", || {
        let v = get_json(&api, "/api/v1/patterns?service=reviews-v3");
        let p = v["patterns"].as_array()?.first()?.clone();
        (p["count"].as_u64() == Some(20)).then_some(v)
    });
    assert_eq!(pats["patterns"].as_array().unwrap().len(), 1, "{pats}");
    let p = &pats["patterns"][0];
    assert_eq!(p["source"], "envoy");
    let re = regex_lite(p["regex"].as_str().unwrap());
    assert!(re, "{p}");
    let all = get_json(&api, "/api/v1/patterns");
    assert!(
        !all.to_string().contains("must be excluded"),
        "excluded container tailed: {all}"
    );
    // Rotation by rename while running: the new file is read from its start.
    std::fs::rename(&proxy_log, proxy_dir.join("0.log.20240501-120000")).unwrap();
    for i in 0..5 {
        append(
            &proxy_log,
            &cri(
                30 + i,
                &format!("upstream connect error to 10.0.1.{i}:9080 after {i}ms"),
            ),
        );
    }
    wait_for(20, "rotated lines", || {
        let v = get_json(&api, "/api/v1/patterns?service=reviews-v3");
        (v["patterns"][0]["count"].as_u64() == Some(25)).then_some(())
    });
    // Copy-truncate (logrotate's copytruncate): the file shrinks in place and is read
    // again from its start; a CRI partial line (`P`) is joined with its end (`F`).
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&proxy_log)
        .unwrap();
    append(
        &proxy_log,
        &cri(40, "upstream connect error to 10.0.2.1:9080 after 3ms"),
    );
    append(
        &proxy_log,
        "2024-05-01T12:00:41.000000000Z stdout P upstream connect error to 10.0.2.2:9080 \n2024-05-01T12:00:41.000000000Z stdout F after 4ms\n",
    );
    wait_for(20, "lines after copy-truncate", || {
        let v = get_json(&api, "/api/v1/patterns?service=reviews-v3");
        (v["patterns"][0]["count"].as_u64() == Some(27)).then_some(())
    });
    // The component is published after the cycle's state is saved: wait for it.
    let logs = wait_for(10, "the truncation counted", || {
        let l = get_json(&api, "/api/v1/status")["components"]["logs"]["counters"].clone();
        (l["files_truncated"].as_u64() >= Some(1)).then_some(l)
    });
    assert!(logs["files_truncated"].as_u64() >= Some(1), "{logs}");
    assert!(logs["files_rotated"].as_u64() >= Some(1), "{logs}");

    // /metrics is Prometheus text with the agent's own counters.
    let (code, m) = http(&api, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    let m = String::from_utf8(m).unwrap();
    for name in [
        "meshmon_check_up{",
        "meshmon_spans_received_total ",
        "meshmon_logs_lines_total ",
        "meshmon_store_series ",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics:\n{m}");
    }
    // Status: the CLI reads the API.
    let out = Command::new(BIN)
        .args(["status", "--addr", &api])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Checks: 1 (1 up, 0 down)"), "{text}");
    assert!(text.contains("APM: spans received="), "{text}");
    // Cross-site and state-changing requests are refused.
    assert_eq!(
        http(
            &api,
            "GET",
            "/api/v1/status",
            &[("Sec-Fetch-Site".into(), "cross-site".into())],
            b""
        )
        .0,
        403
    );
    assert_eq!(http(&api, "POST", "/api/v1/status", &[], b"x").0, 405);
    assert!(target.hits.load(Ordering::SeqCst) >= 2);
    let st = agent.stop();
    assert!(st.success(), "exit status {st}");
}

/// The pattern regex compiles and is anchored (checked without a regex dependency: the
/// agent's own test of matching lives in meshmon-logs).
fn regex_lite(re: &str) -> bool {
    re.starts_with('^') && re.ends_with('$')
}

#[test]
fn kill9_and_restart_lose_no_log_line() {
    let dir = TempDir::new("kill9");
    let pods = dir.path().join("pods");
    let cdir = pods.join("shop_cart-5d8f7c9b6d-q2w3e_9f1a/cart");
    std::fs::create_dir_all(&cdir).unwrap();
    let log = cdir.join("0.log");
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\nlogs:\n  enabled: true\n  container_collect_all: true\n  pod_logs_root: {}\n  scan_interval: 1s\n  read_interval: 100ms\n",
            dir.path().join("data").display(),
            pods.display()
        ),
    );
    let count = |api: &str| -> u64 {
        let v = get_json(api, "/api/v1/patterns?service=cart");
        v["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["count"].as_u64().unwrap())
            .sum()
    };
    let mut written = 0u64;
    let mut agent = Agent::start(&cfg, &[]);
    let mut restarts = 0;
    for round in 0..5u64 {
        for _ in 0..40 {
            append(
                &log,
                &cri(
                    written % 3600,
                    &format!(
                        "order {written} placed by user {} total {}.50",
                        written % 7,
                        written
                    ),
                ),
            );
            written += 1;
            if written.is_multiple_of(10) {
                std::thread::sleep(Duration::from_millis(30));
            }
        }
        // kill -9 at an arbitrary point, then restart: patterns are restored from the
        // last persisted set, positions from the last persisted offset.
        std::thread::sleep(Duration::from_millis(50 * (round % 3)));
        agent.kill9();
        restarts += 1;
        agent = Agent::start(&cfg, &[]);
    }
    let api = agent.api.clone();
    // Every line is counted at least once; duplicates at most one read batch per kill.
    let seen = wait_for(30, "all lines", || {
        let c = count(&api);
        (c >= written).then_some(c)
    });
    assert!(
        seen >= written,
        "lost lines: wrote {written}, counted {seen}"
    );
    // Pattern counts are saved before positions: a kill between the two re-reads at
    // most the batch of that read cycle (here at most the 40 lines of a round).
    assert!(
        seen - written <= 40 * restarts,
        "counted {seen} for {written} lines after {restarts} kills"
    );
    let st = agent.stop();
    assert!(st.success());
}

#[test]
fn config_errors_name_line_and_column() {
    let dir = TempDir::new("cfgerr");
    let cfg = write_config(
        dir.path(),
        "api:\n  listen: 127.0.0.1:0\nlogs:\n  enabled: true\n  pod_log_root: /x\n",
    );
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5:3: logs.pod_log_root: unknown field",
            cfg.display()
        )),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "run must refuse a bad config");
    let good = write_config(dir.path(), "apm:\n  receiver_port: 18126\n");
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["config", "show", "--default"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen: 127.0.0.1:5002"));
}

#[test]
fn seed_daemonset_environment_starts_the_agent() {
    let dir = TempDir::new("seedenv");
    let data = dir.path().join("data");
    let env: Vec<(&str, &str)> = vec![
        ("DD_API_KEY", "0123456789abcdef0123456789abcdef"),
        ("DD_COLLECT_KUBERNETES_EVENTS", "true"),
        ("KUBERNETES", "true"),
        ("DD_KUBERNETES_KUBELET_HOST", "127.0.0.1"),
        ("DD_CLUSTER_AGENT_ENABLED", "true"),
        (
            "DD_CLUSTER_AGENT_AUTH_TOKEN",
            "0123456789012345678901234567890123",
        ),
        ("DD_TAGS", "env:istio-demo"),
        ("DD_APM_ENABLED", "true"),
        ("DD_APM_NON_LOCAL_TRAFFIC", "false"),
        ("DD_APM_ENV", "istio-demo"),
        ("DD_LOGS_ENABLED", "true"),
        ("DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL", "true"),
        (
            "DD_AC_EXCLUDE",
            "name:datadog-agent name:datadog-cluster-agent",
        ),
        ("DD_EXTRA_CONFIG_PROVIDERS", "endpointschecks clusterchecks"),
        // Placement for the test: free ports, a temporary data dir and pod-log root.
        ("DD_APM_RECEIVER_PORT", "0"),
        ("MESHMON_ZIPKIN_PORT", "0"),
        ("MESHMON_API_ADDR", "127.0.0.1:0"),
        ("DD_DOGSTATSD_PORT", "0"),
    ];
    let data_s = data.display().to_string();
    let pods_s = dir.path().join("pods").display().to_string();
    let mut env = env;
    env.push(("MESHMON_DATA_DIR", &data_s));
    env.push(("MESHMON_POD_LOGS_ROOT", &pods_s));
    let empty = write_config(dir.path(), "");
    let agent = Agent::start(&empty, &env);
    // The seed's node agent polls the cluster agent at its Kubernetes service name, which
    // does not resolve here: the providers report it and wait out their grace period.
    let st = wait_for(20, "the cluster agent providers' state", || {
        let st = get_json(&agent.api, "/api/v1/status");
        (st["components"]["cluster_agent.clusterchecks"]["state"] == "grace").then_some(st)
    });
    let c = &st["components"]["cluster_agent.endpointschecks"];
    assert_eq!(c["url"], "http://datadog-cluster-agent:5005", "{st}");
    assert!(c["last_error"].is_string(), "{st}");
    assert!(
        !st.to_string().contains("0123456789abcdef0123456789abcdef"),
        "API key leaked in status"
    );
    assert!(agent.stop().success());
}

fn manifest(port: u16, nodes: &[(&str, &str, &str)]) -> String {
    let addrs: String = nodes
        .iter()
        .map(|(ip, node, pod)| {
            format!(
                "  - ip: {ip}\n    nodeName: {node}\n    targetRef:\n      kind: Pod\n      name: {pod}\n      namespace: bookinfo\n      uid: uid-{pod}\n"
            )
        })
        .collect();
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: bookinfo
  annotations:
    ad.datadoghq.com/endpoints.check_names: '["istio"]'
    ad.datadoghq.com/endpoints.init_configs: '[{{}}]'
    ad.datadoghq.com/endpoints.instances: '[{{"istio_mesh_endpoint": "http://%%host%%:{port}/metrics", "min_collection_interval": 1}}]'
spec:
  ports:
  - name: http-monitoring
    port: {port}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: reviews
  namespace: bookinfo
subsets:
- addresses:
{addrs}  ports:
  - name: http-monitoring
    port: {port}
"#
    )
}

#[test]
fn manifest_provider_schedules_this_nodes_endpoints() {
    let Some(fixture) = corpus("istio-fixtures/1.5/istio-proxy.txt") else {
        return;
    };
    let fixture = Arc::new(std::fs::read_to_string(fixture).unwrap());
    // Two "pods" on two loopback addresses, same port, as two nodes' pods would be.
    let (a, b) = loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if let Ok(b) = TcpListener::bind(("127.0.0.2", port)) {
            break (a, b);
        }
    };
    let port = a.local_addr().unwrap().port();
    let hits_b = Arc::new(AtomicU64::new(0));
    for (l, hits) in [(a, Arc::new(AtomicU64::new(0))), (b, hits_b.clone())] {
        let f = fixture.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let n = hits.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.read(&mut buf);
                let body = advancing(&f, n);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }
    let dir = TempDir::new("ad");
    let mf = dir.path().join("manifests");
    std::fs::create_dir_all(&mf).unwrap();
    let m = mf.join("reviews.yaml");
    std::fs::write(
        &m,
        manifest(
            port,
            &[
                ("127.0.0.1", "node-a", "reviews-v1-a"),
                ("127.0.0.2", "node-b", "reviews-v1-b"),
            ],
        ),
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\nautodiscovery:\n  poll_interval: 1s\n",
            dir.path().join("data").display()
        ),
    );
    let mf_s = mf.display().to_string();
    let agent = Agent::start(
        &cfg,
        &[
            ("MESHMON_MANIFESTS", &mf_s),
            ("DD_KUBERNETES_NODE_NAME", "node-a"),
        ],
    );
    let api = agent.api.clone();
    let checks = wait_for(20, "the node's endpoints check", || {
        let v = get_json(&api, "/api/v1/checks");
        let c = v["checks"].as_array()?.clone();
        (c.len() == 1 && c[0]["status"] == "up").then_some(c)
    });
    assert_eq!(checks[0]["url"], format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(checks[0]["provider"], "manifests");
    let s = wait_for(20, "tagged series", || {
        let v = get_json(
            &api,
            "/api/v1/series?name=istio.mesh.request.count&tag=kube_service:reviews",
        );
        v["series"].as_array()?.first().cloned()
    });
    let tags = s["tags"].to_string();
    // The endpoints check tags as the Datadog Cluster Agent sets them (meshmon-core).
    for t in [
        "kube_namespace:bookinfo",
        "kube_endpoint_ip:127.0.0.1",
        "kube_service:reviews",
    ] {
        assert!(tags.contains(t), "{t} not in {tags}");
    }
    assert_eq!(
        hits_b.load(Ordering::SeqCst),
        0,
        "node-b's pod scraped by node-a's agent"
    );
    // The pod moves to node-b: node-a's agent unschedules its check on the next poll.
    std::fs::write(
        &m,
        manifest(port, &[("127.0.0.2", "node-b", "reviews-v1-b")]),
    )
    .unwrap();
    wait_for(20, "unscheduling", || {
        let v = get_json(&api, "/api/v1/checks");
        v["checks"].as_array()?.is_empty().then_some(())
    });
    // A broken manifest keeps what runs and is reported, never a crash.
    std::fs::write(&m, "kind: [unclosed").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let st = get_json(&api, "/api/v1/status");
    assert!(
        st["components"]["discovery"]["errors"]["manifests"].is_string(),
        "{st}"
    );
    assert_eq!(http(&api, "GET", "/health", &[], b"").0, 200);
    assert!(agent.stop().success());
}

#[test]
fn pod_logs_annotation_sets_service_and_source() {
    let dir = TempDir::new("adlogs");
    let pods = dir.path().join("pods");
    let cdir = pods.join("shop_cart-5d8f7c9b6d-q2w3e_9f1a/cart");
    std::fs::create_dir_all(&cdir).unwrap();
    let mf = dir.path().join("pod.yaml");
    std::fs::write(
        &mf,
        r#"apiVersion: v1
kind: Pod
metadata:
  name: cart-5d8f7c9b6d-q2w3e
  namespace: shop
  uid: 9f1a
  annotations:
    ad.datadoghq.com/cart.logs: '[{"source": "shopapp", "service": "cart-svc", "tags": ["team:shop"], "log_processing_rules": [{"type": "exclude_at_match", "name": "no_health", "pattern": "healthz"}, {"type": "mask_sequences", "name": "grow", "pattern": "GROW", "replace_placeholder": "PLACEHOLDER_300_X"}]}]'
spec:
  containers:
  - name: cart
    image: shop/cart:1.0
status:
  podIP: 127.0.0.1
  conditions:
  - type: Ready
    status: "True"
"#
            .replace("PLACEHOLDER_300_X", &"x".repeat(300)),
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\nautodiscovery:\n  manifests: [{}]\n  poll_interval: 1s\nlogs:\n  enabled: true\n  container_collect_all: true\n  pod_logs_root: {}\n  scan_interval: 1s\n  read_interval: 200ms\n  max_line_bytes: 256\n",
            dir.path().join("data").display(),
            mf.display(),
            pods.display()
        ),
    );
    let agent = Agent::start(&cfg, &[]);
    // The annotation is read by the first discovery poll; the file appears after it.
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..6 {
        append(
            &cdir.join("0.log"),
            &cri(i, &format!("cart {i} checked out in {}ms", 10 * i)),
        );
    }
    let p = wait_for(20, "annotated pattern", || {
        let v = get_json(&agent.api, "/api/v1/patterns?service=cart-svc");
        v["patterns"].as_array()?.first().cloned()
    });
    assert_eq!(p["source"], "shopapp");
    assert_eq!(p["count"], 6);
    // The annotation's processing rules: a health check excluded, and a mask that grows
    // its record past logs.max_line_bytes (256) cut there, each counted.
    append(&cdir.join("0.log"), &cri(6, "GET /healthz 200"));
    append(&cdir.join("0.log"), &cri(7, "GROW once"));
    let cut = wait_for(20, "masked_cut", || {
        let m = http(&agent.api, "GET", "/metrics", &[], b"").1;
        let m = String::from_utf8_lossy(&m).into_owned();
        let v = |name: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        };
        (v("meshmon_logs_masked_cut_total")? >= 1.0).then(|| {
            (
                v("meshmon_logs_excluded_total"),
                v("meshmon_logs_masked_cut_total"),
            )
        })
    });
    assert_eq!(cut, (Some(1.0), Some(1.0)));
    let v = get_json(&agent.api, "/api/v1/patterns?service=cart-svc");
    let grown = v["patterns"].as_array().unwrap().iter().find_map(|p| {
        let s = p["samples"][0].as_str()?;
        s.starts_with("xxx").then(|| s.to_owned())
    });
    let grown = grown.unwrap_or_else(|| panic!("no pattern of the masked record: {v}"));
    assert_eq!(grown.len(), 256, "{grown}");
    assert!(grown.bytes().all(|b| b == b'x'), "{grown}");
    // A logs-only config is no check: nothing is scheduled for it.
    assert!(
        get_json(&agent.api, "/api/v1/checks")["checks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(agent.stop().success());
}

#[test]
fn dogstatsd_datagrams_are_aggregated_into_the_store() {
    let dir = TempDir::new("dsd");
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  port: 0\n  flush_interval: 1s\n",
            dir.path().join("data").display()
        ),
    );
    let agent = Agent::start(&cfg, &[("DD_TAGS", "team:mesh")]);
    let st = get_json(&agent.api, "/api/v1/status");
    let udp = st["listeners"]["dogstatsd"]
        .as_str()
        .unwrap()
        .trim_start_matches("udp://")
        .to_owned();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Three counts (one sampled at 50 %), a gauge set twice, a histogram; one packet holds
    // several lines, and a bad line does not spoil the rest.
    sock.send_to(
        b"page.views:1|c|#service:web\npage.views:1|c|#service:web",
        &udp,
    )
    .unwrap();
    sock.send_to(
        b"page.views:1|c|@0.5|#service:web\nqueue.depth:7|g\nqueue.depth:5|g",
        &udp,
    )
    .unwrap();
    sock.send_to(b"req.latency:10|ms\nreq.latency:30|ms\nbroken:line|q", &udp)
        .unwrap();
    let s = wait_for(20, "page.views", || {
        let v = get_json(&agent.api, "/api/v1/series?name=page.views");
        v["series"].as_array()?.first().cloned()
    });
    let total: f64 = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["v"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 4.0, "1 + 1 + 1/0.5: {s}");
    let tags = s["tags"].to_string();
    assert!(
        tags.contains("service:web") && tags.contains("team:mesh"),
        "{tags}"
    );
    let g = get_json(&agent.api, "/api/v1/series?name=queue.depth");
    assert_eq!(g["series"][0]["points"][0]["v"].as_f64(), Some(5.0), "{g}");
    let h = get_json(&agent.api, "/api/v1/series?name=req.latency.max");
    assert_eq!(h["series"][0]["points"][0]["v"].as_f64(), Some(30.0), "{h}");
    let (_, m) = http(&agent.api, "GET", "/metrics", &[], b"");
    let m = String::from_utf8(m).unwrap();
    let errors = m
        .lines()
        .find(|l| l.starts_with("meshmon_dogstatsd_parse_errors_total"))
        .unwrap_or("");
    assert!(errors.ends_with(" 1"), "{errors}");
    assert!(agent.stop().success());
}
