//! Online log pattern mining: messages in, stable pattern ids out; each pattern renders as
//! a `<*>` template and as an anchored RE2-compatible regular expression. [`PatternSet`]
//! adds what an agent needs per record: counts by status, structured access logs, one
//! serialisable state.
//!
//! The design starts from Drain (He, Zhu, Zheng, Lyu, "Drain: An Online Log Parsing
//! Approach with Fixed Depth Tree", ICWS 2017) and changes what makes Drain need
//! per-dataset regexes and thresholds. One configuration ([`MinerConfig::default`])
//! serves every source; nothing below is set per dataset.
//!
//! 1. **Typed masking before clustering** ([`token`]): numbers, hex, IPs, UUIDs,
//!    durations, timestamps, sizes, paths, URLs, `key=value` values (quotes included),
//!    booleans and words containing a digit become typed variables, and words are split
//!    at punctuation. Most variable parts never reach the clustering step. Exceptions that
//!    keep the skeleton of one event the same across its variants: well-known names with
//!    digits stay constants (`HTTP/1.1`, `TLSv1.3`, `x86_64`, `ssh2`); `host.name:port`
//!    is one variable like `10.0.0.1:port`; a bound with a time unit (`<1 sec`) is one
//!    duration like `00:01`; free-standing empty brackets and `key=` hold an empty
//!    variable; an optional parenthesised number (`812 bytes (0.79 KB) sent` beside
//!    `0 bytes sent`) is left out of the skeleton and matched optionally by the regex;
//!    `identifier[...]` and stack frames `m(File.java:88)` are split inside.
//! 2. **Masked positions count as matches**: a message joins a pattern when every word
//!    position is equal or a variable on either side (Drain counts only identical tokens,
//!    so masked messages may never reach its threshold). There is no similarity threshold
//!    to tune.
//! 3. **Evidence-based generalisation** instead of a threshold: a constant word becomes a
//!    variable only when [`MinerConfig::distinct_values`] patterns differ in that one
//!    position alone (`removing chargen`, `removing daytime`, ...). With a long agreeing
//!    context (more than four other constant words) three values suffice, so a
//!    low-cardinality variable (`session opened for user alice / bob / carol`) is one
//!    pattern, unless the values have the shape of event words (capitalised, upper-case
//!    or verb forms: `VM Paused / Resumed`, `GET / POST`), which stay distinct events.
//!    This follows Brain's observation (Yu, He, Chen, Wu, "Brain: Log Parsing with
//!    Bidirectional Parallel Tree", IEEE TSC 2023) that the words of one template share
//!    the longest common pattern of its group: the agreeing context is that common part,
//!    the one differing position the variable. The first word (part of the bucket key)
//!    follows the same rule through a second index when at least three other constant
//!    words agree.
//! 4. **Convergence merge**: when a pattern gains a variable, patterns of its bucket that
//!    its template now covers are merged into the oldest; the other ids become aliases
//!    ([`Miner::resolve`]), so ids handed out earlier stay valid.
//! 5. **Pattern cache, merge by template**: the buckets act as LILAC's adaptive parsing
//!    cache (Jiang et al., "LILAC: Log Parsing using LLMs with Adaptive Parsing Cache",
//!    FSE 2024) without the language model: a message first looks for a cached template
//!    that covers it exactly, and only a miss creates a pattern. Ahead of tokenising, a
//!    second cache ([`MinerConfig::match_cache`], module `cache`) keyed by the message's
//!    digit-normalised skeleton skips tokenising for a message that differs from a
//!    recent one only in the digits of its values, with provably the same result.
//!    Pattern sets from other miners or from before a restart merge by template
//!    similarity ([`Miner::merge`]), as LogBatcher and LILAC merge templates that turn
//!    out to be one.
//! 6. **Templates as the corrected labels write them**: a variable whose values all
//!    share several parts renders part by part ([`Variable::rendered`]: `<*>:<*>` for an
//!    address and its port, `<*> KB`, `<*> <*>` for a pair), a short numbered name that
//!    never varied renders as itself (`eth1`), following the labelling rules of the
//!    Loghub-2.0 corrected ground truth (Jiang et al., ISSTA 2024; Khan et al., ICSE
//!    2022). Rendering never changes grouping or the regex.
//!
//! Evaluation follows Loghub-2.0 (Jiang et al., "A Large-scale Evaluation for Log
//! Parsing Techniques: How Far are We?", ISSTA 2024): grouping and parsing accuracy
//! ([`crate::eval`]) against the corrected labels as well as the original ones, with
//! the ten Loghub-2k datasets split in two halves (one to develop on, one held out) and a
//! seeded, labelled mesh corpus. UniParser's learned token classifier and ByteBrain's
//! offline hierarchical clustering were read but not adopted: the first needs labelled
//! training logs, the second a batch over the whole corpus, neither fits an online miner
//! bounded in memory.
//!
//! Buckets play the role of Drain's fixed-depth tree: a message is compared only with
//! the patterns sharing its token count, punctuation/whitespace skeleton and leading
//! constant word.
//!
//! Bounds: [`MinerConfig::max_patterns`] live patterns (limit hits counted in
//! [`MinerStats::forced`] and [`MinerStats::overflowed`]), [`MinerConfig::max_tokens`]
//! tokens per message, [`MinerConfig::value_slots`] values per variable. State persists
//! with serde (`Miner` and `PatternSet` implement `Serialize`/`Deserialize`; a restored
//! miner hands out the same ids and validates its configuration).

mod cache;
mod hash;
mod set;
pub mod token;
pub mod topk;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use hash::{Fx, IdBuild};
pub use set::{PatternSet, PatternSetStats, StatusCounts};
use token::{Token, TokenKind, VarKind, is_ws, tokenize};
pub use topk::{TopK, ValueCount};

/// A pattern's stable identifier. Ids start at 1; [`PatternId::OVERFLOW`] (0) is the
/// catch-all returned when [`MinerConfig::max_patterns`] is reached and no existing
/// pattern is close enough.
///
/// Ids are handed out only by a [`Miner`] (or read back from its persisted state), so
/// they cannot be forged from arbitrary numbers. When patterns converge, the ids of the
/// merged patterns become aliases of the surviving one: [`Miner::resolve`] maps any id
/// handed out earlier to the live pattern, [`Miner::is_live`] tells whether an id still
/// names a pattern of its own, and [`PatternSet`] keeps per-pattern counts under the live
/// id (summed on every merge), so no caller-side table goes stale silently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PatternId(u64);

impl PatternId {
    /// The catch-all id for messages refused because the pattern limit was reached.
    pub const OVERFLOW: PatternId = PatternId(0);

    /// The id as a number (for display, CSV columns, metrics tags).
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for PatternId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Miner configuration. The defaults are the one configuration used for every source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MinerConfig {
    /// How many patterns differing only in one constant word it takes to turn that word
    /// into a variable (see [`Miner::add`]).
    pub distinct_values: usize,
    /// Maximum number of live patterns. When reached, a message that would create a new
    /// pattern joins the most similar pattern of its bucket (counted in
    /// [`MinerStats::forced`]) or, with no candidate, gets [`PatternId::OVERFLOW`]
    /// (counted in [`MinerStats::overflowed`]). Existing ids are never evicted.
    pub max_patterns: usize,
    /// Tokens considered per message; the rest becomes one trailing variable.
    pub max_tokens: usize,
    /// Sample messages kept per pattern.
    pub max_samples: usize,
    /// Distinct values tracked per variable position (Space-Saving slots).
    pub value_slots: usize,
    /// Bytes of a value kept in the per-variable distributions (longer values are cut at
    /// a character boundary).
    pub max_value_len: usize,
    /// Slots of the parsing cache ahead of tokenising (0, the default, turns it off;
    /// 1024 is a sensible size): messages that differ from a recent one only in the
    /// digits of their values skip tokenising and join its pattern directly, with the
    /// same result as without the cache. Each slot holds one skeleton of at most 512
    /// bytes and its tokens. Hits are counted in [`MinerStats::cache_hits`]. Off by
    /// default: on the logs bench its gain was within the measurement noise (see the
    /// crate README).
    pub match_cache: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            distinct_values: 5,
            max_patterns: 10_000,
            max_tokens: 256,
            max_samples: 3,
            value_slots: 16,
            max_value_len: 128,
            match_cache: 0,
        }
    }
}

