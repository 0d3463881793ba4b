//! Stage 2, copy: stream each planned shard from source to destination, hashing it as it
//! passes, and verify what landed.
//!
//! Copies run `concurrency` at a time; one shard's failure does not stop the others, because
//! each failure is the shard's own (a corrupt source, a changed object). A failure that is the
//! destination's as a whole (disk full, quota, read-only) is different: every further copy
//! would fail the same way, so no new copy starts and the cause is said once.
//!
//! A copy leaves either a [`ProvenCopy`] (verified by a read-back or a HEAD) or an
//! [`UnprovenCopy`] (size mode: the PUT's ETag, to be seen in the listing the prove stage takes
//! after all copies). Only proven copies can be committed: see [`super::prove`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

use crate::diff::{Plan, State};
use crate::error::{Error, Result};
use crate::events::Stage;
use crate::listing::ObjectStat;
use crate::manifest::build::{parquet_facts, record_footer};
use crate::manifest::{is_parquet_path, ShardEntry};
use crate::report::Report;
use crate::store::Dataset;
use crate::transfer::{copy_object, CopyJob};
use crate::verify::{head_with_sha, verify_landed, Proof, VerifyMode};

use super::SyncOptions;

/// A shard written and verified on the destination.
#[derive(Debug)]
pub(super) struct ProvenCopy {
    /// Its destination entry; its stat is the verified object's.
    pub(super) entry: ShardEntry,
    pub(super) proof: Proof,
    /// Made by a copy inside the destination (no byte crossed between the stores).
    pub(super) in_place: bool,
}

/// A shard written whose PUT answered with an ETag: proven once a listing shows that ETag and
/// the size. Its entry's `etag` is the PUT's answer until then.
#[derive(Debug)]
pub(super) struct UnprovenCopy {
    pub(super) entry: ShardEntry,
}

/// What a copy left on the destination.
#[derive(Debug)]
pub(super) enum Landed {
    Proven(ProvenCopy),
    Unproven(UnprovenCopy),
    /// The bytes hash to the destination's proven entry: nothing was written.
    AlreadyThere,
}

/// How one planned copy ended.
#[derive(Debug)]
pub(super) enum Attempt<T> {
    Done(T),
    Failed(Error),
    /// Not started, or stopped before it landed: interrupted, or the destination refused writes.
    NotStarted,
}

/// What the copy stage did, per plan item index.
#[derive(Debug)]
pub(super) struct Copies {
    pub(super) attempts: Vec<(usize, Attempt<Landed>)>,
    /// What stopped new copies, if anything did.
    pub(super) stopped: Stopped,
}

/// Why copies stopped starting before the copy set was done (besides a cancel).
#[derive(Debug, Clone, Default)]
pub(super) struct Stopped {
    /// The destination-wide failure that stopped new copies, if one did.
    pub(super) by_destination: Option<String>,
    /// `max_transfer` stopped new copies.
    pub(super) max_transfer: bool,
}

