//! Log processing rules with the Datadog Agent's names and semantics
//! (Datadog docs, "Advanced Log Collection Configurations → Filter logs / Scrub sensitive
//! data"; `log_processing_rules` in an integration's `logs` section):
//!
//! - `exclude_at_match`: drop the log when the pattern matches anywhere in the message.
//! - `include_at_match`: keep only logs the pattern matches; with several, every one must
//!   match.
//! - `mask_sequences`: replace every match with `replace_placeholder` (`$1`/`${name}`
//!   expand capture groups, as the Agent's Go `regexp.ReplaceAll` does).
//!
//! Rules apply in order; the first rule that drops a log stops processing.
//!
//! A masked message is never longer than [`Processor::max_message_bytes`] (256 KiB, Datadog's
//! line limit, by default): a placeholder longer than what it replaces, applied by several
//! rules in a row, would otherwise multiply the message's size with every rule (a pattern
//! that matches the empty string inserts the placeholder between every two characters).
//! A message cut there is counted in [`ProcessorStats::mask_truncated`].
//!
//! ```
//! use meshmon_logs::{rules::{Processor, Rule}, LogRecord};
//! let rules: Vec<Rule> = serde_json::from_str(r#"[
//!   {"type": "exclude_at_match", "name": "no_health", "pattern": "GET /healthz"},
//!   {"type": "mask_sequences", "name": "mask_tokens", "pattern": "token=\\w+",
//!    "replace_placeholder": "token=[masked]"}
//! ]"#).unwrap();
//! let mut p = Processor::new(&rules).unwrap();
//! let mut keep = LogRecord::new("login ok token=abc123 user=7");
//! assert!(p.process(&mut keep));
//! assert_eq!(keep.message, "login ok token=[masked] user=7");
//! assert!(!p.process(&mut LogRecord::new("GET /healthz 200")));
//! assert_eq!((p.stats.excluded, p.stats.masked), (1, 1));
//! ```

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::record::LogRecord;

/// The rule types (Datadog's `type` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleType {
    /// Drop logs the pattern matches.
    ExcludeAtMatch,
    /// Keep only logs the pattern matches.
    IncludeAtMatch,
    /// Replace matches with `replace_placeholder`.
    MaskSequences,
    /// Aggregate lines into one log; the pattern marks the start of a new log (handled by
    /// [`crate::multiline`], ignored by [`Processor`]).
    MultiLine,
}

/// One rule as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule type.
    #[serde(rename = "type")]
    pub kind: RuleType,
    /// The rule's name.
    pub name: String,
    /// The regular expression (RE2 syntax).
    pub pattern: String,
    /// The replacement for `mask_sequences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_placeholder: Option<String>,
}

/// A rule that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The pattern is not a valid regex.
    #[error("rule #{index} ({name}): invalid pattern: {message}")]
    Pattern {
        /// Position in the rule list (0-based).
        index: usize,
        /// The rule's name.
        name: String,
        /// The regex compiler's message.
        message: String,
    },
    /// `mask_sequences` without `replace_placeholder`.
    #[error("rule #{index} ({name}): mask_sequences needs replace_placeholder")]
    MissingPlaceholder {
        /// Position in the rule list (0-based).
        index: usize,
        /// The rule's name.
        name: String,
    },
    /// An empty pattern (Datadog rejects it too).
    #[error("rule #{index} ({name}): empty pattern")]
    EmptyPattern {
        /// Position in the rule list (0-based).
        index: usize,
        /// The rule's name.
        name: String,
    },
}

/// What the processor did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessorStats {
    /// Logs seen.
    pub processed: u64,
    /// Dropped by an `exclude_at_match` rule.
    pub excluded: u64,
    /// Dropped because an `include_at_match` rule did not match.
    pub not_included: u64,
    /// Logs in which at least one sequence was masked.
    pub masked: u64,
    /// Logs whose masked message reached [`Processor::max_message_bytes`] and was cut there.
    #[serde(default)]
    pub mask_truncated: u64,
}

#[derive(Debug)]
enum Compiled {
    Exclude(Regex),
    Include(Regex),
    Mask(Regex, String),
}

/// Compiled rules, applied in order.
#[derive(Debug)]
pub struct Processor {
    rules: Vec<Compiled>,
    max_message_bytes: usize,
    /// Counters.
    pub stats: ProcessorStats,
}

/// The default bound of a masked message: Datadog's 256 KiB line limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

