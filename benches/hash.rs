//! Streaming SHA-256 throughput: what the copy engine pays per byte.
//!
//! `StreamHasher` (SHA-256 + head/tail bookkeeping) over 64 KiB and 8 KiB `Bytes` chunks (HTTP
//! bodies arrive in chunks of roughly that size), against bare `sha2::Sha256` on the same data.
//!
//! Two groups: `sha256` in wall time (criterion's default), and `sha256_cpu` in the thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`). `openssl speed` reports CPU time too, so compare
//! `sha256_cpu` with `openssl speed -evp sha256 -bytes 16384 -seconds 2` — it is also the
//! figure that holds on a machine where other work competes for the cores.

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use shardsync::hash::StreamHasher;
use std::hint::black_box;
use std::time::Duration;

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

fn bench<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let data = data();
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(TOTAL as u64));
    for chunk in [64 * 1024, 8 * 1024] {
        // Zero-copy slices, as a body stream hands them out.
        let chunks: Vec<Bytes> = (0..TOTAL)
            .step_by(chunk)
            .map(|o| data.slice(o..(o + chunk).min(TOTAL)))
            .collect();
        let size = format!("{}KiB", chunk / 1024);
        g.bench_with_input(BenchmarkId::new("StreamHasher", &size), &chunks, |b, chunks| {
            b.iter(|| {
                let mut h = StreamHasher::new();
                for c in chunks {
                    h.update(c);
                }
                black_box(h.finish().sha256)
            })
        });
        g.bench_with_input(BenchmarkId::new("sha2-bare", &size), &chunks, |b, chunks| {
            b.iter(|| {
                let mut h = Sha256::new();
                for c in chunks {
                    h.update(c);
                }
                black_box(h.finalize())
            })
        });
    }
    g.finish();
}

fn wall(c: &mut Criterion) {
    bench(c, "sha256");
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    bench(c, "sha256_cpu");
}

/// The calling thread's CPU time, in nanoseconds (criterion runs the routine on this thread).
pub struct ThreadCpu;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

fn thread_cpu_ns() -> u64 {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3; // Linux
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer to a C `struct timespec` (two 64-bit fields on 64-bit Linux).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns() - i
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (div, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e3, "µs cpu")
        } else if typical < 1e9 {
            (1e6, "ms cpu")
        } else {
            (1e9, "s cpu")
        };
        values.iter_mut().for_each(|v| *v /= div);
        unit
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let (n, unit) = match *t {
            Throughput::Bytes(b) => (b as f64 / (1024.0 * 1024.0 * 1024.0), "GiB/s cpu"),
            Throughput::BytesDecimal(b) => (b as f64 / 1e9, "GB/s cpu"),
            Throughput::Elements(e) => (e as f64 / 1e6, "Melem/s cpu"),
            Throughput::Bits(b) => (b as f64 / 1e9, "Gb/s cpu"),
        };
        values.iter_mut().for_each(|v| *v = n / (*v / 1e9));
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
