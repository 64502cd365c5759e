//! `meshmon-agent trace …` end to end through the binary.
#![cfg(feature = "trace")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn agent(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn sample_reproduces_the_tracer_decisions() {
    // Captured ddtrace decisions at agent rate 0.25: priority 1 for the first, 0 for the second.
    let (ok, out, _) = agent(&[
        "trace",
        "sample",
        "--rate",
        "0.25",
        "16244018239098617010",
        "9942679174530495056",
        "0x1",
    ]);
    assert!(ok);
    assert_eq!(
        out,
        "16244018239098617010 keep\n9942679174530495056 drop\n0x1 keep\n"
    );
    let (ok, _, err) = agent(&["trace", "sample", "--rate", "0.5", "nope"]);
    assert!(!ok);
    assert!(err.contains("invalid trace id"), "{err}");
}

#[test]
fn decode_summarises_and_lists_spans() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/trace-payloads/ddtrace-4.16.0-default-v05"
    ));
    if !dir.is_dir() {
        eprintln!(
            "trace-payloads corpus absent at {}: skipping",
            dir.display()
        );
        return;
    }
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("0004_v0.5_traces.json")).unwrap()).unwrap();
    let file = dir.join("0004_v0.5_traces.bin");
    let (ok, out, err) = agent(&["trace", "decode", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format"], "v05");
    assert_eq!(v["spans"], side["summary"]["span_count"]);
    assert_eq!(v["traces"], side["summary"]["trace_count"]);
    let errors = side["summary"]["traces"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t.as_array().unwrap())
        .filter(|s| s["error"] == 1)
        .count();
    assert_eq!(v["errors"], errors);
    let (ok, out, _) = agent(&[
        "trace",
        "decode",
        "--spans",
        "--format",
        "v05",
        file.to_str().unwrap(),
    ]);
    assert!(ok);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len() as u64,
        side["summary"]["span_count"].as_u64().unwrap()
    );
    assert!(
        lines
            .iter()
            .any(|s| s["trace_id_128"].as_str().unwrap().starts_with("6b02"))
    );
    // Wrong format: a clear error, exit code 2.
    let (ok, _, err) = agent(&[
        "trace",
        "decode",
        "--format",
        "zipkin",
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("invalid JSON at byte 0"), "{err}");
}
