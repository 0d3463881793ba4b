//! Manifest and diff at 1,000,000 entries: build (sort + validate + digest), save (pretty JSON),
//! load (parse + validate + digest check), and the diff of two 1M-entry sides.
//!
//! Peak memory of each step: `bench-manifest-rss` (benches/tools/manifest_rss.rs) under
//! `/usr/bin/time -v`; see benches/README.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shardsync::diff::diff;
use shardsync::manifest::Manifest;
use std::hint::black_box;
use std::time::Duration;

#[path = "tools/entries.rs"]
mod entries;

const N: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let entries = entries::entries(N);
    let manifest = Manifest::new("s3://bench/dataset", entries.clone()).unwrap();
    let json = manifest.to_json();
    eprintln!(
        "manifest of {N} entries: {:.1} MiB of JSON",
        json.len() as f64 / 1048576.0
    );

    let mut g = c.benchmark_group("manifest_1M");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("new", |b| {
        b.iter_batched(
            || entries.clone(),
            |e| black_box(Manifest::new("s3://bench/dataset", e).unwrap()),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("to_json", |b| b.iter(|| black_box(manifest.to_json())));
    g.bench_function("from_json", |b| {
        b.iter(|| black_box(Manifest::from_json(&json, "bench").unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("diff_1M");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(N as u64));
    for (name, every) in [("noop", 0usize), ("10pct_changed", 10)] {
        let (src, dst_list) = entries::diff_inputs(&manifest.shards, every);
        // The diff consumes its inputs: clone them outside the timed part; the plan is dropped
        // outside it too.
        g.bench_function(name, |b| {
            b.iter_batched(
                || (src.clone(), dst_list.clone()),
                |(src, dst_list)| black_box(diff(src, Some(&manifest), dst_list)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
