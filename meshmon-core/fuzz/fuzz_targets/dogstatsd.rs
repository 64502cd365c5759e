//! Arbitrary datagrams through the DogStatsD codec and the aggregator: no panic; every
//! error points inside the datagram; every parsed metric has a name, finite values and a
//! sample rate in (0, 1]; the aggregator keeps its limits and flushes only finite values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshmon_core::dogstatsd::aggregate::{Aggregator, AggregatorConfig};
use meshmon_core::dogstatsd::{Message, MetricType, parse_message, parse_packet};
use meshmon_core::{MetricValue, Timestamp};

fuzz_target!(|data: &[u8]| {
    // The first byte picks small limits sometimes, to exercise the drop policy.
    let mut cfg = AggregatorConfig::default();
    let small = data.first().is_some_and(|b| b & 1 == 1);
    if small {
        cfg.max_contexts = 4;
        cfg.max_samples_per_context = 8;
    }
    let Ok(mut agg) = Aggregator::new(cfg.clone()) else {
        return;
    };
    let mut inserted = 0usize;
    for msg in parse_packet(data) {
        match msg {
            Ok(Message::Metric(m)) => {
                assert!(!m.name.is_empty());
                assert!(m.sample_rate > 0.0 && m.sample_rate <= 1.0, "rate {}", m.sample_rate);
                if m.metric_type == MetricType::Set {
                    assert_eq!(m.values().count(), 0);
                } else {
                    assert_eq!(m.values().count(), m.raw_values().count());
                    assert!(m.values().all(f64::is_finite));
                }
                let _ = m.tags.iter().count();
                agg.insert(&m);
                inserted += 1;
                assert!(agg.contexts() <= cfg.max_contexts);
            }
            Ok(Message::Event(e)) => {
                assert!(!e.title.is_empty());
                let _ = e.tags.iter().count();
            }
            Ok(Message::ServiceCheck(sc)) => {
                assert!(!sc.name.is_empty());
            }
            Err(e) => {
                assert!(e.at <= data.len(), "error at {} past {}", e.at, data.len());
                let _ = e.to_string();
            }
        }
    }
    // Each line parsed alone agrees with the packet parser on success.
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Err(e) = parse_message(line) {
            assert!(e.at <= line.len());
        }
    }
    let out = agg.flush(Timestamp::from_secs(1_700_000_000));
    for m in &out {
        match &m.value {
            MetricValue::Gauge(v) | MetricValue::Count(v) => assert!(v.is_finite(), "{m:?}"),
            MetricValue::Distribution(vs) => {
                assert!(vs.len() <= cfg.max_samples_per_context.max(1) * 1000 || !small);
                assert!(vs.iter().all(|v| v.is_finite()));
            }
            _ => {}
        }
    }
    assert_eq!(agg.contexts(), 0, "every context is removed after its flush");
    let _ = inserted;
    let _ = agg.stats();
});