/// An invalid [`MinerConfig`] setting: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is below its minimum.
    #[error("miner config: {field} = {value} is below the minimum {min}")]
    TooSmall {
        /// The field's name.
        field: &'static str,
        /// The value given.
        value: usize,
        /// The smallest accepted value.
        min: usize,
    },
}

impl MinerConfig {
    /// Checks every field: `distinct_values >= 2` (one value is no evidence),
    /// `max_patterns >= 1`, `max_tokens >= 2`, `value_slots >= 1`, `max_value_len >= 1`.
    ///
    /// ```
    /// use meshmon_logs::pattern::{ConfigError, MinerConfig};
    /// let mut c = MinerConfig::default();
    /// assert!(c.validate().is_ok());
    /// c.max_patterns = 0;
    /// assert!(matches!(c.validate(), Err(ConfigError::TooSmall { field: "max_patterns", .. })));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value, min) in [
            ("distinct_values", self.distinct_values, 2),
            ("max_patterns", self.max_patterns, 1),
            ("max_tokens", self.max_tokens, 2),
            ("value_slots", self.value_slots, 1),
            ("max_value_len", self.max_value_len, 1),
        ] {
            if value < min {
                return Err(ConfigError::TooSmall { field, value, min });
            }
        }
        Ok(())
    }
}

/// Counters of what the miner did, including every limit hit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MinerStats {
    /// Messages added.
    pub messages: u64,
    /// Patterns created.
    pub created: u64,
    /// Patterns merged into another (their ids became aliases).
    pub merged: u64,
    /// Messages that joined a pattern below the similarity threshold because the
    /// pattern limit was reached.
    pub forced: u64,
    /// Messages given [`PatternId::OVERFLOW`] because the pattern limit was reached.
    pub overflowed: u64,
    /// Messages with more than [`MinerConfig::max_tokens`] tokens (tail folded).
    pub truncated: u64,
    /// Messages that skipped tokenising through the parsing cache
    /// ([`MinerConfig::match_cache`]).
    pub cache_hits: u64,
}

/// What a template position holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Slot {
    /// A constant word.
    Word {
        /// The word.
        text: String,
    },
    /// A punctuation byte.
    Punct {
        /// The punctuation (one ASCII character).
        text: String,
    },
    /// A constant pinned by the caller: a structured field that defines the event (an
    /// HTTP method, a response code, Envoy response flags; see [`PatternSet`]). Matched
    /// exactly like punctuation and never generalised.
    Fixed {
        /// The constant.
        text: String,
    },
    /// A variable.
    Var(Variable),
}

/// A variable position: its type, the shape of the values seen (for the regex) and their
/// distribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// The type if every value had the same one, else [`VarKind::Any`].
    pub kind: VarKind,
    /// Every value seen was ASCII digits only.
    pub digits: bool,
    /// Every value seen was ASCII hex digits only.
    pub hex: bool,
    /// Some value contained whitespace (quoted values, folded tails).
    pub spaces: bool,
    /// Some value was empty (`key=""`).
    pub empty: bool,
    /// The most frequent values.
    pub values: TopK,
    /// The parts every value shares (see [`Variable::rendered`]).
    #[serde(default)]
    shape: Shape,
}

/// The common structure of a variable's values, learned one value at a time: values
/// split at whitespace and `:` into parts (`10.0.0.1:50010` → `10.0.0.1` `:` `50010`,
/// `16.0 KB` → `16.0` ` ` `KB`); a part stays literal while every value has the same
/// word there. The template renders a variable whose values have several parts part by
/// part (`<*>:<*>`, `<*> KB`, `<*> <*>`), as the Loghub-2.0 corrected labels write an
/// address and its port, a size and its unit, or a list of fixed length (Jiang et al.,
/// ISSTA 2024; Khan et al., "Guidelines for Assessing the Accuracy of Log Message
/// Template Identification Techniques", ICSE 2022: consecutive variables stay apart when
/// a delimiter separates them). Grouping never depends on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Shape {
    /// No value seen yet.
    #[default]
    Unset,
    /// Every value had these parts.
    Parts(Vec<ShapePart>),
    /// The values differ in structure (or are paths, URLs, IPv6 addresses, empty).
    Any,
}

/// One part of a [`Shape`]: the separator before it (`0` for the first, `b' '` or
/// `b':'`) and its literal text while every value agreed on a word there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ShapePart {
    sep: u8,
    lit: Option<Box<str>>,
}

/// Parts beyond which a value's structure is not tracked.
const MAX_SHAPE_PARTS: usize = 12;

/// Splits a value into `(separator, part)` at whitespace runs and at a `:` next to a
/// number (trailing whitespace is dropped); `None` when the
/// value is one variable whatever its text: empty, a URL (`://`), a Windows path (`\`),
/// an IPv6 or MAC address (`::`, `[`, more than three `:`), a date-time (`2024-05-01T12:00:00Z` is one value, while
/// a clock time `00:01:02` renders `<*>:<*>:<*>`), or more than [`MAX_SHAPE_PARTS`]
/// parts. A part holding `/` is never literal (see [`literal_part`]), so
/// `/10.0.0.1:50010` renders `<*>:<*>`.
fn value_parts(v: &[u8], mut f: impl FnMut(usize, u8, &[u8]) -> bool) -> Option<usize> {
    if v.is_empty() {
        return None;
    }
    // One pass for what the rules look at. A value without `:` or whitespace is one
    // part whatever else it holds (most values: numbers, ids, UUIDs, paths).
    let (mut colons, mut ws, mut odd) = (0usize, false, false);
    for (i, &c) in v.iter().enumerate() {
        match c {
            b':' => {
                colons += 1;
                // `::` (IPv6) and `://` (URL) make the value one part.
                odd |= v.get(i + 1) == Some(&b':') || v.get(i + 1) == Some(&b'/');
            }
            b'\\' | b'[' => odd = true,
            b'-' if i >= 4
                && v.get(i + 3) == Some(&b'-')
                && v[i - 4..i].iter().all(u8::is_ascii_digit)
                && v[i + 1..i + 3].iter().all(u8::is_ascii_digit) =>
            {
                odd = true; // a date
            }
            _ => ws |= is_ws(c),
        }
    }
    if colons == 0 && !ws {
        return f(0, 0, v).then_some(1);
    }
    if odd || colons > 3 {
        return None;
    }
    let (mut n, mut i, mut sep) = (0usize, 0usize, 0u8);
    while i < v.len() {
        let start = i;
        // `:` separates next to a number (a port, the fields of a clock time,
        // `10.0.0.1:50010:Got`): `host-a:host-b` stays one part.
        while i < v.len()
            && !is_ws(v[i])
            && !(v[i] == b':'
                && (v.get(i + 1).is_some_and(u8::is_ascii_digit)
                    || (i > start && v[start..i].iter().all(u8::is_ascii_digit))))
        {
            i += 1;
        }
        if n == MAX_SHAPE_PARTS || !f(n, sep, &v[start..i]) {
            return None;
        }
        n += 1;
        if i < v.len() {
            if v[i] == b':' {
                sep = b':';
                i += 1;
            } else {
                sep = b' ';
                while i < v.len() && is_ws(v[i]) {
                    i += 1;
                }
            }
        }
    }
    Some(n)
}

