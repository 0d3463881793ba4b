//! Command-line types (clap derive) and nothing else: what the user typed, validated only.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep Parquet training datasets byte-identical across object stores.
///
/// Exit codes: 0 consistent / done, 1 drift found (check, verify, sync --dry-run with work to
/// do), 2 error (bad input, unreachable store, failed shard).
#[derive(Debug, Parser)]
#[command(name = "shardsync", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// No progress bars or summaries; errors still go to stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log more (-v: info, -vv: debug) and print error chains.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build or refresh a dataset's manifest (stored at <URL>/_shardsync/manifest.json).
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Show the plan: new, changed, missing, extra and same shards. Copies nothing.
    Diff(DiffArgs),
    /// Copy what differs, verify every byte, commit the destination manifest last.
    Sync(SyncArgs),
    /// CI parity gate: are two datasets identical? Copies nothing.
    Check(CheckArgs),
    /// Check one store against its own manifest.
    Verify(VerifyArgs),
    /// Asynchronous mode: incremental syncs in a loop until SIGINT/SIGTERM.
    Watch(WatchArgs),
    /// Run the whole loop on local folders: generate a dataset, sync, change, re-sync, check.
    Demo(DemoArgs),
    /// List the named remotes of the config file ($SHARDSYNC_CONFIG or
    /// ~/.config/shardsync/config.toml); secrets are shown as the variable they come from.
    Remotes(RemotesArgs),
    /// Freeze a sync as a plan for N workers (a Kubernetes Indexed Job, a Slurm array); print
    /// its ID. Each worker then runs `sync SRC DST --plan ID --partition I/N`, and one
    /// `commit SRC DST --plan ID` commits the manifest.
    Plan(PlanArgs),
    /// Commit a partitioned plan once every partition has written its receipt (exit 2 naming
    /// the partitions without one); then remove the plan.
    Commit(CommitArgs),
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
    /// Objects hashed or proven at once while planning.
    #[arg(short = 'j', long, default_value_t = 16, env = "SHARDSYNC_JOBS", value_parser = parse_jobs)]
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
    /// Objects proven at once (for entries no receipt covers).
    #[arg(short = 'j', long, default_value_t = 16, env = "SHARDSYNC_JOBS", value_parser = parse_jobs)]
    pub jobs: usize,
    /// Write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stores: PairOpts,
}

#[derive(Debug, Args)]
pub struct RemotesArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Hash and footer-scan a dataset and write its manifest.
    ///
    /// Exit codes: 0 written, every .parquet footer read; 1 written, but some .parquet footers
    /// do not decode (each listed; their entries carry a `parquet_error`); 2 error (with
    /// --strict-parquet, also such a footer: then no manifest is written).
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
    /// Dataset URL: s3://bucket/prefix, gs://..., az://..., file:///abs, a local path, memory://name.
    pub url: String,
    /// Also write the manifest to this local file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Objects hashed at once.
    #[arg(short = 'j', long, default_value_t = 8, env = "SHARDSYNC_JOBS", value_parser = parse_jobs)]
    pub jobs: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
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
    Text,
    Json,
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
    pub src: String,
    pub dst: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[arg(short = 'j', long, default_value_t = 16, env = "SHARDSYNC_JOBS", value_parser = parse_jobs)]
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
    /// Source dataset URL.
    pub src: String,
    /// Destination dataset URL.
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
    /// Shards copied at once. Memory stays within --max-memory whatever this is; on a slow link
    /// small shards want many (the copies wait on round trips, not on bandwidth).
    #[arg(short = 'j', long, default_value_t = 64, env = "SHARDSYNC_JOBS", value_parser = parse_jobs)]
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
    /// Write the JSON consistency report to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Do not write the refreshed manifest back to the source.
    #[arg(long)]
    pub no_source_write: bool,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
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
    pub src: String,
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
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[arg(short = 'j', long, default_value_t = 16, env = "SHARDSYNC_JOBS", value_parser = parse_jobs)]
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
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[arg(short = 'j', long, default_value_t = 16, env = "SHARDSYNC_JOBS", value_parser = parse_jobs)]
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

/// `--interval`: a positive duration (zero would re-list the stores in a tight loop).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero (e.g. 30s)".into());
    }
    Ok(d)
}

pub use shardsync::display::parse_size;

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
