//! End-to-end: `meshmon-agent alert detect` on a generated CSV.
#![cfg(feature = "alert")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn detect_writes_one_row_per_input_and_a_plot() {
    let dir = std::env::temp_dir().join(format!("meshmon-alert-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..600 {
        let (h, m) = (i / 60, i % 60);
        let v = if i == 500 {
            900.0
        } else {
            100.0 + (i % 7) as f64
        };
        text.push_str(&format!("2024-01-01 {:02}:{:02}:00,{v}\n", h % 24, m));
    }
    // 600 minutes fit in one day.
    std::fs::write(&input, text).unwrap();
    let out = dir.join("out.csv");
    let svg = dir.join("plot.svg");
    let status = Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(["alert", "detect"])
        .arg(&input)
        .args([
            "--algorithm",
            "robust",
            "--bounds",
            "3",
            "--seasonality",
            "none",
            "--out",
        ])
        .arg(&out)
        .arg("--plot")
        .arg(&svg)
        .status()
        .unwrap();
    assert!(status.success());
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,value,anomaly_score,expected,lower,upper,state")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 600);
    let scores: Vec<f64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    let top = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(top, 500);
    assert_eq!(rows[500][0], "2024-01-01 08:20:00");
    // One spike is one anomalous point, not an incident: the default monitor (15
    // minutes, 100 %) stays OK throughout.
    assert!(
        rows.iter().all(|r| r[6] == "OK"),
        "{:?}",
        rows.iter().find(|r| r[6] != "OK")
    );
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg") && svg_text.contains("circle"));

    // An incident (minutes 400..440 at ×4) with a 5-minute trigger window at 80 % and a
    // 10-minute recovery window: ALERT from minute 403 (4 of the 5 points 399..=403) until the
    // recovery window after the incident is clean (the row at minute 449 is OK), and
    // the plot shades it.
    let mut text = String::from("timestamp,value\n");
    for i in 0..600 {
        let v = if (400..440).contains(&i) {
            400.0
        } else {
            100.0 + (i % 7) as f64
        };
        text.push_str(&format!("2024-01-01 {:02}:{:02}:00,{v}\n", i / 60, i % 60));
    }
    std::fs::write(&input, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(["alert", "detect"])
        .arg(&input)
        .args([
            "--algorithm",
            "basic",
            "--trigger-window",
            "5m",
            "--threshold",
            "80%",
        ])
        .args(["--recovery-window", "last_10m", "--out"])
        .arg(&out)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(&out).unwrap();
    let states: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_string())
        .collect();
    let first_alert = states.iter().position(|s| s == "ALERT");
    assert_eq!(first_alert, Some(403), "{:?}", &states[395..450]);
    let last_alert = states.iter().rposition(|s| s == "ALERT").unwrap();
    assert!(last_alert < 449 + 40, "ALERT until {last_alert}");
    assert!(states[last_alert + 1..].iter().all(|s| s == "OK"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 ALERT episodes"));
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg_text.contains("fill=\"#FFC8C8\""),
        "no shaded ALERT period"
    );

    // Options are validated by the crate, with the field named.
    let o = Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(["alert", "detect"])
        .arg(&input)
        .args(["--threshold", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("critical"));
    let o = Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(["alert", "detect"])
        .arg(&input)
        .args(["--trigger-window", "soon"])
        .output()
        .unwrap();
    assert!(!o.status.success());

    // Bad input gets a clear error, not a panic.
    std::fs::write(&input, "timestamp,value\nyesterday,1\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_meshmon-agent"))
        .args(["alert", "detect"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
