//! Parsers, processing rules and multi-line aggregation on lines in the formats a mesh
//! produces (lines written from the formats' documentation).

use meshmon_core::Timestamp;
use meshmon_logs::format::{
    CriJoiner, Format, FormatError, LineParser, detect, parse_cri, parse_envoy, parse_istio,
    parse_json, parse_rfc3339,
};
use meshmon_logs::multiline::{Continuation, MultiLine, MultiLineConfig};
use meshmon_logs::rules::{Processor, Rule, RuleError};
use meshmon_logs::{LogRecord, Status};

const ISTIO_ACCESS: &str = r#"[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"#;
const ENVOY_ACCESS: &str = r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;

#[test]
fn rfc3339() {
    assert_eq!(
        parse_rfc3339("1970-01-01T00:00:00Z"),
        Some(Timestamp::from_nanos(0))
    );
    assert_eq!(
        parse_rfc3339("2000-03-01T00:00:00Z").unwrap().as_secs(),
        951_868_800
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T12:00:00.123456789Z")
            .unwrap()
            .as_nanos()
            % 1_000_000_000,
        123_456_789
    );
    assert_eq!(
        parse_rfc3339("2024-05-01T14:00:00+02:00"),
        parse_rfc3339("2024-05-01T12:00:00Z")
    );
    for bad in [
        "",
        "2024-13-01T00:00:00Z",
        "2024-05-01T12:00:00Q",
        "2024-05-01T12:00:00.Z",
        "2024-05-01",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

#[test]
fn cri_lines_and_partials() {
    let l = parse_cri(b"2024-05-01T12:00:00.000000001Z stdout F hello world\n").unwrap();
    assert_eq!(l.message, "hello world");
    assert!(!l.partial);
    // An empty message is valid.
    assert_eq!(
        parse_cri(b"2024-05-01T12:00:00Z stdout F").unwrap().message,
        ""
    );
    let err = parse_cri(b"2024-05-01T12:00:00Z stdin F x").unwrap_err();
    assert!(
        matches!(err, FormatError::Syntax { offset: 21, .. }),
        "{err}"
    );
    assert!(matches!(
        parse_cri(b"\xff\xfe"),
        Err(FormatError::Utf8 { offset: 0 })
    ));

    // Partial lines are joined per stream; stdout and stderr interleave.
    let mut j = CriJoiner::new(1024);
    let lines = [
        "2024-05-01T12:00:00Z stdout P a-",
        "2024-05-01T12:00:00Z stderr P x-",
        "2024-05-01T12:00:01Z stdout F b",
        "2024-05-01T12:00:02Z stderr F y",
    ];
    let out: Vec<LogRecord> = lines
        .iter()
        .filter_map(|l| j.push(&parse_cri(l.as_bytes()).unwrap()))
        .collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].message, "a-b");
    assert_eq!(out[0].timestamp, parse_rfc3339("2024-05-01T12:00:00Z"));
    assert_eq!(out[1].message, "x-y");
    assert_eq!(out[1].status, Status::Error);

    // The size bound emits a partial message early and counts it.
    let mut j = CriJoiner::new(4);
    assert!(
        j.push(&parse_cri(b"2024-05-01T12:00:00Z stdout P ab").unwrap())
            .is_none()
    );
    let r = j
        .push(&parse_cri(b"2024-05-01T12:00:00Z stdout P cd").unwrap())
        .unwrap();
    assert_eq!((r.message.as_str(), j.truncated), ("abcd", 1));
    // Pending partials come out at the end.
    assert!(
        j.push(&parse_cri(b"2024-05-01T12:00:00Z stdout P ef").unwrap())
            .is_none()
    );
    assert_eq!(j.flush()[0].message, "ef");
}

