//! Running a library call from Python: on one shared multi-thread tokio runtime, with the GIL
//! released while Rust works, progress delivered to the caller's callback on the caller's own
//! thread, and Ctrl-C (or a callback that raises) stopping the call the way the CLI's SIGINT
//! does.
//!
//! The calling thread waits in short slices. Between slices it holds the GIL: it drains the
//! events the engine queued ([`Progress`]), calls the callback with them, and polls
//! `check_signals`. On an exception it cancels the sync's token (what is verified is committed,
//! nothing unproven is claimed) or, for a call that writes nothing, drops its future; then it
//! waits for the call to wind down before raising.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use shardsync::events::{Event, Observer, Stage};
use tokio_util::sync::CancellationToken;

/// How long the calling thread waits between looks at signals and queued events.
const SLICE: Duration = Duration::from_millis(100);

/// The runtime every call runs on, started on first use and shared by all Python threads. A
/// forked child (a DataLoader worker) has none of its parent's runtime threads: it starts its own.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let mut current = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    match *current {
        Some((owner, rt)) if owner == pid => rt,
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("shardsync")
                .build()
                .expect("the tokio runtime starts");
            // Kept for the life of the process (a parent's, after a fork, is never dropped:
            // its threads are not there to stop).
            let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
            *current = Some((pid, rt));
            rt
        }
    }
}

/// An engine event, owned, as queued for the calling thread.
#[derive(Debug)]
enum Queued {
    Started { stage: Stage, objects: u64, bytes: u64 },
    Bytes(i64),
    Done(String),
    Finished,
}

#[derive(Debug, Default)]
struct QueueState {
    events: Vec<Queued>,
    /// An event other than bytes is waiting: the calling thread takes it at once, so a
    /// callback that stops the call stops it promptly.
    prompt: bool,
    call_done: bool,
}

/// Where the engine's tasks leave events and the call's completion; the calling thread waits
/// on it. Byte events that follow one another are merged, so the queue grows with objects,
/// not with chunks; they wait for the next other event or the end of the slice.
#[derive(Debug, Default)]
pub struct Progress {
    state: Mutex<QueueState>,
    wake: Condvar,
}

impl Observer for Progress {
    fn on_event(&self, event: &Event<'_>) {
        let queued = match *event {
            Event::StageStarted {
                stage,
                objects,
                bytes,
            } => Queued::Started {
                stage,
                objects,
                bytes,
            },
            Event::Bytes(n) => Queued::Bytes(n as i64),
            Event::BytesRetracted(n) => Queued::Bytes(-(n as i64)),
            Event::ObjectDone { path } => Queued::Done(path.to_string()),
            Event::StageFinished => Queued::Finished,
            _ => return,
        };
        let mut s = self.lock();
        match (s.events.last_mut(), &queued) {
            (Some(Queued::Bytes(acc)), Queued::Bytes(n)) => *acc += n,
            (_, Queued::Bytes(_)) => s.events.push(queued),
            _ => {
                s.events.push(queued);
                s.prompt = true;
                self.wake.notify_all();
            }
        }
    }
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_done(&self) {
        self.lock().call_done = true;
        self.wake.notify_all();
    }

    /// Wait up to one slice for the call to finish or an event other than bytes; take the
    /// events queued meanwhile.
    fn wait(&self) -> (Vec<Queued>, bool) {
        let s = self.lock();
        let (mut s, _) = self
            .wake
            .wait_timeout_while(s, SLICE, |s| !s.call_done && !s.prompt)
            .unwrap_or_else(|p| p.into_inner());
        s.prompt = false;
        (std::mem::take(&mut s.events), s.call_done)
    }
}

/// What the callback receives: one event and the running totals of its stage.
#[pyclass(module = "shardsync", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct ProgressEvent {
    /// `stage_started`, `bytes`, `object_done` or `stage_finished`.
    pub kind: &'static str,
    /// `hashing`, `proving`, `copying` or `footers`; `None` before the first stage.
    pub stage: Option<&'static str>,
    /// The object just done (`object_done` only), relative to the dataset root.
    pub path: Option<String>,
    /// Bytes moved since the previous event (`bytes` only; negative when a failed attempt's
    /// bytes are taken back before a retry).
    pub bytes: i64,
    /// Bytes of the stage done so far.
    pub bytes_done: u64,
    /// Bytes the stage will move or read.
    pub bytes_total: u64,
    /// Objects of the stage done so far.
    pub objects_done: u64,
    /// Objects the stage will handle.
    pub objects_total: u64,
}

