//! Span and chunk normalisation as the Datadog Agent does it before sampling
//! (`pkg/trace/agent/normalizer.go`, `pkg/trace/traceutil/normalize.go`,
//! `pkg/trace/agent/truncator.go`).
//!
//! - a chunk with an empty span list, a span with `trace_id` 0 or `span_id` 0, or a span
//!   whose trace id differs from the first span's is dropped whole and counted;
//! - empty `service` becomes `unnamed-<lang>-service` (`unnamed-service` without a
//!   language), empty `name` `unnamed_operation`, empty `resource` the name;
//! - service and name are normalised (lower case service, allowed characters) and cut to
//!   100 bytes, `type` to 100, `resource` to 5000, meta keys to 200 and values to 25000;
//! - negative or overflowing durations become 0, starts before 2000 become `now - duration`;
//! - a `parent_id` equal to both the trace and span id becomes 0;
//! - an `http.status_code` that is not an integer in 100..600 is removed.

use std::borrow::Cow;

use meshmon_core::Timestamp;

use crate::span::{HTTP_STATUS_CODE_KEY, Span, TraceChunk};

/// Longest service name.
pub const MAX_SERVICE_LEN: usize = 100;
/// Longest operation name.
pub const MAX_NAME_LEN: usize = 100;
/// Longest span type.
pub const MAX_TYPE_LEN: usize = 100;
/// Longest resource.
pub const MAX_RESOURCE_LEN: usize = 5000;
/// Longest meta / metrics key.
pub const MAX_META_KEY_LEN: usize = 200;
/// Longest meta value.
pub const MAX_META_VALUE_LEN: usize = 25000;
/// Name given to spans without one.
pub const DEFAULT_SPAN_NAME: &str = "unnamed_operation";
/// Nanoseconds since the epoch on 2000-01-01, the Agent's cut-off for implausible starts.
pub const YEAR_2000_NANOS: i64 = 946_684_800_000_000_000;

/// Why a chunk was dropped by normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The chunk had no spans.
    EmptyTrace,
    /// A span had `trace_id` 0.
    TraceIdZero,
    /// A span had `span_id` 0.
    SpanIdZero,
    /// A span's trace id differed from the first span's.
    ForeignSpan,
}

/// Counters of what normalisation changed or dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NormalizeStats {
    /// Chunks dropped: no spans.
    pub traces_empty: u64,
    /// Chunks dropped: a span with trace id 0.
    pub traces_trace_id_zero: u64,
    /// Chunks dropped: a span with span id 0.
    pub traces_span_id_zero: u64,
    /// Chunks dropped: a span of another trace.
    pub traces_foreign_span: u64,
    /// Spans in dropped chunks.
    pub spans_dropped: u64,
    /// Duplicate span ids seen (kept, counted).
    pub duplicate_span_id: u64,
    /// Empty services filled.
    pub service_empty: u64,
    /// Services cut to length.
    pub service_truncated: u64,
    /// Services with characters replaced.
    pub service_invalid: u64,
    /// Empty names filled.
    pub name_empty: u64,
    /// Names cut to length.
    pub name_truncated: u64,
    /// Names with characters replaced.
    pub name_invalid: u64,
    /// Empty resources filled.
    pub resource_empty: u64,
    /// Resources cut to length.
    pub resource_truncated: u64,
    /// Types cut to length.
    pub type_truncated: u64,
    /// Meta keys or values cut to length.
    pub meta_truncated: u64,
    /// Starts before 2000 replaced.
    pub invalid_start_date: u64,
    /// Negative or overflowing durations zeroed.
    pub invalid_duration: u64,
    /// Invalid `http.status_code` removed.
    pub invalid_http_status_code: u64,
}

/// Cuts `s` to at most `max` bytes on a character boundary (the one implementation, in
/// `meshmon-core`).
pub use meshmon_core::text::truncate_utf8;

fn is_service_char(c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || matches!(c, '_' | '-' | ':' | '.' | '/')
        || (c.is_alphabetic() && !c.is_uppercase())
}

