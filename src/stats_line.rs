//! The periodic one-line progress summary for logs (Kubernetes, Slurm, CI), where bars would
//! be noise: `stats: copying 1.20 GiB / 4.00 GiB (30%), 120/400 objects, 85.00 MiB/s, ETA 34s,
//! 0 failed`. Built on the library's event stream like the bars; a timer prints the line every
//! `--stats` interval while a stage runs (so a stalled copy still shows up in the log), and once
//! more when a stage that ran that long ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use shardsync::display::human_bytes;
use shardsync::events::{Event, Stage};

/// Counts of the current stage, printed as one line every interval.
#[derive(Debug)]
pub struct StatsLine {
    every: Duration,
    stage: Mutex<Option<StageTotals>>,
    bytes: AtomicU64,
    objects: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct StageTotals {
    stage: Stage,
    objects: u64,
    bytes: u64,
    started: Instant,
}

impl StatsLine {
    /// A stats line every `every`, printed by `print`; the timer runs on the current tokio
    /// runtime and stops when the returned line is dropped.
    pub fn start(every: Duration, print: impl Fn(&str) + Send + Sync + 'static) -> Arc<StatsLine> {
        let line = Arc::new(StatsLine {
            every,
            stage: Mutex::new(None),
            bytes: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let weak: Weak<StatsLine> = Arc::downgrade(&line);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate
            loop {
                tick.tick().await;
                let Some(line) = weak.upgrade() else { return };
                if let Some(text) = line.render() {
                    print(&text);
                }
            }
        });
        line
    }

    fn totals(&self) -> Option<StageTotals> {
        *self.stage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The line for the stage running now (none between stages).
    fn render(&self) -> Option<String> {
        let t = self.totals()?;
        Some(self.render_for(&t))
    }

    fn render_for(&self, t: &StageTotals) -> String {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let objects = self.objects.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let secs = t.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        let percent = if t.bytes > 0 {
            (bytes as f64 * 100.0 / t.bytes as f64).min(100.0)
        } else if t.objects > 0 {
            (objects as f64 * 100.0 / t.objects as f64).min(100.0)
        } else {
            100.0
        };
        let eta = if bytes >= t.bytes {
            "0s".to_string()
        } else if rate > 0.0 {
            let left = Duration::from_secs(((t.bytes - bytes) as f64 / rate).ceil() as u64);
            humantime::format_duration(left).to_string()
        } else {
            "unknown".to_string()
        };
        format!(
            "stats: {} {} / {} ({percent:.0}%), {objects}/{} objects, {}/s, ETA {eta}, {failed} failed",
            t.stage,
            human_bytes(bytes),
            human_bytes(t.bytes),
            t.objects,
            human_bytes(rate as u64),
        )
    }

    /// Follow one event; returns a last line to print when a stage that ran at least one
    /// interval ends.
    pub fn on_event(&self, event: &Event<'_>) -> Option<String> {
        match *event {
            Event::StageStarted {
                stage,
                objects,
                bytes,
            } => {
                self.bytes.store(0, Ordering::Relaxed);
                self.objects.store(0, Ordering::Relaxed);
                self.failed.store(0, Ordering::Relaxed);
                *self.stage.lock().unwrap_or_else(|p| p.into_inner()) = Some(StageTotals {
                    stage,
                    objects,
                    bytes,
                    started: Instant::now(),
                });
            }
            Event::Bytes(n) => {
                self.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Event::BytesRetracted(n) => {
                let _ = self
                    .bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                        Some(b.saturating_sub(n))
                    });
            }
            Event::ObjectDone { .. } => {
                self.objects.fetch_add(1, Ordering::Relaxed);
            }
            Event::ObjectFailed { .. } => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            Event::StageFinished => {
                let t = self.stage.lock().unwrap_or_else(|p| p.into_inner()).take()?;
                if t.started.elapsed() >= self.every {
                    return Some(self.render_for(&t));
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stage_that_ran_an_interval_ends_with_a_line_of_its_totals() {
        let line = StatsLine::start(Duration::from_millis(1), |_| {});
        line.on_event(&Event::StageStarted {
            stage: Stage::Copying,
            objects: 4,
            bytes: 4096,
        });
        line.on_event(&Event::Bytes(1024));
        line.on_event(&Event::ObjectDone { path: "a" });
        line.on_event(&Event::ObjectFailed { path: "b" });
        let now = line.render().expect("a stage is running");
        assert!(
            now.starts_with("stats: copying 1.00 KiB / 4.00 KiB (25%), 1/4 objects, "),
            "{now}"
        );
        assert!(now.ends_with(", 1 failed"), "{now}");
        std::thread::sleep(Duration::from_millis(2));
        let last = line.on_event(&Event::StageFinished).expect("a last line");
        assert!(last.contains("1/4 objects"), "{last}");
        assert!(line.render().is_none(), "no line between stages");
    }
}