#[test]
fn docker_json_file() {
    let mut p = LineParser::new(Format::Docker);
    let r = p.parse(br#"{"log":"caf\u00e9 \"quoted\"\n","stream":"stderr","time":"2024-05-01T12:00:00.5Z"}"#).unwrap();
    assert_eq!(r.message, "café \"quoted\"");
    assert_eq!(r.status, Status::Error);
    assert_eq!(r.timestamp.unwrap().as_millis(), 1_714_564_800_500);
    // A bad line is kept as raw and counted.
    let r = p.parse(b"{\"log\": 12").unwrap();
    assert_eq!((r.message.as_str(), p.errors), ("{\"log\": 12", 1));
}

#[test]
fn envoy_default_format() {
    let l = parse_envoy(ENVOY_ACCESS.as_bytes()).unwrap();
    let r = l.to_record();
    assert_eq!(r.message, "POST /api/v1/locations HTTP/2 204");
    assert_eq!(r.attribute_str("http.method").as_deref(), Some("POST"));
    assert_eq!(r.attribute_str("http.status_code").as_deref(), Some("204"));
    assert_eq!(
        r.attribute_str("network.bytes_read").as_deref(),
        Some("154")
    );
    assert_eq!(
        r.attribute_str("network.bytes_written").as_deref(),
        Some("0")
    );
    assert_eq!(r.attribute_str("duration").as_deref(), Some("226000000"));
    assert_eq!(
        r.attribute_str("envoy.upstream.service_time").as_deref(),
        Some("100")
    );
    assert_eq!(
        r.attribute_str("http.forwarded_for").as_deref(),
        Some("10.0.35.28")
    );
    assert_eq!(
        r.attribute_str("http.useragent").as_deref(),
        Some("nsq2http")
    );
    assert_eq!(
        r.attribute_str("http.request_id").as_deref(),
        Some("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2")
    );
    assert_eq!(r.attribute_str("http.host").as_deref(), Some("locations"));
    assert_eq!(
        r.attribute_str("envoy.upstream.host").as_deref(),
        Some("tcp://10.0.2.1:80")
    );
    assert!(
        r.attributes.get("envoy.response_flags").is_none(),
        "'-' is absent"
    );
    assert_eq!(r.source.as_deref(), Some("envoy"));
}

#[test]
fn istio_proxy_format() {
    assert_eq!(detect(ISTIO_ACCESS.as_bytes()), Format::Envoy);
    let r = parse_envoy(ISTIO_ACCESS.as_bytes()).unwrap().to_record();
    assert_eq!(r.status, Status::Warning);
    assert_eq!(r.attribute_str("http.status_code").as_deref(), Some("418"));
    assert_eq!(
        r.attribute_str("envoy.response_code_details").as_deref(),
        Some("via_upstream")
    );
    assert_eq!(
        r.attribute_str("network.bytes_written").as_deref(),
        Some("135")
    );
    assert_eq!(
        r.attribute_str("http.useragent").as_deref(),
        Some("curl/7.73.0-DEV")
    );
    assert_eq!(
        r.attribute_str("envoy.upstream.host").as_deref(),
        Some("10.44.1.27:80")
    );
    assert_eq!(
        r.attribute_str("envoy.upstream.cluster").as_deref(),
        Some("outbound|8000||httpbin.foo.svc.cluster.local")
    );
    assert_eq!(
        r.attribute_str("network.client.ip").as_deref(),
        Some("10.44.1.23:46520")
    );
    assert_eq!(
        r.attribute_str("envoy.route_name").as_deref(),
        Some("default")
    );
    assert!(parse_envoy(b"[2020-11-25T21:26:18.409Z] \"GET /").is_err());
}

#[test]
fn istio_component_logs() {
    let l = parse_istio(b"2024-05-01T12:00:00.000000Z\twarn\tmodel\tduplicate route x\n").unwrap();
    let r = l.to_record();
    assert_eq!(
        (r.status, r.message.as_str()),
        (Status::Warning, "duplicate route x")
    );
    assert_eq!(r.attribute_str("logger.name").as_deref(), Some("model"));
    // Without a scope.
    let l = parse_istio(b"2024-05-01T12:00:00Z\terror\tfailed to warm: timeout\textra").unwrap();
    assert_eq!(
        (l.scope, l.message),
        (None, "failed to warm: timeout\textra")
    );
    assert_eq!(
        detect(b"2024-05-01T12:00:00Z\tinfo\tads\tpush"),
        Format::Istio
    );
    assert!(parse_istio(b"2024-05-01T12:00:00Z\tbogus\tx").is_err());
}

#[test]
fn json_logs_and_detection() {
    let r = parse_json(br#"{"severity":"WARNING","message":"slow","timestamp":"2024-05-01T12:00:00Z","service":"reviews","n":3}"#).unwrap();
    assert_eq!(
        (r.status, r.message.as_str(), r.service.as_deref()),
        (Status::Warning, "slow", Some("reviews"))
    );
    assert_eq!(r.attribute_str("n").as_deref(), Some("3"));
    assert!(matches!(
        parse_json(b"[1,2]"),
        Err(FormatError::Syntax { .. })
    ));
    assert!(matches!(
        parse_json(b"{\"a\":}"),
        Err(FormatError::Json { column: 6, .. })
    ));
    assert_eq!(detect(br#"{"msg":"x"}"#), Format::Json);
    assert_eq!(detect(b"2024-05-01T12:00:00Z stdout F x"), Format::Cri);
    assert_eq!(detect(b"[not envoy"), Format::Raw);

    let mut p = LineParser::new(Format::Auto);
    let msgs: Vec<String> = [
        ENVOY_ACCESS,
        r#"{"log":"d\n","stream":"stdout"}"#,
        "2024-05-01T12:00:00Z\tinfo\tads\tpush",
        "plain",
        r#"{"msg":"j","level":"debug"}"#,
    ]
    .iter()
    .filter_map(|l| p.parse(l.as_bytes()))
    .map(|r| r.message)
    .collect();
    assert_eq!(
        msgs,
        [
            "POST /api/v1/locations HTTP/2 204",
            "d",
            "push",
            "plain",
            "j"
        ]
    );
    assert_eq!(p.errors, 0);
}

#[test]
fn processing_rules_in_order() {
    let rules: Vec<Rule> = serde_json::from_value(serde_json::json!([
        {"type": "mask_sequences", "name": "cards", "pattern": r"(?:4\d{3})(?:-?\d{4}){3}", "replace_placeholder": "[masked_card]"},
        {"type": "include_at_match", "name": "only_payments", "pattern": "payment"},
        {"type": "exclude_at_match", "name": "no_debug", "pattern": "(?i)debug"},
        {"type": "mask_sequences", "name": "user", "pattern": r"user=(\w)\w*", "replace_placeholder": "user=${1}***"},
    ]))
    .unwrap();
    let mut p = Processor::new(&rules).unwrap();
    let mut a = LogRecord::new("payment card=4111-1111-1111-1111 user=alice");
    assert!(p.process(&mut a));
    assert_eq!(a.message, "payment card=[masked_card] user=a***");
    assert!(!p.process(&mut LogRecord::new("login user=bob")));
    assert!(!p.process(&mut LogRecord::new("payment DEBUG dump")));
    assert_eq!(
        (
            p.stats.processed,
            p.stats.not_included,
            p.stats.excluded,
            p.stats.masked
        ),
        (3, 1, 1, 1)
    );

    let bad = |v: serde_json::Value| {
        Processor::new(&serde_json::from_value::<Vec<Rule>>(v).unwrap()).unwrap_err()
    };
    assert!(matches!(
        bad(serde_json::json!([{"type":"exclude_at_match","name":"x","pattern":"("}])),
        RuleError::Pattern { index: 0, .. }
    ));
    assert!(matches!(
        bad(
            serde_json::json!([{"type":"include_at_match","name":"a","pattern":"a"},{"type":"mask_sequences","name":"m","pattern":"a"}])
        ),
        RuleError::MissingPlaceholder { index: 1, .. }
    ));
}

/// Found by the `rules` fuzz target (a 249-byte input that took 18 s of CPU): mask rules
/// whose pattern matches the empty string, chained, multiplied the message's size by the
/// placeholder's with every rule. A masked message is now cut at the processor's bound.
#[test]
fn masks_that_grow_the_message_are_bounded() {
    let mask = |name: &str, pattern: &str, placeholder: &str| Rule {
        kind: meshmon_logs::rules::RuleType::MaskSequences,
        name: name.into(),
        pattern: pattern.into(),
        replace_placeholder: Some(placeholder.into()),
    };
    // Eight empty-matching masks with a 40-byte placeholder: 40^8 × the line, unbounded.
    let rules: Vec<Rule> = (0..8)
        .map(|i| {
            mask(
                &format!("m{i}"),
                "<|",
                "-$M$\t$\t%5-0123456789abcdefghijklmnopqrstu",
            )
        })
        .collect();
    let mut p = Processor::new(&rules).unwrap();
    assert_eq!(p.max_message_bytes(), 256 * 1024);
    let mut r = LogRecord::new("M<|\t-$M$\t%5 a short line");
    assert!(p.process(&mut r));
    assert_eq!(r.message.len(), 256 * 1024);
    assert_eq!((p.stats.masked, p.stats.mask_truncated), (1, 1));

    // Below the bound a mask is exactly `replace_all`, capture groups included.
    let user = mask("user", r"user=(?P<first>\w)\w*", "user=${first}***");
    let mut p = Processor::new(std::slice::from_ref(&user)).unwrap();
    let line = "a user=alice b user=bob user= c";
    let want = regex::Regex::new(&user.pattern)
        .unwrap()
        .replace_all(line, "user=${first}***")
        .into_owned();
    let mut r = LogRecord::new(line);
    assert!(p.process(&mut r));
    assert_eq!(r.message, want);
    assert_eq!(p.stats.mask_truncated, 0);
    // No match: the message is untouched and not counted as masked.
    let mut r = LogRecord::new("nothing here");
    assert!(p.process(&mut r));
    assert_eq!((r.message.as_str(), p.stats.masked), ("nothing here", 1));

    // The cut never splits a character: 'é' is two bytes.
    let mut p = Processor::new(&[mask("e", "e", "éé")])
        .unwrap()
        .with_max_message_bytes(5);
    let mut r = LogRecord::new("eee");
    assert!(p.process(&mut r));
    assert_eq!(r.message, "éé");
    assert_eq!(p.stats.mask_truncated, 1);
}

#[test]
fn multiline_bounds() {
    let t = |s| Timestamp::from_secs(s);
    let start = Continuation::StartPattern(regex::Regex::new(r"^\d{4}-\d{2}-\d{2}").unwrap());
    let mut m = MultiLine::new(start, MultiLineConfig::default()).unwrap();
    assert!(
        m.push(LogRecord::new("2024-05-01 ERROR boom"), t(0))
            .is_none()
    );
    assert!(
        m.push(LogRecord::new("Traceback (most recent call last):"), t(0))
            .is_none()
    );
    let r = m
        .push(LogRecord::new("2024-05-01 INFO next"), t(0))
        .unwrap();
    assert_eq!(
        r.message,
        "2024-05-01 ERROR boom\nTraceback (most recent call last):"
    );
    // The time bound flushes a pending log.
    assert!(m.poll(t(0)).is_none());
    assert_eq!(m.poll(t(2)).unwrap().message, "2024-05-01 INFO next");
    assert_eq!(m.stats.timed_out, 1);

    // The size bound starts a new log.
    let mut cfg = MultiLineConfig::default();
    cfg.max_bytes = 10;
    let mut m = MultiLine::new(Continuation::Indented, cfg).unwrap();
    assert!(m.push(LogRecord::new("head"), t(0)).is_none());
    assert!(m.push(LogRecord::new(" c1"), t(0)).is_none());
    let r = m.push(LogRecord::new(" c2-long"), t(0)).unwrap();
    assert_eq!(r.message, "head\n c1");
    assert_eq!(m.stats.bounded, 1);
    assert_eq!(m.flush().unwrap().message, " c2-long");
}

#[test]
fn python_traceback_keeps_its_exception_line() {
    let mut m = MultiLine::new(Continuation::Indented, MultiLineConfig::default()).unwrap();
    let t = Timestamp::from_secs(0);
    let lines = [
        "ERROR:root:exception calling application",
        "Traceback (most recent call last):",
        "  File \"/app/service.py\", line 31, in parse_id",
        "    return int(raw)",
        "ValueError: invalid literal for int() with base 10: 'x'",
        "INFO:root:next request",
    ];
    let mut out = Vec::new();
    for l in lines {
        out.extend(m.push(LogRecord::new(l), t));
    }
    out.extend(m.flush());
    // The logging call's message, its traceback and the exception line are one log.
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0]
            .message
            .starts_with("ERROR:root:exception calling application\nTraceback")
    );
    assert!(out[0].message.ends_with("base 10: 'x'"));
    assert_eq!(out[1].message, "INFO:root:next request");
    // Outside a traceback an `Error:` line starts a new log.
    let mut m = MultiLine::new(Continuation::Indented, MultiLineConfig::default()).unwrap();
    assert!(m.push(LogRecord::new("starting"), t).is_none());
    assert!(m.push(LogRecord::new("ValueError: bad"), t).is_some());
}

#[test]
fn logfmt_lines() {
    use meshmon_logs::format::parse_logfmt;
    let r = parse_logfmt(
        br#"time=2024-05-01T12:00:00Z level=error msg="dial \"db\" failed" caller=db.go:42 retry="""#,
    )
    .unwrap();
    assert_eq!(r.status, Status::Error);
    assert_eq!(r.message, r#"dial "db" failed"#);
    assert_eq!(r.attribute_str("caller").as_deref(), Some("db.go:42"));
    assert_eq!(r.attribute_str("retry").as_deref(), Some(""));
    assert!(r.timestamp.is_some());
    assert_eq!(detect(b"level=info msg=hi"), Format::Logfmt);
    assert_eq!(detect(b"levels are fine"), Format::Raw);
    // Bad lines: what and where.
    match parse_logfmt(br#"level=info msg="open"#) {
        Err(FormatError::Syntax { offset, .. }) => assert_eq!(offset, 15),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_logfmt(b"level=info bare"),
        Err(FormatError::Syntax { offset: 11, .. })
    ));
    // Through the line parser a bad logfmt line is kept raw and counted.
    let mut p = LineParser::new(Format::Logfmt);
    assert_eq!(p.parse(b"not logfmt").unwrap().message, "not logfmt");
    assert_eq!(p.errors, 1);
}
