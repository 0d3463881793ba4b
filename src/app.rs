//! Command implementations for the binary: call the library, print, choose the exit code.
//! Exit codes: 0 consistent / done, 1 drift or work to do, 2 error (returned as `Err`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::bars::Bars;
use crate::cli::{Format, ReportOpts, SyncArgs, VerifyArg};
use crate::logging;
use anyhow::{bail, Context, Result};
use shardsync::check::{check as check_datasets, schema_drift, verify_store, CheckOptions};
use shardsync::diff::State;
use shardsync::filter::Filter;
use shardsync::manifest::{self, BuildOptions};
use shardsync::report::Report;
use shardsync::sync::{prepare, sync, SyncOptions, SyncOutcome};
use shardsync::verify::VerifyMode;
use shardsync::{Dataset, OpenOptions};

/// `print!` that survives a closed stdout (`shardsync diff … | head -1`): the first broken pipe
/// silences stdout for the rest of the run, quietly, and the exit code still tells the verdict.
macro_rules! out {
    ($($t:tt)*) => { write_stdout(format_args!($($t)*)) };
}

/// [`outln!`] with the bars out of the way, so none is left half-drawn above the line.
macro_rules! say {
    ($bars:expr, $($t:tt)*) => { $bars.suspend(|| outln!($($t)*)) };
}

/// `println!` through [`write_stdout`].
macro_rules! outln {
    ($($t:tt)*) => { write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("shardsync: warning: cannot write to stdout: {e}");
        }
    }
}

fn human(n: u64) -> String {
    shardsync::display::human_bytes(n)
}

pub async fn manifest_build(
    ds: &Dataset,
    a: &crate::cli::BuildArgs,
    progress: Bars,
    quiet: bool,
) -> Result<u8> {
    let (out, strict, strict_parquet) = (a.out.as_deref(), a.strict, a.strict_parquet);
    let previous = manifest::load(ds).await?;
    let opts = BuildOptions {
        concurrency: a.jobs.max(1),
        events: progress.events(),
    };
    let built = manifest::build_manifest(ds, previous.as_ref().map(|p| &p.manifest), &opts).await?;
    shardsync::listing::check_strict(ds, &built.skipped, strict)?;
    let m = &built.manifest;
    let unreadable = unreadable_footers(
        m,
        if strict_parquet {
            ""
        } else {
            " (manifest written; each entry records its parquet_error)"
        },
    );
    if strict_parquet && !unreadable.is_empty() {
        bail!(
            "--strict-parquet: no manifest written: {}",
            unreadable.join("\n  ")
        );
    }
    manifest::save(ds, m).await?;
    progress.finish();
    if let Some(w) = shardsync::listing::skipped_warning(ds, &built.skipped) {
        logging::warn(&w);
    }
    if let Some(out) = out {
        manifest::save_file(out, m)?;
    }
    let drift = schema_drift(&m.shards);
    for w in shardsync::check::schema_warnings(&drift, "dataset") {
        logging::warn(&w);
    }
    let v = {
        serde_json::json!({
            "dataset": ds.url,
            "manifest": format!("{}/{}", ds.url, shardsync::layout::MANIFEST_KEY),
            "digest": m.digest,
            "totals": m.totals,
            "hashed": built.hashed,
            "reused": built.reused,
            "bytes_hashed": built.bytes_hashed,
            "schema_drift": drift.iter().map(|d| &d.0).collect::<Vec<_>>(),
            "parquet_errors": m.parquet_errors()
                .map(|e| serde_json::json!({"path": e.path, "parquet_error": e.parquet_error}))
                .collect::<Vec<_>>(),
        })
    };
    let summary = BuildSummary {
        line: format!(
            "{}: {} objects ({} Parquet shards, {} rows, {}); hashed {} ({}), reused {}",
            ds.url,
            m.totals.files,
            m.totals.shards,
            m.totals.rows,
            human(m.totals.bytes),
            built.hashed,
            human(built.bytes_hashed),
            built.reused
        ),
        json: v,
    };
    summary.print(&a.output, quiet)?;
    if unreadable.is_empty() {
        return Ok(0);
    }
    // Listed on stderr whatever the format: the manifest is written, the exit code says 1.
    logging::warn(&unreadable.join("\n  "));
    Ok(1)
}

