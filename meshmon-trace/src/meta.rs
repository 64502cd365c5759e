//! [`Meta`]: a span's string tags, decoded lazily.
//!
//! Envoy spans carry ~28 tags; building a vector of pairs for each span is most of the
//! cost of decoding (and of the memory it touches). The msgpack decoders therefore check
//! a span's `meta` map completely at decode time (types, bounds, valid UTF-8) but keep it
//! as a view over the body (v0.4/v0.7) or over the string table's indices (v0.5). Lookups
//! scan the view; the first mutation turns it into a vector of pairs. Maps with invalid
//! UTF-8 are repaired into pairs at decode time, so a view only ever holds valid strings.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::msgpack::Reader;

type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Tag keys looked up on every span (stats, sampling, service map, normalisation): a v0.5
/// string table records where they are, so lookups compare indices, not strings.
pub(crate) const HOT_KEYS: [&str; 8] = [
    "span.kind",
    "http.status_code",
    "env",
    "peer.service",
    "upstream_cluster",
    "error.type",
    "_dd.p.tid",
    "_dd.p.dm",
];

/// Where the hot keys' values sit in a msgpack view, one slot per [`HOT_KEYS`] entry:
/// 0 when the key is absent, [`HOT_UNKNOWN`] when not recorded (lookups scan), else the
/// value's offset in the view plus one.
pub(crate) type HotOffsets = [u16; HOT_KEYS.len()];
/// A [`HotOffsets`] slot that was not recorded.
pub(crate) const HOT_UNKNOWN: u16 = u16::MAX;

/// The [`HOT_KEYS`] slot of a key, by length first (a few byte compares at most).
#[inline]
pub(crate) fn hot_slot(key: &[u8]) -> Option<usize> {
    use crate::decode::is;
    match key.len() {
        3 if is(key, b"env") => Some(2),
        8 if is(key, b"_dd.p.dm") => Some(7),
        9 if is(key, b"span.kind") => Some(0),
        9 if is(key, b"_dd.p.tid") => Some(6),
        10 if is(key, b"error.type") => Some(5),
        12 if is(key, b"peer.service") => Some(3),
        16 if is(key, b"http.status_code") => Some(1),
        16 if is(key, b"upstream_cluster") => Some(4),
        _ => None,
    }
}

/// A v0.5 string table shared by the spans of a payload.
#[derive(Debug)]
pub(crate) struct StringTable<'a> {
    pub(crate) strings: Vec<Cow<'a, str>>,
    hot: [Option<u32>; HOT_KEYS.len()],
}

impl<'a> StringTable<'a> {
    pub(crate) fn new(strings: Vec<Cow<'a, str>>) -> Self {
        let mut hot = [None; HOT_KEYS.len()];
        for (slot, key) in hot.iter_mut().zip(HOT_KEYS) {
            *slot = strings.iter().position(|s| s == key).map(|i| i as u32);
        }
        StringTable { strings, hot }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&Cow<'a, str>> {
        self.strings.get(i)
    }
}

/// String tags of a span, in wire order.
#[derive(Clone, Default)]
pub struct Meta<'a> {
    /// The entries when `view` is `None`.
    pairs: Vec<Pair<'a>>,
    view: Option<View<'a>>,
}

#[derive(Clone)]
enum View<'a> {
    /// `len` entries of msgpack str/bin/nil key-value pairs, all valid UTF-8.
    Msgpack {
        bytes: &'a [u8],
        len: u32,
        max_len: u32,
        hot: HotOffsets,
    },
    /// `len` entries of msgpack uint index pairs into `table`, all in range.
    Indexed {
        bytes: &'a [u8],
        len: u32,
        table: Arc<StringTable<'a>>,
        max_len: u32,
    },
}

/// Iterator over `(key, value)`.
pub struct Iter<'s> {
    inner: IterInner<'s>,
}

enum IterInner<'s> {
    Pairs(std::slice::Iter<'s, Pair<'s>>),
    Msgpack {
        r: Reader<'s>,
        left: u32,
    },
    Indexed {
        r: Reader<'s>,
        left: u32,
        table: &'s StringTable<'s>,
    },
}

fn as_str(b: &[u8]) -> &str {
    // Checked at decode time; a failure here cannot happen, and yields "" rather than panic.
    std::str::from_utf8(b).unwrap_or("")
}

