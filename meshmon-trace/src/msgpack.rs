//! A small zero-copy [MessagePack](https://github.com/msgpack/msgpack/blob/master/spec.md)
//! reader over `&[u8]` and a writer into `Vec<u8>`.
//!
//! The reader is lenient exactly where the Datadog Agent's generated `msgp` decoders are
//! (`pkg/trace/pb/decoder_bytes.go`): integers may be signed or unsigned, strings may be
//! `str` or `bin`, `nil` reads as the zero value, and invalid UTF-8 is repaired the way Go's
//! `strings.ToValidUTF8(s, "\uFFFD")` does (each run of invalid bytes becomes one U+FFFD).
//! It is strict about sizes: a declared length that exceeds the remaining bytes or a
//! configured limit is an error with the byte offset, before anything is allocated.

use std::borrow::Cow;

use crate::error::DecodeError;

/// The two msgpack containers.
#[derive(Clone, Copy)]
enum Container {
    Array,
    Map,
}

/// A cursor over a MessagePack buffer.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Maximum nesting depth when skipping unknown values.
    pub(crate) max_depth: u32,
}

/// What a marker byte announces, for error messages.
pub(crate) fn marker_name(m: u8) -> &'static str {
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => "integer",
        0x80..=0x8f | 0xde | 0xdf => "map",
        0x90..=0x9f | 0xdc | 0xdd => "array",
        0xa0..=0xbf | 0xd9..=0xdb => "str",
        0xc0 => "nil",
        0xc2 | 0xc3 => "bool",
        0xc4..=0xc6 => "bin",
        0xca | 0xcb => "float",
        0xc7..=0xc9 | 0xd4..=0xd8 => "ext",
        _ => "reserved marker",
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], max_depth: u32) -> Self {
        Self {
            buf,
            pos: 0,
            max_depth,
        }
    }

    /// Current byte offset.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes between two offsets already read.
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        self.buf.get(from..to).unwrap_or(&[])
    }

    /// Bytes not read yet.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn eof(&self, what: &'static str) -> DecodeError {
        DecodeError::UnexpectedEof {
            offset: self.pos,
            what,
        }
    }

    #[inline]
    pub(crate) fn peek(&self, what: &'static str) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.eof(what))
    }

    #[inline]
    fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = self.peek(what)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                what,
                len: n as u64,
                remaining: self.remaining() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn be<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn type_err(
        &self,
        at: usize,
        marker: u8,
        field: &'static str,
        expected: &'static str,
    ) -> DecodeError {
        DecodeError::Type {
            offset: at,
            found: marker_name(marker),
            field,
            expected,
        }
    }

    /// An array header; `nil` reads as an empty array. The length is checked against
    /// `limit` and against the bytes left (every element takes at least one byte).
    #[inline]
    pub(crate) fn array_len(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<usize, DecodeError> {
        self.container_len(Container::Array, field, limit)
    }

    /// A map header; `nil` reads as an empty map. Checked like [`Reader::array_len`]
    /// (every entry takes at least two bytes).
    #[inline]
    pub(crate) fn map_len(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<usize, DecodeError> {
        self.container_len(Container::Map, field, limit)
    }

    /// The header of an array or a map: fix (low nibble), 16- or 32-bit length, or `nil`.
    #[inline(always)]
    fn container_len(
        &mut self,
        kind: Container,
        field: &'static str,
        limit: usize,
    ) -> Result<usize, DecodeError> {
        let (fix, m16, m32, min_elem, name) = match kind {
            Container::Array => (0x90, 0xdc, 0xdd, 1, "array"),
            Container::Map => (0x80, 0xde, 0xdf, 2, "map"),
        };
        let at = self.pos;
        let m = self.byte(field)?;
        let len = if m & 0xf0 == fix {
            (m & 0x0f) as usize
        } else if m == m16 {
            u16::from_be_bytes(self.be(field)?) as usize
        } else if m == m32 {
            u32::from_be_bytes(self.be(field)?) as usize
        } else if m == 0xc0 {
            0
        } else {
            return Err(self.type_err(at, m, field, name));
        };
        self.check_len(at, field, len, min_elem, limit)?;
        Ok(len)
    }

    #[inline]
    fn check_len(
        &self,
        at: usize,
        field: &'static str,
        len: usize,
        min_elem: usize,
        limit: usize,
    ) -> Result<(), DecodeError> {
        if len > limit {
            return Err(DecodeError::LimitExceeded {
                offset: at,
                what: field,
                len: len as u64,
                limit: limit as u64,
            });
        }
        if len.saturating_mul(min_elem) > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: at,
                what: field,
                len: len as u64,
                remaining: self.remaining() as u64,
            });
        }
        Ok(())
    }

    /// Raw bytes of a `str` or `bin`; `nil` is empty.
    #[inline]
    pub(crate) fn str_bytes(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let m = self.byte(field)?;
        let len = match m {
            0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 | 0xc4 => self.byte(field)? as usize,
            0xda | 0xc5 => u16::from_be_bytes(self.be(field)?) as usize,
            0xdb | 0xc6 => u32::from_be_bytes(self.be(field)?) as usize,
            0xc0 => 0,
            _ => return Err(self.type_err(at, m, field, "str or bin")),
        };
        if len > limit {
            return Err(DecodeError::LimitExceeded {
                offset: at,
                what: field,
                len: len as u64,
                limit: limit as u64,
            });
        }
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: at,
                what: field,
                len: len as u64,
                remaining: self.remaining() as u64,
            });
        }
        self.take(len, field)
    }

    /// [`Reader::str_bytes`] with the `fixstr` case (strings under 32 bytes, most tags)
    /// inlined.
    #[inline(always)]
    pub(crate) fn str_bytes_fast(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<&'a [u8], DecodeError> {
        if let Some(&m) = self.buf.get(self.pos) {
            // fixstr (under 32 bytes) and str8 (under 256: URLs, ids, user agents).
            let (len, start) = if m & 0xe0 == 0xa0 {
                ((m & 0x1f) as usize, self.pos + 1)
            } else if m == 0xd9
                && let Some(&l) = self.buf.get(self.pos + 1)
            {
                (l as usize, self.pos + 2)
            } else {
                return self.str_bytes(field, limit);
            };
            if let Some(s) = self.buf.get(start..start + len)
                && len <= limit
            {
                self.pos = start + len;
                return Ok(s);
            }
        }
        self.str_bytes(field, limit)
    }

    /// A string (`str`, `bin` or `nil`), borrowed when valid UTF-8, repaired otherwise.
    #[inline]
    pub(crate) fn str(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<Cow<'a, str>, DecodeError> {
        let b = self.str_bytes_fast(field, limit)?;
        Ok(utf8_lossy_go(b))
    }

    /// [`Reader::u64`] with the markers tracers use for ids, times and durations
    /// (positive fixint, uint32, uint64, int64) inlined.
    #[inline(always)]
    pub(crate) fn u64_fast(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let p = self.pos;
        match self.buf.get(p) {
            Some(&m) if m < 0x80 => {
                self.pos = p + 1;
                Ok(u64::from(m))
            }
            Some(&(0xcf | 0xd3)) => match self.buf.get(p + 1..p + 9) {
                Some(b) => {
                    self.pos = p + 9;
                    Ok(u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
                }
                None => self.u64(field),
            },
            Some(&0xce) => match self.buf.get(p + 1..p + 5) {
                Some(b) => {
                    self.pos = p + 5;
                    Ok(u64::from(u32::from_be_bytes(
                        b.try_into().unwrap_or([0; 4]),
                    )))
                }
                None => self.u64(field),
            },
            _ => self.u64(field),
        }
    }

    /// [`Reader::f64`] with float64 inlined.
    #[inline(always)]
    pub(crate) fn f64_fast(&mut self, field: &'static str) -> Result<f64, DecodeError> {
        let p = self.pos;
        if self.buf.get(p) == Some(&0xcb)
            && let Some(b) = self.buf.get(p + 1..p + 9)
        {
            self.pos = p + 9;
            return Ok(f64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
        }
        self.f64(field)
    }

    /// An unsigned 64-bit integer: uint, non-negative... or negative int (reinterpreted as the
    /// Agent does), or `nil` (0).
    #[inline]
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let m = self.byte(field)?;
        Ok(match m {
            0x00..=0x7f => m as u64,
            0xcc => self.byte(field)? as u64,
            0xcd => u16::from_be_bytes(self.be(field)?) as u64,
            0xce => u32::from_be_bytes(self.be(field)?) as u64,
            0xcf => u64::from_be_bytes(self.be(field)?),
            0xe0..=0xff => (m as i8) as i64 as u64,
            0xd0 => (self.byte(field)? as i8) as i64 as u64,
            0xd1 => i16::from_be_bytes(self.be(field)?) as i64 as u64,
            0xd2 => i32::from_be_bytes(self.be(field)?) as i64 as u64,
            0xd3 => i64::from_be_bytes(self.be(field)?) as u64,
            0xc0 => 0,
            _ => return Err(self.type_err(at, m, field, "integer")),
        })
    }

    /// [`Reader::u64`] with the positive-fixint case (string-table indices below 128)
    /// inlined.
    #[inline(always)]
    pub(crate) fn index_fast(&mut self) -> Result<u64, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.u64("string index"),
        }
    }

    /// A signed 64-bit integer (int, uint reinterpreted, or `nil`).
    #[inline]
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.u64(field).map(|v| v as i64)
    }

    /// A 64-bit float (float32, float64, int, uint, or `nil`).
    #[inline]
    pub(crate) fn f64(&mut self, field: &'static str) -> Result<f64, DecodeError> {
        let at = self.pos;
        let m = self.peek(field)?;
        match m {
            0xcb => {
                self.pos += 1;
                Ok(f64::from_be_bytes(self.be(field)?))
            }
            0xca => {
                self.pos += 1;
                Ok(f32::from_be_bytes(self.be(field)?) as f64)
            }
            0x00..=0x7f | 0xcc..=0xcf => Ok(self.u64(field)? as f64),
            0xe0..=0xff | 0xd0..=0xd3 => Ok(self.i64(field)? as f64),
            0xc0 => {
                self.pos += 1;
                Ok(0.0)
            }
            _ => Err(self.type_err(at, m, field, "number")),
        }
    }

    /// A bool (or `nil` = false).
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.byte(field)? {
            0xc2 | 0xc0 => Ok(false),
            0xc3 => Ok(true),
            m => Err(self.type_err(at, m, field, "bool")),
        }
    }

    /// Skips one value of any type, bounded by the nesting limit.
    pub(crate) fn skip(&mut self, field: &'static str) -> Result<(), DecodeError> {
        self.skip_depth(field, 0)
    }

    fn skip_depth(&mut self, field: &'static str, depth: u32) -> Result<(), DecodeError> {
        if depth > self.max_depth {
            return Err(DecodeError::TooDeep {
                offset: self.pos,
                limit: self.max_depth,
            });
        }
        let at = self.pos;
        let m = self.byte(field)?;
        let (skip_bytes, items): (usize, usize) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * (m & 0x0f) as usize),
            0x90..=0x9f => (0, (m & 0x0f) as usize),
            0xa0..=0xbf => ((m & 0x1f) as usize, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xc4 | 0xd9 => (self.byte(field)? as usize, 0),
            0xc5 | 0xda => (u16::from_be_bytes(self.be(field)?) as usize, 0),
            0xc6 | 0xdb => (u32::from_be_bytes(self.be(field)?) as usize, 0),
            0xc7 => (self.byte(field)? as usize + 1, 0),
            0xc8 => (u16::from_be_bytes(self.be(field)?) as usize + 1, 0),
            0xc9 => (u32::from_be_bytes(self.be(field)?) as usize + 1, 0),
            0xdc => (0, u16::from_be_bytes(self.be(field)?) as usize),
            0xdd => (0, u32::from_be_bytes(self.be(field)?) as usize),
            0xde => (0, 2 * u16::from_be_bytes(self.be(field)?) as usize),
            0xdf => (0, 2 * u32::from_be_bytes(self.be(field)?) as usize),
            _ => return Err(self.type_err(at, m, field, "a msgpack value")),
        };
        if skip_bytes > 0 {
            self.take(skip_bytes, field)?;
        }
        if items > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: at,
                what: field,
                len: items as u64,
                remaining: self.remaining() as u64,
            });
        }
        for _ in 0..items {
            self.skip_depth(field, depth + 1)?;
        }
        Ok(())
    }
}