/// What `manifest build` prints: a line for people, a JSON document for machines.
struct BuildSummary {
    line: String,
    json: serde_json::Value,
}

impl BuildSummary {
    fn markdown(&self) -> String {
        let j = &self.json;
        format!(
            "### shardsync manifest build\n\n| | |\n|---|---|\n| dataset | `{}` |\n| objects | {} |\n\
             | Parquet shards | {} |\n| rows | {} |\n| hashed | {} |\n| reused | {} |\n| digest | `{}` |\n",
            j["dataset"].as_str().unwrap_or_default(),
            j["totals"]["files"],
            j["totals"]["shards"],
            j["totals"]["rows"],
            j["hashed"],
            j["reused"],
            j["digest"].as_str().unwrap_or_default(),
        )
    }

    fn print(&self, output: &ReportOpts, quiet: bool) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.json)?;
        if let Some(p) = &output.report {
            write_file(
                p,
                &if is_markdown(p) {
                    self.markdown()
                } else {
                    json.clone() + "\n"
                },
            )?;
        }
        match output.format() {
            Format::Json => outln!("{json}"),
            Format::Markdown => out!("{}", self.markdown()),
            Format::Text if !quiet => {
                outln!("{}", self.line);
                outln!("digest {}", self.json["digest"].as_str().unwrap_or_default());
                outln!("wrote {}", self.json["manifest"].as_str().unwrap_or_default());
            }
            Format::Text => {}
        }
        Ok(())
    }
}

/// The count and one line per `.parquet` object whose footer did not decode (none: empty).
fn unreadable_footers(m: &manifest::Manifest, note: &str) -> Vec<String> {
    let lines: Vec<String> = m
        .parquet_errors()
        .map(|e| format!("{}: {}", e.path, e.parquet_error.as_deref().unwrap_or_default()))
        .collect();
    if lines.is_empty() {
        return lines;
    }
    let head = format!(
        "{} Parquet shard(s) whose footer does not decode{note}:",
        lines.len()
    );
    std::iter::once(head).chain(lines).collect()
}

pub async fn diff(src: &Dataset, dst: &Dataset, a: &crate::cli::DiffArgs, progress: Bars) -> Result<u8> {
    let mut opts = SyncOptions::default()
        .with_concurrency(a.jobs)
        .with_allow_empty_source(a.guard.allow_empty_source)
        .with_events(progress.events())
        .with_filter(Filter::new(a.filter.spec())?)
        .with_egress_price(egress_price(&a.src, a.cost.egress_price));
    opts.strict = a.strict;
    let prepared = prepare(src, dst, &opts).await?;
    progress.finish();
    for w in &prepared.warnings {
        logging::warn(w);
    }
    let plan = &prepared.plan;
    let counts = plan.counts();
    let json = || serde_json::to_string_pretty(&plan.to_json_value(&src.url, &dst.url));
    if let Some(p) = &a.output.report {
        let doc = if is_markdown(p) {
            diff_markdown(src, dst, plan)
        } else {
            json()? + "\n"
        };
        write_file(p, &doc)?;
    }
    match a.output.format() {
        Format::Json => outln!("{}", json()?),
        Format::Markdown => out!("{}", diff_markdown(src, dst, plan)),
        Format::Text => {
            outln!(
                "{} -> {}: {} new, {} changed, {} missing, {} extra, {} same",
                src.url,
                dst.url,
                counts.new,
                counts.changed,
                counts.missing,
                counts.extra,
                counts.same
            );
            if counts.renamed + counts.copied_in_place > 0 {
                outln!(
                    "  of the copies, {} renamed or moved and {} duplicated: made inside the destination, not sent",
                    counts.renamed,
                    counts.copied_in_place
                );
            }
            outln!("  to transfer {}", plan.transfer.describe());
            if let Some(f) = &plan.filter {
                outln!("  filter   {f}");
            }
            for i in plan.items.iter().filter(|i| i.state != State::Same) {
                let size = i
                    .src
                    .as_ref()
                    .map(|s| s.stat.size)
                    .or(i.dst.as_ref().map(|d| d.size))
                    .unwrap_or(0);
                let from = i.origin.as_ref().map(|o| format!("  (copy of {})", o.path));
                outln!(
                    "  {:<8} {:>10}  {}{}",
                    i.state.as_str(),
                    human(size),
                    i.path,
                    from.unwrap_or_default()
                );
            }
        }
    }
    Ok(if plan.is_clean() { 0 } else { 1 })
}

