//! The failure classes of issue 15 as labelled, seeded data: each class mixes the
//! variants that used to split one event (or merge two), labelled with the event, and
//! the miner must group them exactly (GA 1.0 per class, on two seeds).

use meshmon_logs::eval::grouping_accuracy;
use meshmon_logs::pattern::{Miner, PatternId};

use crate::mesh::Rng;

/// `(class, event label, message)` for `n` messages of every class.
pub fn class_corpus(seed: u64, n: usize) -> Vec<(&'static str, String, String)> {
    let mut r = Rng::new(seed);
    let mut out = Vec::new();
    for _ in 0..n {
        // Optional parenthesised value: `812 bytes (0.79 KB) sent` beside `0 bytes sent`.
        let b = r.below(5000);
        let msg = if r.chance(50) {
            format!(
                "proxy close, {b} bytes ({}.{:02} KB) sent",
                b / 1024,
                r.below(100)
            )
        } else {
            format!("proxy close, {b} bytes sent")
        };
        out.push(("optional-paren", "close".to_owned(), msg));
        // Empty versus filled brackets.
        let host = if r.chance(50) {
            String::new()
        } else {
            (*r.pick(&["db.example", "cache.example", "api.example"])).to_owned()
        };
        out.push((
            "empty-brackets",
            "conn".to_owned(),
            format!(
                "connection from {} ({host}) at shard {}",
                r.ip(),
                r.below(9)
            ),
        ));
        // Durations in different shapes.
        let d = match r.below(5) {
            0 => format!("00:{:02}", r.below(60)),
            1 => "<1 sec".to_owned(),
            2 => format!("{}ms", r.below(999)),
            3 => format!("{}.{}s", r.below(60), r.below(10)),
            _ => format!("{}m{}s", r.below(60), r.below(60)),
        };
        out.push((
            "durations",
            "lifetime".to_owned(),
            format!("session ended, lifetime {d}"),
        ));
        // Embedded timestamps.
        let ts = match r.below(4) {
            0 => format!("2024-05-{:02}T12:{:02}:00Z", 1 + r.below(28), r.below(60)),
            1 => format!("2024-05-{:02} 12:{:02}:00", 1 + r.below(28), r.below(60)),
            2 => format!("Wed May {} 12:{:02}:00 2024", 1 + r.below(28), r.below(60)),
            _ => format!("{}", 1_714_564_800 + r.below(100_000)),
        };
        out.push((
            "timestamps",
            "lease".to_owned(),
            format!("lease renewed until {ts} for holder {}", r.hex(8)),
        ));
        // Variables glued to constants: host:port with an IP or a name.
        let hp = if r.chance(50) {
            format!("{}:443", r.ip())
        } else {
            format!(
                "{}:443",
                *r.pick(&["api.example.com", "login.example.org", "localhost"])
            )
        };
        out.push((
            "host-port",
            "dial".to_owned(),
            format!("dial {hp} failed: i/o timeout"),
        ));
        // key=value runs with empty, quoted and plain values.
        let user = *r.pick(&["", "alice", "\"bob smith\"", "carol"]);
        out.push((
            "key-value",
            "audit".to_owned(),
            format!(
                "audit user={user} action={} ok={}",
                r.pick(&["read", "write"]),
                r.pick(&["true", "false"])
            ),
        ));
        // Paths of varying depth.
        let depth = 1 + r.below(6);
        let path: String = (0..depth)
            .map(|i| format!("/d{i}x{}", r.below(9)))
            .collect();
        out.push((
            "paths",
            "open".to_owned(),
            format!("cannot open {path}/file.txt: permission denied"),
        ));
        // Low-cardinality variables.
        out.push((
            "low-cardinality",
            "session".to_owned(),
            format!(
                "session opened for user {} by (uid=0)",
                r.pick(&["alice", "bob", "carol"])
            ),
        ));
        // Constants with digits are part of the event: two events that differ only there.
        let tls = *r.pick(&["TLSv1.2", "TLSv1.3"]);
        out.push((
            "digit-constants",
            format!("handshake {tls}"),
            format!("handshake done with {} using {tls} on x86_64", r.ip()),
        ));
    }
    out
}

fn class_ga(seed: u64) -> Vec<(&'static str, f64, usize)> {
    let data = class_corpus(seed, 200);
    let mut classes: Vec<&str> = data.iter().map(|d| d.0).collect();
    classes.dedup();
    let mut seen = std::collections::HashSet::new();
    classes.retain(|c| seen.insert(*c));
    classes
        .into_iter()
        .map(|c| {
            // One miner per class: each class is judged on its own.
            let mut m = Miner::default();
            let rows: Vec<_> = data.iter().filter(|d| d.0 == c).collect();
            let ids: Vec<PatternId> = rows.iter().map(|d| m.add(&d.2)).collect();
            let ids: Vec<PatternId> = ids.into_iter().map(|i| m.resolve(i)).collect();
            let truth: Vec<&str> = rows.iter().map(|d| d.1.as_str()).collect();
            (c, grouping_accuracy(&truth, &ids), m.len())
        })
        .collect()
}

#[test]
fn failure_classes_group_exactly() {
    for seed in [1u64, 0x5eed_0015] {
        let rows = class_ga(seed);
        println!("failure classes, seed {seed:#x}");
        println!("| class | GA | patterns |");
        println!("|---|---|---|");
        for (c, ga, n) in &rows {
            println!("| {c} | {ga:.3} | {n} |");
        }
        for (c, ga, _) in &rows {
            if KNOWN_OPEN.contains(c) {
                continue;
            }
            assert_eq!(*ga, 1.0, "seed {seed:#x}: class {c} GA {ga:.3}");
        }
    }
}

/// Classes still open (reported in the table, not asserted).
const KNOWN_OPEN: &[&str] = &[];
