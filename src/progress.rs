//! Progress reporting: indicatif bars on a terminal, nothing otherwise.
//!
//! The library reports into a [`Progress`] handle; the binary decides whether it draws
//! (stderr is a TTY and `--quiet` is off). A hidden handle costs an atomic add per chunk.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A pair of bars: bytes (with rate and ETA) and objects done / total.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    bytes: ProgressBar,
    shards: ProgressBar,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("visible", &self.multi.is_some())
            .finish()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::hidden()
    }
}

impl Progress {
    /// Draws nothing.
    pub fn hidden() -> Self {
        Progress {
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
        Progress {
            multi: Some(multi),
            bytes,
            shards,
        }
    }

    /// Start a phase (`hashing`, `copying`, `checking`) over `objects` objects and `bytes` bytes.
    pub fn start(&self, phase: &str, objects: u64, bytes: u64) {
        self.bytes.set_prefix(phase.to_string());
        self.bytes.set_length(bytes);
        self.bytes.set_position(0);
        self.bytes.reset_eta();
        self.shards.set_prefix("");
        self.shards.set_length(objects);
        self.shards.set_position(0);
    }

    /// Bytes moved or hashed.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.inc(n);
    }

    /// Take back bytes of an attempt that will be retried.
    pub fn sub_bytes(&self, n: u64) {
        self.bytes.set_position(self.bytes.position().saturating_sub(n));
    }

    /// One object finished.
    pub fn object_done(&self, path: &str) {
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