/// The plan as Markdown: the counts, then one row per path that differs.
fn diff_markdown(src: &Dataset, dst: &Dataset, plan: &shardsync::diff::Plan) -> String {
    use std::fmt::Write;
    let c = plan.counts();
    let mut o = format!(
        "### shardsync diff\n\n`{}` → `{}`: {} new, {} changed, {} missing, {} extra, {} same\n",
        src.url, dst.url, c.new, c.changed, c.missing, c.extra, c.same
    );
    let rows: Vec<_> = plan.items.iter().filter(|i| i.state != State::Same).collect();
    if !rows.is_empty() {
        o.push_str("\n| state | path |\n|---|---|\n");
        for i in rows {
            let path = i.path.replace('|', "\\|").replace('`', "'");
            let _ = writeln!(o, "| {} | `{path}` |", i.state.as_str());
        }
    }
    o
}

/// Whether a `--report` file is Markdown (by its name).
fn is_markdown(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"))
}

/// Write `contents` to `path` whole or not at all (a temporary file renamed into place).
fn write_file(path: &Path, contents: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, contents).with_context(|| format!("writing report {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing report {}", path.display()))?;
    Ok(())
}

/// `a, b, c, … (12 more)`: the first `n` names.
fn abbreviated(names: &[&str], n: usize) -> String {
    let mut s = names.iter().take(n).copied().collect::<Vec<_>>().join(", ");
    if names.len() > n {
        s.push_str(&format!(", … ({} more)", names.len() - n));
    }
    s
}

pub fn sync_options(a: &SyncArgs, progress: Bars) -> Result<SyncOptions> {
    let mut opts = SyncOptions {
        write_source_manifest: !a.no_source_write,
        strict: a.strict,
        ..SyncOptions::default()
    };
    opts.transfer.memory =
        shardsync::transfer::MemoryBudget::new(usize::try_from(a.max_memory).unwrap_or(usize::MAX));
    let opts = opts
        .with_full(a.full)
        .with_delete(a.delete)
        .with_max_delete(a.max_delete)
        .with_allow_empty_source(a.guard.allow_empty_source)
        .with_dry_run(a.dry_run)
        .with_concurrency(a.jobs)
        .with_verify(match a.verify {
            VerifyArg::Size => VerifyMode::Size,
            VerifyArg::Deep => VerifyMode::Deep,
        })
        .with_part_size(usize::try_from(a.part_size).unwrap_or(usize::MAX))
        .with_multipart_threshold(usize::try_from(a.multipart_threshold).unwrap_or(usize::MAX))
        .with_stripes(a.stripes, usize::try_from(a.stripe_size).unwrap_or(usize::MAX))
        .with_parts_in_flight(a.parts_in_flight)
        .with_events(progress.events())
        .with_strict_parquet(a.strict_parquet);
    // The burst defaults to one second's worth: short stalls are made up, long ones are not.
    let bwlimit = a.bwlimit.map(|rate| (rate, a.bwlimit_burst.unwrap_or(rate)));
    Ok(opts
        .with_filter(Filter::new(a.filter.spec())?)
        .with_max_transfer(a.max_transfer)
        .with_bwlimit(bwlimit)
        .with_egress_price(egress_price(&a.src, a.cost.egress_price)))
}

/// `--egress-price`, else the source remote's `egress_price` in the config file.
pub fn egress_price(src_arg: &str, flag: Option<f64>) -> Option<f64> {
    flag.or_else(|| shardsync::remotes::Config::load().ok()?.egress_price(src_arg))
}

/// `--report FILE`: the report as JSON, or as Markdown when FILE ends in `.md`.
pub(crate) fn write_report(path: &Path, report: &Report) -> Result<()> {
    if is_markdown(path) {
        write_file(path, &report.render_markdown())
    } else {
        write_file(path, &(report.to_json() + "\n"))
    }
}

/// The exit code of a command stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

