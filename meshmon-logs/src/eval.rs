//! Log-parsing accuracy metrics as the Loghub benchmark defines them
//! (Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP 2019;
//! Jiang et al., "A Large-scale Evaluation for Log Parsing Techniques", ISSTA 2024).
//!
//! - Grouping Accuracy (GA): a line is correct when the set of lines in its predicted
//!   group equals the set of lines in its true group; GA is the fraction of correct lines.
//! - Parsing Accuracy (PA): the fraction of lines whose predicted template string equals
//!   the true one.
//!
//! ```
//! use meshmon_logs::eval::{grouping_accuracy, parsing_accuracy};
//! let truth = ["E1", "E1", "E2", "E3"];
//! let pred = [7, 7, 8, 8];
//! assert_eq!(grouping_accuracy(&truth, &pred), 0.5);
//! assert_eq!(parsing_accuracy(&["a <*>", "b"], &["a <*>", "c"]), 0.5);
//! ```

use std::collections::HashMap;
use std::hash::Hash;

/// Grouping Accuracy of `pred` against `truth` (one label per line, same length; extra
/// lines in the longer slice are ignored). 1.0 for empty input.
pub fn grouping_accuracy<T: Hash + Eq, P: Hash + Eq>(truth: &[T], pred: &[P]) -> f64 {
    let n = truth.len().min(pred.len());
    if n == 0 {
        return 1.0;
    }
    let mut t_size: HashMap<&T, usize> = HashMap::new();
    let mut p_size: HashMap<&P, usize> = HashMap::new();
    let mut pair: HashMap<(&T, &P), usize> = HashMap::new();
    for (t, p) in truth.iter().zip(pred).take(n) {
        *t_size.entry(t).or_default() += 1;
        *p_size.entry(p).or_default() += 1;
        *pair.entry((t, p)).or_default() += 1;
    }
    let correct: usize = pair
        .iter()
        .filter(|((t, p), c)| t_size[t] == **c && p_size[p] == **c)
        .map(|(_, c)| *c)
        .sum();
    correct as f64 / n as f64
}

/// Parsing Accuracy: the fraction of lines whose predicted template equals the true one
/// (compared after trimming surrounding whitespace).
pub fn parsing_accuracy<A: AsRef<str>, B: AsRef<str>>(truth: &[A], pred: &[B]) -> f64 {
    let n = truth.len().min(pred.len());
    if n == 0 {
        return 1.0;
    }
    let ok = truth
        .iter()
        .zip(pred)
        .filter(|(t, p)| t.as_ref().trim() == p.as_ref().trim())
        .count();
    ok as f64 / n as f64
}

/// Converts a logpai `log_format` (`<Date> <Time> <Level> <Component>: <Content>`) into an
/// anchored regex with one named group per field: fields match lazily (`.*?`), literal
/// text between fields is already a regex fragment in which runs of spaces match `\s+`.
pub fn loghub_format_regex(log_format: &str) -> String {
    let mut out = String::from("^");
    let mut rest = log_format;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|c| open + c) else {
            break;
        };
        push_literal(&mut out, &rest[..open]);
        let name = &rest[open + 1..close];
        out.push_str("(?P<");
        out.push_str(name);
        out.push_str(">.*?)");
        rest = &rest[close + 1..];
    }
    push_literal(&mut out, rest);
    out.push('$');
    out
}

fn push_literal(out: &mut String, lit: &str) {
    let mut in_space = false;
    for c in lit.chars() {
        if c == ' ' {
            if !in_space {
                out.push_str(r"\s+");
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
}
