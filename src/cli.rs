//! Command-line types (clap derive) and nothing else: what the user typed, validated only.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep Parquet training datasets byte-identical across object stores.
///
/// Exit codes: 0 consistent / done, 1 drift found (check, verify, sync --dry-run with work to
/// do), 2 error (bad input, unreachable store, failed shard).
#[derive(Debug, Parser)]
#[command(
    name = "shardsync",
    version,
    about,
    long_about = None,
    max_term_width = 100,
    after_help = examples::TOP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub log: LogOpts,
}

/// What the run tells a person or a log while it works: the same flags on every command.
#[derive(Debug, Args, Clone, Default)]
pub struct LogOpts {
    /// No progress bars, stats lines, summaries or warnings; errors still go to stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Say more: -v each shard's decision (copy or skip, and why); -vv also each retry and
    /// request, and error chains.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// A one-line progress summary on stderr every DUR (bytes, objects, rate, ETA, failures),
    /// for logs (Kubernetes, Slurm, CI). Default: 30s when stderr is not a terminal, else off;
    /// 0 turns it off.
    #[arg(long, global = true, value_name = "DUR", value_parser = parse_stats_interval)]
    pub stats: Option<Duration>,

    /// Draw progress bars even when stderr is not a terminal (then no stats line unless
    /// --stats asks for one).
    #[arg(long, global = true)]
    pub progress: bool,