/// Cancel `cancel` on the first SIGINT/SIGTERM, saying so above the bars; exit at once on the
/// second (what is committed stays true; the next sync takes over the lease and cleans up).
pub fn cancel_on_signal(cancel: tokio_util::sync::CancellationToken, progress: Bars) {
    tokio::spawn(async move {
        shutdown_signal().await;
        cancel.cancel();
        progress.println(
            "shardsync: stopping: no new copies start, copies in flight are abandoned, what is \
             verified is committed (press Ctrl-C again to quit at once)",
        );
        shutdown_signal().await;
        progress.finish();
        eprintln!("shardsync: interrupted again: quitting now; the next sync takes over and cleans up");
        std::process::exit(INTERRUPTED.into());
    });
}

pub async fn sync_once(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    bars: &Bars,
    output: &ReportOpts,
    quiet: bool,
) -> Result<u8> {
    let report_path = output.report.as_deref();
    let json = output.format() == Format::Json;
    let started = Report::new("sync", opts.mode(), Some(&src.url), Some(&dst.url));
    let result = sync(src, dst, opts).await;
    bars.finish(); // an interrupted stage may have left its bars
                   // An incomplete sync (shards failed, or interrupted) is an error to the library's callers;
                   // here it is a report to print and an exit code.
    let outcome = match result.or_else(shardsync::Error::into_outcome) {
        Ok(o) => o,
        Err(e) => {
            // Failed as a whole: the report and the JSON still say so, then the error is the
            // exit code (2) and the one line on stderr.
            let report = started.failed(&e);
            if let Some(p) = report_path {
                if let Err(w) = write_report(p, &report) {
                    logging::warn(&format!("{w:#}"));
                }
            }
            if json {
                outln!("{}", report.to_json());
            }
            return Err(e.into());
        }
    };
    let (report, plan) = (&outcome.report, &outcome.plan);
    if let Some(p) = report_path {
        write_report(p, report)?;
    }
    if json {
        outln!("{}", report.to_json());
    } else if output.format() == Format::Markdown {
        out!("{}", report.render_markdown());
    } else if !quiet {
        if opts.dry_run {
            for i in plan.items.iter().filter(|i| i.state != State::Same) {
                outln!("  would {:<7} {}", verb(i.state), i.path);
            }
        }
        out!(
            "{}",
            report.render_text(logging::color(std::io::stdout().is_terminal()))
        );
        crate::hints::print(report);
    }
    sync_exit_code(dst, opts, &outcome, quiet || json)
}

/// `sync SRC DST1 DST2 …`: one fan-out sync; a report per destination (a section each in text
/// and Markdown, `{"src": …, "destinations": [...]}` in JSON and in a JSON `--report`), and the
/// worst exit code of them.
pub async fn sync_fan_out(
    src: &Dataset,
    dsts: &[Dataset],
    opts: &SyncOptions,
    bars: &Bars,
    output: &ReportOpts,
    quiet: bool,
) -> Result<u8> {
    let format = output.format();
    let results = shardsync::sync::sync_to_many(src, dsts, opts).await;
    bars.finish();
    let mut reports = Vec::new();
    let mut worst = 0u8;
    for (dst, r) in dsts.iter().zip(results?) {
        let (report, code) = match r.or_else(shardsync::Error::into_outcome) {
            Ok(outcome) => {
                let silent = quiet || format != Format::Text;
                (
                    outcome.report.clone(),
                    sync_exit_code(dst, opts, &outcome, silent)?,
                )
            }
            Err(e) => {
                let line = shardsync::error::redact_secrets(&e.to_string());
                eprintln!("shardsync: error: {}", shardsync::display::escape_controls(&line));
                let failed = Report::new("sync", opts.mode(), Some(&src.url), Some(&dst.url)).failed(&e);
                (failed, 2)
            }
        };
        match format {
            Format::Text if !quiet => {
                outln!("destination {}", dst.url);
                out!(
                    "{}",
                    report.render_text(logging::color(std::io::stdout().is_terminal()))
                );
            }
            Format::Markdown => out!("### destination `{}`\n\n{}", dst.url, report.render_markdown()),
            _ => {}
        }
        worst = worse(worst, code);
        reports.push(report);
    }
    let doc = serde_json::to_string_pretty(&serde_json::json!({ "src": src.url, "destinations": reports }))?;
    if let Some(p) = &output.report {
        let contents = if is_markdown(p) {
            reports
                .iter()
                .map(Report::render_markdown)
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            doc.clone()
        };
        write_file(p, &contents)?;
    }
    if format == Format::Json {
        outln!("{doc}");
    }
    Ok(worst)
}

