//! Stage 2 of a fan-out sync: the copies of several destinations, each source shard read once.
//!
//! Each destination keeps its own plan, copy set, options and verdict; this stage only joins
//! their copies by path. A shard some destinations need is read once and written to each of
//! them ([`crate::tee`]); a destination that can make it from bytes it already holds (a rename)
//! does so first; a destination that fails a shard, or fails as a whole, fails alone: its
//! shard is copied again on its own with the single-destination engine's retries, or its
//! further copies are not started, while the others go on.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::diff::Plan;
use crate::error::{Error, Result};
use crate::events::Stage;
use crate::store::Dataset;
use crate::tee::{copy_to_many, Target};

use super::copy::{
    attempt_of, copy_and_verify, copy_in_place, job_for, land, log_outcome, refuse_strict_parquet, Attempt,
    Copies, Landed, PlannedCopy, Stopped, TransferBudget, Written,
};
use super::SyncOptions;

/// One destination's part in the copies.
pub(super) struct Destination<'a> {
    pub(super) dst: &'a Dataset,
    pub(super) plan: &'a Plan,
    pub(super) copy_set: &'a [usize],
    pub(super) opts: &'a SyncOptions,
}

/// A destination while the copies run: its options under its own stop token (cancelled by the
/// caller, or by its first destination-wide failure), and what stopped it.
struct Running<'a> {
    dst: &'a Dataset,
    opts: SyncOptions,
    stop: CancellationToken,
    stopped_by: Mutex<Option<String>>,
    budget: TransferBudget,
}

/// Per destination (in order): one attempt per plan item of its copy set.
type Attempts = Vec<Vec<(usize, Attempt<Landed>)>>;

