//! Log processing rules (`exclude_at_match`, `include_at_match`, `mask_sequences`,
//! `multi_line`) built from the input, applied to the input's log lines, plus the CRI
//! partial-line joiner. Input: rule lines up to the first NUL byte (`E<re>`, `I<re>`,
//! `M<re>\t<placeholder>`, `L<re>`), then log lines. Checks: a bad rule is an error, never
//! a panic; the rules survive a JSON round trip; every log is counted once (kept,
//! excluded or not included); the CRI joiner loses no byte.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshmon_core::Timestamp;
use meshmon_logs::LogRecord;
use meshmon_logs::format::{CriJoiner, parse_cri};
use meshmon_logs::multiline::{Continuation, MultiLine, MultiLineConfig};
use meshmon_logs::rules::{Processor, Rule, RuleType};

fn rule(i: usize, line: &str) -> Option<Rule> {
    let (kind, rest) = match line.as_bytes().first()? {
        b'E' => (RuleType::ExcludeAtMatch, &line[1..]),
        b'I' => (RuleType::IncludeAtMatch, &line[1..]),
        b'M' => (RuleType::MaskSequences, &line[1..]),
        b'L' => (RuleType::MultiLine, &line[1..]),
        _ => return None,
    };
    let (pattern, placeholder) = match rest.split_once('\t') {
        Some((p, r)) => (p, Some(r.to_owned())),
        None => (rest, None),
    };
    Some(Rule {
        kind,
        name: format!("r{i}"),
        pattern: pattern.to_owned(),
        replace_placeholder: placeholder,
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    // Patterns are bounded so one input cannot spend seconds compiling a regex.
    let rules: Vec<Rule> = head
        .lines()
        .take(8)
        .enumerate()
        .filter_map(|(i, l)| rule(i, l))
        .filter(|r| r.pattern.len() <= 64)
        .collect();
    let json = serde_json::to_string(&rules).expect("rules serialise");
    let back: Vec<Rule> = serde_json::from_str(&json).expect("rules deserialise");
    assert_eq!(back, rules);
    let Ok(mut processor) = Processor::new(&rules) else {
        return;
    };
    let start = rules
        .iter()
        .find(|r| r.kind == RuleType::MultiLine)
        .and_then(|r| regex::Regex::new(&r.pattern).ok());
    let small = data.first().is_some_and(|b| b & 1 == 1);
    let mut cfg = MultiLineConfig::default();
    if small {
        cfg.max_bytes = 40;
        cfg.max_lines = 3;
        cfg.flush_timeout = Duration::from_secs(2);
    }
    let mut ml = start.map(|re| MultiLine::new(Continuation::StartPattern(re), cfg.clone()));
    let mut joiner = CriJoiner::new(if small { 16 } else { 256 * 1024 });
    let (mut cri_in, mut cri_out) = (0usize, 0usize);
    let mut logs = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if let Ok(cri) = parse_cri(line) {
            cri_in += cri.message.len();
            if let Some(r) = joiner.push(&cri) {
                cri_out += r.message.len();
            }
        }
        let rec = LogRecord::new(String::from_utf8_lossy(line).into_owned());
        match ml.as_mut() {
            Some(Ok(ml)) => logs.extend(ml.push(rec, Timestamp::from_secs(i as i64))),
            _ => logs.push(rec),
        }
    }
    if let Some(Ok(ml)) = ml.as_mut() {
        logs.extend(ml.flush());
    }
    cri_out += joiner.flush().iter().map(|r| r.message.len()).sum::<usize>();
    assert_eq!(cri_in, cri_out, "the CRI joiner lost or invented bytes");
    let mut kept = 0u64;
    for mut rec in logs {
        if processor.process(&mut rec) {
            kept += 1;
        }
    }
    let s = &processor.stats;
    assert_eq!(s.processed, kept + s.excluded + s.not_included);
    assert!(s.masked <= kept);
});
