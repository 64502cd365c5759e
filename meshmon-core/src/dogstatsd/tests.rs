#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;

fn metric(line: &str) -> Metric<'_> {
    match parse_message(line.as_bytes()) {
        Ok(Message::Metric(m)) => m,
        other => panic!("{line:?}: {other:?}"),
    }
}

fn error(line: &str) -> ParseError {
    parse_message(line.as_bytes()).unwrap_err()
}

// The examples of https://docs.datadoghq.com/developers/dogstatsd/datagram_shell/
#[test]
fn spec_metric_examples() {
    let m = metric("page.views:1|c");
    assert_eq!(
        (m.name, m.metric_type, m.sample_rate),
        ("page.views", MetricType::Count, 1.0)
    );
    assert_eq!(m.values().collect::<Vec<_>>(), [1.0]);
    assert!(m.tags.is_empty());

    let m = metric("fuel.level:0.5|g");
    assert_eq!(
        (m.metric_type, m.values().next()),
        (MetricType::Gauge, Some(0.5))
    );

    let m = metric("song.length:240|h|@0.5");
    assert_eq!((m.metric_type, m.sample_rate), (MetricType::Histogram, 0.5));

    let m = metric("users.uniques:1234|s");
    assert_eq!(m.metric_type, MetricType::Set);
    assert_eq!(m.raw_values().collect::<Vec<_>>(), ["1234"]);
    assert_eq!(m.values().count(), 0);

    let m = metric("users.online:1|c|#country:china");
    assert_eq!(m.tags.iter().collect::<Vec<_>>(), ["country:china"]);

    let m = metric("users.online:1|c|@0.5|#country:china");
    assert_eq!((m.sample_rate, m.tags.as_str()), (0.5, "country:china"));

    let m = metric("page.load:0.3|ms|#env:prod,canary");
    assert_eq!(m.metric_type, MetricType::Timer);
    assert_eq!(m.tags.iter().collect::<Vec<_>>(), ["env:prod", "canary"]);

    let m = metric("request.size:512|d|@0.1");
    assert_eq!(
        (m.metric_type, m.sample_rate),
        (MetricType::Distribution, 0.1)
    );
}

#[test]
fn protocol_v1_1_to_v1_3_fields() {
    // v1.1: several values.
    let m = metric("latency:1:2.5:-3e2|h|#a:b");
    assert_eq!(m.values().collect::<Vec<_>>(), [1.0, 2.5, -300.0]);
    assert_eq!(m.raw_values().count(), 3);
    // v1.2: container id; v1.3: timestamp; in any order, unknown fields skipped.
    let m = metric(
        "page.views:15|c|#env:dev|T1656581400|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d|e:it-false,cn-x|card:low",
    );
    assert_eq!(m.timestamp, Some(1_656_581_400));
    assert_eq!(
        m.container_id,
        Some("83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d")
    );
    assert_eq!(m.tags.as_str(), "env:dev");
}

#[test]
fn spec_event_examples() {
    let Ok(Message::Event(e)) =
        parse_message(b"_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning|#err_type:bad_file")
    else {
        panic!()
    };
    assert_eq!(e.title, "An exception occurred");
    assert_eq!(e.text, "Cannot parse CSV file from 10.0.0.17");
    assert_eq!(e.alert_type, AlertType::Warning);
    assert_eq!(e.tags.as_str(), "err_type:bad_file");

    let Ok(Message::Event(e)) = parse_message(
        b"_e{21,42}:An exception occurred|Cannot parse JSON request:\\n{\"foo\": \"bar\"}|p:low|#err_type:bad_request|d:1700000000|h:web-1|s:my_apps|k:agg|c:abc",
    ) else {
        panic!()
    };
    assert_eq!(e.text, "Cannot parse JSON request:\\n{\"foo\": \"bar\"}");
    assert_eq!(e.priority, Priority::Low);
    assert_eq!(e.timestamp, Some(1_700_000_000));
    assert_eq!(
        (
            e.hostname,
            e.source_type_name,
            e.aggregation_key,
            e.container_id
        ),
        (Some("web-1"), Some("my_apps"), Some("agg"), Some("abc"))
    );
    // A `|` inside the title or text is fine: the lengths delimit them.
    let Ok(Message::Event(e)) = parse_message(b"_e{3,3}:a|b|c|d") else {
        panic!()
    };
    assert_eq!((e.title, e.text), ("a|b", "c|d"));
    // Lengths are in bytes (UTF-8).
    let Ok(Message::Event(e)) = parse_message("_e{2,1}:é|x".as_bytes()) else {
        panic!()
    };
    assert_eq!(e.title, "é");
}

#[test]
fn spec_service_check_examples() {
    let Ok(Message::ServiceCheck(sc)) =
        parse_message(b"_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s")
    else {
        panic!()
    };
    assert_eq!(sc.name, "Redis connection");
    assert_eq!(sc.status, ServiceCheckStatus::Critical);
    assert_eq!(sc.tags.as_str(), "env:dev");
    assert_eq!(sc.message, Some("Redis connection timed out after 10s"));

    let Ok(Message::ServiceCheck(sc)) =
        parse_message(b"_sc|app.ok|0|d:1700000000|h:node-1|c:cid|m:a|b")
    else {
        panic!()
    };
    assert_eq!(sc.status, ServiceCheckStatus::Ok);
    assert_eq!(
        (sc.timestamp, sc.hostname, sc.container_id, sc.message),
        (
            Some(1_700_000_000),
            Some("node-1"),
            Some("cid"),
            Some("a|b")
        )
    );
}

