//! DogStatsD: the codec allocates nothing, and the aggregator does what the Agent does.

use meshmon_core::dogstatsd::aggregate::{Aggregator, AggregatorConfig, HistogramAggregate};
use meshmon_core::dogstatsd::{Message, parse_packet};
use meshmon_core::{Metric, MetricValue, Timestamp};

use crate::test_util::count_allocations;

const PACKET: &[u8] = b"istio.requests:1|c|@0.5|#service:reviews,env:prod,version:v1\n\
mesh.latency:12.5:13:14|ms|#service:ratings\n\
pods.up:3|g|#namespace:default|c:83c0a99c0a54|T1700000000\n\
users:alice|s\n\
payload.size:512|d|@0.1|#a,b,c,d,e,f,g,h\n\
_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning|#err_type:bad_file\n\
_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s\n\
bad:line|q\n";

#[test]
fn parsing_allocates_nothing() {
    // Warm up (lazy statics of the formatting machinery, if any).
    let _ = parse_packet(PACKET).count();
    let ((msgs, errs, values, tags), allocs) = count_allocations(|| {
        let (mut msgs, mut errs, mut values, mut tags) = (0, 0, 0.0, 0);
        for _ in 0..100 {
            for msg in parse_packet(PACKET) {
                match msg {
                    Ok(Message::Metric(m)) => {
                        values += m.values().sum::<f64>();
                        tags += m.tags.iter().count();
                        msgs += 1;
                    }
                    Ok(Message::Event(e)) => tags += e.tags.iter().count(),
                    Ok(Message::ServiceCheck(s)) => tags += s.tags.iter().count(),
                    Err(e) => {
                        errs += 1;
                        assert_eq!(e.at, PACKET.len() - 2);
                    }
                }
            }
        }
        (msgs, errs, values, tags)
    });
    assert_eq!((msgs, errs, tags), (500, 100, 1500));
    assert_eq!(values, 100.0 * (1.0 + 39.5 + 3.0 + 512.0));
    assert_eq!(allocs, 0);
}

fn find<'a>(out: &'a [Metric], name: &str) -> &'a Metric {
    out.iter()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{name} missing from {out:?}"))
}

fn feed(agg: &mut Aggregator, packet: &[u8]) {
    for msg in parse_packet(packet) {
        if let Ok(Message::Metric(m)) = msg {
            agg.insert(&m);
        }
    }
}

#[test]
fn aggregates_like_the_agent() {
    let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
    feed(
        &mut agg,
        b"hits:1|c|@0.5|#b:2,a:1\nhits:2|c|#a:1,b:2,a:1\nhits:7|c|#a:1\n\
          temp:1|g\ntemp:5|g\nusers:a|s\nusers:b:a|s\nusers:c|s\n\
          lat:1:2:3:4:5:6:7:8:9:10|h\nlat:100|h|@0.25\n\
          size:4|d|@0.5\nsize:8|d",
    );
    assert_eq!(agg.contexts(), 6);
    let now = Timestamp::from_secs(1_700_000_010);
    let out = agg.flush(now);
    assert_eq!(agg.contexts(), 0);
    // Tag order and duplicates do not split a context: 1/0.5 + 2 = 4.
    let hits: Vec<_> = out.iter().filter(|m| m.name() == "hits").collect();
    assert_eq!(hits.len(), 2);
    let ab = hits.iter().find(|m| m.tags.len() == 2).unwrap();
    assert_eq!(
        (ab.value.clone(), ab.tags.to_string()),
        (MetricValue::Count(4.0), "a:1,b:2".into())
    );
    assert_eq!(ab.timestamp, now);
    assert_eq!(find(&out, "temp").value, MetricValue::Gauge(5.0));
    assert_eq!(find(&out, "users").value, MetricValue::Gauge(3.0));
    // 11 samples 1..10, 100: max 100, median (nearest rank 6) 6, avg 155/11,
    // count 10 + 1/0.25 = 14, p95 (rank 11) 100.
    assert_eq!(find(&out, "lat.max").value, MetricValue::Gauge(100.0));
    assert_eq!(find(&out, "lat.median").value, MetricValue::Gauge(6.0));
    assert_eq!(
        find(&out, "lat.avg").value,
        MetricValue::Gauge(155.0 / 11.0)
    );
    assert_eq!(find(&out, "lat.count").value, MetricValue::Count(14.0));
    assert_eq!(
        find(&out, "lat.95percentile").value,
        MetricValue::Gauge(100.0)
    );
    assert!(out.iter().all(|m| m.name() != "lat"));
    let MetricValue::Distribution(mut d) = find(&out, "size").value.clone() else {
        panic!()
    };
    d.sort_by(f64::total_cmp);
    assert_eq!(d, [4.0, 4.0, 8.0]);
    assert_eq!(out.len(), 2 + 1 + 1 + 5 + 1);
    // A second flush is empty: contexts do not outlive their interval.
    assert!(agg.flush(now).is_empty());
}

