//! The `shardsync` binary: parse arguments, call the library, map the outcome to an exit code
//! (0 consistent / done, 1 drift, 2 error). The work lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use bars::Bars;
use clap::{CommandFactory, Parser};
use cli::{Cli, Command, ManifestCommand, PairOpts};
use shardsync::{Dataset, OpenOptions};

mod app;
mod app_partitions;
mod bars;
mod cli;
mod hints;
mod logging;
mod stats_line;

fn main() -> ExitCode {
    bound_allocator_footprint();
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log) {
        eprintln!("shardsync: error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shardsync: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let verbose = cli.log.verbose > 0;
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) if matches!(e.downcast_ref(), Some(shardsync::Error::Interrupted)) => {
            eprintln!("shardsync: {e}");
            ExitCode::from(app::INTERRUPTED)
        }
        Err(e) => {
            let line = format!("shardsync: error: {}", describe(&e, verbose));
            eprintln!("{line}");
            logging::line(&line); // an unattended run's log ends with why it failed
            ExitCode::from(2)
        }
    }
}

/// The error for a person: its message, and with `--verbose` each cause in the chain that the
/// message does not already contain. Redacted again, since causes quote server answers.
fn describe(e: &anyhow::Error, verbose: bool) -> String {
    let mut msg = e.to_string();
    if let Some(hint) = e.downcast_ref::<shardsync::Error>().and_then(app::hint) {
        msg.push_str(&format!(" ({hint})"));
    }
    if verbose {
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str("\n  caused by: ");
                msg.push_str(&c);
            }
        }
    }
    // Keys and server answers can hold control characters; none reaches the terminal raw.
    shardsync::display::escape_controls_keep_lines(&shardsync::error::redact_secrets(&msg))
}

async fn run(cli: Cli) -> Result<u8> {
    let quiet = cli.log.quiet;
    let log = cli.log.clone();
    let progress = || Bars::for_run(&log);
    match cli.command {
        Command::Manifest(ManifestCommand::Build(a)) => {
            let ds = open(&a.url, "--opt", &a.store.opt, false)?
                .with_follow_symlinks(a.store.follow_symlinks)?
                .with_side("dataset");
            app::manifest_build(&ds, &a, progress(), quiet).await
        }
        Command::Diff(a) => {
            let (src, dst) = open_pair(&a.src, &a.dst, &a.stores, true)?;
            app::diff(&src, &dst, &a, progress()).await
        }
        Command::Sync(a) if !a.more_dst.is_empty() => {
            if a.plan.is_some() {
                anyhow::bail!("--plan syncs one partition to one destination; give a single DST");
            }
            let (src, dst) = open_pair(&a.src, &a.dst, &a.stores, true)?;
            let mut dsts = vec![dst];
            for url in &a.more_dst {
                dsts.push(open(url, "--dst-opt", &a.stores.dst_opt, true)?.with_side("destination"));
            }
            let bars = progress();
            let opts = app::sync_options(&a, bars.clone())?;
            app::cancel_on_signal(opts.cancel.clone(), bars.clone());
            app::sync_fan_out(&src, &dsts, &opts, &bars, &a.output, quiet).await
        }
        Command::Sync(a) => {
            let (src, dst) = open_pair(&a.src, &a.dst, &a.stores, true)?;
            let bars = progress();
            let opts = app::sync_options(&a, bars.clone())?;
            app::cancel_on_signal(opts.cancel.clone(), bars.clone());
            if let Some(id) = &a.plan {
                let partition = a.partition.as_deref();
                return app_partitions::sync_one_partition(
                    &src, &dst, id, partition, &opts, &bars, &a.output, quiet,
                )
                .await;
            }
            app::sync_once(&src, &dst, &opts, &bars, &a.output, quiet).await
        }
        Command::Check(a) => {
            let (src, dst) = open_pair(&a.src, &a.dst, &a.stores, true)?;
            app::check(&src, &dst, &a, progress()).await
        }
        Command::Verify(a) => {
            let ds = open(&a.url, "--opt", &a.store.opt, false)?
                .with_follow_symlinks(a.store.follow_symlinks)?
                .with_side("dataset");
            app::verify(&ds, &a, progress()).await
        }
        Command::Watch(a) if !a.sync.more_dst.is_empty() => {
            anyhow::bail!("watch syncs one destination; run one watch per destination")
        }
        Command::Watch(a) if a.sync.plan.is_some() => {
            anyhow::bail!("watch runs whole syncs; --plan is for `sync` (one partition of a plan)")
        }
        Command::Watch(a) => {
            app::refuse_watch_flags(&a)?;
            let (src, dst) = open_pair(&a.sync.src, &a.sync.dst, &a.sync.stores, true)?;
            let bars = progress();
            let opts = app::sync_options(&a.sync, bars.clone())?;
            let cancel = opts.cancel.clone();
            tokio::spawn(async move {
                app::shutdown_signal().await;
                cancel.cancel();
            });
            app::watch(&src, &dst, &opts, &a, &bars, quiet).await
        }
        Command::Demo(a) => {
            let color = logging::color(std::io::stdout().is_terminal());
            app::demo(a.dir.as_deref(), a.shards, a.rows, progress(), color).await
        }
        Command::Remotes(a) => remotes(a.json),
        Command::Plan(a) => {
            let (src, dst) = open_pair(&a.src, &a.dst, &a.stores, true)?;
            app_partitions::plan(&src, &dst, &a, progress(), quiet).await
        }
        Command::Commit(a) => {
            let (src, dst) = open_pair(&a.src, &a.dst, &a.stores, false)?;
            app_partitions::commit(&src, &dst, &a, progress()).await
        }
        Command::Completions(a) => {
            let mut out = std::io::stdout();
            clap_complete::generate(a.shell, &mut Cli::command(), "shardsync", &mut out);
            Ok(0)
        }
    }
}

