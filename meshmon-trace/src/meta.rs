//! [`TagMap`]: a span's tags, decoded lazily — [`Meta`] (strings) and [`Metrics`]
//! (numbers) are the same type over two value kinds.
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

/// Tags of a span in wire order, keyed by string: [`Meta`] (string values) and
/// [`Metrics`] (numeric values). After msgpack decoding it is a checked view over the body
/// (v0.4/v0.7) or over the v0.5 string table's indices; the first edit turns it into
/// pairs.
#[derive(Clone)]
pub struct TagMap<'a, V> {
    /// The entries when `view` is `None`.
    pairs: Vec<(Cow<'a, str>, V)>,
    view: Option<View<'a>>,
}

/// String tags (`meta`).
pub type Meta<'a> = TagMap<'a, Cow<'a, str>>;
/// Numeric tags (`metrics`).
pub type Metrics<'a> = TagMap<'a, f64>;

#[derive(Clone)]
enum View<'a> {
    /// `len` entries of msgpack str/bin/nil keys (valid UTF-8) and values.
    Msgpack {
        bytes: &'a [u8],
        len: u32,
        max_len: u32,
        hot: HotOffsets,
    },
    /// `len` entries of msgpack uint key indices into `table` and values (indices too,
    /// for strings).
    Indexed {
        bytes: &'a [u8],
        len: u32,
        table: Arc<StringTable<'a>>,
        max_len: u32,
    },
}

fn as_str(b: &[u8]) -> &str {
    // Checked at decode time; a failure here cannot happen, and yields "" rather than panic.
    std::str::from_utf8(b).unwrap_or("")
}

mod sealed {
    /// Only [`super::Meta`] and [`super::Metrics`] values.
    pub trait Sealed {}
    impl Sealed for std::borrow::Cow<'_, str> {}
    impl Sealed for f64 {}
}

/// A tag value kind: `Cow<str>` ([`Meta`]) or `f64` ([`Metrics`]). Sealed.
// The hidden readers take the crate's msgpack cursor; the trait is sealed, so no one
// outside can name or implement them.
#[allow(private_interfaces)]
pub trait TagValue: sealed::Sealed + Clone {
    /// What lookups and iteration return: `&str` or `f64`.
    type Ref<'s>: Copy + PartialEq + fmt::Debug
    where
        Self: 's;
    /// The borrowed form of a stored value.
    fn by_ref(&self) -> Self::Ref<'_>;
    #[doc(hidden)]
    /// A value in a msgpack view.
    fn peek_msgpack<'s>(r: &mut Reader<'s>) -> Option<Self::Ref<'s>>
    where
        Self: 's;
    #[doc(hidden)]
    /// A value in an indexed view.
    fn peek_indexed<'s>(r: &mut Reader<'s>, t: &'s StringTable<'s>) -> Option<Self::Ref<'s>>
    where
        Self: 's;
    #[doc(hidden)]
    /// Passes over a value of a msgpack view without converting it.
    fn skip_msgpack(r: &mut Reader<'_>) -> Option<()>;
    #[doc(hidden)]
    /// Passes over a value of an indexed view without resolving it.
    fn skip_indexed(r: &mut Reader<'_>) -> Option<()>;
}

#[allow(private_interfaces)]
impl TagValue for Cow<'_, str> {
    type Ref<'s>
        = &'s str
    where
        Self: 's;
    #[inline]
    fn by_ref(&self) -> &str {
        self.as_ref()
    }
    #[inline]
    fn peek_msgpack<'s>(r: &mut Reader<'s>) -> Option<&'s str>
    where
        Self: 's,
    {
        r.str_bytes_fast("meta value", usize::MAX).ok().map(as_str)
    }
    #[inline]
    fn peek_indexed<'s>(r: &mut Reader<'s>, t: &'s StringTable<'s>) -> Option<&'s str>
    where
        Self: 's,
    {
        let i = r.index_fast().ok()?;
        Some(t.get(i as usize).map_or("", |c| c.as_ref()))
    }
    #[inline]
    fn skip_msgpack(r: &mut Reader<'_>) -> Option<()> {
        r.str_bytes_fast("meta value", usize::MAX).ok().map(|_| ())
    }
    #[inline]
    fn skip_indexed(r: &mut Reader<'_>) -> Option<()> {
        r.index_fast().ok().map(|_| ())
    }
}

