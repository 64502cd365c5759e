//! `meshmon-agent demo` as a user runs it: the real binary with a short `--duration`; it
//! must exit 0 and its final figures (the `DEMO-FIGURES {json}` line) must show the mesh
//! seen whole by the agent — five services and their edges, spans, log lines and scrape
//! targets —, the fault's new error log pattern appearing while the fault lasts, and
//! monitors on reviews (an anomaly monitor or the Watchdog, and a threshold monitor on its
//! error rate) going to ALERT during the fault and back to OK.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshmon-agent");

#[test]
fn demo_runs_the_mesh_and_the_agent_sees_it() {
    let out = Command::new(BIN)
        .args([
            "demo",
            "--duration",
            "90s",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("status page  http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("── t+"), "no live summary:\n{stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DEMO-FIGURES "))
        .unwrap_or_else(|| panic!("no figures line:\n{stdout}"));
    let f: Value = serde_json::from_str(line).unwrap();

    // The service map: Istio's tracer names services `<app>.<namespace>`.
    let services: Vec<&str> = f["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        [
            "details.default",
            "istio-ingressgateway.istio-system",
            "productpage.default",
            "ratings.default",
            "reviews.default"
        ],
        "{f}"
    );
    let edges: Vec<&str> = f["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for e in [
        "istio-ingressgateway.istio-system -> productpage.default",
        "productpage.default -> details.default",
        "productpage.default -> reviews.default",
        "reviews.default -> ratings.default",
    ] {
        assert!(edges.contains(&e), "{e} missing from {edges:?}");
    }
    // The three reviews versions are in the kept traces.
    assert_eq!(
        f["reviews_versions"],
        serde_json::json!(["v1", "v2", "v3"]),
        "{f}"
    );

    // Everything sent arrived: spans, lines, scrapes of every pod.
    let n = |k: &str| f[k].as_f64().unwrap_or_else(|| panic!("{k} in {f}"));
    assert!(n("requests") > 500.0, "{f}");
    assert!(n("spans_sent") > 0.0 && n("payloads_failed") == 0.0, "{f}");
    assert_eq!(n("spans_received"), n("spans_sent"), "{f}");
    assert!(n("lines_written") > 1000.0, "{f}");
    assert!(n("lines_read") >= 0.95 * n("lines_written"), "{f}");
    assert_eq!((n("targets"), n("targets_up")), (7.0, 7.0), "{f}");
    assert!(n("scrapes") >= 7.0 * 5.0, "{f}");

    // The fault's error pattern appeared while the fault lasted.
    let (fault_start, fault_end) = (
        f["fault"][0].as_f64().unwrap(),
        f["fault"][1].as_f64().unwrap(),
    );
    assert_eq!((fault_start, fault_end), (30.0, 60.0));
    let p = &f["error_pattern"];
    assert_eq!(p["service"], "reviews.default", "{f}");
    let seen = p["first_seen_s"].as_f64().unwrap();
    assert!(
        seen >= fault_start && seen <= fault_end,
        "pattern first seen at {seen}, fault {fault_start}..{fault_end}"
    );
    assert!(
        p["template"].as_str().unwrap().contains("OutOfMemoryError"),
        "{p}"
    );

    // Alerts: the monitor API is there, and monitors on reviews fired and recovered.
    assert_eq!(f["monitor_api"], true, "{f}");
    let alerts = f["alerts"].as_array().unwrap();
    let at = |m: &Value, k: &str| m[k].as_f64();
    // The threshold monitor on reviews' trace error rate: ALERT inside the fault, OK
    // once it is over, nothing before it.
    let rate = alerts
        .iter()
        .find(|m| m["type"] == "trace_error_rate" && m["service"] == "reviews.default")
        .unwrap_or_else(|| panic!("no reviews error-rate alert in {alerts:?}"));
    let (a, o) = (at(rate, "alert_at_s").unwrap(), at(rate, "ok_at_s"));
    assert!(a >= fault_start && a <= fault_end, "{rate}");
    assert!(o.is_some_and(|o| o >= fault_end), "{rate}");
    for m in alerts.iter().filter(|m| m["origin"] == "monitors") {
        assert!(
            at(m, "alert_at_s").unwrap() >= fault_start,
            "alert before the fault: {m}"
        );
    }
    // An anomaly monitor or a Watchdog finding on reviews fired during the fault and
    // recovered.
    let anomaly = alerts
        .iter()
        .find(|m| {
            (m["type"] == "anomaly" && m["name"].as_str().unwrap_or("").contains("reviews"))
                || (m["origin"] == "watchdog" && m["service"] == "reviews.default")
        })
        .unwrap_or_else(|| panic!("no anomaly or Watchdog alert on reviews in {alerts:?}"));
    let a = at(anomaly, "alert_at_s").unwrap();
    assert!(a >= fault_start && a <= fault_end, "{anomaly}");
    assert!(at(anomaly, "ok_at_s").is_some_and(|o| o > a), "{anomaly}");
    assert!(stdout.contains("alert     "), "{stdout}");
}

#[test]
fn demo_rejects_bad_options_with_a_clear_error() {
    for (args, needle) in [
        (&["--rps", "0"][..], "--rps must be in (0, 2000]"),
        (&["--duration", "2s"][..], "--duration must be at least 10s"),
        (
            &["--trace-sampling", "101"][..],
            "--trace-sampling is a percentage",
        ),
        (&["--listen", "nowhere"][..], "api.listen"),
    ] {
        let out = Command::new(BIN).arg("demo").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
