//! `meshmon-agent prom parse|map|bench` end to end on the built binary.

#![cfg(feature = "prom")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
}

fn write(name: &str, body: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("meshmon-prom-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, body).unwrap();
    p
}

const BODY: &str = "# TYPE istio_requests_total counter\nistio_requests_total{response_code=\"200\"} 7\n# TYPE istio_request_duration_milliseconds histogram\nistio_request_duration_milliseconds_bucket{le=\"0.005\"} 1\nistio_request_duration_milliseconds_bucket{le=\"+Inf\"} 2\nistio_request_duration_milliseconds_sum 3\nistio_request_duration_milliseconds_count 2\n";

#[test]
fn parse_ok_and_error() {
    let good = write("good.prom", BODY);
    let out = agent().args(["prom", "parse"]).arg(&good).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "families=2 samples=5"
    );

    let bad = write("bad.prom", "a 1\nb{x=1} 2\n");
    let out = agent().args(["prom", "parse"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(
        msg.starts_with(&format!(
            "{}:2:5: expected '\"' opening a label value",
            bad.display()
        )),
        "{msg}"
    );

    // OpenMetrics is chosen by `# EOF` or explicitly; text mode would accept this
    let om = write("om.txt", "# TYPE a counter\na_total -1\n# EOF\n");
    let out = agent().args(["prom", "parse"]).arg(&om).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = agent()
        .args(["prom", "parse", "--text"])
        .arg(&om)
        .output()
        .unwrap();
    assert!(out.status.success());
    for p in [good, bad, om] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn map_prints_one_json_line_per_metric() {
    let f = write("map.prom", BODY);
    let out = agent()
        .args(["prom", "map", "--preset", "istio", "--tag", "env:test"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "istio.mesh.request.count",
            "istio.mesh.request.duration.milliseconds.bucket",
            "istio.mesh.request.duration.milliseconds.sum",
            "istio.mesh.request.duration.milliseconds.count"
        ]
    );
    assert_eq!(lines[0]["type"], "monotonic_count");
    assert_eq!(lines[0]["value"], 7.0);
    assert_eq!(
        lines[1]["tags"],
        serde_json::json!(["env:test", "upper_bound:0.005"])
    );

    let out = agent()
        .args(["prom", "map", "--preset", "istio", "--distributions"])
        .arg(&f)
        .output()
        .unwrap();
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "histogram_bucket");
    assert_eq!(last["upper_bound"], "inf");
    let _ = std::fs::remove_file(f);
}

#[test]
fn bench_reports_throughput() {
    let f = write("bench.prom", BODY);
    let out = agent()
        .args(["prom", "bench", "--seconds", "0.05"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bytes"], BODY.len());
    assert_eq!(v["samples"], 5);
    assert!(v["mb_per_s"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_file(f);
}
