//! The sync pipeline: make a destination hold exactly the source's dataset, and prove it.
//!
//! ```text
//!  source: manifest + listing ─┐                     ┌─► interim commit (drop entries about
//!                              ├─► diff::Plan ─► prove│    to be overwritten)
//!  dest:   manifest + listing ─┘   (Unproven → Same/  └─► copy + verify (-j at once)
//!                                   Changed)               ─► final commit ─► --delete extras
//! ```
//!
//! Source objects whose manifest entry no longer matches the listing are hashed while they are
//! copied, so each source byte is read once; the refreshed source manifest is written back.

use std::collections::HashSet;
use std::num::NonZeroUsize;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

use crate::commit::{self, CommitProtection, Expected};
use crate::diff::{diff, Plan, PlanItem, SourceObject, State};
use crate::error::{Error, Result};
use crate::listing::{list_dataset, ObjectStat};
use crate::lock::SyncLock;
use crate::manifest::build::{
    build_from_listing, entry_matches_stat, parquet_facts, record_footer, BuildOptions,
};
use crate::manifest::{self, is_parquet_path, Manifest, ShardEntry};
use crate::progress::Progress;
use crate::report::{footer_findings, Finding, FindingKind, Report};
use crate::safety::{check_deletions, check_overlap, check_source_not_empty, DeleteLimit};
use crate::store::Dataset;
use crate::transfer::{copy_object, CopyJob, TransferOptions};
use crate::verify::{head_with_sha, prove_same, verify_landed, Proof, VerifyMode};

/// Options for [`sync`]. The defaults suit most datasets; override one at a time.
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
    pub verify: VerifyMode,
    pub transfer: TransferOptions,
    /// Write the refreshed source manifest back to the source.
    pub write_source_manifest: bool,
    pub progress: Progress,
    /// When cancelled (Ctrl-C), no new copy starts, copies in flight stop reading (a multipart
    /// upload is aborted), what was verified is committed, and [`sync`] returns
    /// [`Error::Incomplete`] with `interrupted` set. Before the first write, it returns
    /// [`Error::Interrupted`] and writes nothing.
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
            progress: Progress::hidden(),
            cancel: CancellationToken::new(),
            allow_empty_source: false,
            max_delete: None,
            strict: false,
            strict_parquet: false,
        }
    }
}

impl SyncOptions {
    pub fn with_full(mut self, full: bool) -> Self {
        self.full = full;
        self
    }
    pub fn with_delete(mut self, delete: bool) -> Self {
        self.delete = delete;
        self
    }
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
    pub fn with_verify(mut self, mode: VerifyMode) -> Self {
        self.verify = mode;
        self
    }
    /// Multipart part size (at least 5 MiB, S3's smallest part).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.transfer.part_size = bytes.max(5 * 1024 * 1024);
        self
    }
    /// Shards up to this size go in one PUT; larger ones go multipart.
    pub fn with_multipart_threshold(mut self, bytes: usize) -> Self {
        self.transfer.multipart_threshold = bytes;
        self
    }
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
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
    /// A `.parquet` shard whose footer does not decode fails instead of being synced with a
    /// `parquet_error`.
    pub fn with_strict_parquet(mut self, strict: bool) -> Self {
        self.strict_parquet = strict;
        self
    }
}

/// The result of a sync that copied everything it planned to: the report and the plan it
/// acted on. The destination may still hold extras (`report.consistent` is then false);
/// [`SyncOutcome::into_consistent`] turns that into an error too.
#[derive(Debug)]
pub struct SyncOutcome {
    pub report: Report,
    pub plan: Plan,
    /// The manifest committed to the destination, if one was.
    pub committed: Option<Manifest>,
}

impl SyncOutcome {
    /// True when any shard failed (the sync should exit 2).
    pub fn failed(&self) -> bool {
        self.report.shards_failed > 0
    }

    /// `Ok` only when the destination now holds exactly the source's dataset (what `check`
    /// would say): extras left without `delete` are [`Error::Drift`].
    pub fn into_consistent(self) -> Result<SyncOutcome> {
        if self.report.consistent {
            Ok(self)
        } else {
            Err(Error::Drift {
                outcome: Box::new(self),
            })
        }
    }
}

/// The state of both sides, gathered before anything is copied.
pub struct Prepared {
    pub plan: Plan,
    pub src_previous: Option<Manifest>,
    pub dst_stored: Option<manifest::StoredManifest>,
    /// Source objects hashed during preparation (stale entries that had to be compared).
    pub src_hashed: usize,
    /// Source objects whose bytes differ from their manifest entry although their stat does not
    /// (deep mode only): silent corruption at the source.
    pub src_corrupt: Vec<String>,
    /// Keys either side's listing did not carry, one line per side.
    pub warnings: Vec<String>,
}

/// Read both sides and build the plan, proving `Unproven` items. Reads no source byte that
/// the copy will read anyway, except stale shards whose destination twin has the same size.
pub async fn prepare(src: &Dataset, dst: &Dataset, opts: &SyncOptions) -> Result<Prepared> {
    prepare_with(src, dst, opts, false).await
}

