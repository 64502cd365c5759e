//! The exports against real servers: the agent scrapes the Istio fixture (counters and
//! histograms advancing by 10 per scrape) and sends to
//!
//! - the Debian `prometheus`, started with `--web.enable-remote-write-receiver`
//!   (Prometheus ≥ 2.33), asserted through `/api/v1/query`: the series arrived with the
//!   store's tags as labels and the cumulative sum of the store's deltas as value, and
//!   `histogram_quantile` over the exported buckets gives a value in the right bucket;
//! - the Debian `victoria-metrics` (1.79.x), whose `/datadog/api/v1/series` receives the
//!   Datadog export through `DD_DD_URL`, asserted through `/api/v1/export`: the same
//!   series, tags and per-interval counts as the store;
//! - a server that answers 503 and one slower than the request timeout: collection goes
//!   on, each export's queue stays within its bound, drops and retries are counted, the
//!   agent stops promptly. (Connection refused is covered by the export's unit tests.)
//!
//! Both servers are installed by `scripts/setup.d/exports.sh` and started here on
//! loopback ports with their own data dirs; a missing one fails the test under
//! `MESHMON_REQUIRE_CORPUS=1` and is reported as skipped otherwise.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::run::{
    Agent, TempDir, advancing, corpus, get_json, http, serve, wait_for, write_config,
};

fn require() -> bool {
    std::env::var("MESHMON_REQUIRE_CORPUS").is_ok_and(|v| v == "1")
}

/// `name` on the PATH (or in /usr/bin, /usr/sbin), or `None` with a message; under
/// `MESHMON_REQUIRE_CORPUS=1` a missing program fails the test.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    for d in path.split(':').chain(["/usr/bin", "/usr/sbin"]) {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    assert!(
        !require(),
        "{name} is not installed (scripts/setup.d/exports.sh) and MESHMON_REQUIRE_CORPUS=1"
    );
    eprintln!("SKIPPED: {name} not installed (run scripts/setup.d/exports.sh)");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed on drop.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bin: &Path, args: &[String], addr: String, ready: &str, log: PathBuf) -> Server {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let mut s = Server { child, addr, log };
        wait_for(60, &format!("{} ready", bin.display()), || {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("{} exited {st}: {}", bin.display(), s.log_text());
            }
            std::net::TcpStream::connect(&s.addr).ok()?;
            (http(&s.addr, "GET", ready, &[], b"").0 == 200).then_some(())
        });
        s
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Prometheus label set the export's documented rule gives a store series.
fn expected_labels(name: &str, tags: &[String], host: &str) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in tags {
        match t.split_once(':') {
            Some((_, "")) => {}
            Some(("upper_bound", v)) => l.entry("le".into()).or_default().push(v.into()),
            Some((k, v)) => l
                .entry(k.replace(['.', '-', '/'], "_"))
                .or_default()
                .push(v.into()),
            None => l.entry(t.clone()).or_default().push("true".into()),
        }
    }
    let mut out: BTreeMap<String, String> = l
        .into_iter()
        .map(|(k, mut v)| {
            v.sort();
            (k, v.join(","))
        })
        .collect();
    out.entry("host".into()).or_insert_with(|| host.into());
    out.insert("__name__".into(), name.replace('.', "_"));
    out
}

fn selector(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn series(api: &str, name: &str, tag: &str) -> Vec<Value> {
    let v = get_json(api, &format!("/api/v1/series?name={name}&tag={tag}"));
    v["series"].as_array().cloned().unwrap_or_default()
}

fn tags_of(s: &Value) -> Vec<String> {
    s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn points(s: &Value) -> Vec<(f64, f64)> {
    s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["t"].as_f64().unwrap(), p["v"].as_f64().unwrap()))
        .collect()
}