    /// Also append the log (warnings, -v details, stats lines) to FILE, without colour.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// `-j`'s default on every command: objects in flight at once.
pub const DEFAULT_JOBS: usize = 64;

/// `-j`'s help, the same on every command.
const JOBS_HELP: &str = "Objects worked on at once (copied, hashed or read), on every command. \
    Copies stay within --max-memory whatever this is; on a slow link small objects want many \
    (they wait on round trips, not on bandwidth)";

/// How a command prints its report, and where else it writes it: the same flags on every
/// command that prints one.
#[derive(Debug, Args, Clone)]
pub struct ReportOpts {
    /// How to print the report on stdout: text (a table for people), json (for machines),
    /// markdown (CI summaries, pull-request comments).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Same as --format json.
    #[arg(long)]
    pub json: bool,
    /// Also write the report to FILE: JSON, or Markdown when FILE ends in .md.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl ReportOpts {
    /// The format asked for (`--json` is `--format json`).
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build or refresh a dataset's manifest (stored at <URL>/_shardsync/manifest.json).
    #[command(subcommand, after_help = examples::MANIFEST)]
    Manifest(ManifestCommand),
    /// Show the plan: new, changed, missing, extra and same shards. Copies nothing.
    #[command(after_help = examples::DIFF)]
    Diff(DiffArgs),
    /// Copy what differs, verify every byte, commit the destination manifest last.
    #[command(after_help = examples::SYNC)]
    Sync(SyncArgs),
    /// CI parity gate: are two datasets identical? Copies nothing.
    #[command(after_help = examples::CHECK)]
    Check(CheckArgs),
    /// Check one store against its own manifest.
    #[command(after_help = examples::VERIFY)]
    Verify(VerifyArgs),
    /// Asynchronous mode: incremental syncs in a loop until SIGINT/SIGTERM.
    #[command(after_help = examples::WATCH)]
    Watch(WatchArgs),
    /// Run the whole loop on local folders: generate a dataset, sync, change, re-sync, check.
    #[command(after_help = examples::DEMO)]
    Demo(DemoArgs),
    /// List the named remotes of the config file ($SHARDSYNC_CONFIG or
    /// ~/.config/shardsync/config.toml); secrets are shown as the variable they come from.
    #[command(after_help = examples::REMOTES)]
    Remotes(RemotesArgs),
    /// Freeze a sync as a plan for N workers (a Kubernetes Indexed Job, a Slurm array); print
    /// its ID. Each worker then runs `sync SRC DST --plan ID --partition I/N`, and one
    /// `commit SRC DST --plan ID` commits the manifest.
    #[command(after_help = examples::PLAN)]
    Plan(PlanArgs),
    /// Commit a partitioned plan once every partition has written its receipt (exit 2 naming
    /// the partitions without one); then remove the plan.
    #[command(after_help = examples::COMMIT)]
    Commit(CommitArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    #[command(after_help = examples::COMPLETIONS)]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Source dataset URL.
    pub src: String,
    /// Destination dataset URL (the plan is kept under its _shardsync/plans/).
    pub dst: String,
    /// How many workers share the copies (balanced by bytes).
    #[arg(long, value_parser = parse_jobs)]
    pub partitions: usize,
    /// The plan's ID (letters, digits, '.', '_', '-'); default: 12 random hex digits. A plan
    /// already under this ID for the same destination version is kept (a retried plan job).
    #[arg(long)]
    pub id: Option<String>,
    /// Plan every shard, not only those that differ.
    #[arg(long)]
    pub full: bool,
    #[arg(short = 'j', long, default_value_t = DEFAULT_JOBS, env = "SHARDSYNC_JOBS", value_parser = parse_jobs, help = JOBS_HELP)]
    pub jobs: usize,
    /// Do not write the refreshed manifest back to the source.
    #[arg(long)]
    pub no_source_write: bool,
    /// Print the plan's head (ID, digests, shares) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keys that are not carried are an error rather than a warning naming them.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub guard: SourceGuard,
    #[command(flatten)]
    pub stores: PairOpts,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Source dataset URL (the plan's).
    pub src: String,
    /// Destination dataset URL.
    pub dst: String,
    /// The plan's ID, as `plan` printed it.
    #[arg(long)]
    pub plan: String,
    #[arg(short = 'j', long, default_value_t = DEFAULT_JOBS, env = "SHARDSYNC_JOBS", value_parser = parse_jobs, help = JOBS_HELP)]
    pub jobs: usize,
    #[command(flatten)]
    pub output: ReportOpts,
    #[command(flatten)]
    pub stores: PairOpts,
}

#[derive(Debug, Args)]
pub struct RemotesArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Hash and footer-scan a dataset and write its manifest.
    ///
    /// Exit codes: 0 written, every .parquet footer read; 1 written, but some .parquet footers
    /// do not decode (each listed; their entries carry a `parquet_error`); 2 error (with
    /// --strict-parquet, also such a footer: then no manifest is written).
    #[command(after_help = examples::MANIFEST_BUILD)]
    Build(BuildArgs),
}

/// Store options for one-store commands.
#[derive(Debug, Args, Clone)]
pub struct StoreOpts {
    /// Store option KEY=VALUE (object_store keys: endpoint, region, access_key_id,
    /// secret_access_key, allow_http, ...; profile=NAME for an AWS profile).
    /// AWS_*/GOOGLE_*/AZURE_* variables fill the rest.
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Follow symlinks in a local folder (default: skip each with a warning naming it).
    #[arg(long)]
    pub follow_symlinks: bool,
}

/// Store options for two-store commands.
#[derive(Debug, Args, Clone)]
pub struct PairOpts {
    /// Source store option KEY=VALUE (see `--opt` of `manifest build`).
    #[arg(long = "src-opt", value_name = "KEY=VALUE")]
    pub src_opt: Vec<String>,
    /// Destination store option KEY=VALUE.
    #[arg(long = "dst-opt", value_name = "KEY=VALUE")]
    pub dst_opt: Vec<String>,
    /// Follow symlinks in a local source folder (default: skip each with a warning naming it).
    /// A destination's symlinks are never followed, written or deleted through.
    #[arg(long)]
    pub follow_symlinks: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Dataset URL (or a remote's NAME:PATH): s3://bucket/prefix, gs://..., az://..., file:///abs, a local path, memory://name.
    pub url: String,
    /// Also write the manifest to this local file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(short = 'j', long, default_value_t = DEFAULT_JOBS, env = "SHARDSYNC_JOBS", value_parser = parse_jobs, help = JOBS_HELP)]
    pub jobs: usize,
    #[command(flatten)]
    pub output: ReportOpts,
    /// Keys that are not carried (a backslash, a control character, too long) are an error
    /// rather than a warning naming them.
    #[arg(long)]
    pub strict: bool,
    /// Exit 2 and write no manifest if any .parquet object's footer does not decode (by
    /// default: recorded as its `parquet_error`, listed, exit 1).
    #[arg(long)]
    pub strict_parquet: bool,
    #[command(flatten)]
    pub store: StoreOpts,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Text,
    /// One JSON document, for machines.
    Json,
    /// Markdown, for CI summaries.
    Markdown,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum VerifyArg {
    /// Size and the PUT's ETag in the listing after the copies; where listings have no ETag, size and the SHA-256 stored in the metadata (a HEAD).
    Size,
    /// Re-read and re-hash every copied byte (and every destination shard before planning).
    Deep,
}

/// The source-side safety net shared by the two-store commands.
#[derive(Debug, Args, Clone)]
pub struct SourceGuard {
    /// Accept a source that lists no objects. By default that is an error (exit 2): a mistyped
    /// prefix lists nothing, and syncing nothing with --delete would empty the destination.
    #[arg(long)]
    pub allow_empty_source: bool,
}

/// Which objects a two-store command looks at (rclone's filter flags), on both sides alike.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Only paths matching this glob (repeatable). Without a leading `/` it matches at any
    /// depth (`*.parquet`); `**` crosses folders; `/train/**` is anchored at the dataset root.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out paths matching this glob (repeatable); wins over --include. What is left out
    /// is not copied, not deleted by --delete and not reported.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Leave out objects smaller than this (e.g. 10MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min_size: Option<u64>,
    /// Leave out objects larger than this (e.g. 1.5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
}

/// `--egress-price`: US dollars per GiB leaving the source's store.
#[derive(Debug, Args, Clone, Default)]
pub struct CostArgs {
    /// Price of a GiB leaving the source's store, in US dollars (e.g. 0.09): the plan and the
    /// report then say what the transfer is estimated to cost. Default: the source remote's
    /// `egress_price` in the config file, if any.
    #[arg(long, value_name = "USD_PER_GIB", value_parser = parse_price)]
    pub egress_price: Option<f64>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Source dataset URL (or a remote's NAME:PATH).
    pub src: String,
    /// Destination dataset URL (or a remote's NAME:PATH).
    pub dst: String,
    #[command(flatten)]
    pub output: ReportOpts,
    #[arg(short = 'j', long, default_value_t = DEFAULT_JOBS, env = "SHARDSYNC_JOBS", value_parser = parse_jobs, help = JOBS_HELP)]
    pub jobs: usize,
    /// Keys that are not carried (a backslash, a control character, too long) are an error
    /// rather than a warning naming them.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub guard: SourceGuard,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub cost: CostArgs,
    #[command(flatten)]
    pub stores: PairOpts,
}

#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    /// Source dataset URL (or a remote's NAME:PATH).
    pub src: String,
    /// Destination dataset URL (or a remote's NAME:PATH).
    pub dst: String,
    /// More destinations (fan-out): each source shard is read once and written to every
    /// destination; each gets its own lease, commit and report section, a destination that
    /// fails fails alone, and the exit code is the worst of them.
    #[arg(value_name = "MORE_DST")]
    pub more_dst: Vec<String>,
    /// Copy every shard, not only those that differ.
    #[arg(long)]
    pub full: bool,
    /// Delete destination objects the source does not have (after the commit). Refused, with
    /// nothing written, when it would remove more than half of the destination's objects,
    /// unless --max-delete allows it.
    #[arg(long)]
    pub delete: bool,
    /// Most objects --delete may remove: a count (100) or a share of the destination's
    /// objects (25%). Default: 50%. Beyond it the sync stops before writing anything (exit 2).
    #[arg(long, value_name = "N|P%", value_parser = parse_delete_limit)]
    pub max_delete: Option<shardsync::safety::DeleteLimit>,
    /// Print the plan and exit: 1 if there is work to do, 0 if none.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(short = 'j', long, default_value_t = DEFAULT_JOBS, env = "SHARDSYNC_JOBS", value_parser = parse_jobs, help = JOBS_HELP)]
    pub jobs: usize,
    /// How to prove each copied shard on the destination.
    #[arg(long, value_enum, default_value_t = VerifyArg::Size)]
    pub verify: VerifyArg,
    /// Multipart part size (e.g. 8MiB, 16MiB; at least 5MiB). A large shard holds its parts
    /// uploading plus one filling, so this is bounded by --max-memory.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Ranged GETs of one shard in flight at once (1: one plain GET per shard). One TCP
    /// connection of a long link carries only its window per round trip; several fill it.
    #[arg(long, default_value_t = shardsync::transfer::DEFAULT_STRIPES, value_parser = parse_jobs)]
    pub stripes: usize,
    /// Shards larger than this are read as ranged GETs of this size (at least 1MiB).
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    pub stripe_size: u64,
    /// Parts of one multipart shard uploading at once (each on its own connection).
    #[arg(long, default_value_t = shardsync::transfer::DEFAULT_PARTS_IN_FLIGHT, value_parser = parse_jobs)]
    pub parts_in_flight: usize,
    /// Shards up to this size go in one PUT, sent once all their bytes are hashed and checked;
    /// larger shards go multipart. Each one-PUT shard is held in memory whole (within --max-memory).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub multipart_threshold: u64,
    /// Most shard bytes buffered in memory at once, over all concurrent copies.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub max_memory: u64,
    #[command(flatten)]
    pub output: ReportOpts,
    /// Do not write the refreshed manifest back to the source.
    #[arg(long)]
    pub no_source_write: bool,
    /// Keys that are not carried (a backslash, a control character, too long) are an error
    /// rather than a warning naming them.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub guard: SourceGuard,
    /// A .parquet shard whose footer does not decode (encrypted, truncated, corrupt) fails the
    /// sync (exit 2) and is not landed. By default it is synced byte for byte, recorded with a
    /// `parquet_error` and listed as a warning.
    #[arg(long)]
    pub strict_parquet: bool,
    /// Run one partition of a plan made by `shardsync plan` (needs --partition, or the index
    /// from $JOB_COMPLETION_INDEX / $SLURM_ARRAY_TASK_ID): copy and prove its share, write its
    /// receipt; `shardsync commit` commits the manifest.
    #[arg(long, value_name = "ID", conflicts_with_all = ["delete", "dry_run", "full"])]
    pub plan: Option<String>,
    /// Which partition: I/N, or auto/N for the scheduler's index; N must be the plan's.
    #[arg(long, value_name = "I/N", requires = "plan")]
    pub partition: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Stop starting new copies once this much has been started (e.g. 100GiB); the sync ends
    /// incomplete (exit 1), commits what landed, and the next run goes on.
    #[arg(long, value_name = "SIZE", value_parser = parse_nonzero_size)]
    pub max_transfer: Option<u64>,
    /// Read the source at most this fast over all copies together, in bytes per second
    /// (e.g. 50MiB).
    #[arg(long, value_name = "RATE", value_parser = parse_nonzero_size)]
    pub bwlimit: Option<u64>,
    /// Bytes --bwlimit lets through at once after an idle spell (default: one second's worth).
    #[arg(long, value_name = "SIZE", value_parser = parse_nonzero_size, requires = "bwlimit")]
    pub bwlimit_burst: Option<u64>,
    #[command(flatten)]
    pub cost: CostArgs,
    #[command(flatten)]
    pub stores: PairOpts,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Source dataset URL (or a remote's NAME:PATH).
    pub src: String,
    /// Destination dataset URL (or a remote's NAME:PATH).
    pub dst: String,
    /// Re-hash every byte on both sides (finds silent corruption).
    #[arg(long)]
    pub deep: bool,
    /// Count shards whose schema differs from the majority of their folder as drift (exit 1).
    /// By default that is a warning: folders may hold different configs.
    #[arg(long)]
    pub strict_schema: bool,
    /// A .parquet shard whose footer does not decode makes the report inconsistent (exit 1);
    /// by default it is a warning.
    #[arg(long)]
    pub strict_parquet: bool,
    #[command(flatten)]
    pub output: ReportOpts,
    #[arg(short = 'j', long, default_value_t = DEFAULT_JOBS, env = "SHARDSYNC_JOBS", value_parser = parse_jobs, help = JOBS_HELP)]
    pub jobs: usize,
    /// Keys that are not carried (a backslash, a control character, too long) are an error
    /// rather than a warning naming them.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub guard: SourceGuard,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub stores: PairOpts,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Dataset URL (or a remote's NAME:PATH).
    pub url: String,
    /// Re-hash every byte.
    #[arg(long)]
    pub deep: bool,
    /// Count shards whose schema differs from the majority of their folder as drift (exit 1).
    #[arg(long)]
    pub strict_schema: bool,
    /// A .parquet shard whose footer does not decode makes the report inconsistent (exit 1);
    /// by default it is a warning.
    #[arg(long)]
    pub strict_parquet: bool,
    #[command(flatten)]
    pub output: ReportOpts,
    #[arg(short = 'j', long, default_value_t = DEFAULT_JOBS, env = "SHARDSYNC_JOBS", value_parser = parse_jobs, help = JOBS_HELP)]
    pub jobs: usize,
    /// Keys that are not carried (a backslash, a control character, too long) are an error
    /// rather than a warning naming them.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub store: StoreOpts,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Time between syncs (e.g. 30s, 5m).
    #[arg(long, default_value = "60s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Stop after this many cycles (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub cycles: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder to work in (default: a new temporary folder).
    pub dir: Option<PathBuf>,
    /// Number of shards to generate.
    #[arg(long, default_value_t = 24)]
    pub shards: usize,
    /// Rows per shard.
    #[arg(long, default_value_t = 4096)]
    pub rows: usize,
}

fn parse_delete_limit(s: &str) -> Result<shardsync::safety::DeleteLimit, String> {
    s.parse()
}

/// `-j N`: at least 1 (zero workers would never finish).
pub fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{:?} is not a number of jobs",
            shardsync::display::escape_controls(s)
        )),
    }
}