/// A short name with a number (`eth1`, `L2`, `v001`): rendered as a literal while it is
/// the only value its variable has held in several messages.
fn numbered_name(v: &str) -> bool {
    let b = v.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let digits = b.len() - letters;
    (1..=4).contains(&letters)
        && (1..=3).contains(&digits)
        && b[letters..].iter().all(u8::is_ascii_digit)
}

/// A part that may be rendered as a literal: letters only (a unit, a keyword), not a
/// boolean or a day or month name (those are values).
fn literal_part(p: &[u8]) -> bool {
    !p.is_empty()
        && p.len() <= 32
        && p.iter().all(u8::is_ascii_alphabetic)
        && !(p.eq_ignore_ascii_case(b"true")
            || p.eq_ignore_ascii_case(b"false")
            || p.eq_ignore_ascii_case(b"null"))
        && !token::is_date_word(p)
}

impl Shape {
    /// One part, not literal: what every value without separators keeps.
    #[inline]
    fn is_one_variable(&self) -> bool {
        matches!(self, Shape::Parts(p) if p.len() == 1 && p[0].lit.is_none())
    }

    fn observe(&mut self, value: &str) {
        let v = value.as_bytes();
        match self {
            Shape::Any => {}
            Shape::Unset => {
                let mut parts = Vec::new();
                let ok = value_parts(v, |_, sep, p| {
                    parts.push(ShapePart {
                        sep,
                        lit: literal_part(p).then(|| std::str::from_utf8(p).unwrap_or("").into()),
                    });
                    true
                });
                *self = if ok.is_some() {
                    Shape::Parts(parts)
                } else {
                    Shape::Any
                };
            }
            Shape::Parts(parts) => {
                let n = value_parts(v, |i, sep, p| match parts.get_mut(i) {
                    Some(sp) if sp.sep == sep => {
                        if sp.lit.as_deref().is_some_and(|l| l.as_bytes() != p) {
                            sp.lit = None;
                        }
                        true
                    }
                    _ => false,
                });
                if n != Some(parts.len()) {
                    *self = Shape::Any;
                }
            }
        }
    }

    fn absorb(&mut self, other: &Shape) {
        match (&mut *self, other) {
            (_, Shape::Unset) | (Shape::Any, _) => {}
            (Shape::Unset, o) => *self = o.clone(),
            (_, Shape::Any) => *self = Shape::Any,
            (Shape::Parts(a), Shape::Parts(b)) => {
                if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.sep != y.sep) {
                    *self = Shape::Any;
                    return;
                }
                for (x, y) in a.iter_mut().zip(b) {
                    if x.lit != y.lit {
                        x.lit = None;
                    }
                }
            }
        }
    }
}

impl Variable {
    fn new(kind: VarKind) -> Self {
        Self {
            kind,
            digits: true,
            hex: true,
            spaces: false,
            empty: false,
            values: TopK::default(),
            shape: Shape::Unset,
        }
    }

    /// Renders the variable for [`Pattern::template`]: `<*>`, or part by part when
    /// every value had the same several parts (`<*>:<*>` for addresses with a port,
    /// `<*> KB` for sizes, `<*> <*>` for pairs), see the value shape rules above.
    pub fn rendered(&self) -> std::borrow::Cow<'_, str> {
        match &self.shape {
            Shape::Parts(parts) if parts.len() > 1 && !self.empty => {
                let mut s = String::new();
                for p in parts {
                    if p.sep != 0 {
                        s.push(char::from(p.sep));
                    }
                    s.push_str(p.lit.as_deref().unwrap_or("<*>"));
                }
                s.into()
            }
            _ if self.kind == VarKind::Alnum => match self.values.single() {
                Some(v) if v.count >= 2 && numbered_name(&v.value) => v.value.clone().into(),
                _ => "<*>".into(),
            },
            _ => "<*>".into(),
        }
    }

    fn observe(&mut self, kind: VarKind, value: &str, n: u64, cfg: &MinerConfig) {
        if self.kind != kind {
            self.kind = VarKind::Any;
        }
        let b = value.as_bytes();
        if b.is_empty() {
            self.empty = true;
        }
        // One pass, skipped once nothing is left to learn. A value without separators
        // keeps a one-part shape as it is.
        let shaped = !matches!(self.shape, Shape::Any);
        if self.digits || self.hex || !self.spaces || shaped {
            let (mut digits, mut hex, mut sep) = (true, true, false);
            for &c in b {
                digits &= c.is_ascii_digit();
                hex &= c.is_ascii_hexdigit();
                sep |= is_ws(c) || c == b':';
            }
            self.digits &= digits;
            self.hex &= hex;
            if !self.spaces && sep {
                self.spaces = b.iter().any(|&c| is_ws(c));
            }
            if shaped && (sep || b.is_empty() || !self.shape.is_one_variable()) {
                self.shape.observe(value);
            }
        }
        self.values
            .add(cut(value, cfg.max_value_len), n, cfg.value_slots);
    }

    fn absorb(&mut self, other: &Variable, cfg: &MinerConfig) {
        if self.kind != other.kind {
            self.kind = VarKind::Any;
        }
        self.digits &= other.digits;
        self.hex &= other.hex;
        self.spaces |= other.spaces;
        self.empty |= other.empty;
        self.shape.absorb(&other.shape);
        self.values.merge(&other.values, cfg.value_slots);
    }

    /// The regex fragment matching every value seen.
    fn regex(&self) -> &'static str {
        match (self.spaces, self.empty, self.digits, self.hex) {
            (true, false, ..) => r"(?s:.+)",
            (true, true, ..) => r"(?s:.*)",
            (false, false, true, _) => "[0-9]+",
            (false, true, true, _) => "[0-9]*",
            (false, false, false, true) => "[0-9A-Fa-f]+",
            (false, true, false, true) => "[0-9A-Fa-f]*",
            (false, false, false, false) => "[^[:space:]]+",
            (false, true, false, false) => "[^[:space:]]*",
        }
    }
}

use meshmon_core::text::truncate_utf8 as cut;

/// One template position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// What the position holds.
    pub slot: Slot,
    /// Whether whitespace precedes the position.
    pub space_before: bool,
    /// Some message had an optional parenthesised value after this position (left out
    /// of the skeleton; the regex matches it optionally).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional_group: bool,
}

/// A mined pattern.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    id: PatternId,
    count: u64,
    positions: Vec<Position>,
    samples: Vec<String>,
    /// The first word was generalised by [`MinerConfig::distinct_values`] (the pattern
    /// lives in the buckets of generalised first words).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    first_word_variable: bool,
    #[serde(skip)]
    key: u64,
}

impl Pattern {
    /// The stable id.
    pub fn id(&self) -> PatternId {
        self.id
    }

    /// Messages absorbed (including those of patterns merged into this one).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The template positions.
    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// The first few messages absorbed.
    pub fn samples(&self) -> &[String] {
        &self.samples
    }

