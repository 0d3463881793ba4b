//! Stage 3, prove: turn every copy into a proven one, or a failure, before anything is
//! committed.
//!
//! The destination is listed once after the copies. A copy whose PUT's ETag and size the
//! listing shows is proven by it; the others (listings without ETags, as s3s-fs gives; or an
//! object replaced since) get a HEAD or a read-back. Then each copied entry's cache key becomes
//! the object's stat as the destination lists it: the next sync compares entries with a
//! listing, and a HEAD's stat can differ from it (s3s-fs lists millisecond mtimes and no ETag;
//! HEAD answers whole seconds). The commit stage takes only [`Settled`] copies, so an unproven
//! copy cannot reach a manifest.

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::listing::{list_dataset, ObjectStat};
use crate::manifest::{Manifest, ShardEntry};
use crate::store::Dataset;
use crate::verify::Proof;

use super::copy::{verify_or_remove, Attempt, Copies, Landed, ProvenCopy};
use super::SyncOptions;

/// A copy that may be committed.
#[derive(Debug)]
pub(super) enum Settled {
    Proven(ProvenCopy),
    /// Nothing was written: the destination's proven entry stands.
    AlreadyThere,
}

/// The copies, settled, and the listing taken after them (if any copy wrote).
#[derive(Debug)]
pub(super) struct Confirmed {
    pub(super) attempts: Vec<(usize, Attempt<Settled>)>,
    pub(super) relisted: Option<Vec<ObjectStat>>,
}

/// Prove every written copy against one listing of the destination (see the module doc).
pub(super) async fn confirm_copies(dst: &Dataset, copies: Copies, opts: &SyncOptions) -> Result<Confirmed> {
    let wrote = copies
        .attempts
        .iter()
        .any(|(_, a)| matches!(a, Attempt::Done(Landed::Proven(_) | Landed::Unproven(_))));
    if !wrote {
        let attempts = copies
            .attempts
            .into_iter()
            .map(|(n, a)| (n, settle_without_listing(a)))
            .collect();
        return Ok(Confirmed {
            attempts,
            relisted: None,
        });
    }
    let relisted = list_dataset(dst).await?.objects;
    let listing = relisted.as_slice();
    let attempts = futures::stream::iter(copies.attempts)
        .map(|(n, a)| async move { (n, settle(dst, a, listing, opts).await) })
        .buffer_unordered(opts.concurrency.get())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|(n, a)| (n, rekey_from_listing(a, listing)))
        .collect();
    Ok(Confirmed {
        attempts,
        relisted: Some(relisted),
    })
}

/// Prove every written copy on its own (a HEAD or a read-back each), without a listing: a
/// partition's worker makes requests in proportion to its share, not to the dataset.
pub(super) async fn confirm_each(dst: &Dataset, copies: Copies, opts: &SyncOptions) -> Confirmed {
    let attempts = futures::stream::iter(copies.attempts)
        .map(|(n, a)| async move { (n, settle(dst, a, &[], opts).await) })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    Confirmed {
        attempts,
        relisted: None,
    }
}

/// Without a listing no copy wrote, so there is nothing unproven to settle.
fn settle_without_listing(a: Attempt<Landed>) -> Attempt<Settled> {
    match a {
        Attempt::Done(Landed::AlreadyThere) => Attempt::Done(Settled::AlreadyThere),
        Attempt::Done(Landed::Proven(p)) => Attempt::Done(Settled::Proven(p)),
        Attempt::Done(Landed::Unproven(_)) | Attempt::NotStarted => Attempt::NotStarted,
        Attempt::Failed(e) => Attempt::Failed(e),
    }
}

/// Prove one unproven copy by the listing, or else by verifying the object itself.
async fn settle(
    dst: &Dataset,
    a: Attempt<Landed>,
    listing: &[ObjectStat],
    opts: &SyncOptions,
) -> Attempt<Settled> {
    let mut entry = match a {
        Attempt::Done(Landed::Unproven(u)) => u.entry,
        Attempt::Done(Landed::Proven(p)) => return Attempt::Done(Settled::Proven(p)),
        Attempt::Done(Landed::AlreadyThere) => return Attempt::Done(Settled::AlreadyThere),
        Attempt::Failed(e) => return Attempt::Failed(e),
        Attempt::NotStarted => return Attempt::NotStarted,
    };
    if listed(listing, &entry.path).is_some_and(|l| lists_verified_object(l, &entry)) {
        return Attempt::Done(Settled::Proven(ProvenCopy {
            entry,
            proof: Proof::SizeAndEtag,
            in_place: false,
        }));
    }
    let put_etag = entry.etag.clone(); // still the PUT's answer: see copy::UnprovenCopy
    match verify_or_remove(dst, &mut entry, opts.verify, put_etag.as_deref()).await {
        Ok(proof) => Attempt::Done(Settled::Proven(ProvenCopy {
            entry,
            proof,
            in_place: false,
        })),
        Err(e) => Attempt::Failed(e),
    }
}

/// A proven copy's cache key becomes the listing's stat, if the listing shows the very object
/// verified: another writer may have replaced it since, and its stat must then not become
/// the cache key for our hash.
fn rekey_from_listing(a: Attempt<Settled>, listing: &[ObjectStat]) -> Attempt<Settled> {
    let Attempt::Done(Settled::Proven(mut p)) = a else {
        return a;
    };
    if let Some(l) = listed(listing, &p.entry.path).filter(|l| lists_verified_object(l, &p.entry)) {
        p.entry.mtime = Some(l.mtime);
        p.entry.etag = l.etag.clone();
    }
    Attempt::Done(Settled::Proven(p))
}

/// The listed stat of `path` (a listing is sorted by path).
fn listed<'a>(listing: &'a [ObjectStat], path: &str) -> Option<&'a ObjectStat> {
    let i = listing.binary_search_by(|s| s.path.as_str().cmp(path)).ok()?;
    Some(&listing[i])
}

/// The last look before the commit: every entry the final manifest names must be, in a listing
/// taken after the copies, the very object that was proven — a copy's own PUT, or the object
/// planned as the same — by size and cache key (ETag, mtime). Another writer that replaced one
/// meanwhile (possible where the lease is not enforced) stops the commit.
pub(super) fn reprove_before_commit(
    dst: &Dataset,
    manifest: &Manifest,
    listing: &[ObjectStat],
) -> Result<()> {
    let changed = crate::commit::entries_not_in_listing(manifest, listing);
    if changed.is_empty() {
        return Ok(());
    }
    Err(Error::ChangedUnderCommit {
        location: dst.url.clone(),
        detail: crate::commit::describe_changed(
            &changed,
            "changed after this sync verified them; nothing was committed",
        ),
    })
}

/// Whether a listed stat is the object whose stat (from the HEAD or read that verified it) is
/// recorded in `verified`: same size, and the same ETag when both carry one; otherwise mtimes
/// less than a second apart (HEAD's Last-Modified has whole seconds, listings are finer).
pub(super) fn lists_verified_object(listed: &ObjectStat, verified: &ShardEntry) -> bool {
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