impl<'s> Iterator for Iter<'s> {
    type Item = (&'s str, &'s str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterInner::Pairs(it) => it.next().map(|(k, v)| (k.as_ref(), v.as_ref())),
            IterInner::Msgpack { r, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let k = r.str_bytes_fast("meta key", usize::MAX).ok()?;
                let v = r.str_bytes_fast("meta value", usize::MAX).ok()?;
                Some((as_str(k), as_str(v)))
            }
            IterInner::Indexed { r, left, table } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let k = r.index_fast().ok()?;
                let v = r.index_fast().ok()?;
                let s = |i: u64| table.get(i as usize).map_or("", |c| c.as_ref());
                Some((s(k), s(v)))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            IterInner::Pairs(it) => it.len(),
            IterInner::Msgpack { left, .. } | IterInner::Indexed { left, .. } => *left as usize,
        };
        (n, Some(n))
    }
}

impl<'a> Meta<'a> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A view over `len` checked msgpack entries whose longest string has `max_len` bytes,
    /// with the hot keys' value offsets recorded while checking them.
    pub(crate) fn from_msgpack(bytes: &'a [u8], len: u32, max_len: u32, hot: HotOffsets) -> Self {
        Meta {
            pairs: Vec::new(),
            view: Some(View::Msgpack {
                bytes,
                len,
                max_len,
                hot,
            }),
        }
    }

    /// A view over `len` checked index pairs into `table`, whose longest string has
    /// at most `max_len` bytes.
    pub(crate) fn from_indexed(
        bytes: &'a [u8],
        len: u32,
        table: Arc<StringTable<'a>>,
        max_len: u32,
    ) -> Self {
        Meta {
            pairs: Vec::new(),
            view: Some(View::Indexed {
                bytes,
                len,
                table,
                max_len,
            }),
        }
    }

    /// An upper bound of the longest key or value, in bytes (exact for views, computed for
    /// pairs), so a caller can skip scanning for over-long entries.
    pub fn max_entry_len(&self) -> usize {
        match &self.view {
            None => self
                .pairs
                .iter()
                .map(|(k, v)| k.len().max(v.len()))
                .max()
                .unwrap_or(0),
            Some(View::Msgpack { max_len, .. } | View::Indexed { max_len, .. }) => {
                *max_len as usize
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.view {
            None => self.pairs.len(),
            Some(View::Msgpack { len, .. } | View::Indexed { len, .. }) => *len as usize,
        }
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates over `(key, value)` in wire order.
    pub fn iter(&self) -> Iter<'_> {
        let inner = match &self.view {
            None => IterInner::Pairs(self.pairs.iter()),
            Some(View::Msgpack { bytes, len, .. }) => IterInner::Msgpack {
                r: Reader::new(bytes, 0),
                left: *len,
            },
            Some(View::Indexed {
                bytes, len, table, ..
            }) => IterInner::Indexed {
                r: Reader::new(bytes, 0),
                left: *len,
                table,
            },
        };
        Iter { inner }
    }

    /// The value of a key (first occurrence).
    pub fn get(&self, key: &str) -> Option<&str> {
        let slot = hot_slot(key.as_bytes());
        if let (Some(View::Msgpack { bytes, hot, .. }), Some(h)) = (&self.view, slot) {
            match hot[h] {
                0 => return None,
                HOT_UNKNOWN => {}
                at => {
                    let mut r = Reader::new(bytes.get(usize::from(at) - 1..)?, 0);
                    return r.str_bytes_fast("meta value", usize::MAX).ok().map(as_str);
                }
            }
        }
        if let (
            Some(View::Indexed {
                bytes, len, table, ..
            }),
            Some(h),
        ) = (&self.view, slot)
        {
            // Compare indices: a key absent from the table is absent from every span.
            let want = u64::from(table.hot[h]?);
            let mut r = Reader::new(bytes, 0);
            for _ in 0..*len {
                let k = r.index_fast().ok()?;
                let v = r.index_fast().ok()?;
                if k == want {
                    return table.get(v as usize).map(|s| s.as_ref());
                }
            }
            return None;
        }
        if let Some(View::Msgpack { bytes, len, .. }) = &self.view {
            // Compare raw bytes: only the value found is turned into a `&str`.
            let want = key.as_bytes();
            let mut r = Reader::new(bytes, 0);
            for _ in 0..*len {
                let k = r.str_bytes_fast("meta key", usize::MAX).ok()?;
                let v = r.str_bytes_fast("meta value", usize::MAX).ok()?;
                if k == want {
                    return Some(as_str(v));
                }
            }
            return None;
        }
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The pairs, materialised for editing.
    pub fn to_mut(&mut self) -> &mut Vec<(Cow<'a, str>, Cow<'a, str>)> {
        if let Some(view) = self.view.take() {
            self.pairs = match view {
                View::Msgpack { bytes, len, .. } => {
                    let mut r = Reader::new(bytes, 0);
                    (0..len)
                        .filter_map(|_| {
                            let k = r.str_bytes("meta key", usize::MAX).ok()?;
                            let v = r.str_bytes("meta value", usize::MAX).ok()?;
                            Some((Cow::Borrowed(as_str(k)), Cow::Borrowed(as_str(v))))
                        })
                        .collect()
                }
                View::Indexed {
                    bytes, len, table, ..
                } => {
                    let mut r = Reader::new(bytes, 0);
                    (0..len)
                        .filter_map(|_| {
                            let k = table.get(r.u64("meta key").ok()? as usize)?.clone();
                            let v = table.get(r.u64("meta value").ok()? as usize)?.clone();
                            Some((k, v))
                        })
                        .collect()
                }
            };
        }
        &mut self.pairs
    }

    /// Appends a pair (no de-duplication).
    pub fn push(&mut self, pair: (Cow<'a, str>, Cow<'a, str>)) {
        self.to_mut().push(pair);
    }

    /// Copies borrowed strings so the map outlives the payload.
    pub fn into_owned(self) -> Meta<'static> {
        let pairs = self
            .iter()
            .map(|(k, v)| (Cow::Owned(k.to_owned()), Cow::Owned(v.to_owned())))
            .collect();
        Meta { pairs, view: None }
    }
}

impl<'a> From<Vec<(Cow<'a, str>, Cow<'a, str>)>> for Meta<'a> {
    fn from(v: Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Self {
        Meta {
            pairs: v,
            view: None,
        }
    }
}

impl<'a, K: Into<Cow<'a, str>>, V: Into<Cow<'a, str>>> FromIterator<(K, V)> for Meta<'a> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Meta {
            pairs: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            view: None,
        }
    }
}