    /// The variable positions, in order.
    pub fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.positions.iter().filter_map(|p| match &p.slot {
            Slot::Var(v) => Some(v),
            _ => None,
        })
    }

    fn render<'a>(&'a self, var: impl Fn(&'a Variable) -> std::borrow::Cow<'a, str>) -> String {
        let mut s = String::new();
        for (i, p) in self.positions.iter().enumerate() {
            if p.space_before && i > 0 {
                s.push(' ');
            }
            match &p.slot {
                Slot::Word { text } | Slot::Punct { text } | Slot::Fixed { text } => {
                    s.push_str(text)
                }
                Slot::Var(v) => s.push_str(&var(v)),
            }
        }
        s
    }

    /// The template with `<*>` for every variable (the Loghub convention), tokens
    /// separated by one space where the messages had whitespace. A variable whose values
    /// all had the same several parts renders part by part ([`Variable::rendered`]:
    /// `<*>:<*>` for `10.0.0.1:8080`, `<*> KB` for `16.0 KB`).
    pub fn template(&self) -> String {
        self.render(|v| v.rendered())
    }

    /// The template with typed placeholders (`<num>`, `<ipv4>`, `<uuid>`...).
    pub fn typed_template(&self) -> String {
        self.render(|v| v.kind.placeholder().into())
    }

    /// An anchored regular expression (RE2 syntax, accepted by the `regex` crate) that
    /// matches every message this pattern absorbed.
    pub fn regex(&self) -> String {
        // `[[:space:]]` is ASCII whitespace `[\t\n\x0B\x0C\r ]`, exactly the tokeniser's
        // separators (RE2 and the `regex` crate agree).
        const WS: &str = "[[:space:]]";
        let mut s = format!("^{WS}*");
        for (i, p) in self.positions.iter().enumerate() {
            if p.space_before && i > 0 {
                s.push_str(WS);
                s.push('+');
            }
            match &p.slot {
                Slot::Word { text } | Slot::Punct { text } | Slot::Fixed { text } => {
                    s.push_str(&regex::escape(text))
                }
                Slot::Var(v) => s.push_str(v.regex()),
            }
            if p.optional_group {
                s.push_str("(?:[[:space:]]+\\((?s:.*?)\\))?");
            }
        }
        s.push_str(WS);
        s.push_str("*$");
        s
    }
}

/// The online miner.
///
/// ```
/// use meshmon_logs::pattern::Miner;
/// let mut m = Miner::default();
/// let a = m.add("connection from 10.0.0.1:443 closed after 12ms");
/// let b = m.add("connection from 10.0.0.7:80 closed after 3ms");
/// assert_eq!(a, b);
/// let p = m.pattern(a).unwrap();
/// assert_eq!(p.template(), "connection from <*>:<*> closed after <*>");
/// assert_eq!(p.typed_template(), "connection from <ipv4> closed after <duration>");
/// assert_eq!(p.count(), 2);
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(try_from = "MinerState", into = "MinerState")]
pub struct Miner {
    config: MinerConfig,
    /// Patterns by id − 1; `None` once merged away.
    patterns: Vec<Option<Pattern>>,
    /// Merged ids → the id they were merged into.
    aliases: HashMap<PatternId, PatternId>,
    buckets: HashMap<u64, Vec<u32>, IdBuild>,
    /// Patterns whose first word is constant, by their key with that word as a variable:
    /// where patterns differing only in their first word are found.
    first_words: HashMap<u64, Vec<u32>, IdBuild>,
    live: usize,
    stats: MinerStats,
    scratch: Vec<Token>,
    /// `(from, into)` of every merge since the last [`Miner::take_merges`], recorded only
    /// when `log_merges` is set (by [`PatternSet`], which moves its counts along).
    merges: Vec<(PatternId, PatternId)>,
    log_merges: bool,
    /// Structural changes so far (patterns created, merged, given a variable): the
    /// parsing cache's entries hold for one value of it.
    generation: u64,
    cache: cache::MatchCache,
    /// The pattern index the last message of [`Miner::add_tokens`] was absorbed into.
    last_absorbed: u32,
}

/// The persisted form of a [`Miner`] (what serde reads and writes).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct MinerState {
    config: MinerConfig,
    next_id: u64,
    patterns: Vec<Pattern>,
    aliases: Vec<(PatternId, PatternId)>,
    stats: MinerStats,
}

impl From<Miner> for MinerState {
    fn from(m: Miner) -> Self {
        let mut aliases: Vec<_> = m.aliases.into_iter().collect();
        aliases.sort();
        MinerState {
            config: m.config,
            next_id: m.patterns.len() as u64 + 1,
            patterns: m.patterns.into_iter().flatten().collect(),
            aliases,
            stats: m.stats,
        }
    }
}

impl TryFrom<MinerState> for Miner {
    type Error = ConfigError;

    fn try_from(s: MinerState) -> Result<Self, ConfigError> {
        let mut m = Miner::new(s.config)?;
        m.stats = s.stats;
        let n = s
            .next_id
            .saturating_sub(1)
            .max(s.patterns.iter().map(|p| p.id.0).max().unwrap_or(0));
        m.patterns = vec![None; usize::try_from(n).unwrap_or(0)];
        for mut p in s.patterns {
            if p.id.0 == 0 || p.id.0 > n {
                continue;
            }
            p.key = key_of_pattern(&p);
            let idx = (p.id.0 - 1) as usize;
            m.buckets.entry(p.key).or_default().push(idx as u32);
            if let Some(k) = var_first_key(&p.positions) {
                m.first_words.entry(k).or_default().push(idx as u32);
            }
            m.patterns[idx] = Some(p);
            m.live += 1;
        }
        m.aliases = s.aliases.into_iter().collect();
        Ok(m)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Punct,
    Fixed,
}

fn key_hash<'a>(items: impl Iterator<Item = (Class, &'a [u8], bool, bool)>) -> u64 {
    key_hash_with(items, false)
}

fn key_hash_with<'a>(
    items: impl Iterator<Item = (Class, &'a [u8], bool, bool)>,
    var_first: bool,
) -> u64 {
    // (class, text, space_before, is_constant_word)
    let mut h = Fx::default();
    let mut n = 0u64;
    let mut first_done = false;
    for (class, text, space, is_const) in items {
        n += 1;
        match class {
            Class::Punct => {
                h.word(
                    0x100 | u64::from(text.first().copied().unwrap_or(0)) | (u64::from(space) << 9),
                );
            }
            Class::Fixed => {
                h.word(0x800 | (u64::from(space) << 9));
                h.bytes(text);
            }
            Class::Word => {
                h.word(0x400 | (u64::from(space) << 9));
                if !first_done {
                    if var_first {
                        // Generalised first word: its own buckets, apart from patterns
                        // whose first token was a typed variable.
                        h.word(0x7b7b);
                    } else if is_const {
                        h.bytes(text);
                    } else {
                        h.word(0x7a7a);
                    }
                }
                first_done = true;
            }
        }
    }
    h.word(n);
    h.finish()
}

fn key_of_pattern(p: &Pattern) -> u64 {
    if p.first_word_variable {
        key_hash_with(classes(&p.positions), true)
    } else {
        key_of_positions(&p.positions)
    }
}

fn classes(pos: &[Position]) -> impl Iterator<Item = (Class, &[u8], bool, bool)> {
    pos.iter().enumerate().map(|(i, p)| {
        let space = p.space_before && i > 0;
        match &p.slot {
            Slot::Punct { text } => (Class::Punct, text.as_bytes(), space, false),
            Slot::Fixed { text } => (Class::Fixed, text.as_bytes(), space, false),
            Slot::Word { text } => (Class::Word, text.as_bytes(), space, true),
            Slot::Var(_) => (Class::Word, &[][..], space, false),
        }
    })
}