/// Normalises a service name like a Datadog tag value (`NormalizeService`): lower case,
/// characters outside letters, digits and `_ - : . /` replaced by `_` (runs collapsed,
/// trailing `_` trimmed), at most 100 bytes. Borrowed when already normal.
pub fn normalize_service(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_SERVICE_LEN && s.chars().all(is_service_char) && !s.ends_with('_') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(MAX_SERVICE_LEN));
    for c in truncate_utf8(s, MAX_SERVICE_LEN)
        .chars()
        .flat_map(char::to_lowercase)
    {
        if is_service_char(c) && c != '_' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    Cow::Owned(out)
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// Normalises an operation name like a metric name (`NormalizeName`): ASCII letters,
/// digits, `_` and `.`, starting with a letter, other characters replaced by `_` (runs
/// collapsed), at most 100 bytes; "" when nothing usable is left. Borrowed when already
/// normal.
pub fn normalize_name(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    if !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|&c| is_name_char(c))
        && !s.contains("__")
        && !s.ends_with('_')
    {
        return Cow::Borrowed(s);
    }
    let s = truncate_utf8(s, MAX_NAME_LEN);
    let start = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let mut out = String::with_capacity(s.len());
    for c in s[start..].chars() {
        if c.is_ascii() && is_name_char(c as u8) && !(c == '_' && out.ends_with('_')) {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    Cow::Owned(out)
}

fn valid_status_code(s: &str) -> bool {
    matches!(s.parse::<u64>(), Ok(c) if (100..600).contains(&c))
}

/// Applies the Agent's normalisation and keeps the counts.
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    /// What was changed or dropped so far.
    pub stats: NormalizeStats,
    seen: hashbrown::HashSet<u64>,
}

impl Normalizer {
    /// A normalizer with zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Normalises a chunk in place. `lang` is the tracer language (from
    /// `Datadog-Meta-Lang`) used for the fallback service name; `now` replaces
    /// implausible start times. On `Err` the chunk must be dropped (it is counted).
    pub fn normalize_chunk(
        &mut self,
        chunk: &mut TraceChunk<'_>,
        lang: &str,
        now: Timestamp,
    ) -> Result<(), DropReason> {
        let r = self.check_chunk(chunk);
        if let Err(reason) = r {
            let st = &mut self.stats;
            match reason {
                DropReason::EmptyTrace => st.traces_empty += 1,
                DropReason::TraceIdZero => st.traces_trace_id_zero += 1,
                DropReason::SpanIdZero => st.traces_span_id_zero += 1,
                DropReason::ForeignSpan => st.traces_foreign_span += 1,
            }
            st.spans_dropped += chunk.spans.len() as u64;
            return Err(reason);
        }
        for span in &mut chunk.spans {
            self.normalize_span(span, lang, now);
        }
        Ok(())
    }

    fn check_chunk(&mut self, chunk: &TraceChunk<'_>) -> Result<(), DropReason> {
        let first = chunk.spans.first().ok_or(DropReason::EmptyTrace)?;
        let (tid, tid_hi) = (first.trace_id, first.trace_id_high);
        let small = chunk.spans.len() <= 32;
        if !small {
            self.seen.clear();
        }
        for (i, s) in chunk.spans.iter().enumerate() {
            if s.trace_id == 0 {
                return Err(DropReason::TraceIdZero);
            }
            if s.span_id == 0 {
                return Err(DropReason::SpanIdZero);
            }
            if s.trace_id != tid
                || (s.trace_id_high != 0 && tid_hi != 0 && s.trace_id_high != tid_hi)
            {
                return Err(DropReason::ForeignSpan);
            }
            let dup = if small {
                chunk.spans[..i].iter().any(|o| o.span_id == s.span_id)
            } else {
                !self.seen.insert(s.span_id)
            };
            if dup {
                self.stats.duplicate_span_id += 1;
            }
        }
        Ok(())
    }

    /// Normalises one span in place (the per-span half of [`Normalizer::normalize_chunk`]).
    pub fn normalize_span(&mut self, s: &mut Span<'_>, lang: &str, now: Timestamp) {
        let st = &mut self.stats;
        if s.service.is_empty() {
            st.service_empty += 1;
            s.service = Cow::Owned(if lang.is_empty() {
                "unnamed-service".to_string()
            } else {
                format!("unnamed-{}-service", lang.to_ascii_lowercase())
            });
        } else if let Cow::Owned(n) = normalize_service(&s.service) {
            if s.service.len() > MAX_SERVICE_LEN {
                st.service_truncated += 1;
            } else {
                st.service_invalid += 1;
            }
            s.service = Cow::Owned(n);
        }
        if s.name.is_empty() {
            st.name_empty += 1;
            s.name = Cow::Borrowed(DEFAULT_SPAN_NAME);
        } else if let Cow::Owned(n) = normalize_name(&s.name) {
            if s.name.len() > MAX_NAME_LEN {
                st.name_truncated += 1;
            } else {
                st.name_invalid += 1;
            }
            s.name = Cow::Owned(if n.is_empty() {
                DEFAULT_SPAN_NAME.to_string()
            } else {
                n
            });
        }
        if s.resource.is_empty() {
            st.resource_empty += 1;
            s.resource = s.name.clone();
        } else if s.resource.len() > MAX_RESOURCE_LEN {
            st.resource_truncated += 1;
            s.resource = Cow::Owned(truncate_utf8(&s.resource, MAX_RESOURCE_LEN).to_string());
        }
        if s.parent_id == s.trace_id && s.parent_id == s.span_id {
            s.parent_id = 0;
        }
        if s.duration < 0 || s.duration > i64::MAX - s.start.max(0) {
            st.invalid_duration += 1;
            s.duration = 0;
        }
        if s.start < YEAR_2000_NANOS {
            st.invalid_start_date += 1;
            let start = now.as_nanos() - s.duration;
            s.start = if start < 0 { now.as_nanos() } else { start };
        }
        if s.r#type.len() > MAX_TYPE_LEN {
            st.type_truncated += 1;
            s.r#type = Cow::Owned(truncate_utf8(&s.r#type, MAX_TYPE_LEN).to_string());
        }
        let mut bad_status = false;
        let needs_edit = s
            .meta
            .get(HTTP_STATUS_CODE_KEY)
            .is_some_and(|v| !valid_status_code(v))
            || (s.meta.max_entry_len() > MAX_META_KEY_LEN
                && s.meta
                    .iter()
                    .any(|(k, v)| k.len() > MAX_META_KEY_LEN || v.len() > MAX_META_VALUE_LEN));
        let empty = &mut Vec::new();
        let pairs = if needs_edit { s.meta.to_mut() } else { empty };
        for (k, v) in pairs.iter_mut() {
            if k.len() > MAX_META_KEY_LEN {
                st.meta_truncated += 1;
                *k = Cow::Owned(format!("{}...", truncate_utf8(k, MAX_META_KEY_LEN)));
            }
            if v.len() > MAX_META_VALUE_LEN {
                st.meta_truncated += 1;
                *v = Cow::Owned(format!("{}...", truncate_utf8(v, MAX_META_VALUE_LEN)));
            }
            if k == HTTP_STATUS_CODE_KEY && !valid_status_code(v) {
                bad_status = true;
            }
        }
        if bad_status {
            st.invalid_http_status_code += 1;
            s.remove_meta(HTTP_STATUS_CODE_KEY);
        }
        let long_key = s.metrics.iter().any(|(k, _)| k.len() > MAX_META_KEY_LEN);
        let empty = &mut Vec::new();
        let metrics = if long_key { s.metrics.to_mut() } else { empty };
        for (k, _) in metrics.iter_mut() {
            if k.len() > MAX_META_KEY_LEN {
                st.meta_truncated += 1;
                *k = Cow::Owned(format!("{}...", truncate_utf8(k, MAX_META_KEY_LEN)));
            }
        }
    }
}