#[pymethods]
impl ProgressEvent {
    fn __repr__(&self) -> String {
        let py_str = |s: Option<&str>| s.map_or("None".to_string(), |s| format!("{s:?}"));
        format!(
            "ProgressEvent(kind={:?}, stage={}, path={}, objects={}/{}, bytes={}/{})",
            self.kind,
            py_str(self.stage),
            py_str(self.path.as_deref()),
            self.objects_done,
            self.objects_total,
            self.bytes_done,
            self.bytes_total
        )
    }
}

/// The running totals the calling thread keeps while it hands events to the callback.
#[derive(Debug, Default)]
struct Totals {
    stage: Option<Stage>,
    bytes_done: u64,
    bytes_total: u64,
    objects_done: u64,
    objects_total: u64,
}

impl Totals {
    fn apply(&mut self, q: Queued) -> ProgressEvent {
        let (kind, path, bytes) = match q {
            Queued::Started {
                stage,
                objects,
                bytes,
            } => {
                *self = Totals {
                    stage: Some(stage),
                    bytes_total: bytes,
                    objects_total: objects,
                    ..Totals::default()
                };
                ("stage_started", None, 0)
            }
            Queued::Bytes(n) => {
                self.bytes_done = self.bytes_done.saturating_add_signed(n);
                ("bytes", None, n)
            }
            Queued::Done(path) => {
                self.objects_done += 1;
                ("object_done", Some(path), 0)
            }
            Queued::Finished => ("stage_finished", None, 0),
        };
        ProgressEvent {
            kind,
            stage: self.stage.map(Stage::as_str),
            path,
            bytes,
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
            objects_done: self.objects_done,
            objects_total: self.objects_total,
        }
    }
}

/// How a call is stopped when Python raises while it runs.
#[derive(Debug, Clone)]
pub enum Stop {
    /// A sync: cancel its token and let it commit what it verified.
    Cancel(CancellationToken),
    /// A call that writes nothing (or writes once, atomically, at its end): drop its future.
    Abort,
}

/// A finished call: the library's result (`None` when the call was dropped) and the exception
/// that interrupted it, if one did.
#[derive(Debug)]
pub struct Finished<T> {
    pub result: Option<shardsync::Result<T>>,
    pub raised: Option<PyErr>,
}

/// Run `work` on the shared runtime while this thread, holding the GIL only between slices,
/// delivers events from `progress` to `callback` and watches for signals.
pub fn run<T, F>(
    py: Python<'_>,
    work: F,
    progress: &Arc<Progress>,
    callback: Option<&Bound<'_, PyAny>>,
    stop: Stop,
) -> Finished<T>
where
    T: Send + 'static,
    F: Future<Output = shardsync::Result<T>> + Send + 'static,
{
    let done = progress.clone();
    let task = runtime().spawn(async move {
        let r = work.await;
        done.mark_done();
        r
    });
    let mut totals = Totals::default();
    let mut raised: Option<PyErr> = None;
    loop {
        let (events, call_done) = py.detach(|| progress.wait());
        if raised.is_none() {
            raised = deliver(py, callback, events, &mut totals)
                .and_then(|()| py.check_signals())
                .err();
            if raised.is_some() {
                match &stop {
                    Stop::Cancel(token) => token.cancel(),
                    Stop::Abort => task.abort(),
                }
            }
        } else if py.check_signals().is_err() {
            // A second Ctrl-C while the sync winds down: quit at once, as the CLI does (what
            // is committed stays true; the next sync takes over and cleans up).
            task.abort();
        }
        if call_done || task.is_finished() {
            break;
        }
    }
    let joined = py.detach(|| runtime().block_on(task));
    let result = match joined {
        Ok(r) => Some(r),
        Err(e) if e.is_cancelled() => None,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    Finished { result, raised }
}

/// Hand queued events to the callback, in order; stop at the first exception it raises.
fn deliver(
    py: Python<'_>,
    callback: Option<&Bound<'_, PyAny>>,
    events: Vec<Queued>,
    totals: &mut Totals,
) -> PyResult<()> {
    for q in events {
        let event = totals.apply(q);
        if let Some(cb) = callback {
            cb.call1((Py::new(py, event)?,))?;
        }
    }
    Ok(())
}