fn prom_query(addr: &str, q: &str, time: Option<f64>) -> Vec<Value> {
    let mut path = format!("/api/v1/query?query={}", pct(q));
    if let Some(t) = time {
        path.push_str(&format!("&time={t:.3}"));
    }
    let (code, body) = http(addr, "GET", &path, &[], b"");
    assert_eq!(code, 200, "{q}: {}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn sample_value(r: &Value) -> f64 {
    r["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn remote_write_to_prometheus_and_datadog_series_to_victoria_metrics() {
    let Some(fixture) = corpus("istio-fixtures/1.5/istio-proxy.txt") else {
        return;
    };
    let Some(prometheus) = program("prometheus") else {
        return;
    };
    let Some(vm) = program("victoria-metrics") else {
        return;
    };
    let fixture = std::fs::read_to_string(fixture).unwrap();
    let target = serve(move |n| advancing(&fixture, n));
    let dir = TempDir::new("exports");

    let prom_addr = format!("127.0.0.1:{}", free_port());
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(&prom_cfg, "global:\n  scrape_interval: 1m\n").unwrap();
    let prom = Server::start(
        &prometheus,
        &[
            format!("--config.file={}", prom_cfg.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ),
            format!("--web.listen-address={prom_addr}"),
            "--web.enable-remote-write-receiver".into(),
        ],
        prom_addr.clone(),
        "/-/ready",
        dir.path().join("prometheus.log"),
    );
    let vm_addr = format!("127.0.0.1:{}", free_port());
    let vmsrv = Server::start(
        &vm,
        &[
            format!("-storageDataPath={}", dir.path().join("vm-data").display()),
            format!("-httpListenAddr={vm_addr}"),
            "-search.latencyOffset=0s".into(),
        ],
        vm_addr.clone(),
        "/health",
        dir.path().join("victoria-metrics.log"),
    );

    let cfg = write_config(
        dir.path(),
        &format!(
            r#"
data_dir: {data}
hostname: node-e2e
api:
  listen: 127.0.0.1:0
tags: ["team:mesh"]
checks:
  - name: istio
    instances:
      - use_openmetrics: true
        istio_mesh_endpoint: http://{target}/metrics
        min_collection_interval: 2
scrape:
  jitter: 0
apm:
  enabled: false
dogstatsd:
  port: 0
  flush_interval: 1s
exports:
  remote_write:
    queue:
      flush_interval: 500ms
  datadog:
    compression: deflate
    queue:
      flush_interval: 500ms
"#,
            data = dir.path().join("data").display(),
            target = target.addr,
        ),
    );
    let agent = Agent::start(
        &cfg,
        &[
            (
                "MESHMON_REMOTE_WRITE_URL",
                &format!("http://{prom_addr}/api/v1/write"),
            ),
            ("DD_DD_URL", &format!("http://{vm_addr}/datadog")),
            ("DD_API_KEY", "0123456789abcdef-secret"),
        ],
    );
    let api = agent.api.clone();

    // DogStatsD counts, flushed every second, go to both exports too.
    let st = get_json(&api, "/api/v1/status");
    let udp = st["listeners"]["dogstatsd"]
        .as_str()
        .unwrap()
        .trim_start_matches("udp://")
        .to_owned();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0.0;
    for i in 0..20 {
        sock.send_to(
            format!("e2e.checkout.hits:{i}|c|#svc:cart").as_bytes(),
            &udp,
        )
        .unwrap();
        sent += f64::from(i);
        std::thread::sleep(Duration::from_millis(100));
    }

    // Prometheus: one request-count series, its labels and its cumulative value at the
    // time of the store's last point (the sum of the store's deltas up to it).
    let name = "istio.mesh.request.count";
    let (labels, sum, n) = wait_for(90, "the count series in Prometheus", || {
        let s = series(&api, name, "response_code:200").into_iter().next()?;
        let pts = points(&s);
        if pts.len() < 3 {
            return None;
        }
        let labels = expected_labels(name, &tags_of(&s), "node-e2e");
        let (t_last, _) = *pts.last()?;
        let sum: f64 = pts.iter().map(|p| p.1).sum();
        let r = prom_query(&prom_addr, &selector(&labels), Some(t_last));
        let got = r.first()?;
        (sample_value(got) == sum).then(|| (got["metric"].clone(), sum, pts.len()))
    });
    // Each scrape adds 10 to every counter: the cumulative value is 10 per delta.
    assert_eq!(sum, 10.0 * n as f64, "{labels}");
    let want = {
        let s = series(&api, name, "response_code:200")
            .into_iter()
            .next()
            .unwrap();
        expected_labels(name, &tags_of(&s), "node-e2e")
    };
    let got: BTreeMap<String, String> = labels
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(got, want);
    for k in ["response_code", "destination_service_name", "team", "host"] {
        assert!(got.contains_key(k), "{k} missing from {got:?}");
    }

    // histogram_quantile over the exported buckets. Every bucket of the fixture grows
    // by 10 per scrape, so every new observation is in the lowest bucket (le 0.5): the
    // median lies in (0, 0.5].
    let hname = "istio_mesh_request_duration_milliseconds_bucket";
    let buckets = prom_query(&prom_addr, &format!("count by (le) ({hname})"), None);
    let les: Vec<&str> = buckets
        .iter()
        .filter_map(|b| b["metric"]["le"].as_str())
        .collect();
    assert!(les.contains(&"+Inf") && les.contains(&"0.5"), "{les:?}");
    let q = wait_for(60, "a histogram_quantile", || {
        let r = prom_query(
            &prom_addr,
            &format!("histogram_quantile(0.5, sum by (le) (rate({hname}[30s])))"),
            None,
        );
        let v = sample_value(r.first()?);
        v.is_finite().then_some(v)
    });
    assert!(q > 0.0 && q <= 0.5, "median {q}");
    eprintln!(
        "prometheus: {} = {sum} after {n} scrapes (cumulative); {} bucket bounds; median {q} ms",
        selector(&want),
        les.len()
    );

    // VictoriaMetrics: the same series through the Datadog intake, one point per
    // scrape with the store's per-interval count.
    let s = series(&api, name, "response_code:200")
        .into_iter()
        .next()
        .unwrap();
    let tags = tags_of(&s);
    let (vm_series, matched) = wait_for(90, "the count series in VictoriaMetrics", || {
        let store = points(&series(&api, name, "response_code:200")[0]);
        let path = format!(
            "/api/v1/export?match[]={}",
            pct(&format!("{{__name__=\"{name}\"}}"))
        );
        let (code, body) = http(&vm_addr, "GET", &path, &[], b"");
        assert_eq!(code, 200);
        let text = String::from_utf8(body).unwrap();
        // The series whose labels are the store series' tags (`k:v` → `k="v"`).
        let hit = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                let m = &v["metric"];
                tags.iter().all(|t| match t.split_once(':') {
                    Some((_, "")) | None => true,
                    Some((k, val)) => m[k].as_str() == Some(val),
                })
            })?;
        let ts: Vec<i64> = serde_json::from_value(hit["timestamps"].clone()).unwrap();
        let vs: Vec<f64> = serde_json::from_value(hit["values"].clone()).unwrap();
        let by_ts: BTreeMap<i64, f64> = ts.into_iter().zip(vs).collect();
        // Every store point older than 2 s is there, with the same value.
        let old: Vec<(f64, f64)> = store
            .iter()
            .copied()
            .filter(|(t, _)| *t < store.last().unwrap().0 - 2.0)
            .collect();
        if old.len() < 3 {
            return None;
        }
        let all = old
            .iter()
            .all(|(t, v)| by_ts.get(&((*t as i64) * 1000)) == Some(v));
        all.then(|| (hit.clone(), old.len()))
    });
    assert!(matched >= 3);
    eprintln!(
        "victoria-metrics: {name} {} matched the store on {matched} points",
        vm_series["metric"]
    );
    assert_eq!(vm_series["metric"]["host"], "node-e2e", "{vm_series}");
    assert_eq!(vm_series["metric"]["team"], "mesh", "{vm_series}");

    // The DogStatsD count: a cumulative counter in Prometheus, `count` points summing to
    // what was sent in VictoriaMetrics.
    let sel = "e2e_checkout_hits{svc=\"cart\",host=\"node-e2e\"}";
    wait_for(30, "the DogStatsD counter in Prometheus", || {
        let r = prom_query(&prom_addr, sel, None);
        (sample_value(r.first()?) == sent).then_some(())
    });
    wait_for(30, "the DogStatsD count in VictoriaMetrics", || {
        let path = format!(
            "/api/v1/export?match[]={}",
            pct("{__name__=\"e2e.checkout.hits\",svc=\"cart\"}")
        );
        let (_, body) = http(&vm_addr, "GET", &path, &[], b"");
        let v: Value =
            serde_json::from_slice(String::from_utf8(body).ok()?.lines().next()?.as_bytes())
                .ok()?;
        let vs: Vec<f64> = serde_json::from_value(v["values"].clone()).ok()?;
        (vs.iter().sum::<f64>() == sent).then_some(())
    });

    // /metrics and status: both exports sent, nothing dropped or failed; the key
    // never shows.
    let (_, m) = http(&api, "GET", "/metrics", &[], b"");
    let m = String::from_utf8(m).unwrap();
    for export in ["remote_write", "datadog"] {
        let sent = metric_value(&m, "meshmon_export_sent_metrics_total", export);
        assert!(sent > 0.0, "{export}: {m}");
        assert_eq!(
            metric_value(&m, "meshmon_export_dropped_metrics_total", export),
            0.0
        );
        assert_eq!(
            metric_value(&m, "meshmon_export_failed_metrics_total", export),
            0.0
        );
    }
    let status = get_json(&api, "/api/v1/status");
    let dd = &status["components"]["exports.datadog"];
    assert_eq!(dd["url"], format!("http://{vm_addr}/datadog/api/v1/series"));
    assert!(dd["sent_metrics"].as_u64().unwrap() > 0, "{dd}");
    let text = status.to_string();
    assert!(!text.contains("0123456789abcdef-secret"));
    let log = agent.stderr.lock().unwrap().clone();
    assert!(!log.contains("0123456789abcdef-secret"), "{log}");
    assert!(agent.stop().success());
    drop((prom, vmsrv));
}

