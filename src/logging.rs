//! Where the binary's log goes: stderr (coloured only on a terminal without `NO_COLOR`), and
//! with `--log-file` also a file, without colour. The library logs through `tracing`; the
//! binary's own warnings and stats lines come through [`warn`] and [`line`], which print each
//! warning once and nothing under `--quiet` but errors.

use std::collections::HashSet;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use tracing::field::{Field, Visit};
use tracing::Level;
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::cli::LogOpts;

/// Settings fixed at start-up.
struct Sink {
    quiet: bool,
    file: Option<Mutex<File>>,
    warned: Seen,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// The messages already shown.
#[derive(Default)]
struct Seen(Mutex<HashSet<String>>);

impl Seen {
    /// True the first time `msg` is seen.
    fn first(&self, msg: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(msg.to_string())
    }
}

/// True when colour may be used on a stream that `is_terminal`: the `NO_COLOR` convention
/// (<https://no-color.org>: any non-empty value turns colour off).
pub fn color(is_terminal: bool) -> bool {
    color_unless(is_terminal, std::env::var_os("NO_COLOR").as_deref())
}

fn color_unless(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The `tracing` levels for `-v` counts: warnings, then each shard's decision (info), then
/// requests and retries (debug). `-q`: errors only.
fn filter(opts: &LogOpts) -> &'static str {
    match (opts.quiet, opts.verbose) {
        (true, _) => "error,aws_config=off",
        // aws-config warns of each credential failure the error itself then reports.
        (false, 0) => "warn,aws_config=error",
        (false, 1) => "warn,shardsync=info,aws_config=warn",
        _ => "debug,hyper=info,h2=info,reqwest=info,rustls=info",
    }
}

/// Set up `tracing` and the binary's sink. `SHARDSYNC_LOG` overrides the levels.
pub fn init(opts: &LogOpts) -> Result<()> {
    let file = match &opts.log_file {
        Some(p) => Some(open_log_file(p)?),
        None => None,
    };
    let env_filter = || EnvFilter::try_from_env("SHARDSYNC_LOG").unwrap_or_else(|_| filter(opts).into());
    // Warnings go through `warn` (once each, `warning: ` like the binary's own); the rest is
    // formatted by tracing.
    let not_warn = || filter_fn(|m| *m.level() != Level::WARN);
    let stderr_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color(std::io::stderr().is_terminal()))
        .with_target(false)
        .with_filter(env_filter().and(not_warn()));
    let file_layer = match &file {
        Some(f) => Some(
            fmt::layer()
                .with_writer(Mutex::new(f.try_clone().context("--log-file")?))
                .with_ansi(false)
                .with_target(false)
                .with_filter(env_filter().and(not_warn())),
        ),
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .with(WarnOnce.with_filter(env_filter()))
        .init();
    let _ = SINK.set(Sink {
        quiet: opts.quiet,
        file: file.map(Mutex::new),
        warned: Seen::default(),
    });
    Ok(())
}

fn open_log_file(p: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .with_context(|| format!("--log-file {}: cannot open it for writing", p.display()))
}

/// Append `msg` (one line, no colour) to the log file, if there is one.
fn to_file(msg: &str) {
    if let Some(f) = SINK.get().and_then(|s| s.file.as_ref()) {
        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(f, "{} {msg}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"));
    }
}

/// Whether `--quiet` is on.
pub fn quiet() -> bool {
    SINK.get().is_some_and(|s| s.quiet)
}

/// Print `warning: msg` on stderr (and to the log file), once per distinct message per run;
/// nothing under `--quiet`.
pub fn warn(msg: &str) {
    if let Some(s) = SINK.get() {
        if s.quiet {
            return;
        }
        if !s.warned.first(msg) {
            return;
        }
    }
    eprintln!("warning: {msg}");
    to_file(&format!("warning: {msg}"));
}

/// The library's `tracing` warnings, printed by [`warn`]: once each, silenced by `--quiet`.
struct WarnOnce;

impl<S: tracing::Subscriber> Layer<S> for WarnOnce {
    fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
        if *event.metadata().level() == Level::WARN {
            let mut text = Message(String::new());
            event.record(&mut text);
            warn(&text.0);
        }
    }
}

/// An event's message, then any other fields as ` name=value`.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// A log line (a stats line) to the log file; the caller prints it on stderr its own way.
pub fn line(msg: &str) {
    to_file(msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_shown_the_first_time_only() {
        let seen = Seen::default();
        assert!(seen.first("disk almost full"));
        assert!(!seen.first("disk almost full"));
        assert!(seen.first("another"));
    }

    #[test]
    fn no_color_set_to_anything_turns_colour_off_and_a_pipe_never_has_it() {
        assert!(color_unless(true, None));
        assert!(color_unless(true, Some("".as_ref())));
        assert!(!color_unless(true, Some("1".as_ref())));
        assert!(!color_unless(false, None));
    }

    #[test]
    fn each_verbosity_adds_a_level_and_quiet_keeps_only_errors() {
        let opts = |quiet, verbose| LogOpts {
            quiet,
            verbose,
            ..LogOpts::default()
        };
        assert!(filter(&opts(false, 0)).starts_with("warn"));
        assert!(filter(&opts(false, 1)).contains("shardsync=info"));
        assert!(filter(&opts(false, 2)).starts_with("debug"));
        assert!(filter(&opts(true, 2)).starts_with("error"));
    }
}