fn key_of_positions(pos: &[Position]) -> u64 {
    key_hash(pos.iter().enumerate().map(|(i, p)| {
        let space = p.space_before && i > 0;
        match &p.slot {
            Slot::Punct { text } => (Class::Punct, text.as_bytes(), space, false),
            Slot::Fixed { text } => (Class::Fixed, text.as_bytes(), space, false),
            Slot::Word { text } => (Class::Word, text.as_bytes(), space, true),
            Slot::Var(_) => (Class::Word, &[][..], space, false),
        }
    }))
}

/// The index of the first word position (the one in the bucket key).
fn first_word(pos: &[Position]) -> Option<usize> {
    pos.iter()
        .position(|p| matches!(p.slot, Slot::Word { .. } | Slot::Var(_)))
}

/// For a template whose first word is constant: its key with that word as a variable.
fn var_first_key(pos: &[Position]) -> Option<u64> {
    let f = first_word(pos)?;
    if !matches!(pos[f].slot, Slot::Word { .. }) {
        return None;
    }
    Some(key_hash_with(
        pos.iter().enumerate().map(|(i, p)| {
            let space = p.space_before && i > 0;
            match &p.slot {
                Slot::Punct { text } => (Class::Punct, text.as_bytes(), space, false),
                Slot::Fixed { text } => (Class::Fixed, text.as_bytes(), space, false),
                Slot::Word { text } => (Class::Word, text.as_bytes(), space, true),
                Slot::Var(_) => (Class::Word, &[][..], space, false),
            }
        }),
        true,
    ))
}

fn key_of_tokens(msg: &str, toks: &[Token]) -> u64 {
    key_of_tokens_with(msg, toks, false)
}

fn key_of_tokens_with(msg: &str, toks: &[Token], var_first: bool) -> u64 {
    key_hash_with(
        toks.iter().enumerate().map(|(i, t)| {
            let space = t.space_before && i > 0;
            let text = t.text(msg).as_bytes();
            match t.kind {
                TokenKind::Punct => (Class::Punct, text, space, false),
                TokenKind::Fixed => (Class::Fixed, text, space, false),
                TokenKind::Word => (Class::Word, text, space, true),
                TokenKind::Var(_) => (Class::Word, text, space, false),
            }
        }),
        var_first,
    )
}

/// Similarity of a message with a template: the fraction of word positions that are
/// equal or a variable on either side. `None` when the skeletons differ (hash collision).
fn similarity(pat: &[Position], msg: &str, toks: &[Token]) -> Option<f64> {
    if pat.len() != toks.len() {
        return None;
    }
    let (mut words, mut matched) = (0u32, 0u32);
    for (p, t) in pat.iter().zip(toks) {
        match (&p.slot, t.kind) {
            (Slot::Punct { text }, TokenKind::Punct) | (Slot::Fixed { text }, TokenKind::Fixed) => {
                if text.as_bytes() != t.text(msg).as_bytes() {
                    return None;
                }
            }
            (Slot::Punct { .. } | Slot::Fixed { .. }, _)
            | (_, TokenKind::Punct | TokenKind::Fixed) => return None,
            (Slot::Var(_), _) | (_, TokenKind::Var(_)) => {
                words += 1;
                matched += 1;
            }
            (Slot::Word { text }, TokenKind::Word) => {
                words += 1;
                if text.as_bytes() == t.text(msg).as_bytes() {
                    matched += 1;
                }
            }
        }
    }
    Some(if words == 0 {
        1.0
    } else {
        f64::from(matched) / f64::from(words)
    })
}

/// Whether every position of the message matches the template (equal, or a variable on
/// either side), with identical punctuation.
#[inline]
fn compatible(pat: &[Position], msg: &str, toks: &[Token]) -> bool {
    pat.len() == toks.len()
        && pat.iter().zip(toks).all(|(p, t)| match (&p.slot, t.kind) {
            (Slot::Var(_), TokenKind::Var(_) | TokenKind::Word) => true,
            (Slot::Word { .. }, TokenKind::Var(_)) => true,
            (Slot::Word { text }, TokenKind::Word)
            | (Slot::Punct { text }, TokenKind::Punct)
            | (Slot::Fixed { text }, TokenKind::Fixed) => text.as_bytes() == t.text(msg).as_bytes(),
            _ => false,
        })
}

/// Similarity of two templates (for merging pattern sets).
fn template_similarity(a: &[Position], b: &[Position]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    let (mut words, mut matched) = (0u32, 0u32);
    for (p, q) in a.iter().zip(b) {
        match (&p.slot, &q.slot) {
            (Slot::Punct { text: x }, Slot::Punct { text: y })
            | (Slot::Fixed { text: x }, Slot::Fixed { text: y }) => {
                if x != y {
                    return None;
                }
            }
            (Slot::Punct { .. } | Slot::Fixed { .. }, _)
            | (_, Slot::Punct { .. } | Slot::Fixed { .. }) => return None,
            (Slot::Var(_), _) | (_, Slot::Var(_)) => {
                words += 1;
                matched += 1;
            }
            (Slot::Word { text: x }, Slot::Word { text: y }) => {
                words += 1;
                if x == y {
                    matched += 1;
                }
            }
        }
    }
    Some(if words == 0 {
        1.0
    } else {
        f64::from(matched) / f64::from(words)
    })
}

/// Whether template `general` covers `specific` (every position equal or a variable in
/// `general`).
fn covers(general: &[Position], specific: &[Position]) -> bool {
    general.len() == specific.len()
        && general
            .iter()
            .zip(specific)
            .all(|(g, s)| match (&g.slot, &s.slot) {
                (Slot::Var(_), Slot::Word { .. } | Slot::Var(_)) => true,
                (a, b) => a == b || matches!((a, b), (Slot::Var(_), Slot::Var(_))),
            })
}

