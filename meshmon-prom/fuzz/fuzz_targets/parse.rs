//! Fuzzes the parser in both formats and the Datadog mapping: no panic, and every
//! accepted input's samples are the same through the streaming and the owned API.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshmon_core::Timestamp;
use meshmon_prom::{Format, Mapper, ParseOptions, Parser, MappingConfig, count, count_with, parse};

fuzz_target!(|data: &[u8]| {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let counted = count(data, format);
        let owned = parse(data, format);
        match (&counted, &owned) {
            (Ok((fams, samples)), Ok(o)) => {
                assert_eq!(*fams, o.len());
                assert_eq!(*samples, o.iter().map(|f| f.samples.len()).sum::<usize>());
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("count and parse disagree"),
        }
        // label views re-scan what the grammar validated
        let mut p = Parser::new(data, format);
        while let Some(Ok(f)) = p.next_family() {
            for s in f.samples {
                assert_eq!(s.labels.iter().count(), s.labels.len());
                for l in s.labels.iter() {
                    let _ = l.value.unescape();
                }
            }
        }
        let lenient = ParseOptions::default().with_strict(false);
        if counted.is_ok() {
            assert!(count_with(data, format, lenient).is_ok());
        }
        let mut cfg = MappingConfig::istio_mesh();
        cfg.metrics.push(meshmon_prom::mapping::MetricSpec {
            raw: ".*".into(),
            name: None,
            kind: meshmon_prom::mapping::SubmitType::Native,
        });
        cfg.non_cumulative_histogram_buckets = data.first().is_some_and(|b| b & 1 == 1);
        cfg.histogram_buckets_as_distributions = data.first().is_some_and(|b| b & 2 == 2);
        if let Ok(mut m) = Mapper::new(cfg) {
            let _ = m.map(data, format, Timestamp::EPOCH, &mut |_| {});
        }
    }
});
