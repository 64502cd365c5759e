//! The property every trace decoder's fuzz target checks: any input decodes or returns
//! an error, never panics; what decodes re-encodes to v0.4 and decodes again with the
//! same span count, and survives normalisation.

use meshmon_core::Timestamp;
use meshmon_trace::decode::{self, Format, Limits};
use meshmon_trace::normalize::Normalizer;

/// Runs the property for one wire format.
pub fn check(format: Format, data: &[u8]) {
    let limits = Limits::default()
        .with_max_spans(10_000)
        .with_max_map_entries(1_000);
    if let Ok(p) = decode::decode(format, data, &limits) {
        let traces: Vec<Vec<meshmon_trace::Span>> =
            p.chunks.iter().map(|c| c.spans.clone()).collect();
        let again = meshmon_trace::encode::encode_v04(&traces);
        let back =
            decode::decode_v04(&again, &Limits::default()).expect("re-encoded payload decodes");
        assert_eq!(back.span_count(), p.span_count());
        let mut n = Normalizer::new();
        for mut c in p.chunks {
            let _ = n.normalize_chunk(&mut c, "go", Timestamp::from_secs(1_700_000_000));
        }
    }
}