impl Miner {
    /// A miner with the given configuration, validated first.
    pub fn new(config: MinerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            ..Self::default()
        })
    }

    /// Whether `id` names a live pattern of this miner (not merged away, not unknown).
    pub fn is_live(&self, id: PatternId) -> bool {
        id.0.checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.patterns.get(i))
            .is_some_and(Option::is_some)
    }

    /// The `(from, into)` pairs of the merges since the last call (only recorded after
    /// [`Miner::set_merge_log`]`(true)`).
    pub fn take_merges(&mut self) -> Vec<(PatternId, PatternId)> {
        std::mem::take(&mut self.merges)
    }

    /// Records every merge for [`Miner::take_merges`] (off by default: a miner used on
    /// its own never grows this log).
    pub fn set_merge_log(&mut self, on: bool) {
        self.log_merges = on;
        if !on {
            self.merges.clear();
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// What the miner did so far.
    pub fn stats(&self) -> &MinerStats {
        &self.stats
    }

    /// Live patterns (merged ones excluded).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no pattern exists yet.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Follows merge aliases to the live id (`id` itself when live or unknown).
    pub fn resolve(&self, mut id: PatternId) -> PatternId {
        while let Some(&next) = self.aliases.get(&id) {
            id = next;
        }
        id
    }

    /// The live pattern for `id` (following aliases).
    pub fn pattern(&self, id: PatternId) -> Option<&Pattern> {
        let id = self.resolve(id);
        let idx = usize::try_from(id.0.checked_sub(1)?).ok()?;
        self.patterns.get(idx)?.as_ref()
    }

    /// Live patterns in id order.
    pub fn patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.patterns.iter().flatten()
    }

    /// Finds the pattern a message belongs to without changing anything: the live
    /// pattern whose template covers the message exactly, if any.
    pub fn match_message(&self, message: &str) -> Option<PatternId> {
        let mut toks = Vec::new();
        tokenize(message, &mut toks);
        self.fold_tail(message, &mut toks);
        let key = key_of_tokens(message, &toks);
        let ids = self.buckets.get(&key)?;
        ids.iter()
            .filter_map(|&i| self.patterns.get(i as usize)?.as_ref())
            .find_map(|p| {
                let fits = p.positions.len() == toks.len()
                    && p.positions
                        .iter()
                        .zip(&toks)
                        .all(|(pos, t)| match (&pos.slot, t.kind) {
                            (Slot::Var(_), TokenKind::Var(_) | TokenKind::Word) => true,
                            (Slot::Word { text }, TokenKind::Word)
                            | (Slot::Punct { text }, TokenKind::Punct)
                            | (Slot::Fixed { text }, TokenKind::Fixed) => {
                                text.as_bytes() == t.text(message).as_bytes()
                            }
                            _ => false,
                        });
                fits.then_some(p.id)
            })
    }

    fn fold_tail(&self, msg: &str, toks: &mut Vec<Token>) -> bool {
        let max = self.config.max_tokens.max(1);
        if toks.len() <= max {
            return false;
        }
        let start = toks[max - 1].start;
        let space = toks[max - 1].space_before;
        toks.truncate(max - 1);
        toks.push(Token {
            start,
            end: msg.len().min(u32::MAX as usize) as u32,
            kind: TokenKind::Var(VarKind::Any),
            space_before: space,
            group_after: false,
        });
        true
    }

    /// Adds one message; returns its pattern's id (stable: later merges alias it, see
    /// [`Miner::resolve`]).
    pub fn add(&mut self, message: &str) -> PatternId {
        self.stats.messages += 1;
        let cap = self.config.match_cache;
        let cached = cap > 0 && message.len() <= cache::MAX_CACHED_LEN && self.cache.engage();
        let mut slot = usize::MAX;
        if cached {
            let hash = cache::skeleton(message.as_bytes(), &mut self.cache.scratch);
            slot = cache::MatchCache::index(hash, cap);
            if let Some(s) = self.cache.slots.get_mut(slot)
                && s.live
                && s.hash == hash
                && s.generation == self.generation
                && s.skel == self.cache.scratch
            {
                self.stats.cache_hits += 1;
                let truncated = s.truncated;
                let (idx, toks) = (s.idx, std::mem::take(&mut s.toks));
                self.cache.hit();
                if truncated {
                    self.stats.truncated += 1;
                }
                let id = self.absorb(idx, message, &toks);
                if let Some(s) = self.cache.slots.get_mut(slot) {
                    s.toks = toks;
                }
                return id;
            }
            if self.cache.slots.len() < cap {
                self.cache.slots.resize_with(cap, cache::Slot::default);
            }
            if let Some(s) = self.cache.slots.get_mut(slot) {
                s.hash = hash;
            }
        }
        let mut toks = std::mem::take(&mut self.scratch);
        tokenize(message, &mut toks);
        let truncated = self.fold_tail(message, &mut toks);
        if truncated {
            self.stats.truncated += 1;
        }
        let before = self.generation;
        self.last_absorbed = u32::MAX;
        let id = self.add_tokens(message, &toks);
        if cached {
            // Joined a pattern and changed nothing: that pattern is where the next
            // message with these tokens goes; otherwise look it up again.
            let known = (self.generation == before && self.last_absorbed != u32::MAX)
                .then_some(self.last_absorbed);
            self.store(slot, message, &toks, truncated, id, known);
        }
        self.scratch = toks;
        id
    }

    /// Caches the tokens of a message just added when the pattern a message with them
    /// would join now is known (never past the pattern limit, where similarity decides).
    fn store(
        &mut self,
        slot: usize,
        msg: &str,
        toks: &[Token],
        truncated: bool,
        id: PatternId,
        known: Option<u32>,
    ) {
        let target = if id == PatternId::OVERFLOW || self.live >= self.config.max_patterns {
            None
        } else {
            known.or_else(|| self.first_compatible(key_of_tokens(msg, toks), msg, toks))
        };
        let generation = self.generation;
        let cache = &mut self.cache;
        let Some(s) = cache.slots.get_mut(slot) else {
            return;
        };
        match target {
            Some(idx) => {
                s.live = true;
                s.generation = generation;
                s.idx = idx;
                s.truncated = truncated;
                s.skel.clear();
                s.skel.extend_from_slice(&cache.scratch);
                s.toks.clear();
                s.toks.extend_from_slice(toks);
            }
            None => s.live = false,
        }
    }

    /// The pattern a message with these tokens joins below the pattern limit: the first
    /// compatible pattern of its bucket, else of its variable-first bucket.
    fn first_compatible(&self, key: u64, msg: &str, toks: &[Token]) -> Option<u32> {
        let find = |key: u64| {
            self.buckets.get(&key)?.iter().copied().find(|&i| {
                matches!(self.patterns.get(i as usize), Some(Some(p)) if compatible(&p.positions, msg, toks))
            })
        };
        find(key).or_else(|| {
            toks.iter()
                .find(|t| matches!(t.kind, TokenKind::Word | TokenKind::Var(_)))
                .is_some_and(|t| t.kind == TokenKind::Word)
                .then(|| find(key_of_tokens_with(msg, toks, true)))
                .flatten()
        })
    }

    /// Adds a message already tokenised by the caller (structured records: see
    /// [`PatternSet::observe`]); `toks` must be ranges of `msg` in order.
    pub(crate) fn add_prepared(&mut self, msg: &str, toks: &[Token]) -> PatternId {
        self.stats.messages += 1;
        self.add_tokens(msg, toks)
    }

    /// Drains the merge log (see [`Miner::set_merge_log`]) without allocating.
    pub(crate) fn drain_merges(&mut self) -> std::vec::Drain<'_, (PatternId, PatternId)> {
        self.merges.drain(..)
    }

    fn add_tokens(&mut self, msg: &str, toks: &[Token]) -> PatternId {
        let key = key_of_tokens(msg, toks);
        let full = self.live >= self.config.max_patterns;
        let mut best: Option<(f64, u32)> = None;
        if let Some(ids) = self.buckets.get(&key) {
            for &i in ids {
                let Some(Some(p)) = self.patterns.get(i as usize) else {
                    continue;
                };
                if compatible(&p.positions, msg, toks) {
                    best = Some((1.0, i));
                    break;
                }
                if full
                    && let Some(sim) = similarity(&p.positions, msg, toks)
                    && best.is_none_or(|(b, _)| sim > b)
                {
                    best = Some((sim, i));
                }
            }
        }
        // Patterns whose first word became a variable live under the variable-first key.
        if best.is_none_or(|(sim, _)| sim < 1.0)
            && toks
                .iter()
                .find(|t| matches!(t.kind, TokenKind::Word | TokenKind::Var(_)))
                .is_some_and(|t| t.kind == TokenKind::Word)
        {
            let vkey = key_of_tokens_with(msg, toks, true);
            if let Some(ids) = self.buckets.get(&vkey) {
                for &i in ids {
                    if let Some(Some(p)) = self.patterns.get(i as usize)
                        && compatible(&p.positions, msg, toks)
                    {
                        best = Some((1.0, i));
                        break;
                    }
                }
            }
        }
        match best {
            Some((sim, i)) if sim >= 1.0 || full => {
                if sim < 1.0 {
                    self.stats.forced += 1;
                }
                self.last_absorbed = i;
                self.absorb(i, msg, toks)
            }
            _ if full => {
                self.stats.overflowed += 1;
                PatternId::OVERFLOW
            }
            _ => {
                let id = self.create(key, msg, toks);
                let idx = (id.0 - 1) as u32;
                self.siblings(key, idx);
                if self.patterns.get(idx as usize).is_some_and(Option::is_some) {
                    self.first_word_siblings(idx);
                }
                self.resolve(id)
            }
        }
    }

    /// The same evidence rule as [`Miner::siblings`] for the first word, which is part of
    /// the bucket key: patterns differing only there are found through `first_words`, and
    /// the merged pattern moves to the bucket of its variable-first key.
    fn first_word_siblings(&mut self, idx: u32) {
        let k = self.config.distinct_values;
        if k < 2 {
            return;
        }
        let Some(Some(me)) = self.patterns.get(idx as usize) else {
            return;
        };
        let (Some(vkey), Some(f)) = (var_first_key(&me.positions), first_word(&me.positions))
        else {
            return;
        };
        // The rest must say something: three more constant words at least (single-word
        // messages such as `closeQs` / `cancelAutohide` are events, not a variable).
        let consts = me
            .positions
            .iter()
            .filter(|p| matches!(p.slot, Slot::Word { .. }))
            .count();
        if consts < 4 {
            return;
        }
        let Some(ids) = self.first_words.get(&vkey) else {
            return;
        };
        if ids.len() < k {
            return;
        }
        let mut members: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&j| j != idx)
            .filter(|&j| {
                self.patterns
                    .get(j as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|o| single_difference(&me.positions, &o.positions) == Some(f))
            })
            .collect();
        if members.len() + 1 < k {
            return;
        }
        members.push(idx);
        members.sort_unstable();
        let keep = members[0];
        for &j in &members[1..] {
            self.merge_into(keep, j);
        }
        // `keep` now has a variable first word: re-key it.
        let Some(Some(p)) = self.patterns.get_mut(keep as usize) else {
            return;
        };
        let old = p.key;
        p.key = vkey;
        p.first_word_variable = true;
        self.generation += 1;
        if let Some(v) = self.buckets.get_mut(&old) {
            v.retain(|&j| j != keep);
        }
        if let Some(v) = self.first_words.get_mut(&vkey) {
            v.retain(|&j| j != keep);
        }
        self.buckets.entry(vkey).or_default().push(keep);
        self.converge(vkey, keep);
    }

    /// Generalises a position once enough patterns of a bucket differ only there: when
    /// [`MinerConfig::distinct_values`] patterns (the new one included) are equal
    /// everywhere except one position holding a different constant word in each, they are
    /// merged into the oldest with a variable at that position. Two values are not enough
    /// evidence (`client SPP` / `client WindowsUpdateAgent` may well be two events); many
    /// are (`removing chargen`, `removing daytime`, `removing echo`...).
    fn siblings(&mut self, key: u64, idx: u32) {
        let Some(Some(me)) = self.patterns.get(idx as usize) else {
            return;
        };
        let k = self.evidence_needed(&me.positions);
        if k < 2 {
            return;
        }
        let Some(ids) = self.buckets.get(&key) else {
            return;
        };
        if ids.len() + 1 < k {
            return;
        }
        let mut groups: Vec<(usize, Vec<u32>)> = Vec::new();
        for &j in ids {
            if j == idx {
                continue;
            }
            let Some(Some(o)) = self.patterns.get(j as usize) else {
                continue;
            };
            if let Some(p) = single_difference(&me.positions, &o.positions) {
                match groups.iter_mut().find(|g| g.0 == p) {
                    Some(g) => g.1.push(j),
                    None => groups.push((p, vec![j])),
                }
            }
        }
        let Some((pos, mut members)) = groups
            .into_iter()
            .filter(|g| g.1.len() + 1 >= k)
            .max_by_key(|g| g.1.len())
        else {
            return;
        };
        // Fewer values than configured (long context): not when a value has the shape
        // of an event word (`GET` / `POST`, `VM Paused` / `VM Resumed`, `opened` /
        // `closed`): those are distinct events, not a variable.
        if members.len() + 1 < self.config.distinct_values {
            let upper = |j: u32| {
                self.patterns
                    .get(j as usize)
                    .and_then(Option::as_ref)
                    .and_then(|p| match &p.positions.get(pos)?.slot {
                        Slot::Word { text } => Some(is_upper_word(text)),
                        _ => None,
                    })
                    .unwrap_or(false)
            };
            if upper(idx) || members.iter().any(|&j| upper(j)) {
                return;
            }
        }
        members.push(idx);
        members.sort_unstable();
        let keep = members[0];
        for &j in &members[1..] {
            self.merge_into(keep, j);
        }
        self.converge(key, keep);
    }

    /// How many patterns differing in one word it takes to generalise that word: the
    /// configured [`MinerConfig::distinct_values`], or three when the rest of the
    /// template holds at least [`LONG_CONTEXT`] other constant words. With that much
    /// context agreeing, a position taking a handful of values is a low-cardinality
    /// variable (`session opened for user alice / bob / carol`), not distinct events
    /// (`VM Paused` / `VM Resumed` share one word of context).
    fn evidence_needed(&self, pos: &[Position]) -> usize {
        let k = self.config.distinct_values;
        let consts = pos
            .iter()
            .filter(|p| matches!(p.slot, Slot::Word { .. } | Slot::Fixed { .. }))
            .count();
        if consts > LONG_CONTEXT { k.min(3) } else { k }
    }

    fn create(&mut self, key: u64, msg: &str, toks: &[Token]) -> PatternId {
        let idx = self.patterns.len();
        let id = PatternId(idx as u64 + 1);
        let positions = toks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let text = t.text(msg);
                let slot = match t.kind {
                    TokenKind::Word => Slot::Word {
                        text: text.to_owned(),
                    },
                    TokenKind::Punct => Slot::Punct {
                        text: text.to_owned(),
                    },
                    TokenKind::Fixed => Slot::Fixed {
                        text: text.to_owned(),
                    },
                    TokenKind::Var(k) => {
                        let mut v = Variable::new(k);
                        v.observe(k, text, 1, &self.config);
                        Slot::Var(v)
                    }
                };
                Position {
                    slot,
                    space_before: t.space_before && i > 0,
                    optional_group: t.group_after,
                }
            })
            .collect();
        let mut samples = Vec::new();
        if self.config.max_samples > 0 {
            samples.push(msg.to_owned());
        }
        self.patterns.push(Some(Pattern {
            id,
            count: 1,
            positions,
            samples,
            first_word_variable: false,
            key,
        }));
        self.buckets.entry(key).or_default().push(idx as u32);
        if let Some(Some(p)) = self.patterns.last()
            && let Some(k) = var_first_key(&p.positions)
        {
            self.first_words.entry(k).or_default().push(idx as u32);
        }
        self.live += 1;
        self.stats.created += 1;
        self.generation += 1;
        id
    }

    fn absorb(&mut self, idx: u32, msg: &str, toks: &[Token]) -> PatternId {
        let cfg = &self.config;
        let Some(Some(p)) = self.patterns.get_mut(idx as usize) else {
            return PatternId::OVERFLOW;
        };
        let mut changed = false;
        let prior = p.count;
        for (pos, t) in p.positions.iter_mut().zip(toks) {
            let text = t.text(msg);
            pos.optional_group |= t.group_after;
            match (&mut pos.slot, t.kind) {
                (Slot::Var(v), TokenKind::Var(k)) => v.observe(k, text, 1, cfg),
                (Slot::Var(v), TokenKind::Word) => v.observe(VarKind::Any, text, 1, cfg),
                (Slot::Word { text: w }, TokenKind::Var(k)) => {
                    let mut v = Variable::new(VarKind::Any);
                    v.observe(VarKind::Any, w, prior, cfg);
                    v.observe(k, text, 1, cfg);
                    pos.slot = Slot::Var(v);
                    changed = true;
                }
                (Slot::Word { text: w }, TokenKind::Word) if w.as_str() != text => {
                    let mut v = Variable::new(VarKind::Any);
                    v.observe(VarKind::Any, w, prior, cfg);
                    v.observe(VarKind::Any, text, 1, cfg);
                    pos.slot = Slot::Var(v);
                    changed = true;
                }
                _ => {}
            }
        }
        p.count += 1;
        if p.samples.len() < cfg.max_samples {
            p.samples.push(msg.to_owned());
        }
        let id = p.id;
        let key = p.key;
        if changed {
            self.generation += 1;
            self.converge(key, idx);
        }
        self.resolve(id)
    }

    /// After pattern `idx` gained variables, merges the patterns of its bucket that it now
    /// covers (or that cover it) into the older of the two.
    fn converge(&mut self, key: u64, idx: u32) {
        let Some(ids) = self.buckets.get(&key) else {
            return;
        };
        let Some(Some(me)) = self.patterns.get(idx as usize) else {
            return;
        };
        let victims: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&j| j != idx)
            .filter(|&j| {
                self.patterns
                    .get(j as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|o| {
                        covers(&me.positions, &o.positions) || covers(&o.positions, &me.positions)
                    })
            })
            .collect();
        if victims.is_empty() {
            return;
        }
        // Keep the oldest id.
        let keep = victims.iter().copied().chain([idx]).min().unwrap_or(idx);
        for j in victims.into_iter().chain([idx]).filter(|&j| j != keep) {
            self.merge_into(keep, j);
        }
    }

    /// Merges pattern `from` into pattern `into` (same bucket, same skeleton).
    fn merge_into(&mut self, into: u32, from: u32) {
        let Some(src) = self.patterns.get_mut(from as usize).and_then(Option::take) else {
            return;
        };
        if let Some(ids) = self.buckets.get_mut(&src.key) {
            ids.retain(|&j| j != from);
        }
        if let Some(k) = var_first_key(&src.positions)
            && let Some(ids) = self.first_words.get_mut(&k)
        {
            ids.retain(|&j| j != from);
        }
        self.live -= 1;
        self.stats.merged += 1;
        self.generation += 1;
        let Some(Some(dst)) = self.patterns.get_mut(into as usize) else {
            return;
        };
        self.aliases.insert(src.id, dst.id);
        if self.log_merges {
            self.merges.push((src.id, dst.id));
        }
        merge_patterns(dst, &src, &self.config);
    }

    /// Merges another pattern set into this one: each of `other`'s patterns joins the most
    /// similar pattern here (same rules as a message) or is added under a new id. Returns
    /// the mapping from `other`'s ids (live and aliased) to ids here.
    pub fn merge(&mut self, other: &Miner) -> HashMap<PatternId, PatternId> {
        self.generation += 1;
        let mut map = HashMap::new();
        for p in other.patterns() {
            let key = key_of_pattern(p);
            let mut best: Option<(f64, u32)> = None;
            if let Some(ids) = self.buckets.get(&key) {
                for &i in ids {
                    let Some(Some(q)) = self.patterns.get(i as usize) else {
                        continue;
                    };
                    if let Some(sim) = template_similarity(&q.positions, &p.positions)
                        && best.is_none_or(|(b, _)| sim > b)
                    {
                        best = Some((sim, i));
                    }
                }
            }
            let target = match best {
                Some((sim, i)) if sim >= 1.0 => {
                    if let Some(Some(q)) = self.patterns.get_mut(i as usize) {
                        merge_patterns(q, p, &self.config);
                        let (k, id) = (q.key, q.id);
                        self.converge(k, i);
                        self.resolve(id)
                    } else {
                        continue;
                    }
                }
                _ => {
                    let idx = self.patterns.len();
                    let id = PatternId(idx as u64 + 1);
                    let mut q = p.clone();
                    q.id = id;
                    q.key = key;
                    self.patterns.push(Some(q));
                    self.buckets.entry(key).or_default().push(idx as u32);
                    self.live += 1;
                    self.stats.created += 1;
                    self.siblings(key, idx as u32);
                    self.resolve(id)
                }
            };
            map.insert(p.id, target);
        }
        for (&from, _) in other.aliases.iter() {
            let live = other.resolve(from);
            if let Some(&t) = map.get(&live) {
                map.insert(from, t);
            }
        }
        for v in map.values_mut() {
            *v = self.resolve(*v);
        }
        map
    }
}