fn open(url: &str, flag: &str, raw_opts: &[String], create_local: bool) -> Result<Dataset> {
    let options = shardsync::store::parse_options_from(flag, raw_opts)?;
    // A remote's `NAME:PATH` becomes its URL and its options, under the explicit ones.
    let (url, options) = shardsync::remotes::Config::load()?.resolve(url, &options)?;
    Ok(Dataset::open(
        &url,
        &OpenOptions {
            options,
            create_local,
        },
    )?)
}

fn open_pair(src: &str, dst: &str, stores: &PairOpts, create_dst: bool) -> Result<(Dataset, Dataset)> {
    let s = open(src, "--src-opt", &stores.src_opt, false)?.with_follow_symlinks(stores.follow_symlinks)?;
    let d = open(dst, "--dst-opt", &stores.dst_opt, create_dst)?;
    // Store errors then say which side and URL they come from.
    Ok((s.with_side("source"), d.with_side("destination")))
}

/// `shardsync remotes`: each remote's name, URL and options; secrets as `***` from `$VAR`.
fn remotes(json: bool) -> Result<u8> {
    let config = shardsync::remotes::Config::load()?;
    if json {
        let list: Vec<serde_json::Value> = config
            .remotes
            .iter()
            .map(|(name, r)| {
                let secrets: serde_json::Map<String, serde_json::Value> = r
                    .secret_env
                    .iter()
                    .map(|(k, var)| {
                        (
                            k.clone(),
                            serde_json::json!({ "value": "***", "env": format!("${var}") }),
                        )
                    })
                    .collect();
                serde_json::json!({
                    "name": name,
                    "url": r.url,
                    "profile": r.profile,
                    "options": r.options,
                    "secrets": secrets,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    if config.remotes.is_empty() {
        let path = shardsync::remotes::config_path().map(|p| p.display().to_string());
        eprintln!("no remotes (config file: {})", path.as_deref().unwrap_or("none"));
    }
    for (name, r) in &config.remotes {
        println!("{name}: {}", r.url);
        if let Some(p) = &r.profile {
            println!("  profile = {p}");
        }
        for (k, v) in &r.options {
            println!("  {k} = {v}");
        }
        for (k, var) in &r.secret_env {
            println!("  {k} = *** (from ${var})");
        }
    }
    Ok(0)
}

/// Copies allocate and free shard-sized buffers (up to the multipart threshold) from many
/// threads. glibc raises its mmap threshold after the first such buffer is freed and then
/// serves the next ones from arenas that do not shrink: a 64 × 16 MiB sync held 364 MiB under
/// a 256 MiB budget. A fixed 1 MiB threshold keeps big buffers in their own mappings, returned
/// on free (about 290 MiB for the same sync).
fn bound_allocator_footprint() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