/// Marks top-level spans the way the Agent's `traceutil.ComputeTopLevel` does: a span is
/// top-level when it is the root or its parent (in the chunk) has another service. Sets
/// `metrics["_dd.top_level"] = 1` on them. Used when the client did not compute it
/// (no `Datadog-Client-Computed-Top-Level` header).
pub fn compute_top_level(spans: &mut [Span<'_>]) {
    let lookup: Vec<(u64, usize)> = {
        let mut v: Vec<(u64, usize)> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        v.sort_unstable();
        v
    };
    let mut top = vec![false; spans.len()];
    for (i, s) in spans.iter().enumerate() {
        top[i] = match lookup.binary_search_by_key(&s.parent_id, |&(id, _)| id) {
            Ok(j) if s.parent_id != 0 => spans[lookup[j].1].service != s.service,
            _ => true,
        };
    }
    for (s, t) in spans.iter_mut().zip(top) {
        if t {
            s.set_metric(crate::span::TOP_LEVEL_KEY, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_services() {
        assert_eq!(normalize_name("envoy.proxy"), "envoy.proxy");
        assert!(matches!(normalize_name("envoy.proxy"), Cow::Borrowed(_)));
        assert_eq!(normalize_name("GET /users/{id}"), "GET_users_id");
        assert_eq!(normalize_name("9lives"), "lives");
        assert_eq!(normalize_name("???"), "");
        assert_eq!(
            normalize_service("productpage.bookinfo"),
            "productpage.bookinfo"
        );
        assert_eq!(normalize_service("Product Page!"), "product_page");
        assert_eq!(normalize_service(&"a".repeat(150)).len(), 100);
    }

    #[test]
    fn chunk_rules() {
        let now = Timestamp::from_secs(1_800_000_000);
        let mut n = Normalizer::new();
        let span = |t, s| Span {
            trace_id: t,
            span_id: s,
            ..Span::default()
        };
        let mut c = TraceChunk::from_spans(vec![span(1, 1), span(2, 2)]);
        assert_eq!(
            n.normalize_chunk(&mut c, "", now),
            Err(DropReason::ForeignSpan)
        );
        let mut c = TraceChunk::from_spans(vec![span(1, 0)]);
        assert_eq!(
            n.normalize_chunk(&mut c, "", now),
            Err(DropReason::SpanIdZero)
        );
        let mut c = TraceChunk::from_spans(vec![span(0, 1)]);
        assert_eq!(
            n.normalize_chunk(&mut c, "", now),
            Err(DropReason::TraceIdZero)
        );
        assert_eq!(n.stats.spans_dropped, 4);
        let mut s = span(5, 5);
        s.parent_id = 5;
        s.duration = -3;
        s.meta.push(("http.status_code".into(), "999".into()));
        let mut c = TraceChunk::from_spans(vec![s]);
        n.normalize_chunk(&mut c, "python", now).unwrap();
        let s = &c.spans[0];
        assert_eq!(
            (s.service.as_ref(), s.name.as_ref(), s.resource.as_ref()),
            (
                "unnamed-python-service",
                "unnamed_operation",
                "unnamed_operation"
            )
        );
        assert_eq!((s.parent_id, s.duration, s.start), (0, 0, now.as_nanos()));
        assert_eq!(s.meta("http.status_code"), None);
        assert_eq!(n.stats.invalid_http_status_code, 1);
    }
}
