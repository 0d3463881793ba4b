//! Fan-out: one source, several destinations, each source shard read once.
//!
//! Every destination runs its own pipeline — its own plan, interim commit, lease, proofs,
//! commit and deletions — except the copy stage, which they share ([`super::copy_many`]): a
//! shard two destinations need crosses from the source once. A destination that fails (its
//! plan, a shard, its commit) fails alone; the others still commit. The source manifest is
//! written back by the first destination's pipeline only, so the pipelines never race on it.

use crate::error::Result;
use crate::lock::SyncLock;
use crate::safety::check_overlap;
use crate::store::Dataset;

use super::copy_many::{run_many, Destination};
use super::{after_copies, before_copies, finish, Ahead, Ready, SyncOptions, SyncOutcome};

/// Sync `src` to every destination in `dsts`, reading each source shard once. The outer `Err`
/// is input no destination can use (options that do not fit the memory budget, destinations
/// that overlap the source or each other); otherwise one result per destination, in order, as
/// [`super::sync`] returns it.
pub async fn sync_to_many(
    src: &Dataset,
    dsts: &[Dataset],
    opts: &SyncOptions,
) -> Result<Vec<Result<SyncOutcome>>> {
    opts.transfer.fitted()?;
    for (i, d) in dsts.iter().enumerate() {
        check_overlap(src, d)?;
        for other in &dsts[i + 1..] {
            check_overlap(d, other)?;
        }
    }
    let per_dst: Vec<SyncOptions> = (0..dsts.len())
        .map(|k| {
            let mut o = opts.clone();
            o.write_source_manifest &= k == 0;
            o
        })
        .collect();
    let mut leases: Vec<Option<SyncLock>> = dsts.iter().map(|_| None).collect();
    let aheads = futures::future::join_all(
        dsts.iter()
            .zip(&per_dst)
            .zip(leases.iter_mut())
            .map(|((d, o), lease)| before_copies(src, d, o, lease)),
    )
    .await;
    let mut outcomes: Vec<Option<Result<SyncOutcome>>> = Vec::new();
    let mut ready: Vec<Option<Ready>> = Vec::new();
    for a in aheads {
        match a {
            Ok(Ahead::Copy(r)) => {
                outcomes.push(None);
                ready.push(Some(*r));
            }
            Ok(Ahead::Done(o)) => {
                outcomes.push(Some(Ok(*o)));
                ready.push(None);
            }
            Err(e) => {
                outcomes.push(Some(Err(e)));
                ready.push(None);
            }
        }
    }
    let mut copies = copy_all(src, dsts, &ready, opts).await;
    let after = futures::future::join_all(
        ready
            .into_iter()
            .zip(leases.iter_mut())
            .enumerate()
            .filter_map(|(k, (r, lease))| Some((k, r?, lease)))
            .map(|(k, r, lease)| {
                let c = copies[k].take().expect("copies of a ready destination");
                async move { (k, after_copies(src, &dsts[k], r, c, lease).await) }
            }),
    )
    .await;
    for (k, o) in after {
        outcomes[k] = Some(o);
    }
    let finished = dsts
        .iter()
        .zip(outcomes)
        .zip(leases)
        .zip(&per_dst)
        .map(|(((d, o), lease), opts)| finish(src, d, o.expect("every destination ends"), lease, opts));
    Ok(futures::future::join_all(finished).await)
}

/// The shared copy stage over the destinations that are ready for it; per destination (in
/// order), its copies, or `None` when it is not copying.
async fn copy_all(
    src: &Dataset,
    dsts: &[Dataset],
    ready: &[Option<Ready>],
    opts: &SyncOptions,
) -> Vec<Option<super::copy::Copies>> {
    let (ks, dests): (Vec<usize>, Vec<Destination>) = ready
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            let r = r.as_ref()?;
            Some((
                k,
                Destination {
                    dst: &dsts[k],
                    plan: &r.plan,
                    copy_set: &r.copy_set,
                    opts: &r.opts,
                },
            ))
        })
        .unzip();
    let mut out: Vec<Option<super::copy::Copies>> = dsts.iter().map(|_| None).collect();
    if dests.is_empty() {
        return out;
    }
    for (k, c) in ks.into_iter().zip(run_many(src, &dests, opts).await) {
        out[k] = Some(c);
    }
    out
}