/// The worse of two exit codes: interrupted (130), then error (2), then drift (1), then 0.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        130 => 3,
        2 => 2,
        1 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// A finished sync's exit code: 130 interrupted, 2 (an error) when shards failed, for a dry run
/// 1 when there is work to do, else 0 only when the destination now holds exactly the source's
/// dataset, as a `check` right after would say (extras count: a loader that globs reads them).
fn sync_exit_code(dst: &Dataset, opts: &SyncOptions, outcome: &SyncOutcome, silent: bool) -> Result<u8> {
    let (report, plan) = (&outcome.report, &outcome.plan);
    if report.interrupted {
        let failed = match report.shards_failed {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        eprintln!(
            "shardsync: interrupted: {} shard(s) copied, verified and committed; {} not copied{failed}; \
             the same command finishes the job",
            report.shards_copied, report.shards_not_started,
        );
        return Ok(INTERRUPTED);
    }
    if report.shards_failed > 0 {
        return Err(failed_shards(&dst.url, report));
    }
    if opts.dry_run {
        let work = plan.items.iter().any(|i| {
            i.state.needs_copy()
                || (opts.full && i.state == State::Same)
                || (opts.delete && i.state == State::Extra)
        });
        return Ok(if work { 1 } else { 0 });
    }
    if report.max_transfer_reached {
        if !silent {
            eprintln!(
                "shardsync: stopped at --max-transfer: {} shard(s) copied, verified and committed; {} not copied; \
                 the same command goes on",
                report.shards_copied, report.shards_not_started
            );
        }
        return Ok(1);
    }
    if !report.consistent {
        if !silent {
            // Extras the user did not ask to delete: the hint above names `--delete`.
            eprintln!("shardsync: drift remains: the destination does not hold the source's dataset yet");
        }
        return Ok(1);
    }
    Ok(0)
}

/// The error of a sync whose shards failed: one cause said once when the destination refused
/// every write, else each failed shard with its cause.
fn failed_shards(dst_url: &str, report: &Report) -> anyhow::Error {
    if let Some(stop) = report
        .warnings
        .iter()
        .find(|w| w.contains("the destination refused writes"))
    {
        // One cause for all of them (disk full): said once, the shards only named.
        let failed: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| f.kind == shardsync::report::FindingKind::Error)
            .map(|f| f.path.as_str())
            .collect();
        return anyhow::anyhow!(
            "{}: {stop}; {} shard(s) failed: {}",
            dst_url,
            failed.len(),
            abbreviated(&failed, 8)
        );
    }
    let names: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind != shardsync::report::FindingKind::Extra && !f.kind.is_warning())
        .map(|f| {
            // Error details already start with the path; don't say it twice.
            if f.detail.starts_with(&f.path) {
                f.detail.clone()
            } else {
                format!("{}: {}", f.path, f.detail)
            }
        })
        .collect();
    anyhow::anyhow!(
        "{} shard(s) failed:\n  {}",
        report.shards_failed,
        names.join("\n  ")
    )
}

fn verb(s: State) -> &'static str {
    match s {
        State::New | State::Missing => "copy",
        State::Changed => "update",
        State::Extra => "extra",
        _ => "check",
    }
}

/// Print a report as `--format` asks and write it to `--report`, if given.
pub(crate) fn emit(report: &Report, output: &ReportOpts) -> Result<()> {
    if let Some(p) = &output.report {
        write_report(p, report)?;
    }
    match output.format() {
        Format::Json => outln!("{}", report.to_json()),
        Format::Text => {
            out!(
                "{}",
                report.render_text(logging::color(std::io::stdout().is_terminal()))
            );
            crate::hints::print(report);
        }
        Format::Markdown => out!("{}", report.render_markdown()),
    }
    // CI summaries: GitHub Actions shows whatever is appended here on the run's page.
    if let Some(p) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&p)
            .with_context(|| format!("appending to GITHUB_STEP_SUMMARY {}", Path::new(&p).display()))?;
        f.write_all(report.render_markdown().as_bytes())?;
    }
    Ok(())
}

