//! Codec properties: v0.7 round trips with links and events, leniency exactly where the
//! Datadog Agent is lenient, strict limits with byte offsets, never a panic.

use std::borrow::Cow;

use meshmon_trace::decode::{self, Format, Limits};
use meshmon_trace::span::{AttributeValue, SpanEvent, SpanLink};
use meshmon_trace::{DecodeError, Span, TraceChunk, TracerPayload, encode};

fn rich_span() -> Span<'static> {
    let mut s = Span {
        service: "checkout".into(),
        name: "grpc.server".into(),
        resource: "/Checkout/Pay".into(),
        trace_id: u64::MAX - 5,
        trace_id_high: 0x6b02_bca6_0000_0000,
        span_id: 1 << 63,
        parent_id: 17,
        start: 1_795_341_478_324_314_698,
        duration: 435_314_280,
        error: 1,
        r#type: "rpc".into(),
        ..Span::default()
    };
    s.set_meta("_dd.p.tid", "6b02bca600000000");
    s.set_meta("error.message", "déjà vu");
    s.set_metric("_sampling_priority_v1", 2.0);
    s.meta_struct
        .push(("appsec".into(), Cow::Owned(vec![0x81, 0xa1, b'k', 0x01])));
    s.span_links.push(SpanLink {
        trace_id: 1,
        trace_id_high: 2,
        span_id: 3,
        attributes: vec![("link.kind".into(), "follows".into())],
        tracestate: "dd=s:1".into(),
        flags: 1,
    });
    s.span_events.push(SpanEvent {
        time_unix_nano: 1_795_341_478_324_314_699,
        name: "exception".into(),
        attributes: vec![
            (
                "exception.message".into(),
                AttributeValue::String("boom".into()),
            ),
            ("retry".into(), AttributeValue::Bool(true)),
            ("attempt".into(), AttributeValue::Int(-3)),
            ("ratio".into(), AttributeValue::Double(0.5)),
            (
                "codes".into(),
                AttributeValue::Array(vec![
                    AttributeValue::Int(1),
                    AttributeValue::String("x".into()),
                ]),
            ),
        ],
    });
    s
}

#[test]
fn v07_round_trip_keeps_everything() {
    let p = TracerPayload {
        container_id: "c1".into(),
        language_name: "go".into(),
        env: "prod".into(),
        hostname: "node-1".into(),
        tags: vec![("_dd.tags.container".into(), "a:b".into())],
        chunks: vec![
            TraceChunk {
                priority: Some(2),
                origin: "synthetics".into(),
                spans: vec![rich_span()],
                tags: vec![("_dd.p.dm".into(), "-4".into())],
                dropped_trace: false,
            },
            TraceChunk {
                priority: None,
                spans: vec![Span {
                    trace_id: 9,
                    span_id: 9,
                    ..Span::default()
                }],
                dropped_trace: true,
                ..TraceChunk::default()
            },
        ],
        ..TracerPayload::default()
    };
    let body = encode::encode_v07(&p);
    assert_eq!(Format::sniff(&body), Format::V07);
    let back = decode::decode_v07(&body, &Limits::default()).unwrap();
    assert_eq!(back, p);
    // v0.4 carries links, events and meta_struct too.
    let v4 = encode::encode_v04(&[vec![rich_span()]]);
    assert_eq!(
        decode::decode_v04(&v4, &Limits::default()).unwrap().chunks[0].spans[0],
        rich_span()
    );
}

/// A v0.4 span map built by hand, to exercise the wire types tracers really use.
fn v04_with(span_fields: &[u8], n_fields: u8) -> Vec<u8> {
    let mut b = vec![0x91, 0x91, 0x80 | n_fields];
    b.extend_from_slice(span_fields);
    b
}

