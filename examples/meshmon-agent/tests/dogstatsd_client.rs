//! DogStatsD with the real client: the PyPI `datadog` package (`datadog.DogStatsd` and
//! `datadog.statsd`, installed by `scripts/setup.d/dogstatsd.sh` into
//! `target/dogstatsd-venv`) sends counters with tags and sample rates, gauges,
//! histograms, distributions, sets, timings, events and service checks over UDP and the
//! Unix socket to `meshmon-agent run`; `scripts/dogstatsd-e2e/send.py` prints what a
//! Datadog aggregator makes of them (its oracle follows the Agent's
//! `pkg/metrics/histogram.go`), and the test reads the agent's API to compare.
//!
//! Without the venv the test prints that it skipped; under `MESHMON_REQUIRE_CORPUS=1`
//! (the README's test command, CI) it fails.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's Python with `datadog` importable, or `None` (skip) / a panic (required).
fn client_python() -> Option<PathBuf> {
    let venv = std::env::var_os("MESHMON_DOGSTATSD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/dogstatsd-venv"));
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import datadog"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    if std::env::var("MESHMON_REQUIRE_CORPUS").is_ok_and(|v| v == "1") {
        panic!(
            "{} cannot import the PyPI `datadog` client and MESHMON_REQUIRE_CORPUS=1: run scripts/setup.d/dogstatsd.sh",
            py.display()
        );
    }
    eprintln!(
        "SKIPPED: the real DogStatsD client is not installed ({}); run scripts/setup.d/dogstatsd.sh (MESHMON_REQUIRE_CORPUS=1 fails instead)",
        py.display()
    );
    None
}

/// The agent process (`run::Agent`, killed on drop), with this test's HTTP helpers.
struct Agent(crate::run::Agent);

impl Agent {
    fn start(config: &Path, env: &[(&str, &str)]) -> Agent {
        Agent(crate::run::Agent::start(config, env))
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.0.api).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.0.api
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (code, body)
    }

    fn json(&self, path: &str) -> Value {
        let (code, body) = self.get(path);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// SIGTERM, then the exit status.
    fn stop(self) -> std::process::ExitStatus {
        self.0.stop()
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of an unlabelled sample of `/metrics`.
fn telemetry(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// Why `want` does not hold on the agent's series yet (`None`: it holds).
fn mismatch(agent: &Agent, want: &Value) -> Option<String> {
    let name = want["name"].as_str().unwrap();
    let mut path = format!("/api/v1/series?name={name}");
    let tags: Vec<&str> = want["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in &tags {
        path.push_str(&format!(
            "&tag={}",
            t.replace(':', "%3A").replace('/', "%2F")
        ));
    }
    let v = agent.json(&path);
    // The context's own series: exactly the client's tags plus the agent's global ones.
    let series: Vec<&Value> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            let have: Vec<&str> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .filter(|t| *t != "team:e2e")
                .collect();
            have.len() == tags.len()
        })
        .collect();
    let [s] = series.as_slice() else {
        return Some(format!("{} series match: {v}", series.len()));
    };
    if !s["tags"].to_string().contains("\"team:e2e\"") {
        return Some(format!("no global tag team:e2e: {s}"));
    }
    let points: Vec<f64> = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["v"].as_f64().unwrap())
        .collect();
    let value = want["value"].as_f64().unwrap();
    let got = match want["check"].as_str().unwrap() {
        "sum" => points.iter().sum(),
        "last" => *points.last()?,
        "max" => points.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "single" if points.len() == 1 => points[0],
        "single" => return Some(format!("{} points, one expected: {points:?}", points.len())),
        other => panic!("unknown check {other}"),
    };
    ((got - value).abs() > 1e-9 * value.abs().max(1.0)).then(|| {
        format!(
            "{} is {got}, expected {value} (points {points:?})",
            want["check"]
        )
    })
}

#[test]
fn the_datadog_python_client_over_udp_and_the_unix_socket() {
    let Some(py) = client_python() else { return };
    let dir = std::env::temp_dir().join(format!("meshmon-dsd-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("dsd.socket");
    let config = dir.join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  port: 0\n  flush_interval: 1s\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    // The socket comes from the environment, as in the DaemonSet.
    let agent = Agent::start(
        &config,
        &[
            ("DD_TAGS", "team:e2e"),
            ("DD_DOGSTATSD_SOCKET", socket.to_str().unwrap()),
        ],
    );
    let st = agent.json("/api/v1/status");
    let udp = st["listeners"]["dogstatsd"]
        .as_str()
        .unwrap()
        .trim_start_matches("udp://")
        .to_owned();
    assert_eq!(
        st["listeners"]["dogstatsd_socket"].as_str(),
        Some(format!("unixgram://{}", socket.display()).as_str()),
        "{st}"
    );
    let out = Command::new(&py)
        .arg(root().join("scripts/dogstatsd-e2e/send.py"))
        .args(["--udp", &udp, "--socket", socket.to_str().unwrap()])
        .args(["--seed", "7"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "send.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expect: Value = serde_json::from_slice(&out.stdout).unwrap();
    let wants = expect["series"].as_array().unwrap();
    assert!(wants.len() > 60, "{} expectations", wants.len());
    eprintln!(
        "datadog {} sent {} contexts; waiting for the agent's flushes",
        expect["datadog"],
        wants.len()
    );
    // Counts spread over flushes add up, so poll until every expectation holds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failures = loop {
        let failures: Vec<String> = wants
            .iter()
            .filter_map(|w| {
                mismatch(&agent, w).map(|m| format!("{} {}: {m}", w["name"], w["tags"]))
            })
            .collect();
        if failures.is_empty() || Instant::now() > deadline {
            break failures;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        failures.is_empty(),
        "{} of {} expectations fail:\n{}\nagent log:\n{}",
        failures.len(),
        wants.len(),
        failures.join("\n"),
        agent.0.stderr.lock().unwrap()
    );
    // Events and service checks are parsed and counted; nothing the client sent was
    // rejected, and the Unix socket carried its share. The counters are published at
    // each flush: wait for the one after the last datagram.
    let events = expect["events"].as_f64().unwrap();
    let checks = expect["service_checks"].as_f64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let (_, m) = agent.get("/metrics");
        let done = telemetry(&m, "meshmon_dogstatsd_events_total") >= events
            && telemetry(&m, "meshmon_dogstatsd_service_checks_total") >= checks;
        if done || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(telemetry(&m, "meshmon_dogstatsd_events_total"), events);
    assert_eq!(
        telemetry(&m, "meshmon_dogstatsd_service_checks_total"),
        checks
    );
    assert_eq!(telemetry(&m, "meshmon_dogstatsd_parse_errors_total"), 0.0);
    let uds = telemetry(&m, "meshmon_dogstatsd_uds_packets_total");
    let all = telemetry(&m, "meshmon_dogstatsd_packets_total");
    assert!(uds > 0.0 && uds < all, "uds {uds} of {all} packets");
    assert!(agent.stop().success());
    assert!(!socket.exists(), "the socket file is removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
