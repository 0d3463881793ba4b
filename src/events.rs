//! What the engine tells the outside world while it works, and nothing about how it is shown.
//!
//! The engine knows no front end (ripgrep's `Sink` is the model): it sends [`Event`]s to an
//! [`Observer`] the caller provides. The `shardsync` binary renders them as terminal bars, a
//! Python caller forwards them to a callback, [`LogLines`] turns them into periodic log lines
//! for a batch job. Without an observer an event costs a branch.
//!
//! Events come from many tasks at once; an observer must be cheap and must not block (byte
//! events arrive once per chunk, per copy).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stretch of work with its own totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Reading source objects to learn their SHA-256 (building a manifest).
    Hashing,
    /// Comparing destination objects with source hashes (objects not in the destination manifest).
    Proving,
    /// Copying shards from source to destination.
    Copying,
    /// Reading Parquet footers (a shallow check).
    ReadingFooters,
}

impl Stage {
    /// A short lower-case name (`copying`), as bars and log lines show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Hashing => "hashing",
            Stage::Proving => "proving",
            Stage::Copying => "copying",
            Stage::ReadingFooters => "footers",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A stage began over this many objects and bytes.
    StageStarted {
        /// Which stage.
        stage: Stage,
        /// Objects the stage will handle.
        objects: u64,
        /// Bytes the stage will read or move.
        bytes: u64,
    },
    /// Bytes moved or hashed since the last event.
    Bytes(u64),
    /// Bytes of an attempt that failed and will be retried: take them back.
    BytesRetracted(u64),
    /// One object of the current stage finished (copied, hashed, or failed: the outcome is in
    /// the report).
    ObjectDone {
        /// The object's path relative to the dataset root.
        path: &'a str,
    },
    /// One object of the current stage failed (its cause is in the report); an
    /// [`Event::ObjectDone`] for it follows.
    ObjectFailed {
        /// The object's path relative to the dataset root.
        path: &'a str,
    },
    /// The current stage ended.
    StageFinished,
}

/// Receives events. Implementations must be cheap and must not block.
pub trait Observer: Send + Sync {
    /// Called for every event, from any task.
    fn on_event(&self, event: &Event<'_>);
}

/// The handle the engine reports through: an optional observer, cheap to clone.
#[derive(Clone, Default)]
pub struct Events {
    observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Events {
    /// Events go to `observer`.
    pub fn new(observer: Arc<dyn Observer>) -> Self {
        Events {
            observer: Some(observer),
        }
    }

    /// Events go nowhere.
    pub fn none() -> Self {
        Events { observer: None }
    }

    fn send(&self, event: Event<'_>) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }

    pub(crate) fn start(&self, stage: Stage, objects: u64, bytes: u64) {
        self.send(Event::StageStarted {
            stage,
            objects,
            bytes,
        });
    }

    pub(crate) fn add_bytes(&self, n: u64) {
        self.send(Event::Bytes(n));
    }

    pub(crate) fn sub_bytes(&self, n: u64) {
        self.send(Event::BytesRetracted(n));
    }

    pub(crate) fn object_done(&self, path: &str) {
        self.send(Event::ObjectDone { path });
    }

    pub(crate) fn object_failed(&self, path: &str) {
        self.send(Event::ObjectFailed { path });
    }

    pub(crate) fn finish(&self) {
        self.send(Event::StageFinished);
    }
}

/// An observer for logs (a Kubernetes pod, a Slurm job): a line through `tracing` when a stage
/// starts, at most every `every` while it runs, and when it ends.
#[derive(Debug)]
pub struct LogLines {
    every: Duration,
    state: Mutex<LogState>,
    bytes: AtomicU64,
    objects: AtomicU64,
}

#[derive(Debug)]
struct LogState {
    stage: Option<Stage>,
    total_objects: u64,
    total_bytes: u64,
    started: Instant,
    last_line: Instant,
}

impl LogLines {
    /// A line at most every `every` (and at each stage's start and end).
    pub fn every(every: Duration) -> Self {
        let now = Instant::now();
        LogLines {
            every,
            state: Mutex::new(LogState {
                stage: None,
                total_objects: 0,
                total_bytes: 0,
                started: now,
                last_line: now,
            }),
            bytes: AtomicU64::new(0),
            objects: AtomicU64::new(0),
        }
    }

    fn line(&self, s: &LogState, what: &str) {
        let (bytes, objects) = (
            self.bytes.load(Ordering::Relaxed),
            self.objects.load(Ordering::Relaxed),
        );
        let secs = s.started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(
            "{} {what}: {objects}/{} objects, {}/{} ({}/s)",
            s.stage.map_or("work", Stage::as_str),
            s.total_objects,
            crate::display::human_bytes(bytes),
            crate::display::human_bytes(s.total_bytes),
            crate::display::human_bytes((bytes as f64 / secs) as u64),
        );
    }
}

impl Observer for LogLines {
    fn on_event(&self, event: &Event<'_>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *event {
            Event::StageStarted {
                stage,
                objects,
                bytes,
            } => {
                self.bytes.store(0, Ordering::Relaxed);
                self.objects.store(0, Ordering::Relaxed);
                let now = Instant::now();
                *s = LogState {
                    stage: Some(stage),
                    total_objects: objects,
                    total_bytes: bytes,
                    started: now,
                    last_line: now,
                };
                self.line(&s, "started");
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
            Event::ObjectFailed { path } => {
                tracing::warn!("{path}: failed");
            }
            Event::StageFinished => {
                if s.stage.is_some() {
                    self.line(&s, "finished");
                }
                s.stage = None;
                return;
            }
        }
        if s.stage.is_some() && s.last_line.elapsed() >= self.every {
            s.last_line = Instant::now();
            self.line(&s, "running");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Observer for Recorder {
        fn on_event(&self, event: &Event<'_>) {
            self.0.lock().unwrap().push(format!("{event:?}"));
        }
    }

    #[test]
    fn events_reach_the_observer_in_order_and_none_costs_nothing() {
        let rec = Arc::new(Recorder::default());
        let events = Events::new(rec.clone());
        events.start(Stage::Copying, 2, 10);
        events.add_bytes(4);
        events.sub_bytes(4);
        events.object_done("a");
        events.finish();
        Events::none().add_bytes(1);
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                "StageStarted { stage: Copying, objects: 2, bytes: 10 }",
                "Bytes(4)",
                "BytesRetracted(4)",
                "ObjectDone { path: \"a\" }",
                "StageFinished",
            ]
        );
    }
}
