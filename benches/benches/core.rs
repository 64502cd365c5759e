//! Benchmarks for meshmon-core: tag parsing and set building.

use criterion::{Criterion, criterion_group, criterion_main};
use meshmon_core::Tags;
use std::hint::black_box;

fn tags(c: &mut Criterion) {
    let text = "env:prod service:reviews version:v2 cluster:east,team:mesh pod:reviews-v2-5f8c";
    c.bench_function("core/tags_parse_6", |b| {
        b.iter(|| black_box(text).parse::<Tags>())
    });
}

criterion_group!(benches, tags);
criterion_main!(benches);