/// Run every destination's copies, reading each source shard once.
pub(super) async fn run_many(src: &Dataset, dests: &[Destination<'_>], opts: &SyncOptions) -> Vec<Copies> {
    let running: Vec<Running> = dests
        .iter()
        .map(|d| {
            let stop = opts.cancel.child_token();
            let mut o = d.opts.clone();
            o.transfer.cancel = stop.clone();
            Running {
                dst: d.dst,
                budget: TransferBudget::new(o.max_transfer),
                opts: o,
                stop,
                stopped_by: Mutex::new(None),
            }
        })
        .collect();
    let groups = by_path(dests);
    let bytes: u64 = groups.values().map(|g| g[0].1.job.size).sum();
    opts.events.start(Stage::Copying, groups.len() as u64, bytes);
    let running = &running;
    let done: Vec<Vec<(usize, usize, Attempt<Landed>)>> = futures::stream::iter(groups.into_values())
        .map(|group| copy_group(src, running, group, opts))
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    opts.events.finish();
    let mut attempts: Attempts = dests.iter().map(|_| Vec::new()).collect();
    for (k, n, a) in done.into_iter().flatten() {
        attempts[k].push((n, a));
    }
    attempts
        .into_iter()
        .zip(running)
        .map(|(attempts, r)| Copies {
            attempts,
            stopped: Stopped {
                by_destination: r.stopped_by.lock().unwrap_or_else(|p| p.into_inner()).take(),
                max_transfer: r.budget.reached.load(Ordering::Relaxed),
            },
        })
        .collect()
}

/// Every destination's planned copies, joined by path: (destination, copy) per path.
fn by_path(dests: &[Destination<'_>]) -> BTreeMap<String, Vec<(usize, PlannedCopy)>> {
    let mut groups: BTreeMap<String, Vec<(usize, PlannedCopy)>> = BTreeMap::new();
    for (k, d) in dests.iter().enumerate() {
        for p in d.copy_set.iter().filter_map(|&n| job_for(d.plan, n, d.opts.full)) {
            groups.entry(p.job.path.clone()).or_default().push((k, p));
        }
    }
    groups
}

/// One path for every destination that needs it: renames in place first, then one read of the
/// source for the rest. Returns (destination, plan item, attempt).
async fn copy_group(
    src: &Dataset,
    running: &[Running<'_>],
    group: Vec<(usize, PlannedCopy)>,
    opts: &SyncOptions,
) -> Vec<(usize, usize, Attempt<Landed>)> {
    let path = group[0].1.job.path.clone();
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for (k, mut p) in group {
        let r = &running[k];
        if r.stop.is_cancelled() || !r.budget.start(p.job.size) {
            out.push((k, p.n, Attempt::NotStarted));
            continue;
        }
        if let Err(e) = refuse_strict_parquet(&p, &r.opts) {
            out.push((k, p.n, Attempt::Failed(e)));
            continue;
        }
        if let Some((origin, entry)) = p.origin.take().zip(p.entry.clone()) {
            if let Some(landed) = copy_in_place(r.dst, &origin, entry, &r.opts).await {
                out.push((k, p.n, Attempt::Done(landed)));
                continue;
            }
        }
        pending.push((k, p));
    }
    let started = std::time::Instant::now();
    let results = match pending.len() {
        0 => Vec::new(),
        1 => {
            let (k, p) = pending.pop().expect("one");
            let n = p.n;
            vec![(
                k,
                n,
                copy_and_verify(src, running[k].dst, p, &running[k].opts).await,
            )]
        }
        _ => tee(src, running, pending, opts).await,
    };
    for (k, n, r) in results {
        let run = &running[k];
        log_outcome(&path, started, &r, &run.opts);
        out.push((k, n, attempt_of(r, &run.stop, &run.stopped_by)));
    }
    opts.events.object_done(&path);
    out
}

/// One read of the source for several destinations; a destination whose write failed (or every
/// one, when the read failed) copies the shard again on its own.
async fn tee(
    src: &Dataset,
    running: &[Running<'_>],
    pending: Vec<(usize, PlannedCopy)>,
    opts: &SyncOptions,
) -> Vec<(usize, usize, Result<Landed>)> {
    let mut job = pending[0].1.job.clone();
    job.unless_sha256 = None;
    job.expected_sha256 = pending.iter().find_map(|(_, p)| p.job.expected_sha256.clone());
    let targets: Vec<Target> = pending
        .iter()
        .map(|(k, p)| Target {
            dst: running[*k].dst,
            unless_sha256: p.job.unless_sha256.clone(),
        })
        .collect();
    let mut transfer = opts.transfer.clone();
    transfer.cancel = opts.cancel.clone();
    let landings = match copy_to_many(src, &targets, &job, &transfer, &opts.events).await {
        Ok((hashed, landings)) => Some((hashed, landings)),
        Err(Error::Interrupted) => {
            return pending
                .into_iter()
                .map(|(k, p)| (k, p.n, Err(Error::Interrupted)))
                .collect();
        }
        Err(e) => {
            tracing::info!(
                "{}: the shared read failed ({e}); copying it for each destination on its own",
                job.path
            );
            None
        }
    };
    let mut out = Vec::new();
    for (i, (k, p)) in pending.into_iter().enumerate() {
        let (dst, o, n) = (running[k].dst, &running[k].opts, p.n);
        let r = match &landings {
            Some((hashed, landings)) => match &landings[i] {
                Ok(None) => Ok(Landed::AlreadyThere),
                Ok(Some(put)) => {
                    let written = Written {
                        job: &p.job,
                        hashed,
                        e_tag: put.e_tag.clone(),
                    };
                    land(src, dst, written, p.entry, p.src_stat, o).await
                }
                Err(Error::Interrupted) => Err(Error::Interrupted),
                Err(e) => {
                    tracing::info!("{}: {} failed ({e}); copying it on its own", p.job.path, dst.url);
                    copy_and_verify(src, dst, p, o).await
                }
            },
            None => copy_and_verify(src, dst, p, o).await,
        };
        out.push((k, n, r));
    }
    out
}