/// `--stats DUR`: a duration, `0` for off (as `Duration::ZERO`).
pub fn parse_stats_interval(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (e.g. 30s, 5m, 0 for off)"))
}

/// `--interval`: a positive duration (zero would re-list the stores in a tight loop).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero (e.g. 30s)".into());
    }
    Ok(d)
}

/// A limit that zero would make meaningless (`--bwlimit 0` would never finish; rclone reads
/// `--max-transfer 0` as "no limit"): more than zero bytes.
pub fn parse_nonzero_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("must be more than 0 (leave the flag out for no limit)".into()),
        n => Ok(n),
    }
}

/// `--egress-price`: a finite price of zero or more.
pub fn parse_price(s: &str) -> Result<f64, String> {
    match s.trim().trim_start_matches('$').parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!(
            "{:?} is not a price in US dollars per GiB (e.g. 0.09)",
            shardsync::display::escape_controls(s)
        )),
    }
}

impl FilterArgs {
    /// The filter as the library takes it.
    pub fn spec(&self) -> shardsync::filter::FilterSpec {
        shardsync::filter::FilterSpec {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
        }
    }
}

/// A size as people write it, on every size flag: `1.5GiB`, `512MiB`, `8MB` (decimal), `4096`
/// (bytes). One parser for the whole command line.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!(
            "{:?} is not a size: negative",
            shardsync::display::escape_controls(s)
        ));
    }
    t.parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| {
        format!(
            "{:?} is not a size like 1.5GiB or 512MiB: {e}",
            shardsync::display::escape_controls(s)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes_accept_fractions_and_both_unit_families() {
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("8MB"), Ok(8_000_000));
        assert_eq!(parse_size("16 MiB"), Ok(16 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("8XB").is_err());
        assert!(parse_size("-1MiB").is_err());
        assert!(parse_size("").is_err());
    }

    /// Every command and every argument a user can see has a line of help, and every command's
    /// help ends with examples.
    #[test]
    fn every_command_has_examples_and_every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            let after = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            if !after.contains("Examples:") {
                missing.push(format!("{path}: no Examples section"));
            }
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path}: argument {id} has no help"));
                }
            }
            for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn jobs_has_one_default_and_one_help_everywhere() {
        let cli = Cli::command();
        let mut seen = Vec::new();
        for sub in cli
            .get_subcommands()
            .flat_map(|c| std::iter::once(c).chain(c.get_subcommands()))
        {
            if let Some(j) = sub.get_arguments().find(|a| a.get_id() == "jobs") {
                let default: Vec<_> = j
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                seen.push((
                    sub.get_name().to_string(),
                    default,
                    j.get_help().map(|h| h.to_string()),
                ));
            }
        }
        assert!(seen.len() >= 5, "{seen:?}");
        assert!(
            seen.iter().all(|s| s.1 == seen[0].1 && s.2 == seen[0].2),
            "{seen:#?}"
        );
        assert_eq!(seen[0].1, [DEFAULT_JOBS.to_string()]);
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }
}

