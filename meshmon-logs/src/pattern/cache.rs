//! The parsing cache ahead of tokenising: LILAC's adaptive parsing cache (Jiang et al.,
//! "LILAC: Log Parsing using LLMs with Adaptive Parsing Cache", FSE 2024) without the
//! language model. LILAC looks a log up among the templates already parsed before it
//! pays for parsing; here a message is looked up by its *skeleton* (the message with
//! every digit written `0`) before it is tokenised: messages that differ only in the
//! digits of their values tokenise to the same token ranges and kinds, so a hit reuses
//! the cached tokens and goes straight to the pattern they matched.
//!
//! The cache never changes a result:
//! - Digits whose value the tokeniser looks at stay in the skeleton as they are: a run of
//!   name characters (`[A-Za-z0-9_/.-]`, up to a `..`) that holds a letter and a digit
//!   and is at most [`EXACT_RUN`] bytes long (the well-known constants `HTTP/1.1`,
//!   `TLSv1.3`, `x86_64` are such runs, so `HTTP/1.1` and `HTTP/2.1` never share a
//!   skeleton) or that precedes `(` (a call name such as `jk2_init()` is a constant),
//!   and a digit followed by `x` / `X` (the `0x` of hex numbers).
//! - A cached entry is used only while the miner's structure (its patterns' positions)
//!   has not changed since it was stored: the miner counts structural changes (a pattern
//!   created, merged, or given a new variable) and an entry records that count. The
//!   pattern a message joins depends only on that structure and on the tokens.
//!
//! Adaptive ([`MatchCache::engage`]): bypassed while it hits less than half the
//! messages. Direct-mapped and bounded ([`crate::pattern::MinerConfig::match_cache`] slots; a new
//! skeleton replaces the slot's entry, reusing its buffers); messages longer than
//! [`MAX_CACHED_LEN`] bytes are not cached.

use super::hash::Fx;
use super::token::Token;

/// Longest run of name characters whose digits are kept exactly in the skeleton (the
/// longest well-known constant is 8 bytes; the margin covers trailing dots).
pub(crate) const EXACT_RUN: usize = 12;

/// Messages longer than this are tokenised every time (bounds the cache's memory to
/// about `match_cache × (MAX_CACHED_LEN + tokens)` bytes).
pub(crate) const MAX_CACHED_LEN: usize = 512;

#[inline]
fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'/' | b'.' | b'-')
}

/// Writes the skeleton of `b` into `out` (cleared first) and returns its hash.
pub(crate) fn skeleton(b: &[u8], out: &mut Vec<u8>) -> u64 {
    out.clear();
    out.extend_from_slice(b);
    let mut i = 0;
    while i < b.len() {
        if !is_name(b[i]) {
            i += 1;
            continue;
        }
        let s = i;
        let (mut letter, mut digit) = (false, false);
        while i < b.len() && is_name(b[i]) {
            if b[i] == b'.' && b.get(i + 1) == Some(&b'.') {
                break;
            }
            letter |= b[i].is_ascii_alphabetic();
            digit |= b[i].is_ascii_digit();
            i += 1;
        }
        if i == s {
            // A `..`: filler that splits runs.
            i += 1;
            continue;
        }
        // A name before `(` may be a call name with a digit (`jk2_init()`), a constant.
        let exact = letter && (i - s <= EXACT_RUN || b.get(i) == Some(&b'('));
        if digit && !exact {
            for k in s..i {
                if b[k].is_ascii_digit() && !matches!(b.get(k + 1), Some(b'x' | b'X')) {
                    out[k] = b'0';
                }
            }
        }
    }
    let mut h = Fx::default();
    h.bytes(out);
    h.finish()
}

/// One cached skeleton: its tokens, the pattern they matched, and the structure
/// generation that match holds for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    pub(crate) hash: u64,
    pub(crate) generation: u64,
    pub(crate) live: bool,
    pub(crate) idx: u32,
    pub(crate) truncated: bool,
    pub(crate) skel: Vec<u8>,
    pub(crate) toks: Vec<Token>,
}

/// Messages per measuring window of the cache's hit rate.
pub(crate) const WINDOW: u32 = 1024;
/// Hits per window below which the cache is bypassed (half the messages: a miss costs
/// a skeleton and a copy of the tokens, a hit saves tokenising).
pub(crate) const MIN_HITS: u32 = WINDOW / 2;
/// Windows the cache is bypassed for after a window below [`MIN_HITS`].
pub(crate) const BYPASS_WINDOWS: u32 = 15;

/// The direct-mapped cache (empty until the first store).
#[derive(Clone, Debug, Default)]
pub(crate) struct MatchCache {
    pub(crate) slots: Vec<Slot>,
    /// The skeleton of the message being added (reused buffer).
    pub(crate) scratch: Vec<u8>,
    /// Messages and hits in the current window.
    seen: u32,
    hits: u32,
    /// Messages left to add without the cache.
    bypass: u32,
}

impl MatchCache {
    /// Whether to use the cache for the next message. Adaptive, so that a stream with
    /// little repetition (many sources mixed at random) does not pay for lookups that
    /// miss: after a window of [`WINDOW`] messages with fewer than [`MIN_HITS`] hits the
    /// cache is bypassed for [`BYPASS_WINDOWS`] windows, then measured again. Skipping
    /// the cache never changes a result.
    #[inline]
    pub(crate) fn engage(&mut self) -> bool {
        if self.bypass > 0 {
            self.bypass -= 1;
            return false;
        }
        if self.seen == WINDOW {
            if self.hits < MIN_HITS {
                self.bypass = WINDOW * BYPASS_WINDOWS;
            }
            self.seen = 0;
            self.hits = 0;
            if self.bypass > 0 {
                return false;
            }
        }
        self.seen += 1;
        true
    }

    /// Counts a hit in the current window.
    #[inline]
    pub(crate) fn hit(&mut self) {
        self.hits += 1;
    }

    /// The slot index for `hash` in a cache of `cap` slots.
    #[inline]
    pub(crate) fn index(hash: u64, cap: usize) -> usize {
        // The high bits of the Fx product are the well-mixed ones.
        ((u128::from(hash) * cap as u128) >> 64) as usize
    }
}
