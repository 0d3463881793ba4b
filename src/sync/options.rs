//! The options a sync runs under, as a builder over sensible defaults.

use std::num::NonZeroUsize;

use tokio_util::sync::CancellationToken;

use crate::bandwidth::BandwidthLimit;
use crate::events::Events;
use crate::filter::Filter;
use crate::safety::DeleteLimit;
use crate::transfer::TransferOptions;
use crate::verify::VerifyMode;

/// Options for [`sync`](super::sync). The defaults suit most datasets; override one at a time.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Copy every shard, not only those that differ.
    pub full: bool,
    /// Delete destination objects the source does not have (after the commit).
    pub delete: bool,
    /// Plan only; copy and commit nothing.
    pub dry_run: bool,
    /// Objects copied (or hashed, or proven) at once.
    pub concurrency: NonZeroUsize,
    /// How copies are verified.
    pub verify: VerifyMode,
    /// Multipart, memory and retry settings of the copies.
    pub transfer: TransferOptions,
    /// Write the refreshed source manifest back to the source.
    pub write_source_manifest: bool,
    /// Where progress goes (see [`crate::events`]).
    pub events: Events,
    /// When cancelled (Ctrl-C), no new copy starts, copies in flight stop reading (a multipart
    /// upload is aborted), what was verified is committed, and [`sync`](super::sync) returns
    /// [`Error::Incomplete`](crate::Error::Incomplete) with `interrupted` set. Before the first write, it returns
    /// [`Error::Interrupted`](crate::Error::Interrupted) and writes nothing.
    pub cancel: CancellationToken,
    /// Accept a source that lists no objects (by default an error: a mistyped prefix).
    pub allow_empty_source: bool,
    /// Most extras `delete` may remove; `None` means [`DeleteLimit::DEFAULT`] (half).
    pub max_delete: Option<DeleteLimit>,
    /// Keys that are not carried (see [`crate::listing`]) are an error, not a warning.
    pub strict: bool,
    /// A `.parquet` shard whose footer does not decode fails (is not landed or claimed)
    /// instead of being synced with a `parquet_error` and listed as a warning.
    pub strict_parquet: bool,
    /// The view of the dataset this sync works on (`--include`, `--exclude`, size limits),
    /// applied to both sides: objects outside it are not copied, deleted or reported. The
    /// destination manifest and the report record it. Default: everything.
    pub filter: Filter,
    /// Stop starting new copies once the copies started hold this many bytes (rclone's
    /// `--max-transfer`): the sync ends incomplete, committing what landed. `None`: no limit.
    pub max_transfer: Option<u64>,
    /// The price of a GiB leaving the source's store, in US dollars: the plan and the report
    /// then carry the estimated cost of the bytes a sync moves.
    pub egress_price_usd_per_gib: Option<f64>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            full: false,
            delete: false,
            dry_run: false,
            concurrency: NonZeroUsize::new(16).expect("16 is not zero"),
            verify: VerifyMode::Size,
            transfer: TransferOptions::default(),
            write_source_manifest: true,
            events: Events::none(),
            cancel: CancellationToken::new(),
            allow_empty_source: false,
            max_delete: None,
            strict: false,
            strict_parquet: false,
            filter: Filter::default(),
            max_transfer: None,
            egress_price_usd_per_gib: None,
        }
    }
}

impl SyncOptions {
    /// The mode a report names: `dry-run`, `full` or `incremental`.
    pub fn mode(&self) -> &'static str {
        if self.dry_run {
            "dry-run"
        } else if self.full {
            "full"
        } else {
            "incremental"
        }
    }
    /// Copy every shard, not only those that differ.
    pub fn with_full(mut self, full: bool) -> Self {
        self.full = full;
        self
    }
    /// Delete the destination's extras after the commit.
    pub fn with_delete(mut self, delete: bool) -> Self {
        self.delete = delete;
        self
    }
    /// Plan only.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
    /// Objects copied at once (0 is taken as 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        self
    }
    /// The token that interrupts this sync (see [`SyncOptions::cancel`]).
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }
    /// How copies are verified.
    pub fn with_verify(mut self, mode: VerifyMode) -> Self {
        self.verify = mode;
        self
    }
    /// Multipart part size (at least 5 MiB, S3's smallest part).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.transfer.part_size = bytes.max(5 * 1024 * 1024);
        self
    }
    /// Read shards larger than `size` as ranged GETs of `size` (at least 1 MiB), `stripes` at
    /// once (at least 1: one plain GET per shard).
    pub fn with_stripes(mut self, stripes: usize, size: usize) -> Self {
        self.transfer.stripes = stripes.max(1);
        self.transfer.stripe_size = size.max(1024 * 1024);
        self
    }
    /// Upload up to `parts` parts of one multipart shard at once (at least 1).
    pub fn with_parts_in_flight(mut self, parts: usize) -> Self {
        self.transfer.parts_in_flight = parts.max(1);
        self
    }
    /// Shards up to this size go in one PUT; larger ones go multipart.
    pub fn with_multipart_threshold(mut self, bytes: usize) -> Self {
        self.transfer.multipart_threshold = bytes;
        self
    }
    /// Send progress to `observer` (see [`crate::events`]).
    pub fn with_observer(self, observer: std::sync::Arc<dyn crate::events::Observer>) -> Self {
        self.with_events(Events::new(observer))
    }
    /// Send progress through `events`.
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }
    /// Accept a source with no objects (a sync of it empties the destination with `delete`).
    pub fn with_allow_empty_source(mut self, allow: bool) -> Self {
        self.allow_empty_source = allow;
        self
    }
    /// Most extras `delete` may remove (default: half of the destination's objects).
    pub fn with_max_delete(mut self, limit: Option<DeleteLimit>) -> Self {
        self.max_delete = limit;
        self
    }
    /// Work on the view `filter` lets in, on both sides (see [`SyncOptions::filter`]).
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }
    /// Stop starting new copies once the copies started hold `bytes` (see
    /// [`SyncOptions::max_transfer`]).
    pub fn with_max_transfer(mut self, bytes: Option<u64>) -> Self {
        self.max_transfer = bytes;
        self
    }
    /// Read the source at most `bytes_per_sec` over all copies together, with bursts of up to
    /// `burst` bytes (see [`BandwidthLimit`]). `None` lifts the limit.
    pub fn with_bwlimit(mut self, limit: Option<(u64, u64)>) -> Self {
        self.transfer.bandwidth = limit.map(|(rate, burst)| BandwidthLimit::new(rate, burst));
        self
    }
    /// Estimate what the bytes a sync moves cost at `usd_per_gib` (see
    /// [`SyncOptions::egress_price_usd_per_gib`]).
    pub fn with_egress_price(mut self, usd_per_gib: Option<f64>) -> Self {
        self.egress_price_usd_per_gib = usd_per_gib;
        self
    }
    /// A `.parquet` shard whose footer does not decode fails instead of being synced with a
    /// `parquet_error`.
    pub fn with_strict_parquet(mut self, strict: bool) -> Self {
        self.strict_parquet = strict;
        self
    }
}