/// As [`prepare`]; with `rehash_source`, every source byte is re-hashed (deep check) and
/// objects whose bytes no longer match their unchanged-looking manifest entry are reported.
pub async fn prepare_with(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    rehash_source: bool,
) -> Result<Prepared> {
    prepare_inner(src, dst, opts, rehash_source, false).await
}

/// With `defer_to_copy` (a sync about to copy), stale source objects small enough for one PUT
/// are not hashed here: the copy reads them once, hashes them and skips the PUT when the bytes
/// are the destination's (see [`CopyJob::unless_sha256`]). Hashing them here and then copying
/// would read each changed one twice. They stay `Unproven` in the plan until the copy settles
/// them.
async fn prepare_inner(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    rehash_source: bool,
    defer_to_copy: bool,
) -> Result<Prepared> {
    let (src_prev, src_list, dst_stored, dst_list) = tokio::try_join!(
        manifest::load(src),
        list_dataset(src),
        manifest::load(dst),
        list_dataset(dst)
    )?;
    src_list.check_strict(src, opts.strict)?;
    dst_list.check_strict(dst, opts.strict)?;
    let warnings: Vec<String> = [src_list.warning(src), dst_list.warning(dst)]
        .into_iter()
        .flatten()
        .collect();
    let (src_list, dst_list) = (src_list.objects, dst_list.objects);
    let src_prev = src_prev.map(|s| s.manifest);
    check_source_not_empty(src, src_list.len(), src_prev.is_some(), opts.allow_empty_source)?;
    let mut sources: Vec<SourceObject> = src_list
        .into_iter()
        .map(|stat| SourceObject {
            entry: src_prev
                .as_ref()
                .and_then(|m| m.get(&stat.path))
                .filter(|e| entry_matches_stat(e, &stat))
                .cloned(),
            stat,
        })
        .collect();

    // Stale source objects with a same-size destination twin: hash them now, or we cannot tell
    // `same` from `changed` (a copy would hash them anyway, but might not be needed).
    let dst_stats: std::collections::HashMap<&str, &ObjectStat> =
        dst_list.iter().map(|s| (s.path.as_str(), s)).collect();
    let mut src_corrupt = Vec::new();
    if rehash_source {
        for s in &mut sources {
            if let Some(e) = s.entry.take() {
                src_corrupt.push(e); // candidates: compared with the fresh hash below
            }
        }
    }
    // Deferred only where the destination's hash is known (its manifest entry matches its
    // listing), so the copy can tell `same` by itself. Objects a killed sync landed have no such
    // entry: they are hashed here and proven from their metadata, not copied again.
    let deferred = |s: &SourceObject| {
        defer_to_copy
            && s.stat.size <= opts.transfer.single_put_limit() as u64
            && dst_stored
                .as_ref()
                .and_then(|d| d.manifest.get(&s.stat.path))
                .zip(dst_stats.get(s.stat.path.as_str()))
                .is_some_and(|(e, stat)| entry_matches_stat(e, stat))
    };
    let must_hash: Vec<ObjectStat> = sources
        .iter()
        .filter(|s| {
            rehash_source
                || (s.entry.is_none()
                    && dst_stats.get(s.stat.path.as_str()).map(|d| d.size) == Some(s.stat.size)
                    && !deferred(s))
        })
        .map(|s| s.stat.clone())
        .collect();
    let src_hashed = must_hash.len();
    if !must_hash.is_empty() {
        let b = BuildOptions {
            concurrency: opts.concurrency.get(),
            progress: opts.progress.clone(),
        };
        let built = build_from_listing(src, &must_hash, None, &b).await?;
        for e in built.manifest.shards {
            if let Ok(i) = sources.binary_search_by(|s| s.stat.path.cmp(&e.path)) {
                sources[i].entry = Some(e);
            }
        }
    }
    // Keep only the claimed entries the fresh hash contradicts.
    src_corrupt.retain(|claimed| {
        sources
            .binary_search_by(|s| s.stat.path.cmp(&claimed.path))
            .ok()
            .and_then(|i| sources[i].entry.as_ref())
            .is_some_and(|fresh| !fresh.same_content(claimed))
    });

    let mut plan = diff(sources, dst_stored.as_ref().map(|s| &s.manifest), dst_list);
    prove(dst, &mut plan, opts).await?;
    Ok(Prepared {
        plan,
        src_previous: src_prev,
        dst_stored,
        src_hashed,
        src_corrupt: src_corrupt.into_iter().map(|e| e.path).collect(),
        warnings,
    })
}

/// A proof attempt: the destination stat and whether it matches, or `None` when it is gone.
type ProofResult = Result<Option<(ObjectStat, bool)>>;
/// A finished copy.
type CopyResult = Result<Landed>;

/// What a copy left on the destination.
#[derive(Debug)]
enum Landed {
    /// The shard was written: its destination entry, and how it was proven (`None`: not yet,
    /// the listing after the copies will; see [`copy_and_verify`]).
    Written { entry: ShardEntry, proof: Option<Proof> },
    /// The bytes hash to the destination's proven entry: nothing was written.
    AlreadyThere,
}