pub async fn check(src: &Dataset, dst: &Dataset, a: &crate::cli::CheckArgs, progress: Bars) -> Result<u8> {
    let opts = CheckOptions {
        deep: a.deep,
        concurrency: a.jobs.max(1),
        events: progress.events(),
        allow_empty_source: a.guard.allow_empty_source,
        strict_schema: a.strict_schema,
        strict: a.strict,
        strict_parquet: a.strict_parquet,
        filter: Filter::new(a.filter.spec())?,
    };
    let report = check_datasets(src, dst, &opts).await?;
    progress.finish();
    emit(&report, &a.output)?;
    Ok(if report.consistent { 0 } else { 1 })
}

pub async fn verify(ds: &Dataset, a: &crate::cli::VerifyArgs, progress: Bars) -> Result<u8> {
    let opts = CheckOptions {
        deep: a.deep,
        concurrency: a.jobs.max(1),
        events: progress.events(),
        strict_schema: a.strict_schema,
        strict: a.strict,
        strict_parquet: a.strict_parquet,
        ..CheckOptions::default()
    };
    let report = verify_store(ds, &opts).await?;
    progress.finish();
    emit(&report, &a.output)?;
    Ok(if report.consistent { 0 } else { 1 })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `watch` takes every flag of `sync`; those that mean nothing for a loop are refused (exit
/// 2) rather than ignored.
pub fn refuse_watch_flags(a: &crate::cli::WatchArgs) -> Result<()> {
    if a.sync.dry_run {
        bail!("watch: --dry-run is refused: a loop of plans copies nothing; use `shardsync diff` or `sync --dry-run`");
    }
    if a.sync.output.format() == Format::Markdown {
        bail!("watch: --format markdown is refused: watch prints one line per cycle (text or json); --report FILE.md writes each cycle's report as Markdown");
    }
    Ok(())
}

/// Incremental syncs in a loop; one summary line per cycle (and with `--report FILE`, the
/// latest cycle's report in FILE). Errors back off and retry.
pub async fn watch(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    a: &crate::cli::WatchArgs,
    bars: &Bars,
    quiet: bool,
) -> Result<u8> {
    let (interval, cycles) = (a.interval, a.cycles);
    let json = a.sync.output.format() == Format::Json;
    let mut cycle = 0u64;
    let mut backoff = Duration::from_secs(1);
    loop {
        cycle += 1;
        let started = Instant::now();
        let result = sync(src, dst, opts).await;
        bars.finish();
        let mut wait = interval;
        // A cycle whose shards failed has a report too: say so and go on at the usual pace.
        let report = match &result {
            Ok(o) => Ok(&o.report),
            Err(e) => e.report().ok_or(e),
        };
        match report {
            Ok(r) => {
                backoff = Duration::from_secs(1);
                if let Some(p) = &a.sync.output.report {
                    if let Err(e) = write_report(p, r) {
                        logging::warn(&format!("{e:#}"));
                    }
                }
                if json {
                    let line = serde_json::json!({
                        "cycle": cycle,
                        "consistent": r.consistent,
                        "shards_total": r.shards_total,
                        "shards_copied": r.shards_copied,
                        "shards_failed": r.shards_failed,
                        "shards_deleted": r.shards_deleted,
                        "bytes_copied": r.bytes_copied,
                        "elapsed_seconds": r.elapsed_seconds,
                        "dst_digest": r.dst_digest,
                    });
                    outln!("{line}");
                } else if !quiet {
                    outln!(
                        "cycle {cycle}: {} copied ({}), {} skipped, {} failed, {} deleted in {:.2}s; {}",
                        r.shards_copied,
                        human(r.bytes_copied),
                        r.shards_skipped,
                        r.shards_failed,
                        r.shards_deleted,
                        started.elapsed().as_secs_f64(),
                        if r.consistent {
                            "consistent"
                        } else {
                            "not yet consistent"
                        }
                    );
                }
            }
            Err(e) => {
                if json {
                    outln!("{}", serde_json::json!({"cycle": cycle, "error": e.to_string()}));
                } else {
                    eprintln!("cycle {cycle}: error: {e}; retrying in {}s", backoff.as_secs());
                }
                wait = backoff.min(interval.max(Duration::from_secs(1)));
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
        let _ = std::io::stdout().flush();
        if opts.cancel.is_cancelled() || cycles.is_some_and(|c| cycle >= c) {
            return Ok(0);
        }
        if opts
            .cancel
            .run_until_cancelled(tokio::time::sleep(wait))
            .await
            .is_none()
        {
            return Ok(0);
        }
    }
}

/// Step 1 of the demo: a fresh synthetic dataset in `region-a`, an empty `region-b`.
async fn demo_regions(
    dir: Option<&Path>,
    shards: usize,
    rows: usize,
) -> Result<(std::path::PathBuf, Dataset, Dataset)> {
    let base = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("shardsync-demo-{}", std::process::id())),
    };
    let a = base.join("region-a");
    let b = base.join("region-b");
    for d in [&a, &b] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("clearing {}", d.display()))?;
        }
    }
    outln!(
        "1. writing a synthetic tokenized dataset ({shards} shards x {rows} rows) to {}",
        a.display()
    );
    let total = {
        let a = a.clone();
        tokio::task::spawn_blocking(move || shardsync::demo::write_dataset(&a, shards, rows, DEMO_SEED))
            .await??
    };
    outln!("   {} written", human(total));
    let open = |p: &Path, create| {
        Dataset::open(
            &p.display().to_string(),
            &OpenOptions {
                options: vec![],
                create_local: create,
            },
        )
    };
    let src = open(&a, false)?;
    let dst = open(&b, true)?;
    Ok((base, src, dst))
}