/// Run every planned copy. `copy_set` indexes `plan.items`.
pub(super) async fn run(
    src: &Dataset,
    dst: &Dataset,
    plan: &Plan,
    copy_set: &[usize],
    opts: &SyncOptions,
) -> Copies {
    // Cancelled by the caller (Ctrl-C) or by the first destination-wide failure.
    let stop = opts.cancel.child_token();
    let mut opts = opts.clone();
    opts.transfer.cancel = stop.clone();
    let opts = &opts;
    let copy_bytes: u64 = copy_set
        .iter()
        .map(|&n| plan.items[n].src.as_ref().map_or(0, |s| s.stat.size))
        .sum();
    opts.events
        .start(Stage::Copying, copy_set.len() as u64, copy_bytes);
    let stopped_by = std::sync::Mutex::new(None::<String>);
    let budget = TransferBudget::new(opts.max_transfer);
    // Collected, not a lazy `map`: a closure over `&usize` held across the awaits below makes
    // the future not provably `Send`, and then `tokio::spawn(sync(..))` does not compile.
    let jobs: Vec<PlannedCopy> = copy_set
        .iter()
        .filter_map(|&n| job_for(plan, n, opts.full))
        .collect();
    let attempts = futures::stream::iter(jobs)
        .map(|planned| {
            let (stop, stopped_by, budget) = (&stop, &stopped_by, &budget);
            async move {
                let (n, path) = (planned.n, planned.job.path.clone());
                if stop.is_cancelled() || !budget.start(planned.job.size) {
                    return (n, Attempt::NotStarted);
                }
                let started = std::time::Instant::now();
                let r = copy_and_verify(src, dst, planned, opts).await;
                log_outcome(&path, started, &r, opts);
                opts.events.object_done(&path);
                (n, attempt_of(r, stop, stopped_by))
            }
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    opts.events.finish();
    Copies {
        attempts,
        stopped: Stopped {
            by_destination: stopped_by.into_inner().unwrap_or_else(|p| p.into_inner()),
            max_transfer: budget.reached.load(Ordering::Relaxed),
        },
    }
}

/// `--max-transfer`: copies start, in plan order, until those started hold the limit; the
/// last one started may take the total past it by at most its own size (rclone's soft cutoff).
pub(super) struct TransferBudget {
    limit: Option<u64>,
    started: AtomicU64,
    pub(super) reached: AtomicBool,
}

impl TransferBudget {
    pub(super) fn new(limit: Option<u64>) -> TransferBudget {
        TransferBudget {
            limit,
            started: AtomicU64::new(0),
            reached: AtomicBool::new(false),
        }
    }

    /// Whether a copy of `size` bytes may start; counts it when it may.
    pub(super) fn start(&self, size: u64) -> bool {
        let Some(limit) = self.limit else { return true };
        if self.started.fetch_add(size, Ordering::Relaxed) < limit {
            return true;
        }
        self.reached.store(true, Ordering::Relaxed);
        false
    }
}

/// `-vv` says how each copy went; a failure also goes to the progress events.
pub(super) fn log_outcome(path: &str, started: std::time::Instant, r: &Result<Landed>, opts: &SyncOptions) {
    let shown = crate::display::escape_controls(path);
    match r {
        Ok(_) => tracing::debug!(
            "{shown}: copied and hashed in {:.3} s",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            tracing::debug!("{shown}: copy failed: {e}");
            opts.events.object_failed(path);
        }
    }
}

/// Sort one copy's result; the first destination-wide failure stops new copies.
pub(super) fn attempt_of(
    r: Result<Landed>,
    stop: &CancellationToken,
    stopped_by: &std::sync::Mutex<Option<String>>,
) -> Attempt<Landed> {
    match r {
        Ok(landed) => Attempt::Done(landed),
        Err(Error::Interrupted) => Attempt::NotStarted,
        Err(e) => {
            if let Some(cause) = e.destination_wide_cause().filter(|_| !stop.is_cancelled()) {
                stop.cancel();
                let mut first = stopped_by.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(cause);
            }
            Attempt::Failed(e)
        }
    }
}

/// One copy to make: plan item `n`, its job, and what the plan knows of it.
pub(super) struct PlannedCopy {
    pub(super) n: usize,
    pub(super) job: CopyJob,
    /// The source manifest's entry, when its hash is known.
    pub(super) entry: Option<ShardEntry>,
    pub(super) src_stat: Option<ObjectStat>,
    /// A destination path holding the same bytes: the copy is made inside the destination.
    pub(super) origin: Option<String>,
}

/// The copy job for plan item `n`, with its planned entry and source stat.
pub(super) fn job_for(plan: &Plan, n: usize, full: bool) -> Option<PlannedCopy> {
    let item = &plan.items[n];
    let s = item.src.as_ref()?;
    let job = CopyJob {
        path: item.path.clone(),
        size: s.stat.size,
        expected_sha256: s.entry.as_ref().map(|e| e.sha256.clone()),
        src_etag: s.stat.etag.clone(),
        // Full mode rewrites every shard, held already or not.
        unless_sha256: (item.state == State::Unproven && !full)
            .then(|| item.dst_entry.as_ref().map(|d| d.sha256.clone()))
            .flatten(),
    };
    Some(PlannedCopy {
        n,
        job,
        entry: s.entry.clone(),
        src_stat: Some(s.stat.clone()),
        origin: item.origin.as_ref().map(|o| o.path.clone()),
    })
}

/// The options the copies run under: as given, except that on a server that accepts a wrong
/// request checksum, size verification cannot rest on the PUT's ETag, so copies are read back.
pub(super) async fn proof_options(
    dst: &Dataset,
    plan: &Plan,
    copy_set: &[usize],
    opts: &SyncOptions,
    report: &mut Report,
) -> Result<SyncOptions> {
    let mut copy_opts = opts.clone();
    budget_note(plan, copy_set, opts, report);
    if copy_set.is_empty() {
        return Ok(copy_opts);
    }
    let (_, checked) = crate::verify::put_store(dst).await?;
    report.request_checksum = checked.map(str::to_string);
    if opts.verify != VerifyMode::Size {
        return Ok(copy_opts);
    }
    if checked.is_none() && dst.backend == crate::store::Backend::S3 {
        let w = format!(
            "{} accepted a PUT whose request checksum did not match its bytes: \
             each copy is proven by reading it back instead",
            dst.url
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
        copy_opts.verify = VerifyMode::Deep;
    }
    Ok(copy_opts)
}

/// Say so when the memory budget holds less than half the copies `-j` asks for (and the plan
/// has) at once: the concurrency a user chose must not shrink silently.
fn budget_note(plan: &Plan, copy_set: &[usize], opts: &SyncOptions, report: &mut Report) {
    let t = &opts.transfer;
    let Ok(fitted) = t.fitted() else { return };
    let mut sizes: Vec<u64> = copy_set
        .iter()
        .filter_map(|&n| Some(plan.items[n].src.as_ref()?.stat.size))
        .collect();
    sizes.sort_unstable();
    let Some(&median) = sizes.get(sizes.len() / 2) else {
        return;
    };
    let held = fitted.held_for(median).max(1);
    let fit = t.memory.bytes() / held;
    let wanted = opts.concurrency.get().min(copy_set.len());
    if fit * 2 < wanted {
        let h = |n: usize| crate::display::human_bytes(n as u64);
        let w = format!(
            "the memory budget of {} holds {fit} copies of shards like these ({} each) at once, \
             not the {wanted} asked for",
            h(t.memory.bytes()),
            h(held),
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
}

/// Copy one shard, verify it on the destination, and return its destination entry and proof.
/// In size mode, when the PUT returned an ETag, the proof is left to the listing that follows
/// the copies (one LIST instead of a HEAD per shard).
pub(super) async fn copy_and_verify(
    src: &Dataset,
    dst: &Dataset,
    planned: PlannedCopy,
    opts: &SyncOptions,
) -> Result<Landed> {
    refuse_strict_parquet(&planned, opts)?;
    let PlannedCopy {
        job,
        entry: planned,
        src_stat,
        origin,
        ..
    } = planned;
    if let Some((origin, entry)) = origin.zip(planned.clone()) {
        if let Some(landed) = copy_in_place(dst, &origin, entry, opts).await {
            return Ok(landed);
        }
    }
    let copied = copy_object(src, dst, &job, &opts.transfer, &opts.events).await?;
    if !copied.written {
        return Ok(Landed::AlreadyThere);
    }
    let written = Written {
        job: &job,
        hashed: &copied.hashed,
        e_tag: copied.e_tag,
    };
    land(src, dst, written, planned, src_stat, opts).await
}

/// `--strict-parquet`: a shard whose footer the source manifest could not decode is not copied.
pub(super) fn refuse_strict_parquet(planned: &PlannedCopy, opts: &SyncOptions) -> Result<()> {
    match planned.entry.as_ref().and_then(|e| e.parquet_error.clone()) {
        Some(reason) if opts.strict_parquet => Err(Error::InvalidParquet {
            path: planned.job.path.clone(),
            reason,
        }),
        _ => Ok(()),
    }
}

/// What one destination's PUT (or multipart completion) of a shard answered.
pub(super) struct Written<'a> {
    pub(super) job: &'a CopyJob,
    /// The bytes read from the source, hashed.
    pub(super) hashed: &'a crate::hash::Hashed,
    pub(super) e_tag: Option<String>,
}

/// The shard's destination entry once written, and its proof (or the listing's, later).
pub(super) async fn land(
    src: &Dataset,
    dst: &Dataset,
    written: Written<'_>,
    planned: Option<ShardEntry>,
    src_stat: Option<ObjectStat>,
    opts: &SyncOptions,
) -> Result<Landed> {
    let mut entry = match planned {
        Some(e) => e,
        None => entry_for_copied(src, dst, written.job, src_stat, written.hashed, opts).await?,
    };
    if opts.verify == VerifyMode::Size && written.e_tag.is_some() {
        entry.mtime = None;
        entry.etag = written.e_tag;
        return Ok(Landed::Unproven(UnprovenCopy { entry }));
    }
    let proof = verify_or_remove(dst, &mut entry, opts.verify, written.e_tag.as_deref()).await?;
    Ok(Landed::Proven(ProvenCopy {
        entry,
        proof,
        in_place: false,
    }))
}

/// Make a shard from bytes the destination already holds under `origin` (a server-side copy),
/// then prove it against the source's hash like any copy. `None` when that did not work (the
/// origin changed or vanished since the plan, the store has no copy, the proof failed): the
/// caller then copies from the source, so the shard is never lost to the shortcut.
pub(super) async fn copy_in_place(
    dst: &Dataset,
    origin: &str,
    mut entry: ShardEntry,
    opts: &SyncOptions,
) -> Option<Landed> {
    let to = dst.key(&entry.path);
    if let Err(e) = dst.store.copy(&dst.key(origin), &to).await {
        tracing::info!(
            "{}: copy inside the destination from {origin} failed ({e}); copying from the source",
            entry.path
        );
        return None;
    }
    match verify_or_remove(dst, &mut entry, opts.verify, None).await {
        Ok(proof) => {
            opts.events.add_bytes(entry.size);
            tracing::debug!("{}: copied inside the destination from {origin}", entry.path);
            Some(Landed::Proven(ProvenCopy {
                entry,
                proof,
                in_place: true,
            }))
        }
        Err(e) => {
            tracing::info!(
                "{}: copy inside the destination from {origin} not proven ({e}); copying from the source",
                entry.path
            );
            None
        }
    }
}

/// The entry of a shard the source manifest did not know: built from the hash taken in
/// flight and, for Parquet, the footer read from the source.
async fn entry_for_copied(
    src: &Dataset,
    dst: &Dataset,
    job: &CopyJob,
    src_stat: Option<ObjectStat>,
    hashed: &crate::hash::Hashed,
    opts: &SyncOptions,
) -> Result<ShardEntry> {
    let (mtime, etag) = src_stat.map_or((None, None), |s| (Some(s.mtime), s.etag));
    let mut e = ShardEntry {
        path: job.path.clone(),
        size: hashed.size,
        sha256: hashed.sha256.clone(),
        mtime,
        etag,
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
    Ok(e)
}

/// Verify a landed object; on success its stat becomes the entry's cache key. An object that
/// is not what was sent is deleted, so it does not stay under the final key. With `put_etag`
/// (the ETag our PUT was answered with), an object with another ETag is another writer's:
/// not claimed, and not deleted either.
pub(super) async fn verify_or_remove(
    dst: &Dataset,
    entry: &mut ShardEntry,
    mode: VerifyMode,
    put_etag: Option<&str>,
) -> Result<Proof> {
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