/// The shape of an event word rather than a low-cardinality value: capitalised or
/// upper-case (`GET`, `INFO`, `Paused`, `RUNNING`) or a verb form (`opened`,
/// `starting`). Lower-case names (`alice`, `bob`) are not.
fn is_upper_word(w: &str) -> bool {
    w.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        || w.ends_with("ed")
        || w.ends_with("ing")
}

/// Constant words (besides the differing one) from which three distinct values are
/// enough evidence of a variable (see [`Miner::evidence_needed`]).
const LONG_CONTEXT: usize = 4;

/// The one word position where both templates hold different constants, all other
/// positions being compatible (equal, or a variable on either side).
fn single_difference(a: &[Position], b: &[Position]) -> Option<usize> {
    if a.len() != b.len() {
        return None;
    }
    let mut diff = None;
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        match (&p.slot, &q.slot) {
            (Slot::Word { text: x }, Slot::Word { text: y }) if x != y => {
                if diff.is_some() {
                    return None;
                }
                diff = Some(i);
            }
            (Slot::Punct { text: x }, Slot::Punct { text: y })
            | (Slot::Fixed { text: x }, Slot::Fixed { text: y })
                if x != y =>
            {
                return None;
            }
            (Slot::Punct { .. } | Slot::Fixed { .. }, Slot::Word { .. } | Slot::Var(_))
            | (Slot::Word { .. } | Slot::Var(_), Slot::Punct { .. } | Slot::Fixed { .. })
            | (Slot::Punct { .. }, Slot::Fixed { .. })
            | (Slot::Fixed { .. }, Slot::Punct { .. }) => return None,
            _ => {}
        }
    }
    diff
}