#[test]
fn packets_hold_several_lines_and_keep_going_after_errors() {
    let packet = b"a:1|c\n\nb:x|g\n_sc|up|1\nc:2|ms\n";
    let out: Vec<_> = parse_packet(packet).collect();
    assert_eq!(out.len(), 4);
    assert!(matches!(
        out[0],
        Ok(Message::Metric(Metric { name: "a", .. }))
    ));
    // The offset counts from the packet start: `b:x|g` starts at byte 7, `x` is byte 9.
    assert_eq!(
        out[1],
        Err(ParseError {
            at: 9,
            expected: Expected::Value,
            found: Some(b'x')
        })
    );
    assert!(matches!(out[2], Ok(Message::ServiceCheck(_))));
    assert!(matches!(
        out[3],
        Ok(Message::Metric(Metric { name: "c", .. }))
    ));
}

#[test]
fn errors_name_the_offset_and_what_was_expected() {
    let cases: &[(&str, usize, Expected)] = &[
        ("", 0, Expected::MetricName),
        (":1|c", 0, Expected::MetricName),
        ("name", 4, Expected::Colon),
        ("name|c", 4, Expected::Colon),
        ("name:1", 6, Expected::Pipe),
        ("name:|c", 5, Expected::Value),
        ("name:1:|c", 7, Expected::Value),
        ("name:nan|g", 5, Expected::Value),
        ("name:inf|g", 5, Expected::Value),
        ("name:1|x", 7, Expected::MetricType),
        ("name:1|mx", 8, Expected::MetricType),
        ("name:1|cc", 8, Expected::MetricType),
        ("name:1|", 7, Expected::MetricType),
        ("name:1|c|@2", 10, Expected::SampleRate),
        ("name:1|c|@0", 10, Expected::SampleRate),
        ("name:1|c|@", 10, Expected::SampleRate),
        ("name:1|g|Tabc", 10, Expected::Timestamp),
        ("_e{a,1}:x|y", 3, Expected::EventHeader),
        ("_e{1,1}x|y", 7, Expected::EventHeader),
        ("_e{1,1:x|y", 10, Expected::EventHeader),
        ("_e{5,1}:x|y", 11, Expected::EventBody),
        ("_e{1,5}:x|y", 11, Expected::EventBody),
        ("_e{1,1}:x|yz", 11, Expected::EventBody),
        ("_e{0,1}:|y", 8, Expected::EventBody),
        ("_e{1,1}:x|y|p:high", 14, Expected::Priority),
        ("_e{1,1}:x|y|t:bad", 14, Expected::AlertType),
        ("_e{1,1}:x|y|d:x", 14, Expected::Timestamp),
        ("_sc||0", 4, Expected::ServiceCheckName),
        ("_sc|x|4", 6, Expected::Status),
        ("_sc|x", 5, Expected::Status),
        ("_sc|x|0|d:y", 10, Expected::Timestamp),
    ];
    for &(line, at, expected) in cases {
        let e = error(line);
        assert_eq!((e.at, e.expected), (at, expected), "{line:?}: {e}");
        assert_eq!(e.found, line.as_bytes().get(at).copied(), "{line:?}");
    }
    assert_eq!(
        parse_message(b"a\xffb:1|c").unwrap_err(),
        ParseError {
            at: 1,
            expected: Expected::Utf8,
            found: Some(0xff)
        }
    );
    assert_eq!(
        error("name:1").to_string(),
        "byte 6: expected '|', found the end of the line"
    );
}

/// A small seeded generator (xorshift), so the property test is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_and_mutations_never_panic() {
    let seeds: &[&[u8]] = &[
        b"a.b:1:2|h|@0.5|#x:y,z|c:cid|T17",
        b"_e{3,3}:abc|def|d:1|h:h|p:low|t:error|s:s|k:k|#t|c:c",
        b"_sc|name|2|d:1|h:h|#a,b|c:c|m:msg",
    ];
    let alphabet = b":|@#,_e{}sc0123456789.-Tmhdg\xc3\xa9\n\xff";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ok = 0;
    for i in 0..20_000 {
        let mut buf: Vec<u8> = if i % 2 == 0 {
            seeds[(rng.next() % 3) as usize].to_vec()
        } else {
            (0..rng.next() % 40).map(|_| rng.next() as u8).collect()
        };
        for _ in 0..rng.next() % 4 {
            if buf.is_empty() {
                break;
            }
            let at = (rng.next() as usize) % buf.len();
            match rng.next() % 3 {
                0 => buf[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => {
                    buf.remove(at);
                }
                _ => buf.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
            }
        }
        for msg in parse_packet(&buf) {
            match msg {
                Ok(Message::Metric(m)) => {
                    ok += 1;
                    // Every value the parser accepted is finite.
                    assert!(m.values().all(f64::is_finite), "{buf:?}");
                }
                Ok(_) => ok += 1,
                Err(e) => assert!(e.at <= buf.len(), "{buf:?}: {e}"),
            }
        }
    }
    // The mutations keep a good share valid, so the accepting paths were exercised too.
    assert!(ok > 1_000, "{ok}");
}