#[test]
fn leniency_matches_the_agent() {
    // trace_id as int64 (negative = high bit set), span_id as uint8, parent_id nil,
    // service as bin, error as int, name with invalid UTF-8, unknown key with a nested map.
    let mut f = Vec::new();
    f.extend_from_slice(b"\xa8trace_id\xd3\xff\xff\xff\xff\xff\xff\xff\xfe");
    f.extend_from_slice(b"\xa7span_id\xcc\x07");
    f.extend_from_slice(b"\xa9parent_id\xc0");
    f.extend_from_slice(b"\xa7service\xc4\x03web");
    f.extend_from_slice(b"\xa5error\xd0\x01");
    f.extend_from_slice(b"\xa4name\xa5a\xff\xfeb!");
    f.extend_from_slice(b"\xa7unknown\x81\xa1x\x92\x01\xc3");
    f.extend_from_slice(b"\xa7metrics\x81\xa1m\xca\x3f\x80\x00\x00");
    let body = v04_with(&f, 8);
    let p = decode::decode_v04(&body, &Limits::default()).unwrap();
    let s = &p.chunks[0].spans[0];
    assert_eq!(s.trace_id, u64::MAX - 1);
    assert_eq!((s.span_id, s.parent_id, s.error), (7, 0, 1));
    assert_eq!(s.service, "web");
    assert_eq!(
        s.name, "a\u{FFFD}b!",
        "a run of invalid bytes becomes one U+FFFD, as Go's strings.ToValidUTF8"
    );
    assert_eq!(s.metric("m"), Some(1.0));
    assert!(
        s.meta.is_empty() && s.resource.is_empty(),
        "missing keys keep zero values"
    );

    // Invalid UTF-8 inside meta is repaired too; valid meta stays a view and still reads.
    let mut f = Vec::new();
    f.extend_from_slice(b"\xa8trace_id\x01\xa7span_id\x02");
    f.extend_from_slice(b"\xa4meta\x82\xa3env\xa4pr\xc3\x28\xa9span.kind\xc4\x06server");
    let body = v04_with(&f, 3);
    let p = decode::decode_v04(&body, &Limits::default()).unwrap();
    let s = &p.chunks[0].spans[0];
    assert_eq!(s.meta("env"), Some("pr\u{FFFD}("));
    assert_eq!(s.kind(), "server");
}

#[test]
fn strict_errors_carry_offsets() {
    let limits = Limits::default();
    // A string where a span map should be: offset 2.
    let e = decode::decode_v04(b"\x91\x91\xa1x", &limits).unwrap_err();
    assert!(matches!(e, DecodeError::Type { offset: 2, .. }), "{e}");
    // A str length past the end of the body (and one over the string limit).
    let e =
        decode::decode_v04(b"\x91\x91\x81\xa7service\xdb\x00\x00\x10\x00", &limits).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                offset: 11,
                len: 4096,
                ..
            }
        ),
        "{e}"
    );
    let e =
        decode::decode_v04(b"\x91\x91\x81\xa7service\xdb\xff\xff\xff\xff", &limits).unwrap_err();
    assert!(
        matches!(e, DecodeError::LimitExceeded { offset: 11, .. }),
        "{e}"
    );
    // v0.5: a span with 11 elements; a string index out of range.
    let e = decode::decode_v05(
        b"\x92\x91\xa0\x91\x91\x9b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x80",
        &limits,
    )
    .unwrap_err();
    assert!(matches!(e, DecodeError::Invalid { offset: 5, .. }), "{e}");
    let e = decode::decode_v05(
        b"\x92\x91\xa0\x91\x91\x9c\x05\x00\x00\x00\x00\x00\x00\x00\x00\x80\x80\x00",
        &limits,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::StringIndex {
                offset: 6,
                index: 5,
                len: 1
            }
        ),
        "{e}"
    );
    // Body and count limits.
    let small = Limits::default().with_max_body_bytes(4);
    assert!(matches!(
        decode::decode_v04(b"\x91\x91\x80\x80\x80", &small),
        Err(DecodeError::BodyTooLarge { len: 5, limit: 4 })
    ));
    let few = Limits::default().with_max_spans(2);
    let e = decode::decode_v04(b"\x92\x92\x80\x80\x91\x80", &few).unwrap_err();
    assert!(
        matches!(e, DecodeError::LimitExceeded { offset: 4, .. }),
        "{e}"
    );
    // JSON errors: line, column and byte offset.
    let e =
        decode::decode_json(b"[[{\"service\": \"a\",\n \"trace_id\": x}]]", &limits).unwrap_err();
    match e {
        DecodeError::Json {
            line: 2, offset, ..
        } => assert_eq!(offset, 32),
        other => panic!("{other}"),
    }
    // Zipkin: a bad hex id points at its bytes.
    let body = br#"[{"traceId":"12","id":"zz"}]"#;
    let e = decode::decode_zipkin(body, &limits).unwrap_err();
    assert!(matches!(e, DecodeError::Invalid { offset: 23, .. }), "{e}");
}

#[test]
fn truncated_inputs_never_panic() {
    let bodies = [
        encode::encode_v04(&[vec![rich_span(), rich_span()]]),
        encode::encode_v05(&[vec![rich_span()], vec![rich_span()]]),
        encode::encode_v07(&TracerPayload::from_chunks(vec![TraceChunk::from_spans(
            vec![rich_span()],
        )])),
    ];
    for (body, f) in bodies.iter().zip([Format::V04, Format::V05, Format::V07]) {
        assert!(decode::decode(f, body, &Limits::default()).is_ok());
        for cut in 0..body.len() {
            assert!(
                decode::decode(f, &body[..cut], &Limits::default()).is_err(),
                "{f:?} cut at {cut}"
            );
        }
        // Flip every byte once: an error or a payload, never a panic.
        for i in 0..body.len() {
            let mut b = body.clone();
            b[i] ^= 0xff;
            let _ = decode::decode(f, &b, &Limits::default());
        }
    }
}
