//! Streaming SHA-256 throughput: what the copy engine pays per byte.
//!
//! `StreamHasher` (SHA-256 + head/tail bookkeeping) over 64 KiB and 8 KiB `Bytes` chunks (HTTP
//! bodies arrive in chunks of roughly that size), against bare `sha2::Sha256` on the same data.
//! Compare with `openssl speed -evp sha256 -bytes 16384 -seconds 2` on the same machine.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use shardsync::hash::StreamHasher;
use std::hint::black_box;

const TOTAL: usize = 64 * 1024 * 1024;

fn data() -> Bytes {
    let mut v = vec![0u8; TOTAL];
    let mut x: u64 = 0x1234_5678_9abc_def0;
    for c in v.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

fn bench(c: &mut Criterion) {
    let data = data();
    let mut g = c.benchmark_group("sha256");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.throughput(Throughput::Bytes(TOTAL as u64));
    for chunk in [64 * 1024, 8 * 1024] {
        // Zero-copy slices, as a body stream hands them out.
        let chunks: Vec<Bytes> = (0..TOTAL)
            .step_by(chunk)
            .map(|o| data.slice(o..(o + chunk).min(TOTAL)))
            .collect();
        g.bench_with_input(
            BenchmarkId::new("StreamHasher", format!("{}KiB", chunk / 1024)),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    let mut h = StreamHasher::new();
                    for c in chunks {
                        h.update(c);
                    }
                    black_box(h.finish().sha256)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("sha2-bare", format!("{}KiB", chunk / 1024)),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    let mut h = Sha256::new();
                    for c in chunks {
                        h.update(c);
                    }
                    black_box(h.finalize())
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