fn merge_patterns(dst: &mut Pattern, src: &Pattern, cfg: &MinerConfig) {
    let (dn, sn) = (dst.count, src.count);
    for (d, s) in dst.positions.iter_mut().zip(&src.positions) {
        d.optional_group |= s.optional_group;
        match (&mut d.slot, &s.slot) {
            (Slot::Var(a), Slot::Var(b)) => a.absorb(b, cfg),
            (Slot::Var(a), Slot::Word { text }) => a.observe(VarKind::Any, text, sn, cfg),
            (Slot::Word { text }, Slot::Var(b)) => {
                let mut v = Variable::new(b.kind);
                v.observe(VarKind::Any, text, dn, cfg);
                v.absorb(b, cfg);
                d.slot = Slot::Var(v);
            }
            (Slot::Word { text: x }, Slot::Word { text: y }) if x != y => {
                let mut v = Variable::new(VarKind::Any);
                v.observe(VarKind::Any, x, dn, cfg);
                v.observe(VarKind::Any, y, sn, cfg);
                d.slot = Slot::Var(v);
            }
            _ => {}
        }
    }
    dst.count += sn;
    for s in &src.samples {
        if dst.samples.len() >= cfg.max_samples {
            break;
        }
        dst.samples.push(s.clone());
    }
}