impl PartialEq for Meta<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Meta<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'s> IntoIterator for &'s Meta<'_> {
    type Item = (&'s str, &'s str);
    type IntoIter = Iter<'s>;
    fn into_iter(self) -> Iter<'s> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::Writer;

    #[test]
    fn views_and_pairs_agree() {
        let mut w = Writer::default();
        for (k, v) in [("a", "1"), ("b", "2")] {
            w.str(k);
            w.str(v);
        }
        let view = Meta::from_msgpack(&w.buf, 2, 1, [HOT_UNKNOWN; HOT_KEYS.len()]);
        let pairs: Meta = vec![("a", "1"), ("b", "2")].into_iter().collect();
        assert_eq!(view, pairs);
        assert_eq!(view.get("b"), Some("2"));
        let mut edited = view.clone();
        edited.push(("c".into(), "3".into()));
        assert_eq!(edited.len(), 3);
        assert_eq!(view.len(), 2);
        let table = Arc::new(StringTable::new(vec![
            Cow::Borrowed("env"),
            Cow::Borrowed("v"),
        ]));
        let idx = [0x00u8, 0x01];
        let m = Meta::from_indexed(&idx, 1, table, 1);
        assert_eq!(m.get("env"), Some("v"));
        assert_eq!(m.get("span.kind"), None);
        assert_eq!(format!("{m:?}"), r#"{"env": "v"}"#);
        assert_eq!(m.into_owned().get("env"), Some("v"));
    }
}

/// Numeric tags of a span, in wire order; like [`Meta`], a checked view after msgpack
/// decoding, pairs after the first edit.
#[derive(Clone, Default)]
pub struct Metrics<'a> {
    /// The entries when `view` is `None`.
    pairs: Vec<(Cow<'a, str>, f64)>,
    view: Option<MView<'a>>,
}

#[derive(Clone)]
enum MView<'a> {
    /// `len` entries of msgpack str/bin/nil keys (valid UTF-8) and numbers.
    Msgpack { bytes: &'a [u8], len: u32 },
    /// `len` entries of msgpack uint key indices into `table` and numbers.
    Indexed {
        bytes: &'a [u8],
        len: u32,
        table: Arc<StringTable<'a>>,
    },
}

/// Iterator over `(key, value)` of [`Metrics`].
pub struct MetricsIter<'s> {
    inner: MIterInner<'s>,
}

enum MIterInner<'s> {
    Pairs(std::slice::Iter<'s, (Cow<'s, str>, f64)>),
    Msgpack {
        r: Reader<'s>,
        left: u32,
    },
    Indexed {
        r: Reader<'s>,
        left: u32,
        table: &'s StringTable<'s>,
    },
}

