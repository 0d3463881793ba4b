//! Progress: the library's events drawn with indicatif on a terminal (or anywhere with
//! `--progress`), and as a periodic stats line in logs (`--stats`, on by default when stderr
//! is not a terminal).
//!
//! The library reports [`Event`]s; [`Bars`] is the binary's observer of them, and decides
//! whether it draws (stderr is a TTY or `--progress`, and `--quiet` is off) and whether it
//! prints stats lines. Hidden bars without a stats line observe nothing.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shardsync::events::{Event, Events, Observer};

use crate::cli::LogOpts;
use crate::stats_line::StatsLine;

/// The stats line's interval when stderr is not a terminal and `--stats` is not given.
pub const DEFAULT_STATS_EVERY: Duration = Duration::from_secs(30);

/// A pair of bars: bytes (with rate and ETA) and objects done / total; and the stats line.
#[derive(Clone)]
pub struct Bars {
    multi: Option<MultiProgress>,
    bytes: ProgressBar,
    shards: ProgressBar,
    stats: Option<Arc<StatsLine>>,
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
            stats: None,
        }
    }

    /// What `--quiet`, `--progress` and `--stats` ask for: bars on a terminal (or forced), a
    /// stats line every `--stats` (by default every 30 s when stderr is not a terminal).
    pub fn for_run(log: &LogOpts) -> Self {
        let tty = std::io::stderr().is_terminal();
        let mut bars = if !log.quiet && (tty || log.progress) {
            Self::drawn(tty)
        } else {
            Self::hidden()
        };
        let every = match log.stats {
            Some(d) => d,
            None if !tty && !log.progress => DEFAULT_STATS_EVERY,
            None => Duration::ZERO,
        };
        if !log.quiet && !every.is_zero() {
            let multi = bars.multi.clone();
            bars.stats = Some(StatsLine::start(every, move |line| {
                print_line(multi.as_ref(), line);
                crate::logging::line(line);
            }));
        }
        bars
    }

    /// Bars drawn on stderr: a terminal, or (`--progress`) whatever stderr is.
    fn drawn(tty: bool) -> Self {
        let target = if tty {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(AnyStderr), 10)
        };
        let multi = MultiProgress::with_draw_target(target);
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
            stats: None,
        }
    }

    /// The events handle the library reports through: to these bars and the stats line, or
    /// nowhere when there is neither.
    pub fn events(&self) -> Events {
        if self.is_visible() || self.stats.is_some() {
            Events::new(std::sync::Arc::new(self.clone()))
        } else {
            Events::none()
        }
    }

    /// Start a phase (`hashing`, `copying`) over `objects` objects and `bytes` bytes.
    fn start(&self, phase: &str, objects: u64, bytes: u64) {
        // A stage after a finished one: the bars are drawn again from zero (and ticking).
        self.bytes.reset();
        self.shards.reset();
        self.bytes.set_prefix(phase.to_string());
        self.bytes.set_length(bytes);
        self.shards.set_prefix("");
        self.shards.set_length(objects);
        self.shards.set_message("");
        if self.is_visible() {
            self.bytes.enable_steady_tick(Duration::from_millis(200));
        }
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

    /// Print a line above the bars (or to stderr when hidden).
    pub fn println(&self, msg: &str) {
        print_line(self.multi.as_ref(), msg);
    }

    /// Run `f` (which prints) with the bars out of the way, so none is left half-drawn above
    /// its output.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
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

/// `msg` above the bars, or on stderr.
fn print_line(multi: Option<&MultiProgress>, msg: &str) {
    match multi {
        Some(m) => {
            let _ = m.println(msg);
        }
        None => eprintln!("{msg}"),
    }
}

/// stderr as indicatif's terminal when it is not one (`--progress` on a pipe or a file): the
/// same cursor moves a terminal would get, 100 columns wide.
#[derive(Debug)]
struct AnyStderr;

impl AnyStderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }

    fn cursor(&self, n: usize, code: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.put(&format!("\x1b[{n}{code}"))
    }
}

impl indicatif::TermLike for AnyStderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'A')
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'B')
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'C')
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'D')
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Observer for Bars {
    fn on_event(&self, event: &Event<'_>) {
        if let Some(last) = self.stats.as_ref().and_then(|s| s.on_event(event)) {
            self.println(&last);
            crate::logging::line(&last);
        }
        if !self.is_visible() {
            return;
        }
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
