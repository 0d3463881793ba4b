//! Bars bars: the library's events drawn with indicatif on a terminal, nothing otherwise.
//!
//! The library reports [`Event`]s; [`Bars`] is the binary's observer of them, and decides
//! whether it draws (stderr is a TTY and `--quiet` is off). Hidden bars observe nothing.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shardsync::events::{Event, Events, Observer};

/// A pair of bars: bytes (with rate and ETA) and objects done / total.
#[derive(Clone)]
pub struct Bars {
    multi: Option<MultiProgress>,
    bytes: ProgressBar,
    shards: ProgressBar,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bars")
            .field("visible", &self.multi.is_some())
            .finish()
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::hidden()
    }
}

impl Bars {
    /// Draws nothing.
    pub fn hidden() -> Self {
        Bars {
            multi: None,
            bytes: ProgressBar::hidden(),
            shards: ProgressBar::hidden(),
        }
    }

    /// Draws on stderr when it is a terminal and `quiet` is off.
    pub fn for_terminal(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let bytes = multi.add(ProgressBar::new(0));
        bytes.set_style(
            ProgressStyle::with_template(
                "{prefix:>8.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let shards = multi.add(ProgressBar::new(0));
        shards.set_style(
            ProgressStyle::with_template("{prefix:>8.bold} {pos}/{len} objects {wide_msg}")
                .expect("valid template"),
        );
        bytes.enable_steady_tick(Duration::from_millis(200));
        Bars {
            multi: Some(multi),
            bytes,
            shards,
        }
    }

    /// The events handle the library reports through: to these bars, or nowhere when hidden.
    pub fn events(&self) -> Events {
        if self.is_visible() {
            Events::new(std::sync::Arc::new(self.clone()))
        } else {
            Events::none()
        }
    }

    /// Start a phase (`hashing`, `copying`) over `objects` objects and `bytes` bytes.
    fn start(&self, phase: &str, objects: u64, bytes: u64) {
        self.bytes.set_prefix(phase.to_string());
        self.bytes.set_length(bytes);
        self.bytes.set_position(0);
        self.bytes.reset_eta();
        self.shards.set_prefix("");
        self.shards.set_length(objects);
        self.shards.set_position(0);
    }

    /// Bytes moved or hashed.
    fn add_bytes(&self, n: u64) {
        self.bytes.inc(n);
    }

    /// Take back bytes of an attempt that will be retried.
    fn sub_bytes(&self, n: u64) {
        self.bytes.set_position(self.bytes.position().saturating_sub(n));
    }

    /// One object finished.
    fn object_done(&self, path: &str) {
        self.shards.inc(1);
        self.shards.set_message(path.to_string());
    }

    /// Print a line above the bars (or to stderr when hidden and `always`).
    pub fn println(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    /// Remove the bars.
    pub fn finish(&self) {
        self.bytes.finish_and_clear();
        self.shards.finish_and_clear();
    }

    /// Whether bars are drawn.
    pub fn is_visible(&self) -> bool {
        self.multi.is_some()
    }
}

impl Observer for Bars {
    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::StageStarted {
                stage,
                objects,
                bytes,
            } => self.start(stage.as_str(), objects, bytes),
            Event::Bytes(n) => self.add_bytes(n),
            Event::BytesRetracted(n) => self.sub_bytes(n),
            Event::ObjectDone { path } => self.object_done(path),
            Event::StageFinished => self.finish(),
            _ => {}
        }
    }
}