#[allow(private_interfaces)]
impl TagValue for f64 {
    type Ref<'s> = f64;
    #[inline]
    fn by_ref(&self) -> f64 {
        *self
    }
    #[inline]
    fn peek_msgpack<'s>(r: &mut Reader<'s>) -> Option<f64>
    where
        Self: 's,
    {
        r.f64("metrics value").ok()
    }
    #[inline]
    fn peek_indexed<'s>(r: &mut Reader<'s>, _: &'s StringTable<'s>) -> Option<f64>
    where
        Self: 's,
    {
        r.f64("metrics value").ok()
    }
    #[inline]
    fn skip_msgpack(r: &mut Reader<'_>) -> Option<()> {
        r.f64("metrics value").ok().map(|_| ())
    }
    #[inline]
    fn skip_indexed(r: &mut Reader<'_>) -> Option<()> {
        r.f64("metrics value").ok().map(|_| ())
    }
}

/// Materialises a view into pairs with the value readers of one kind.
fn materialise<'a, V>(
    view: View<'a>,
    msgpack: impl Fn(&mut Reader<'a>) -> Option<V>,
    indexed: impl Fn(&mut Reader<'a>, &StringTable<'a>) -> Option<V>,
) -> Vec<(Cow<'a, str>, V)> {
    match view {
        View::Msgpack { bytes, len, .. } => {
            let mut r = Reader::new(bytes, 0);
            (0..len)
                .filter_map(|_| {
                    let k = r.str_bytes("tag key", usize::MAX).ok()?;
                    Some((Cow::Borrowed(as_str(k)), msgpack(&mut r)?))
                })
                .collect()
        }
        View::Indexed {
            bytes, len, table, ..
        } => {
            let mut r = Reader::new(bytes, 0);
            (0..len)
                .filter_map(|_| {
                    let k = table.get(r.u64("tag key").ok()? as usize)?.clone();
                    Some((k, indexed(&mut r, &table)?))
                })
                .collect()
        }
    }
}

/// Iterator over the `(key, value)` pairs of a [`TagMap`].
pub struct Iter<'s, V> {
    inner: IterInner<'s, V>,
}

enum IterInner<'s, V> {
    Pairs(std::slice::Iter<'s, (Cow<'s, str>, V)>),
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

impl<'s, V: TagValue + 's> Iterator for Iter<'s, V> {
    type Item = (&'s str, V::Ref<'s>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterInner::Pairs(it) => it.next().map(|(k, v)| (k.as_ref(), v.by_ref())),
            IterInner::Msgpack { r, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let k = r.str_bytes_fast("tag key", usize::MAX).ok()?;
                Some((as_str(k), V::peek_msgpack(r)?))
            }
            IterInner::Indexed { r, left, table } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let k = r.index_fast().ok()?;
                let k = table.get(k as usize).map_or("", |c| c.as_ref());
                Some((k, V::peek_indexed(r, table)?))
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

impl<V> Default for TagMap<'_, V> {
    fn default() -> Self {
        TagMap {
            pairs: Vec::new(),
            view: None,
        }
    }
}

