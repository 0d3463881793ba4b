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
    /// The destination-wide failure that stopped new copies, if one did.
    pub(super) stopped_by: Option<String>,
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
    // Collected, not a lazy `map`: a closure over `&usize` held across the awaits below makes
    // the future not provably `Send`, and then `tokio::spawn(sync(..))` does not compile.
    let jobs: Vec<(usize, CopyJob, Option<ShardEntry>, Option<ObjectStat>)> = copy_set
        .iter()
        .filter_map(|&n| job_for(plan, n, opts.full))
        .collect();
    let attempts = futures::stream::iter(jobs)
        .map(|(n, job, planned, src_stat)| {
            let (stop, stopped_by) = (&stop, &stopped_by);
            async move {
                if stop.is_cancelled() {
                    return (n, Attempt::NotStarted);
                }
                let started = std::time::Instant::now();
                let r = copy_and_verify(src, dst, &job, planned, src_stat, opts).await;
                let path = crate::display::escape_controls(&job.path);
                match &r {
                    Ok(_) => tracing::debug!(
                        "{path}: copied and hashed in {:.3} s",
                        started.elapsed().as_secs_f64()
                    ),
                    Err(e) => {
                        tracing::debug!("{path}: copy failed: {e}");
                        opts.events.object_failed(&job.path);
                    }
                }
                opts.events.object_done(&job.path);
                (n, attempt_of(r, stop, stopped_by))
            }
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    opts.events.finish();
    Copies {
        attempts,
        stopped_by: stopped_by.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

/// Sort one copy's result; the first destination-wide failure stops new copies.
fn attempt_of(
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

/// The copy job for plan item `n`, with its planned entry and source stat.
fn job_for(
    plan: &Plan,
    n: usize,
    full: bool,
) -> Option<(usize, CopyJob, Option<ShardEntry>, Option<ObjectStat>)> {
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
    Some((n, job, s.entry.clone(), Some(s.stat.clone())))
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
async fn copy_and_verify(
    src: &Dataset,
    dst: &Dataset,
    job: &CopyJob,
    planned: Option<ShardEntry>,
    src_stat: Option<ObjectStat>,
    opts: &SyncOptions,
) -> Result<Landed> {
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
    let copied = copy_object(src, dst, job, &opts.transfer, &opts.events).await?;
    if !copied.written {
        return Ok(Landed::AlreadyThere);
    }
    let mut entry = match planned {
        Some(e) => e,
        None => entry_for_copied(src, dst, job, src_stat, &copied.hashed, opts).await?,
    };
    if opts.verify == VerifyMode::Size && copied.e_tag.is_some() {
        entry.mtime = None;
        entry.etag = copied.e_tag;
        return Ok(Landed::Unproven(UnprovenCopy { entry }));
    }
    let proof = verify_or_remove(dst, &mut entry, opts.verify, copied.e_tag.as_deref()).await?;
    Ok(Landed::Proven(ProvenCopy { entry, proof }))
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
