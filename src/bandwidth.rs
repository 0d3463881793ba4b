//! `--bwlimit`: one token bucket shared by every copy, so the source is read at most at a
//! total rate, with bursts.
//!
//! Each chunk read from the source takes its size from the bucket. The bucket may go into
//! debt: a chunk larger than the burst is let through and the next taker waits until the debt
//! is repaid, so no chunk size can stall a copy. Waiting is a tokio sleep, never a busy loop;
//! takers queue on a fair mutex, so copies share the rate in turn. The limiter keeps its own
//! accounting (bytes granted, time it made takers wait), which reports and tests read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A shared limit on bytes per second, with a burst. Clone the `Arc` into every copy.
#[derive(Debug)]
pub struct BandwidthLimit {
    rate: u64,
    burst: u64,
    bucket: Mutex<Bucket>,
    granted: AtomicU64,
    waited_nanos: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may pass now; negative while a large chunk's debt is repaid.
    tokens: f64,
    refilled_at: Instant,
}

impl BandwidthLimit {
    /// At most `rate` bytes per second on average, and at most `burst` bytes at once after an
    /// idle spell (both at least 1). The bucket starts full.
    pub fn new(rate: u64, burst: u64) -> Arc<BandwidthLimit> {
        let (rate, burst) = (rate.max(1), burst.max(1));
        Arc::new(BandwidthLimit {
            rate,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst as f64,
                refilled_at: Instant::now(),
            }),
            granted: AtomicU64::new(0),
            waited_nanos: AtomicU64::new(0),
        })
    }

    /// The limit, in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The burst, in bytes.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Let `bytes` pass: returns at once while the bucket holds them, else once the rate has
    /// made up for them. Dropping the future (a cancelled copy) leaves the bytes counted.
    pub async fn take(&self, bytes: u64) {
        let mut bucket = self.bucket.lock().await;
        let now = Instant::now();
        let refill = now.duration_since(bucket.refilled_at).as_secs_f64() * self.rate as f64;
        bucket.tokens = (bucket.tokens + refill).min(self.burst as f64) - bytes as f64;
        bucket.refilled_at = now;
        self.granted.fetch_add(bytes, Ordering::Relaxed);
        if bucket.tokens < 0.0 {
            let wait = Duration::from_secs_f64(-bucket.tokens / self.rate as f64);
            self.waited_nanos.fetch_add(
                u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            // Held while sleeping: the next taker queues behind the debt, in turn.
            tokio::time::sleep(wait).await;
        }
    }

    /// Bytes let through so far.
    pub fn bytes_granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// How long takers were made to wait in all, so far.
    pub fn throttled(&self) -> Duration {
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_passes_at_once_and_the_rest_waits_for_the_rate() {
        let limit = BandwidthLimit::new(1 << 20, 64 << 10);
        limit.take(64 << 10).await;
        assert_eq!(limit.throttled(), Duration::ZERO, "the first burst is free");
        // A chunk four times the burst is not refused or stalled: it passes and is repaid.
        limit.take(256 << 10).await;
        assert_eq!(limit.bytes_granted(), 320 << 10);
        let owed = Duration::from_secs_f64((256 << 10) as f64 / (1 << 20) as f64);
        assert!(
            limit.throttled() > owed / 2 && limit.throttled() <= owed,
            "{:?}",
            limit.throttled()
        );
    }
}