/// The seed of the demo's synthetic data.
const DEMO_SEED: u64 = 42;

/// The whole loop on local folders.
pub async fn demo(dir: Option<&Path>, shards: usize, rows: usize, progress: Bars, color: bool) -> Result<u8> {
    let (base, src, dst) = demo_regions(dir, shards, rows).await?;
    let a = base.join("region-a");

    say!(progress, "2. building the manifest of region-a");
    let built = manifest::build_manifest(
        &src,
        None,
        &BuildOptions {
            concurrency: 8,
            events: progress.events(),
        },
    )
    .await?;
    manifest::save(&src, &built.manifest).await?;
    say!(
        progress,
        "   {} objects, {} rows, digest {}",
        built.manifest.totals.files,
        built.manifest.totals.rows,
        &built.manifest.digest[..16]
    );

    let opts = SyncOptions::default().with_events(progress.events());
    say!(progress, "3. first sync region-a -> region-b (everything is new)");
    let r1 = sync(&src, &dst, &opts).await?.report;
    say!(
        progress,
        "   copied {} shards ({}), verified, committed",
        r1.shards_copied,
        human(r1.bytes_copied)
    );

    let changed: Vec<usize> = [1usize, 7, 13].into_iter().filter(|&s| s < shards).collect();
    say!(
        progress,
        "4. rewriting {} shards in region-a (a new data version)",
        changed.len()
    );
    {
        let a = a.clone();
        let changed = changed.clone();
        tokio::task::spawn_blocking(move || shardsync::demo::rewrite_shards(&a, &changed, rows, DEMO_SEED))
            .await??;
    }

    say!(
        progress,
        "5. incremental sync: only the rewritten shards are copied"
    );
    let r2 = sync(&src, &dst, &opts).await?.report;
    say!(
        progress,
        "   copied {} shards, skipped {}",
        r2.shards_copied,
        r2.shards_skipped
    );
    if r2.shards_copied != changed.len() as u64 {
        bail!(
            "demo: expected {} shards copied, got {}",
            changed.len(),
            r2.shards_copied
        );
    }

    say!(progress, "6. check: are the two regions identical?");
    let report = check_datasets(
        &src,
        &dst,
        &CheckOptions {
            events: progress.events(),
            ..CheckOptions::default()
        },
    )
    .await?;
    progress.finish();
    out!("{}", report.render_text(color));
    say!(
        progress,
        "\nThe folders stay at {} for you to look at.",
        base.display()
    );
    Ok(if report.consistent { 0 } else { 1 })
}

/// What the user can do about a library error, in the command line's words: the library names
/// the situation, the binary names the flag.
pub fn hint(e: &shardsync::Error) -> Option<&'static str> {
    match e {
        shardsync::Error::EmptySource { .. } => {
            Some("pass --allow-empty-source if the source is meant to be empty")
        }
        shardsync::Error::TooManyDeletes { .. } => Some("pass --max-delete N or P% to allow it"),
        _ => None,
    }
}