impl Processor {
    /// Compiles `rules` (`multi_line` rules are skipped: see [`crate::multiline`]).
    pub fn new(rules: &[Rule]) -> Result<Self, RuleError> {
        let mut out = Vec::with_capacity(rules.len());
        for (index, r) in rules.iter().enumerate() {
            if r.pattern.is_empty() {
                return Err(RuleError::EmptyPattern {
                    index,
                    name: r.name.clone(),
                });
            }
            let re = Regex::new(&r.pattern).map_err(|e| RuleError::Pattern {
                index,
                name: r.name.clone(),
                message: e.to_string(),
            })?;
            out.push(match r.kind {
                RuleType::ExcludeAtMatch => Compiled::Exclude(re),
                RuleType::IncludeAtMatch => Compiled::Include(re),
                RuleType::MaskSequences => {
                    let Some(p) = r.replace_placeholder.clone() else {
                        return Err(RuleError::MissingPlaceholder {
                            index,
                            name: r.name.clone(),
                        });
                    };
                    Compiled::Mask(re, p)
                }
                RuleType::MultiLine => continue,
            });
        }
        Ok(Self {
            rules: out,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            stats: ProcessorStats::default(),
        })
    }

    /// Sets the size a masked message is cut at (at a character boundary; at least 1).
    ///
    /// ```
    /// use meshmon_logs::{rules::{Processor, Rule, RuleType}, LogRecord};
    /// let grow = Rule {
    ///     kind: RuleType::MaskSequences,
    ///     name: "grow".into(),
    ///     pattern: "a".into(),
    ///     replace_placeholder: Some("aaaa".into()),
    /// };
    /// let mut p = Processor::new(&[grow.clone(), grow.clone(), grow])
    ///     .unwrap()
    ///     .with_max_message_bytes(20);
    /// let mut r = LogRecord::new("aaa");
    /// assert!(p.process(&mut r));
    /// assert_eq!(r.message.len(), 20); // 3 × 4 × 4 × 4 = 192 bytes unbounded
    /// assert_eq!(p.stats.mask_truncated, 1);
    /// ```
    pub fn with_max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max.max(1);
        self
    }

    /// The size a masked message is cut at.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Applies the rules to `record.message`; returns whether the log is kept.
    pub fn process(&mut self, record: &mut LogRecord) -> bool {
        self.stats.processed += 1;
        let mut masked = false;
        let mut cut = false;
        for rule in &self.rules {
            match rule {
                Compiled::Exclude(re) => {
                    if re.is_match(&record.message) {
                        self.stats.excluded += 1;
                        return false;
                    }
                }
                Compiled::Include(re) => {
                    if !re.is_match(&record.message) {
                        self.stats.not_included += 1;
                        return false;
                    }
                }
                Compiled::Mask(re, placeholder) => {
                    if let Some((s, was_cut)) =
                        mask(re, placeholder, &record.message, self.max_message_bytes)
                    {
                        record.message = s;
                        masked = true;
                        cut |= was_cut;
                    }
                }
            }
        }
        if masked {
            self.stats.masked += 1;
        }
        if cut {
            self.stats.mask_truncated += 1;
        }
        true
    }
}

/// Replaces every match of `re` in `msg` with `placeholder` (`$1`, `${name}` expanded
/// as in `regex::Regex::replace_all`), stopping once the output passes `max` bytes; the
/// output is then cut to `max` at a character boundary. `None` when nothing matched;
/// otherwise the new message and whether it was cut.
fn mask(re: &Regex, placeholder: &str, msg: &str, max: usize) -> Option<(String, bool)> {
    let mut out = String::new();
    let mut last = 0;
    let mut any = false;
    let mut over = false;
    if placeholder.contains('$') {
        for caps in re.captures_iter(msg) {
            let m = caps.get_match();
            any = true;
            out.push_str(&msg[last..m.start()]);
            caps.expand(placeholder, &mut out);
            last = m.end();
            if out.len() > max {
                over = true;
                break;
            }
        }
    } else {
        for m in re.find_iter(msg) {
            any = true;
            out.push_str(&msg[last..m.start()]);
            out.push_str(placeholder);
            last = m.end();
            if out.len() > max {
                over = true;
                break;
            }
        }
    }
    if !any {
        return None;
    }
    if !over {
        out.push_str(&msg[last..]);
    }
    let cut = out.len() > max;
    if cut {
        let keep = meshmon_core::text::truncate_utf8(&out, max).len();
        out.truncate(keep);
    }
    Some((out, cut))
}