impl<'s> Iterator for MetricsIter<'s> {
    type Item = (&'s str, f64);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            MIterInner::Pairs(it) => it.next().map(|(k, v)| (k.as_ref(), *v)),
            MIterInner::Msgpack { r, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let k = r.str_bytes("metrics key", usize::MAX).ok()?;
                let v = r.f64("metrics value").ok()?;
                Some((as_str(k), v))
            }
            MIterInner::Indexed { r, left, table } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let k = r.index_fast().ok()?;
                let v = r.f64("metrics value").ok()?;
                Some((table.get(k as usize).map_or("", |c| c.as_ref()), v))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            MIterInner::Pairs(it) => it.len(),
            MIterInner::Msgpack { left, .. } | MIterInner::Indexed { left, .. } => *left as usize,
        };
        (n, Some(n))
    }
}

impl<'a> Metrics<'a> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A view over `len` checked msgpack entries.
    pub(crate) fn from_msgpack(bytes: &'a [u8], len: u32) -> Self {
        Metrics {
            pairs: Vec::new(),
            view: Some(MView::Msgpack { bytes, len }),
        }
    }

    /// A view over `len` checked (index, number) entries.
    pub(crate) fn from_indexed(bytes: &'a [u8], len: u32, table: Arc<StringTable<'a>>) -> Self {
        Metrics {
            pairs: Vec::new(),
            view: Some(MView::Indexed { bytes, len, table }),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.view {
            None => self.pairs.len(),
            Some(MView::Msgpack { len, .. } | MView::Indexed { len, .. }) => *len as usize,
        }
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates over `(key, value)` in wire order.
    pub fn iter(&self) -> MetricsIter<'_> {
        let inner = match &self.view {
            None => MIterInner::Pairs(self.pairs.iter()),
            Some(MView::Msgpack { bytes, len }) => MIterInner::Msgpack {
                r: Reader::new(bytes, 0),
                left: *len,
            },
            Some(MView::Indexed { bytes, len, table }) => MIterInner::Indexed {
                r: Reader::new(bytes, 0),
                left: *len,
                table,
            },
        };
        MetricsIter { inner }
    }

    /// The value of a key (first occurrence).
    pub fn get(&self, key: &str) -> Option<f64> {
        if let Some(MView::Msgpack { bytes, len }) = &self.view {
            // Compare raw bytes, no UTF-8 conversion of keys.
            let want = key.as_bytes();
            let mut r = Reader::new(bytes, 0);
            for _ in 0..*len {
                let k = r.str_bytes_fast("metrics key", usize::MAX).ok()?;
                let v = r.f64("metrics value").ok()?;
                if k == want {
                    return Some(v);
                }
            }
            return None;
        }
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The pairs, materialised for editing.
    pub fn to_mut(&mut self) -> &mut Vec<(Cow<'a, str>, f64)> {
        if let Some(view) = self.view.take() {
            self.pairs = match view {
                MView::Msgpack { bytes, len } => {
                    let mut r = Reader::new(bytes, 0);
                    (0..len)
                        .filter_map(|_| {
                            let k = r.str_bytes("metrics key", usize::MAX).ok()?;
                            let v = r.f64("metrics value").ok()?;
                            Some((Cow::Borrowed(as_str(k)), v))
                        })
                        .collect()
                }
                MView::Indexed { bytes, len, table } => {
                    let mut r = Reader::new(bytes, 0);
                    (0..len)
                        .filter_map(|_| {
                            let k = table.get(r.u64("metrics key").ok()? as usize)?.clone();
                            let v = r.f64("metrics value").ok()?;
                            Some((k, v))
                        })
                        .collect()
                }
            };
        }
        &mut self.pairs
    }

    /// Appends a pair (no de-duplication).
    pub fn push(&mut self, pair: (Cow<'a, str>, f64)) {
        self.to_mut().push(pair);
    }

    /// Copies borrowed strings so the map outlives the payload.
    pub fn into_owned(self) -> Metrics<'static> {
        let pairs = self
            .iter()
            .map(|(k, v)| (Cow::Owned(k.to_owned()), v))
            .collect();
        Metrics { pairs, view: None }
    }
}

impl<'a> From<Vec<(Cow<'a, str>, f64)>> for Metrics<'a> {
    fn from(v: Vec<(Cow<'a, str>, f64)>) -> Self {
        Metrics {
            pairs: v,
            view: None,
        }
    }
}

impl<'a, K: Into<Cow<'a, str>>> FromIterator<(K, f64)> for Metrics<'a> {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Self {
        Metrics {
            pairs: iter.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            view: None,
        }
    }
}

impl PartialEq for Metrics<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Metrics<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'s> IntoIterator for &'s Metrics<'_> {
    type Item = (&'s str, f64);
    type IntoIter = MetricsIter<'s>;
    fn into_iter(self) -> MetricsIter<'s> {
        self.iter()
    }
}