/// The value of `name{export="<export>"}` in a Prometheus text exposition.
fn metric_value(text: &str, name: &str, export: &str) -> f64 {
    let prefix = format!("{name}{{export=\"{export}\"");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{prefix} not in /metrics:\n{text}"))
}

/// A loopback server answering every request 503 after `delay`; counts requests.
fn failing_server(delay: Duration) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let h = h.clone();
            std::thread::spawn(move || {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 65536];
                let _ = s.read(&mut buf);
                std::thread::sleep(delay);
                let _ = s.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
                );
            });
        }
    });
    (addr, hits)
}

#[test]
fn a_failing_export_never_blocks_collection() {
    let Some(fixture) = corpus("istio-fixtures/1.5/istio-proxy.txt") else {
        return;
    };
    let fixture = std::fs::read_to_string(fixture).unwrap();
    let target = serve(move |n| advancing(&fixture, n));
    // Slower than the request timeout: every attempt times out, then is retried.
    let (busy, hits) = failing_server(Duration::from_secs(2));
    // Answers 503 at once.
    let (unavailable, hits503) = failing_server(Duration::ZERO);
    let dir = TempDir::new("exports-fail");
    let queue = r#"
    queue:
      max_queued_metrics: 300
      max_batch_metrics: 50
      flush_interval: 200ms
      timeout: 1s
      max_retries: 2
      min_backoff: 500ms
      max_backoff: 1s"#;
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"
data_dir: {data}
api:
  listen: 127.0.0.1:0
checks:
  - name: istio
    instances:
      - use_openmetrics: true
        istio_mesh_endpoint: http://{target}/metrics
        min_collection_interval: 1
apm:
  enabled: false
dogstatsd:
  enabled: false
exports:
  remote_write:
    url: http://{unavailable}/api/v1/write{queue}
  datadog:
    enabled: true
    url: http://{busy}{queue}
"#,
            data = dir.path().join("data").display(),
            target = target.addr,
        ),
    );
    let agent = Agent::start(&cfg, &[]);
    let api = agent.api.clone();
    // Collection goes on at its pace while both exports fail.
    let m = wait_for(60, "drops on both exports", || {
        let (_, m) = http(&api, "GET", "/metrics", &[], b"");
        let m = String::from_utf8(m).unwrap();
        let ok = ["remote_write", "datadog"].iter().all(|e| {
            m.contains(&format!(
                "meshmon_export_dropped_metrics_total{{export=\"{e}\"}}"
            )) && metric_value(&m, "meshmon_export_dropped_metrics_total", e) > 0.0
                && metric_value(&m, "meshmon_export_retries_total", e) > 0.0
        });
        ok.then_some(m)
    });
    let checks = get_json(&api, "/api/v1/checks");
    let runs = checks["checks"][0]["runs"].as_u64().unwrap();
    let scraped = target.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(runs >= 3, "{checks}");
    for e in ["remote_write", "datadog"] {
        let q = metric_value(&m, "meshmon_export_queue_metrics", e);
        let cap = metric_value(&m, "meshmon_export_queue_capacity_metrics", e);
        assert_eq!(cap, 300.0);
        let policy = format!(
            "meshmon_export_retry_policy{{export=\"{e}\",max_retries=\"2\",min_backoff=\"500ms\",max_backoff=\"1s\"}} 1"
        );
        assert!(m.contains(&policy), "{policy} not in\n{m}");
        assert!(q <= cap, "{e}: queue {q} over its bound");
        assert_eq!(
            metric_value(&m, "meshmon_export_sent_metrics_total", e),
            0.0
        );
    }
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) > 0);
    std::thread::sleep(Duration::from_secs(3));
    // Still scraping, every second, with both exports failing.
    let later = target.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(later >= scraped + 2, "scrapes {scraped} -> {later}");
    let status = get_json(&api, "/api/v1/status");
    let dd = &status["components"]["exports.datadog"];
    assert!(
        dd["last_error"].as_str().unwrap().contains("timed out"),
        "{dd}"
    );
    assert_eq!(dd["retry"]["max_retries"], 2);
    assert_eq!(dd["max_queued_metrics"], 300);
    let rw = &status["components"]["exports.remote_write"];
    assert!(rw["last_error"].as_str().unwrap().contains("503"), "{rw}");
    assert!(hits503.load(std::sync::atomic::Ordering::SeqCst) > 0);
    // `meshmon-agent status` prints each export's queue, counters and last error.
    let out = Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(["status", "--addr", &api])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Export datadog: http://",
        "Export remote_write: http://",
        "/300 sent=0",
        "last error: HTTP 503",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(rw["dropped_metrics"].as_u64().unwrap() > 0, "{rw}");
    // And it stops promptly, failing exports and all.
    let t0 = std::time::Instant::now();
    assert!(agent.stop().success());
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}
