//! The decoders' hot path allocates per payload and per chunk, never per span: a counting
//! global allocator over payloads of 10 and 1000 Envoy-like spans in one chunk.

use meshmon_trace::decode::{self, Limits};
use meshmon_trace::{Span, encode};

use meshmon_core::test_util::{CountingAllocator, thread_allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn trace(n: u64) -> Vec<Span<'static>> {
    (1..=n)
        .map(|i| {
            let mut s = Span {
                service: "reviews.bookinfo".into(),
                name: "envoy.proxy".into(),
                resource: "GET /reviews/0".into(),
                trace_id: 42,
                span_id: i,
                parent_id: i - 1,
                start: 1_795_341_478_000_000_000,
                duration: 1000 + i as i64,
                r#type: "web".into(),
                ..Span::default()
            };
            for k in 0..28 {
                s.set_meta(format!("tag.{k}"), format!("value-{}", k * i));
            }
            s.set_meta("span.kind", "server");
            s.set_metric("_sampling_priority_v1", 1.0);
            s.set_metric("_dd.top_level", 1.0);
            s
        })
        .collect()
}

fn allocations(f: impl FnOnce()) -> usize {
    let before = thread_allocations();
    f();
    thread_allocations() - before
}

#[test]
fn decoding_allocates_per_chunk_not_per_span() {
    let limits = Limits::default();
    for (name, small, big) in [
        (
            "v0.4",
            encode::encode_v04(&[trace(10)]),
            encode::encode_v04(&[trace(1000)]),
        ),
        (
            "v0.5",
            encode::encode_v05(&[trace(10)]),
            encode::encode_v05(&[trace(1000)]),
        ),
    ] {
        let decode_fn = |b: &[u8]| {
            let p = if name == "v0.4" {
                decode::decode_v04(b, &limits)
            } else {
                decode::decode_v05(b, &limits)
            }
            .unwrap();
            std::hint::black_box(p.span_count());
            // Lookups do not allocate either.
            assert!(
                p.spans()
                    .all(|s| s.kind() == "server" && s.sampling_priority() == Some(1))
            );
        };
        let a_small = allocations(|| decode_fn(&small));
        let a_big = allocations(|| decode_fn(&big));
        assert!(
            a_big <= a_small + 2,
            "{name}: {a_small} allocations for 10 spans, {a_big} for 1000"
        );
        assert!(
            a_small >= 2,
            "{name}: the counter sees the payload and chunk vectors"
        );
        assert!(
            a_big <= 8,
            "{name}: {a_big} allocations for a 1000-span payload"
        );
    }
}

#[test]
fn intake_allocates_per_payload_and_chunk_not_per_span() {
    use meshmon_core::Timestamp;
    use meshmon_trace::Bytes;
    use meshmon_trace::receiver::{Receiver, ReceiverConfig, Request};
    for (path, small, big) in [
        (
            "/v0.4/traces",
            encode::encode_v04(&[trace(10)]),
            encode::encode_v04(&[trace(1000)]),
        ),
        (
            "/v0.5/traces",
            encode::encode_v05(&[trace(10)]),
            encode::encode_v05(&[trace(1000)]),
        ),
    ] {
        let mut rx = Receiver::new(ReceiverConfig::default()).unwrap();
        let now = Timestamp::from_secs(1_795_341_480);
        let (small, big) = (Bytes::from(small), Bytes::from(big));
        let mut run = |body: &Bytes| {
            let r = rx.handle(
                &Request {
                    method: "POST",
                    path,
                    headers: &[("Content-Type", "application/msgpack")],
                    body: body.clone(),
                },
                now,
            );
            assert_eq!(r.status, 200);
            let kept = rx.drain_kept();
            assert_eq!(kept.len(), 1, "{path}: the chunk is kept (priority 1)");
            drop(kept);
        };
        // Warm: stats groups, sampler signatures and scratch buffers exist.
        run(&big);
        run(&small);
        let a_small = allocations(|| run(&small));
        let a_big = allocations(|| run(&big));
        assert!(
            a_big <= a_small + 2,
            "{path}: {a_small} allocations for 10 spans, {a_big} for 1000"
        );
        assert!(a_small >= 3, "{path}: the counter sees the request path");
    }
}