#[test]
fn timestamped_gauges_and_counts_bypass_aggregation() {
    let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
    feed(
        &mut agg,
        b"g:1|g|T1700000000\ng:2|g|T1700000005\nc:3|c|@0.5|T1700000000\nh:1|h|T1700000000",
    );
    let out = agg.flush(Timestamp::from_secs(1_700_000_010));
    let g: Vec<_> = out
        .iter()
        .filter(|m| m.name() == "g")
        .map(|m| (m.timestamp.as_secs(), m.value.clone()))
        .collect();
    assert_eq!(
        g,
        [
            (1_700_000_000, MetricValue::Gauge(1.0)),
            (1_700_000_005, MetricValue::Gauge(2.0))
        ]
    );
    assert_eq!(find(&out, "c").value, MetricValue::Count(6.0));
    // Histograms ignore the timestamp and are aggregated at the flush time.
    assert_eq!(find(&out, "h.max").timestamp.as_secs(), 1_700_000_010);
}

#[test]
fn limits_are_counted_when_hit() {
    let mut config = AggregatorConfig::default();
    config.max_contexts = 2;
    config.max_samples_per_context = 3;
    config.histogram_aggregates = vec![HistogramAggregate::Count, HistogramAggregate::Min];
    config.histogram_percentiles = vec![0.5, 0.99];
    let mut agg = Aggregator::new(config.clone()).unwrap();
    feed(
        &mut agg,
        b"a:1|c\nb:1:2:3:4:5|h\nc:1:2|c\na:1|c|#bad tag,ok\n",
    );
    let stats = agg.stats();
    // `c` is a third context (2 values dropped); `a|#ok` would be a third too (1 value).
    assert_eq!(stats.contexts_dropped, 3);
    assert_eq!(stats.samples_dropped, 2);
    assert_eq!(stats.invalid_tags, 1);
    assert_eq!(stats.samples, 1 + 3);
    let out = agg.flush(Timestamp::EPOCH);
    let names: std::collections::BTreeSet<_> = out.iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["a", "b.50percentile", "b.99percentile", "b.count", "b.min"]
    );
    assert_eq!(find(&out, "b.count").value, MetricValue::Count(3.0));

    config.max_contexts = 0;
    assert!(Aggregator::new(config.clone()).is_err());
    config.max_contexts = 1;
    config.histogram_percentiles = vec![1.5];
    assert_eq!(
        Aggregator::new(config).unwrap_err().to_string(),
        "histogram percentile 1.5 is not in (0, 1)"
    );
}

#[test]
fn inserting_into_existing_contexts_allocates_nothing() {
    let mut agg = Aggregator::new(AggregatorConfig::default()).unwrap();
    let packet = b"hits:1|c|#service:reviews,env:prod\ntemp:3|g|#zone:a\n";
    feed(&mut agg, packet);
    let ((), allocs) = count_allocations(|| {
        for _ in 0..1000 {
            feed(&mut agg, packet);
        }
    });
    assert_eq!(allocs, 0);
    let out = agg.flush(Timestamp::EPOCH);
    assert_eq!(find(&out, "hits").value, MetricValue::Count(1001.0));
}