/// Decodes UTF-8 the way Go's `strings.ToValidUTF8(s, "\uFFFD")` repairs it: borrowed when
/// valid, otherwise every maximal run of invalid bytes becomes one U+FFFD.
#[inline]
pub(crate) fn utf8_lossy_go(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(repair_utf8(b)),
    }
}

#[cold]
fn repair_utf8(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    let mut last_invalid = false;
    for chunk in b.utf8_chunks() {
        let valid = chunk.valid();
        if !valid.is_empty() {
            out.push_str(valid);
            last_invalid = false;
        }
        if !chunk.invalid().is_empty() {
            if !last_invalid {
                out.push('\u{FFFD}');
            }
            last_invalid = true;
        }
    }
    out
}

/// A MessagePack writer appending to a `Vec<u8>` (smallest encodings, like `msgp`).
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn array(&mut self, n: usize) {
        if n < 16 {
            self.buf.push(0x90 | n as u8);
        } else if n <= u16::MAX as usize {
            self.buf.push(0xdc);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdd);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }

    pub(crate) fn map(&mut self, n: usize) {
        if n < 16 {
            self.buf.push(0x80 | n as u8);
        } else if n <= u16::MAX as usize {
            self.buf.push(0xde);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdf);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }

    pub(crate) fn str(&mut self, s: &str) {
        let n = s.len();
        if n < 32 {
            self.buf.push(0xa0 | n as u8);
        } else if n <= u8::MAX as usize {
            self.buf.push(0xd9);
            self.buf.push(n as u8);
        } else if n <= u16::MAX as usize {
            self.buf.push(0xda);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdb);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn bin(&mut self, b: &[u8]) {
        let n = b.len();
        if n <= u8::MAX as usize {
            self.buf.push(0xc4);
            self.buf.push(n as u8);
        } else if n <= u16::MAX as usize {
            self.buf.push(0xc5);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xc6);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn uint(&mut self, v: u64) {
        if v < 128 {
            self.buf.push(v as u8);
        } else if v <= u8::MAX as u64 {
            self.buf.push(0xcc);
            self.buf.push(v as u8);
        } else if v <= u16::MAX as u64 {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= u32::MAX as u64 {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    pub(crate) fn int(&mut self, v: i64) {
        if v >= 0 {
            self.uint(v as u64);
        } else if v >= -32 {
            self.buf.push(v as i8 as u8);
        } else if v >= i8::MIN as i64 {
            self.buf.push(0xd0);
            self.buf.push(v as i8 as u8);
        } else if v >= i16::MIN as i64 {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= i32::MIN as i64 {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    pub(crate) fn f64(&mut self, v: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.buf.push(if v { 0xc3 } else { 0xc2 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_utf8_repair_collapses_runs() {
        assert_eq!(utf8_lossy_go(b"ok"), "ok");
        assert!(matches!(utf8_lossy_go(b"ok"), Cow::Borrowed(_)));
        assert_eq!(utf8_lossy_go(b"a\xff\xfe\xfdb"), "a\u{FFFD}b");
        assert_eq!(utf8_lossy_go(b"a\xffb\xc3"), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn integers_round_trip_and_cross_sign() {
        for v in [
            0i64,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            -1,
            -32,
            -33,
            -128,
            -129,
            i64::MIN,
            i64::MAX,
        ] {
            let mut w = Writer::default();
            w.int(v);
            let mut r = Reader::new(&w.buf, 8);
            assert_eq!(r.i64("x").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
        let mut w = Writer::default();
        w.uint(u64::MAX);
        assert_eq!(Reader::new(&w.buf, 8).u64("x").unwrap(), u64::MAX);
    }

    #[test]
    fn oversized_lengths_rejected_before_allocating() {
        // array32 claiming 4 billion elements in a 5-byte buffer
        let buf = [0xdd, 0xff, 0xff, 0xff, 0xff];
        let err = Reader::new(&buf, 8)
            .array_len("traces", usize::MAX)
            .unwrap_err();
        assert!(
            matches!(err, DecodeError::Truncated { offset: 0, .. }),
            "{err}"
        );
        let err = Reader::new(&[0x93, 1, 2, 3], 8)
            .array_len("traces", 2)
            .unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::LimitExceeded {
                    len: 3,
                    limit: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn skip_is_depth_bounded() {
        let buf = vec![0x91u8; 100];
        let err = Reader::new(&buf, 10).skip("x").unwrap_err();
        assert!(
            matches!(err, DecodeError::TooDeep { limit: 10, .. }),
            "{err}"
        );
    }
}