/// Settle `Unproven` items (and, in deep mode, re-hash `Same` ones to catch rot).
async fn prove(dst: &Dataset, plan: &mut Plan, opts: &SyncOptions) -> Result<()> {
    let deep = opts.verify == VerifyMode::Deep;
    let idx: Vec<usize> = plan
        .items
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            // An unproven item without a source hash is settled by its copy (`defer_to_copy`).
            let provable = i.src.as_ref().is_some_and(|s| s.entry.is_some());
            (i.state == State::Unproven && provable) || (deep && i.state == State::Same)
        })
        .map(|(n, _)| n)
        .collect();
    if idx.is_empty() {
        return Ok(());
    }
    let bytes: u64 = idx
        .iter()
        .map(|&n| plan.items[n].dst.as_ref().map_or(0, |d| d.size))
        .sum();
    opts.progress.start("proving", idx.len() as u64, bytes);
    let results: Vec<(usize, ProofResult)> = futures::stream::iter(idx)
        .map(|n| {
            let item = &plan.items[n];
            let sha = item
                .src
                .as_ref()
                .and_then(|s| s.entry.as_ref())
                .map(|e| e.sha256.clone())
                .expect("only items with a source hash are proven");
            let path = item.path.clone();
            let progress = opts.progress.clone();
            async move {
                let r = prove_same(dst, &path, &sha, opts.verify, &progress).await;
                progress.object_done(&path);
                (n, r)
            }
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    opts.progress.finish();
    for (n, r) in results {
        let item = &mut plan.items[n];
        match r? {
            Some((stat, true)) => {
                let mut e = item
                    .src
                    .as_ref()
                    .and_then(|s| s.entry.clone())
                    .expect("proven items have a source entry");
                // The cache key is the listing's stat, which is what the next sync compares
                // against (a HEAD's mtime and ETag can differ in precision or presence).
                let keyed = match &item.dst {
                    Some(listed) if listed.size == stat.size => listed.clone(),
                    _ => stat,
                };
                e.mtime = Some(keyed.mtime);
                e.etag = keyed.etag.clone();
                item.dst = Some(keyed);
                item.dst_entry = Some(e);
                item.state = State::Same;
            }
            Some((stat, false)) => {
                // dst_entry stays: when the manifest claimed these very bytes, it is corruption.
                item.dst = Some(stat);
                item.state = State::Changed;
            }
            None => {
                item.dst = None;
                item.dst_entry = None;
                item.state = State::New;
            }
        }
    }
    Ok(())
}

/// The digest of the source dataset as planned, when every source entry's hash is known.
fn current_source_digest(plan: &Plan) -> Option<String> {
    let entries: Option<Vec<ShardEntry>> = plan
        .items
        .iter()
        .filter_map(|i| i.src.as_ref())
        .map(|s| s.entry.clone())
        .collect();
    entries.map(|e| manifest::digest_of(&e))
}

/// Share of paths that differ (C(A,B)); `Extra` counts, `Same` does not.
fn inconsistency(plan: &Plan) -> f64 {
    if plan.items.is_empty() {
        return 0.0;
    }
    let differ = plan.items.iter().filter(|i| i.state != State::Same).count();
    differ as f64 / plan.items.len() as f64
}

/// A finding for a plan item that differs.
pub fn finding_for(item: &PlanItem) -> Option<Finding> {
    let (kind, detail) = match item.state {
        State::Same => return None,
        State::New => (
            FindingKind::Missing,
            "in the source, absent from the destination".to_string(),
        ),
        State::Missing => (
            FindingKind::Missing,
            "listed in the destination manifest but absent from the destination store".to_string(),
        ),
        State::Extra => (
            FindingKind::Extra,
            "in the destination only; `sync --delete` removes it".to_string(),
        ),
        State::Changed => {
            let (s, d) = (
                item.src.as_ref().map(|s| s.stat.size),
                item.dst.as_ref().map(|d| d.size),
            );
            match (s, d) {
                (Some(s), Some(d)) if s != d => (
                    FindingKind::SizeMismatch,
                    format!("source {s} bytes, destination {d} bytes"),
                ),
                _ if item.is_corrupt() => (
                    FindingKind::Corrupt,
                    "bytes differ from the SHA-256 the destination manifest records (silent corruption); \
                     `sync --verify deep` repairs it"
                        .to_string(),
                ),
                _ => (
                    FindingKind::Changed,
                    "same size, different SHA-256; `sync` re-copies it".to_string(),
                ),
            }
        }
        State::Unproven => (
            FindingKind::Changed,
            "destination hash unknown (not in its manifest); run with --deep to prove".to_string(),
        ),
    };
    Some(Finding {
        path: item.path.clone(),
        kind,
        detail,
    })
}

/// Run one sync. Per-shard failures do not abort the others; they are in the report
/// (`shards_failed`, findings of kind `error`) and the manifest committed claims none of them.
pub async fn sync(src: &Dataset, dst: &Dataset, opts: &SyncOptions) -> Result<SyncOutcome> {
    check_overlap(src, dst)?;
    let mut lease = None;
    let outcome = sync_under_lease(src, dst, opts, &mut lease).await;
    let lease_warnings = lease.as_ref().map(|l| l.warnings().to_vec()).unwrap_or_default();
    if let Some(l) = lease {
        if outcome.is_err() {
            // This sync may have written shards. Where the lease is not enforced another sync
            // may have committed meanwhile, and our writes may contradict its manifest: leave a
            // manifest that claims only what is there.
            match commit::drop_false_claims(dst).await {
                Ok(dropped) if !dropped.is_empty() => tracing::warn!(
                    "{}",
                    commit::describe_changed(
                        &dropped,
                        "no longer held what the committed manifest claimed; dropped from it"
                    )
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("could not re-check the destination manifest after the failure: {e}")
                }
            }
        }
        l.release().await;
    }
    let mut outcome = outcome?;
    outcome.report.warnings.extend(lease_warnings);
    crate::local::settle_sync_report(&mut outcome.report, src, dst, !opts.dry_run).await;
    if outcome.failed() || outcome.report.interrupted {
        // A caller that writes `sync(..).await?; train()` must not train on a partial dataset.
        return Err(Error::Incomplete {
            outcome: Box::new(outcome),
        });
    }
    Ok(outcome)
}

/// Take the destination's lease before the first write, then make sure the manifest is still
/// the one the plan was made against: with the lease held, nobody else can change it.
async fn ensure_lease(dst: &Dataset, lease: &mut Option<SyncLock>, planned: &Expected) -> Result<()> {
    if let Some(l) = lease {
        if l.is_lost() {
            return Err(Error::DestinationLocked {
                location: format!("{}/{}", dst.url, crate::lock::LOCK_KEY),
                holder: "this sync's lease expired while it stalled and was taken over".into(),
            });
        }
        return Ok(());
    }
    *lease = Some(crate::lock::acquire(dst).await?);
    let policy = crate::retry::RetryPolicy::control_plane();
    let now = crate::retry::retry(&policy, "read manifest", |_| async {
        match dst.store.head(&dst.manifest_key()).await {
            Ok(meta) => Ok(Some(meta.e_tag)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(crate::store::MANIFEST_KEY, "read manifest", e)),
        }
    })
    .await?;
    if now != planned.as_ref().map(|v| v.e_tag.clone()) {
        return Err(Error::ManifestConflict {
            location: format!("{}/{}", dst.url, crate::store::MANIFEST_KEY),
        });
    }
    Ok(())
}

async fn sync_under_lease(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    lease: &mut Option<SyncLock>,
) -> Result<SyncOutcome> {
    let mode = if opts.dry_run {
        "dry-run"
    } else if opts.full {
        "full"
    } else {
        "incremental"
    };
    let mut report = Report::new("sync", mode, Some(&src.url), Some(&dst.url));
    report.verify = Some(opts.verify);
    let Prepared {
        mut plan,
        src_previous,
        dst_stored,
        warnings,
        ..
    } = opts
        .cancel
        .run_until_cancelled(prepare_inner(
            src,
            dst,
            opts,
            false,
            !opts.dry_run && opts.verify == VerifyMode::Size,
        ))
        .await
        .ok_or(Error::Interrupted)??;
    report.warnings.extend(warnings);
    let before = inconsistency(&plan);
    report.inconsistency_before = Some(before);
    report.plan = Some(plan.counts());
    // The source's digest as it is now: known when every source entry is (a stale manifest's
    // digest would name another version). Set again after the copies hash what was unknown.
    report.src_digest = current_source_digest(&plan);
    report.dst_digest = dst_stored.as_ref().map(|s| s.manifest.digest.clone());
    report.shards_total = plan.items.iter().filter(|i| i.src.is_some()).count() as u64;
    report.bytes_total = plan
        .items
        .iter()
        .filter_map(|i| i.src.as_ref())
        .map(|s| s.stat.size)
        .sum();

    if opts.delete {
        let extras = plan.in_state(State::Extra).count();
        let total = plan.items.iter().filter(|i| i.dst.is_some()).count();
        let limit = opts.max_delete.unwrap_or(DeleteLimit::DEFAULT);
        check_deletions(dst, extras, total, limit)?;
    }

    let copy_idx: Vec<usize> = plan
        .items
        .iter()
        .enumerate()
        // Unproven items left by the plan are the stale source objects the copy settles.
        .filter(|(_, i)| {
            i.state.needs_copy() || i.state == State::Unproven || (opts.full && i.state == State::Same)
        })
        .map(|(n, _)| n)
        .collect();

    if opts.dry_run {
        for item in &plan.items {
            report.findings.extend(finding_for(item));
        }
        report.consistent = plan.is_clean();
        report.inconsistency = before;
        report.shards_skipped = report.shards_total - copy_idx.len() as u64;
        report.finish();
        return Ok(SyncOutcome {
            report,
            plan,
            committed: None,
        });
    }

    if opts.cancel.is_cancelled() {
        return Err(Error::Interrupted); // nothing written yet
    }
    // Interim commit: stop claiming entries we are about to overwrite or that no longer hold.
    let mut expected: Expected = dst_stored.as_ref().map(|s| s.version.clone());
    if let Some(stored) = &dst_stored {
        let overwriting: HashSet<&str> = copy_idx
            .iter()
            .map(|&n| &plan.items[n])
            .filter(|i| i.state != State::Same)
            .map(|i| i.path.as_str())
            .collect();
        let keep: Vec<ShardEntry> = stored
            .manifest
            .shards
            .iter()
            .filter(|e| !overwriting.contains(e.path.as_str()))
            .filter(|e| {
                plan.items
                    .binary_search_by(|x| x.path.as_str().cmp(&e.path))
                    .ok()
                    .and_then(|n| plan.items[n].dst_entry.as_ref())
                    .is_some_and(|d| d.same_content(e))
            })
            .cloned()
            .collect();
        if keep.len() != stored.manifest.shards.len() {
            ensure_lease(dst, lease, &expected).await?;
            probe_once(dst, &mut report).await?;
            let interim = Manifest::new(dst.url.clone(), keep)?;
            expected = Some(commit::commit(dst, &interim, &expected).await?);
        }
    }

    // Copy.
    if !copy_idx.is_empty() {
        ensure_lease(dst, lease, &expected).await?;
    }
    let mut copy_opts = copy_proof_options(dst, &copy_idx, opts, &mut report).await?;
    copy_opts.transfer.cancel = opts.cancel.clone();
    let opts = &copy_opts;
    let copy_bytes: u64 = copy_idx
        .iter()
        .map(|&n| plan.items[n].src.as_ref().map_or(0, |s| s.stat.size))
        .sum();
    opts.progress.start("copying", copy_idx.len() as u64, copy_bytes);
    // Collected, not a lazy `map`: a closure over `&usize` held across the awaits below makes
    // the future not provably `Send`, and then `tokio::spawn(sync(..))` does not compile.
    let jobs: Vec<(usize, CopyJob)> = copy_idx
        .iter()
        .map(|&n| {
            let item = &plan.items[n];
            let s = item.src.as_ref().expect("copied items have a source");
            let job = CopyJob {
                path: item.path.clone(),
                size: s.stat.size,
                expected_sha256: s.entry.as_ref().map(|e| e.sha256.clone()),
                src_etag: s.stat.etag.clone(),
                // Full mode rewrites every shard, held already or not.
                unless_sha256: (item.state == State::Unproven && !opts.full)
                    .then(|| item.dst_entry.as_ref().map(|d| d.sha256.clone()))
                    .flatten(),
            };
            (n, job)
        })
        .collect();
    let mut results: Vec<(usize, Option<CopyResult>)> = futures::stream::iter(jobs)
        .map(|(n, job)| {
            let item_entry = plan.items[n].src.as_ref().and_then(|s| s.entry.clone());
            let src_stat = plan.items[n].src.as_ref().map(|s| s.stat.clone());
            async move {
                if opts.cancel.is_cancelled() {
                    return (n, None);
                }
                let r = copy_and_verify(src, dst, &job, item_entry, src_stat, opts).await;
                opts.progress.object_done(&job.path);
                (n, Some(r))
            }
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    opts.progress.finish();
    let mut relisted = None;
    if results
        .iter()
        .any(|(_, r)| matches!(r, Some(Ok(Landed::Written { .. }))))
    {
        relisted = Some(confirm_in_listing(dst, &mut results, opts).await?);
    }

    // Final manifest: every source entry proven present on the destination.
    let mut copied_entries: Vec<Option<ShardEntry>> = vec![None; plan.items.len()];
    let mut failures: Vec<(String, String)> = Vec::new();
    let mut not_started = 0usize;
    for (n, r) in results {
        match r {
            None | Some(Err(Error::Interrupted)) => not_started += 1,
            Some(Ok(Landed::AlreadyThere)) => {
                // Same bytes on both sides after all: the destination's proven entry stands.
                let item = &mut plan.items[n];
                item.state = State::Same;
                copied_entries[n] = item.dst_entry.clone();
            }
            Some(Ok(Landed::Written { entry, proof })) => {
                report.shards_copied += 1;
                report.bytes_copied += entry.size;
                match proof.expect("every copy is proven by confirm_in_listing") {
                    Proof::SizeAndEtag => report.proofs.size_and_etag += 1,
                    Proof::SizeAndMetadata => report.proofs.size_and_metadata += 1,
                    Proof::Size => report.proofs.size += 1,
                    Proof::Rehash => report.proofs.rehash += 1,
                }
                copied_entries[n] = Some(entry);
            }
            Some(Err(e)) => {
                let kind = match &e {
                    Error::HashMismatch { .. } => FindingKind::Corrupt,
                    Error::InvalidParquet { .. } => FindingKind::InvalidParquet,
                    Error::SizeMismatch { .. } => FindingKind::SizeMismatch,
                    _ => FindingKind::Error,
                };
                report.findings.push(Finding {
                    path: plan.items[n].path.clone(),
                    kind,
                    detail: e.to_string(),
                });
                failures.push((plan.items[n].path.clone(), e.to_string()));
            }
        }
    }
    if opts.strict_parquet {
        strict_parquet_same(&plan, &mut report, &mut failures);
    }
    report.shards_failed = failures.len() as u64;
    report.shards_not_started = not_started as u64;
    if not_started > 0 {
        report.interrupted = true;
        report.warnings.push(format!(
            "interrupted: {not_started} shard(s) not copied; the next sync copies them"
        ));
    }

    let mut dst_entries = Vec::new();
    let mut src_entries = Vec::new();
    let mut src_complete = true;
    for (n, item) in plan.items.iter().enumerate() {
        let Some(s) = &item.src else { continue };
        if let Some(e) = &copied_entries[n] {
            dst_entries.push(e.clone());
            let mut se = e.clone();
            se.mtime = Some(s.stat.mtime);
            se.etag = s.stat.etag.clone();
            src_entries.push(se);
        } else {
            // Not copied this run. A same shard is still claimed, unless full mode tried to
            // copy it (every same shard is in the copy set then) and failed, touching it.
            if item.state == State::Same && !opts.full {
                if let Some(d) = &item.dst_entry {
                    dst_entries.push(d.clone());
                }
            }
            match &s.entry {
                Some(e) => src_entries.push(e.clone()),
                None => src_complete = false,
            }
        }
    }
    report.shards_skipped =
        report.shards_total - report.shards_copied - failures.len() as u64 - not_started as u64;
    report.bytes_skipped = report.bytes_total.saturating_sub(report.bytes_copied);

    let final_manifest = Manifest::new(dst.url.clone(), dst_entries)?;
    let unchanged = dst_stored
        .as_ref()
        .is_some_and(|s| s.manifest.shards == final_manifest.shards && expected.as_ref() == Some(&s.version));
    let committed = if unchanged {
        None
    } else {
        ensure_lease(dst, lease, &expected).await?;
        probe_once(dst, &mut report).await?;
        let listing = match relisted {
            Some(l) => l,
            None => list_dataset(dst).await?.objects,
        };
        reprove_before_commit(dst, &final_manifest, &listing)?;
        let version = commit::commit(dst, &final_manifest, &expected).await?;
        report.committed = true;
        let protection = report.commit_protection.unwrap_or(CommitProtection::Enforced);
        commit::confirm_commit(dst, &final_manifest, &version, protection).await?;
        Some(final_manifest.clone())
    };
    report.dst_digest = Some(final_manifest.digest.clone());
    if !opts.strict_parquet {
        report
            .findings
            .extend(footer_findings(&final_manifest.shards, false));
    }

    // Source manifest write-back, when it was missing or refreshed and every entry is known.
    if src_complete {
        let src_manifest = Manifest::new(src.url.clone(), src_entries)?;
        report.src_digest = Some(src_manifest.digest.clone());
        let stale = src_previous
            .as_ref()
            .is_none_or(|p| p.shards != src_manifest.shards);
        // Never create `_shardsync/` under a source that held nothing (an allowed empty source).
        if stale && opts.write_source_manifest && !src_manifest.shards.is_empty() {
            if let Err(e) = manifest::save(src, &src_manifest).await {
                let w = format!("could not write the refreshed source manifest (read-only source?): {e}");
                tracing::warn!("{w}");
                report.warnings.push(w);
            }
        }
    }

    // --delete: extras go only after the commit, so the manifest never names a deleted object.
    if opts.delete && failures.is_empty() && not_started == 0 {
        let extras: Vec<String> = plan.in_state(State::Extra).map(|i| i.path.clone()).collect();
        if !extras.is_empty() {
            ensure_lease(dst, lease, &expected).await?;
        }
        let deleted: Vec<Result<()>> = futures::stream::iter(extras)
            .map(|p| async move {
                dst.store
                    .delete(&dst.key(&p))
                    .await
                    .map_err(|e| Error::store(p.clone(), "delete", e))
            })
            .buffer_unordered(opts.concurrency.get())
            .collect()
            .await;
        for d in deleted {
            match d {
                Ok(()) => report.shards_deleted += 1,
                Err(e) => report.warnings.push(e.to_string()),
            }
        }
        for item in plan.items.iter_mut().filter(|i| i.state == State::Extra) {
            item.state = State::Same; // gone now; counts as consistent below
        }
    }

    let consistent = failures.is_empty()
        && not_started == 0
        && plan
            .items
            .iter()
            .all(|i| i.src.is_some() || i.state == State::Same)
        && report.src_digest.is_some()
        && report.src_digest == report.dst_digest;
    report.consistent = consistent;
    let remaining = plan
        .items
        .iter()
        .enumerate()
        .filter(|(n, i)| {
            copied_entries[*n].is_none()
                && i.state != State::Same
                && !(i.state == State::Extra && opts.delete)
        })
        .count();
    report.inconsistency = if plan.items.is_empty() {
        0.0
    } else {
        remaining as f64 / plan.items.len() as f64
    };
    for item in plan.items.iter().filter(|i| i.state == State::Extra) {
        report.findings.extend(finding_for(item));
    }
    report.finish();
    Ok(SyncOutcome {
        report,
        plan,
        committed,
    })
}

/// The options the copies run under: as given, except that on a server that accepts a wrong
/// request checksum, size verification cannot rest on the PUT's ETag, so copies are read back.
async fn copy_proof_options(
    dst: &Dataset,
    copy_idx: &[usize],
    opts: &SyncOptions,
    report: &mut Report,
) -> Result<SyncOptions> {
    let mut copy_opts = opts.clone();
    if copy_idx.is_empty() || opts.verify != VerifyMode::Size {
        return Ok(copy_opts);
    }
    if !crate::verify::validates_request_checksums(dst).await? {
        let w = format!(
            "{} accepted a PUT whose SHA-256 request checksum did not match its bytes: \
             each copy is proven by reading it back instead",
            dst.url
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
        copy_opts.verify = VerifyMode::Deep;
    }
    Ok(copy_opts)
}

/// `--strict-parquet`: shards the destination already holds (not copied this run) whose footer
/// does not decode fail the run too, so every such shard is listed.
fn strict_parquet_same(plan: &Plan, report: &mut Report, failures: &mut Vec<(String, String)>) {
    let failed: HashSet<String> = failures.iter().map(|(p, _)| p.clone()).collect();
    let held = plan
        .items
        .iter()
        .filter(|i| i.state == State::Same && !failed.contains(&i.path))
        .filter_map(|i| i.dst_entry.as_ref());
    for f in footer_findings(held, true) {
        failures.push((f.path.clone(), f.detail.clone()));
        report.findings.push(f);
    }
}

/// Re-list the destination once after the copies. A copy whose PUT's ETag and size the listing
/// shows is proven by it; the others (listings without ETags, as s3s-fs gives; or an object
/// replaced since) get a HEAD. Then every copied entry's cache key becomes the object's stat as
/// the destination lists it: the next sync compares entries with a listing, and a HEAD's stat
/// can differ from it (s3s-fs lists millisecond mtimes and no ETag; HEAD answers whole seconds).
async fn confirm_in_listing(
    dst: &Dataset,
    results: &mut [(usize, Option<CopyResult>)],
    opts: &SyncOptions,
) -> Result<Vec<ObjectStat>> {
    let relisted = list_dataset(dst).await?.objects;
    let listed = |path: &str| -> Option<&ObjectStat> {
        let i = relisted.binary_search_by(|s| s.path.as_str().cmp(path)).ok()?;
        Some(&relisted[i])
    };
    let mut unconfirmed = Vec::new();
    for (k, (_, r)) in results.iter_mut().enumerate() {
        let Some(Ok(Landed::Written { entry, proof })) = r else {
            continue;
        };
        if proof.is_none() {
            match listed(&entry.path).filter(|l| lists_verified_object(l, entry)) {
                Some(_) => *proof = Some(Proof::SizeAndEtag),
                None => unconfirmed.push(k),
            }
        }
    }
    let checked: Vec<(usize, CopyResult)> = futures::stream::iter(unconfirmed)
        .map(|k| {
            let mut entry = match &results[k].1 {
                Some(Ok(Landed::Written { entry, .. })) => entry.clone(),
                _ => unreachable!("only written copies are unconfirmed"),
            };
            async move {
                let put_etag = entry.etag.clone(); // still the PUT's answer: see copy_and_verify
                let proof = verify_or_remove(dst, &mut entry, opts.verify, put_etag.as_deref()).await;
                let landed = proof.map(|p| Landed::Written {
                    entry,
                    proof: Some(p),
                });
                (k, landed)
            }
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    for (k, checked) in checked {
        results[k].1 = Some(checked);
    }
    for (_, r) in results.iter_mut() {
        let Some(Ok(Landed::Written { entry, .. })) = r else {
            continue;
        };
        // Only if it is still the object we verified: another writer may have replaced it
        // since, and its stat must then not become the cache key for our hash.
        if let Some(l) = listed(&entry.path).filter(|l| lists_verified_object(l, entry)) {
            entry.mtime = Some(l.mtime);
            entry.etag = l.etag.clone();
        }
    }
    Ok(relisted)
}

/// The last look before the commit: every entry the final manifest names must be, in a listing
/// taken after the copies, the very object that was proven — a copy's own PUT, or the object
/// planned as the same — by size and cache key (ETag, mtime). Another writer that replaced one
/// meanwhile (possible where the lease is not enforced) stops the commit.
fn reprove_before_commit(dst: &Dataset, manifest: &Manifest, listing: &[ObjectStat]) -> Result<()> {
    let changed = commit::entries_not_in_listing(manifest, listing);
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::ChangedUnderCommit {
        location: dst.url.clone(),
        detail: commit::describe_changed(
            &changed,
            "changed after this sync verified them; nothing was committed",
        ),
    })
}

/// Whether a listed stat is the object whose stat (from the HEAD or read that verified it) is
/// recorded in `verified`: same size, and the same ETag when both carry one; otherwise mtimes
/// less than a second apart (HEAD's Last-Modified has whole seconds, listings are finer).
fn lists_verified_object(listed: &ObjectStat, verified: &ShardEntry) -> bool {
    if listed.size != verified.size {
        return false;
    }
    match (&listed.etag, &verified.etag) {
        (Some(a), Some(b)) => a == b,
        _ => verified
            .mtime
            .is_some_and(|m| (listed.mtime - m).abs() < chrono::TimeDelta::seconds(1)),
    }
}

/// Probe the destination's commit protection before its first commit (a no-op sync writes
/// nothing and so pays nothing), and warn when conditions are not enforced.
async fn probe_once(dst: &Dataset, report: &mut Report) -> Result<()> {
    if report.commit_protection.is_some() {
        return Ok(());
    }
    let protection = commit::probe_protection(dst).await?;
    report.commit_protection = Some(protection);
    if protection == CommitProtection::NotEnforced {
        let w = format!(
            "{} accepts conditional writes but does not enforce them: two syncs into it at once can \
             interleave; this sync re-checked every entry against the store after its commit, which \
             detects such interference (and fails) but cannot prevent it",
            dst.url
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
    Ok(())
}

/// Copy one shard, verify it on the destination, and return its destination entry and proof.
/// In size mode, when the PUT returned an ETag, the proof is left to the listing that follows
/// the copies (`None`): one LIST per 1000 objects instead of a HEAD per object.
async fn copy_and_verify(
    src: &Dataset,
    dst: &Dataset,
    job: &CopyJob,
    planned: Option<ShardEntry>,
    src_stat: Option<ObjectStat>,
    opts: &SyncOptions,
) -> CopyResult {
    if let Some(reason) = planned
        .as_ref()
        .and_then(|e| e.parquet_error.clone())
        .filter(|_| opts.strict_parquet)
    {
        return Err(Error::InvalidParquet {
            path: job.path.clone(),
            reason,
        });
    }
    let copied = copy_object(src, dst, job, &opts.transfer, &opts.progress).await?;
    if !copied.written {
        return Ok(Landed::AlreadyThere);
    }
    let hashed = &copied.hashed;
    let mut entry = match planned {
        Some(e) => e,
        None => {
            let stat = src_stat.expect("source stat");
            let mut e = ShardEntry {
                path: job.path.clone(),
                size: hashed.size,
                sha256: hashed.sha256.clone(),
                mtime: Some(stat.mtime),
                etag: stat.etag,
                rows: None,
                row_groups: None,
                schema: None,
                parquet_error: None,
            };
            if is_parquet_path(&job.path) {
                let facts = parquet_facts(src, &job.path, hashed).await;
                if let Err(err) = record_footer(&mut e, facts, opts.strict_parquet) {
                    // Landed bytes are the source's, but not a shard this run accepts.
                    let _ = dst.store.delete(&dst.key(&job.path)).await;
                    return Err(err);
                }
            }
            e
        }
    };
    if opts.verify == VerifyMode::Size && copied.e_tag.is_some() {
        // Proven once the listing after the copies shows this ETag and size.
        entry.mtime = None;
        entry.etag = copied.e_tag;
        return Ok(Landed::Written { entry, proof: None });
    }
    let proof = verify_or_remove(dst, &mut entry, opts.verify, copied.e_tag.as_deref()).await?;
    Ok(Landed::Written {
        entry,
        proof: Some(proof),
    })
}

/// Verify a landed object; on success its stat becomes the entry's cache key. An object that
/// is not what was sent is deleted, so it does not stay under the final key. With `put_etag`
/// (the ETag our PUT was answered with), an object with another ETag is another writer's:
/// not claimed, and not deleted either.
async fn verify_or_remove(
    dst: &Dataset,
    entry: &mut ShardEntry,
    mode: VerifyMode,
    put_etag: Option<&str>,
) -> Result<Proof> {
    // An object whose ETag is not our PUT's is another writer's: not claimed, not deleted.
    let replaced = |etag: Option<&str>| put_etag.is_some_and(|p| etag.is_some_and(|e| e != p));
    let replaced_error = || Error::DestinationReplaced {
        path: entry.path.clone(),
    };
    match verify_landed(dst, &entry.path, entry.size, &entry.sha256, mode).await {
        Ok((stat, _)) if replaced(stat.etag.as_deref()) => Err(replaced_error()),
        Ok((stat, proof)) => {
            entry.mtime = Some(stat.mtime);
            entry.etag = stat.etag;
            Ok(proof)
        }
        Err(e @ (Error::HashMismatch { .. } | Error::SizeMismatch { .. })) => {
            if put_etag.is_some() {
                if let Ok(Some((stat, _))) = head_with_sha(dst, &entry.path).await {
                    if replaced(stat.etag.as_deref()) {
                        return Err(replaced_error());
                    }
                }
            }
            // Ours, and not what was sent: it must not stay under the final key.
            let _ = dst.store.delete(&dst.key(&entry.path)).await;
            Err(e)
        }
        Err(e) => Err(e),
    }
}