impl<'a, V: TagValue> TagMap<'a, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A view over `len` checked msgpack entries whose longest string has `max_len` bytes,
    /// with the hot keys' value offsets recorded while checking them.
    pub(crate) fn from_msgpack(bytes: &'a [u8], len: u32, max_len: u32, hot: HotOffsets) -> Self {
        TagMap {
            pairs: Vec::new(),
            view: Some(View::Msgpack {
                bytes,
                len,
                max_len,
                hot,
            }),
        }
    }

    /// A view over `len` checked entries whose keys (and string values) are indices into
    /// `table`; its longest string has at most `max_len` bytes.
    pub(crate) fn from_indexed(
        bytes: &'a [u8],
        len: u32,
        table: Arc<StringTable<'a>>,
        max_len: u32,
    ) -> Self {
        TagMap {
            pairs: Vec::new(),
            view: Some(View::Indexed {
                bytes,
                len,
                table,
                max_len,
            }),
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
    pub fn iter(&self) -> Iter<'_, V> {
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

    /// The value of a key (first occurrence). Hot keys (`span.kind`, `env`,
    /// `http.status_code`…) are found without a scan.
    pub fn get(&self, key: &str) -> Option<V::Ref<'_>> {
        let slot = hot_slot(key.as_bytes());
        match (&self.view, slot) {
            (Some(View::Msgpack { bytes, hot, .. }), Some(h)) => match hot[h] {
                0 => return None,
                HOT_UNKNOWN => {}
                at => {
                    let mut r = Reader::new(bytes.get(usize::from(at) - 1..)?, 0);
                    return V::peek_msgpack(&mut r);
                }
            },
            (
                Some(View::Indexed {
                    bytes, len, table, ..
                }),
                Some(h),
            ) => {
                // Compare indices: a key absent from the table is absent from every span.
                let want = u64::from(table.hot[h]?);
                let mut r = Reader::new(bytes, 0);
                for _ in 0..*len {
                    let k = r.index_fast().ok()?;
                    if k == want {
                        return V::peek_indexed(&mut r, table);
                    }
                    V::skip_indexed(&mut r)?;
                }
                return None;
            }
            _ => {}
        }
        if let Some(View::Msgpack { bytes, len, .. }) = &self.view {
            // Compare raw bytes: no UTF-8 conversion of the keys passed over.
            let want = key.as_bytes();
            let mut r = Reader::new(bytes, 0);
            for _ in 0..*len {
                let k = r.str_bytes_fast("tag key", usize::MAX).ok()?;
                if k == want {
                    return V::peek_msgpack(&mut r);
                }
                V::skip_msgpack(&mut r)?;
            }
            return None;
        }
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl<'a> Meta<'a> {
    /// The pairs, materialised for editing (strings keep borrowing the body).
    pub fn to_mut(&mut self) -> &mut Vec<(Cow<'a, str>, Cow<'a, str>)> {
        if let Some(view) = self.view.take() {
            self.pairs = materialise(
                view,
                |r| {
                    let v = r.str_bytes("meta value", usize::MAX).ok()?;
                    Some(Cow::Borrowed(as_str(v)))
                },
                |r, t| t.get(r.u64("meta value").ok()? as usize).cloned(),
            );
        }
        &mut self.pairs
    }

    /// Appends a pair (no de-duplication).
    pub fn push(&mut self, pair: (Cow<'a, str>, Cow<'a, str>)) {
        self.to_mut().push(pair);
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

    /// Copies borrowed strings so the map outlives the payload.
    pub fn into_owned(self) -> Meta<'static> {
        let pairs = self
            .iter()
            .map(|(k, v)| (Cow::Owned(k.to_owned()), Cow::Owned(v.to_owned())))
            .collect();
        TagMap { pairs, view: None }
    }
}

impl<'a> Metrics<'a> {
    /// The pairs, materialised for editing.
    pub fn to_mut(&mut self) -> &mut Vec<(Cow<'a, str>, f64)> {
        if let Some(view) = self.view.take() {
            self.pairs = materialise(
                view,
                |r| r.f64("metrics value").ok(),
                |r, _| r.f64("metrics value").ok(),
            );
        }
        &mut self.pairs
    }

    /// Appends a pair (no de-duplication).
    pub fn push(&mut self, pair: (Cow<'a, str>, f64)) {
        self.to_mut().push(pair);
    }

    /// Copies borrowed keys so the map outlives the payload.
    pub fn into_owned(self) -> Metrics<'static> {
        let pairs = self
            .iter()
            .map(|(k, v)| (Cow::Owned(k.to_owned()), v))
            .collect();
        TagMap { pairs, view: None }
    }
}

impl<'a, V> From<Vec<(Cow<'a, str>, V)>> for TagMap<'a, V> {
    fn from(v: Vec<(Cow<'a, str>, V)>) -> Self {
        TagMap {
            pairs: v,
            view: None,
        }
    }
}

impl<'a, K: Into<Cow<'a, str>>, W: Into<Cow<'a, str>>> FromIterator<(K, W)> for Meta<'a> {
    fn from_iter<I: IntoIterator<Item = (K, W)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<Vec<_>>()
            .into()
    }
}

impl<'a, K: Into<Cow<'a, str>>> FromIterator<(K, f64)> for Metrics<'a> {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect::<Vec<_>>()
            .into()
    }
}

impl<V: TagValue> PartialEq for TagMap<'_, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<V: TagValue> fmt::Debug for TagMap<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'s, V: TagValue + 's> IntoIterator for &'s TagMap<'_, V> {
    type Item = (&'s str, V::Ref<'s>);
    type IntoIter = Iter<'s, V>;
    fn into_iter(self) -> Iter<'s, V> {
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