/// The examples each command's `--help` ends with.
mod examples {
    pub const TOP: &str = "Examples:
  shardsync demo
  shardsync sync s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7 && torchrun train.py
  shardsync check s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7 --format markdown";
    pub const MANIFEST: &str = "Examples:
  shardsync manifest build s3://us-east/tokenized/v7
  shardsync manifest build ./data --out manifest.json --format json";
    pub const MANIFEST_BUILD: &str = MANIFEST;
    pub const DIFF: &str = "Examples:
  shardsync diff s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7
  shardsync diff ./data s3://eu-west/data --dst-opt region=eu-west-1 --format json";
    pub const SYNC: &str = "Examples:
  shardsync sync s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7
  shardsync sync ./data s3://bucket/data --delete --report sync-report.json --stats 10s
  shardsync sync east:v7 west:v7 apac:v7 --dry-run --format markdown   # fan-out: source read once";
    pub const CHECK: &str = "Examples:
  shardsync check s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7
  shardsync check ./a ./b --deep --format markdown --report check.md";
    pub const VERIFY: &str = "Examples:
  shardsync verify s3://eu-west/tokenized/v7
  shardsync verify ./data --deep --format json";
    pub const WATCH: &str = "Examples:
  shardsync watch s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7 --interval 5m
  shardsync watch ./data s3://bucket/data --cycles 2 --json";
    pub const DEMO: &str = "Examples:
  shardsync demo
  shardsync demo /tmp/shardsync-demo --shards 8 --rows 1024";
    pub const REMOTES: &str = "Examples:
  shardsync remotes
  SHARDSYNC_CONFIG=./shardsync.toml shardsync remotes --json";
    pub const COMPLETIONS: &str = "Examples:
  shardsync completions bash > /etc/bash_completion.d/shardsync
  shardsync completions zsh > \"${fpath[1]}/_shardsync\"
  shardsync completions fish > ~/.config/fish/completions/shardsync.fish";
    pub const PLAN: &str = "Examples:
  shardsync plan s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7 --partitions 16
  shardsync plan ./data s3://bucket/data --partitions 4 --id nightly --json";
    pub const COMMIT: &str = "Examples:
  shardsync commit s3://us-east/tokenized/v7 s3://eu-west/tokenized/v7 --plan nightly
  shardsync commit ./data s3://bucket/data --plan nightly --format markdown --report commit.md";
}
