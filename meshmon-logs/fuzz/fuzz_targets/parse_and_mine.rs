//! Arbitrary bytes through every line parser, multi-line aggregation and the pattern
//! miner; checks the regex property (each message matches its pattern's regex) and that
//! persistence keeps ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshmon_core::Timestamp;
use meshmon_logs::format::{self, Format, LineParser};
use meshmon_logs::multiline::{Continuation, MultiLine, MultiLineConfig};
use meshmon_logs::pattern::{Miner, MinerConfig};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a small pattern limit sometimes, to exercise the policy.
    let mut cfg = MinerConfig::default();
    if data.first().is_some_and(|b| b & 1 == 1) {
        cfg.max_patterns = 3;
        cfg.max_tokens = 6;
    }
    let Ok(mut miner) = Miner::new(cfg) else {
        return;
    };
    let mut parser = LineParser::new(Format::Auto);
    let Ok(mut ml) = MultiLine::new(Continuation::Indented, MultiLineConfig::default()) else {
        return;
    };
    let mut msgs = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let _ = format::parse_cri(line);
        let _ = format::parse_docker(line);
        let _ = format::parse_envoy(line).map(|l| l.to_record());
        let _ = format::parse_istio(line).map(|l| l.to_record());
        let _ = format::parse_json(line);
        let _ = format::parse_logfmt(line);
        let _ = format::detect(line);
        if let Some(rec) = parser.parse(line) {
            if let Some(done) = ml.push(rec, Timestamp::from_secs(i as i64)) {
                msgs.push(done.message);
            }
        }
    }
    msgs.extend(parser.flush().into_iter().map(|r| r.message));
    msgs.extend(ml.flush().map(|r| r.message));
    let ids: Vec<_> = msgs.iter().map(|m| miner.add(m)).collect();
    // Compiling regexes dominates the cost: one per pattern, checked on all its messages.
    let mut compiled: std::collections::HashMap<_, regex::Regex> = std::collections::HashMap::new();
    for (m, id) in msgs.iter().zip(&ids) {
        let id = miner.resolve(*id);
        if let Some(p) = miner.pattern(id) {
            let re = compiled
                .entry(id)
                .or_insert_with(|| regex::Regex::new(&p.regex()).expect("pattern regex compiles"));
            assert!(re.is_match(m), "{m:?} !~ {}", p.regex());
            let _ = p.template();
            let _ = p.typed_template();
        }
    }
    let json = serde_json::to_string(&miner).expect("serialise");
    let back: Miner = serde_json::from_str(&json).expect("deserialise");
    for id in &ids {
        assert_eq!(back.resolve(*id), miner.resolve(*id));
    }
});
