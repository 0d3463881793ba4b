//! Stage 1, plan: read both sides and decide, per path, what the sync must do.
//!
//! Shared by `sync`, `check` and `diff`: all three see the same [`Plan`]. Both manifests and
//! both listings are read at once; a source entry whose stat still matches the listing is
//! trusted, the others are hashed here only when the destination holds an object of the same
//! size (otherwise the copy hashes them as it reads them, so each byte is read once).
//! `Unproven` items (destination bytes not in its manifest) are then settled by comparing the
//! destination with the source hash.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use crate::diff::{diff, Plan, PlanItem, SourceObject, State, TransferEstimate};
use crate::error::{Error, Result};
use crate::events::Stage;
use crate::listing::{list_dataset, ObjectStat};
use crate::manifest::build::{build_from_listing, entry_matches_stat, BuildOptions};
use crate::manifest::{self, Manifest, StoredManifest};
use crate::report::{Finding, FindingKind};
use crate::safety::check_source_not_empty;
use crate::store::Dataset;
use crate::verify::{prove_same, VerifyMode};

use super::SyncOptions;

/// The state of both sides, gathered before anything is copied.
#[derive(Debug)]
pub struct Prepared {
    /// What differs, path by path.
    pub plan: Plan,
    /// The source's manifest as it was read (before any refresh).
    pub src_previous: Option<Manifest>,
    /// The destination's manifest and the version a commit must replace.
    pub dst_stored: Option<StoredManifest>,
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
    let how = Preparation {
        rehash_source,
        ..Preparation::default()
    };
    prepare_inner(src, dst, opts, how).await
}

/// The plan a sync acts on: as [`prepare`], but interruptible, and in size mode stale small
/// source objects are left for the copy to hash (see [`Preparation`]).
pub(super) async fn prepare_for_sync(src: &Dataset, dst: &Dataset, opts: &SyncOptions) -> Result<Prepared> {
    let how = Preparation {
        rehash_source: false,
        defer_to_copy: !opts.dry_run && opts.verify == VerifyMode::Size,
        find_renames: true,
    };
    opts.cancel
        .run_until_cancelled(prepare_inner(src, dst, opts, how))
        .await
        .ok_or(Error::Interrupted)?
}

/// Both sides as read: manifests and listings.
struct Sides {
    src_previous: Option<Manifest>,
    sources: Vec<SourceObject>,
    dst_stored: Option<StoredManifest>,
    dst_list: Vec<ObjectStat>,
    warnings: Vec<String>,
}

/// What a preparation hashes at the source beyond what its plan needs.
#[derive(Debug, Clone, Copy, Default)]
struct Preparation {
    /// Re-hash every source object (a deep check).
    rehash_source: bool,
    /// A sync about to copy: stale source objects small enough for one PUT are not hashed
    /// here. The copy reads them once, hashes them and skips the PUT when the bytes are the
    /// destination's (see [`crate::transfer::CopyJob::unless_sha256`]); hashing them here and
    /// then copying would read each changed one twice. They stay `Unproven` until the copy
    /// settles them.
    defer_to_copy: bool,
    /// A sync: hash stale source objects at new paths whose size a proven destination object
    /// has, so a renamed or moved shard is copied inside the destination, not sent again.
    find_renames: bool,
}

async fn prepare_inner(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    how: Preparation,
) -> Result<Prepared> {
    let mut sides = read_sides(src, dst, opts).await?;
    let mut src_corrupt = Vec::new();
    let rehash_source = how.rehash_source;
    if rehash_source {
        for s in &mut sides.sources {
            if let Some(e) = s.entry.take() {
                src_corrupt.push(e); // candidates: compared with the fresh hash below
            }
        }
    }
    let src_hashed = hash_where_needed(src, &mut sides, opts, how).await?;
    // Keep only the claimed entries the fresh hash contradicts.
    let sources = &sides.sources;
    src_corrupt.retain(|claimed| {
        sources
            .binary_search_by(|s| s.stat.path.cmp(&claimed.path))
            .ok()
            .and_then(|i| sources[i].entry.as_ref())
            .is_some_and(|fresh| !fresh.same_content(claimed))
    });
    let mut plan = diff(
        sides.sources,
        sides.dst_stored.as_ref().map(|s| &s.manifest),
        sides.dst_list,
    );
    settle_unproven(dst, &mut plan, opts).await?;
    plan.find_origins();
    plan.transfer = estimate(&plan, opts);
    plan.filter = (!opts.filter.is_empty()).then(|| opts.filter.spec().clone());
    Ok(Prepared {
        plan,
        src_previous: sides.src_previous,
        dst_stored: sides.dst_stored,
        src_hashed,
        src_corrupt: src_corrupt.into_iter().map(|e| e.path).collect(),
        warnings: sides.warnings,
    })
}

/// Read both manifests and both listings at once; refuse an empty source and (with `strict`)
/// keys that cannot be carried. Source entries are kept where they still match the listing.
async fn read_sides(src: &Dataset, dst: &Dataset, opts: &SyncOptions) -> Result<Sides> {
    let (src_prev, mut src_list, dst_stored, mut dst_list) = tokio::try_join!(
        manifest::load(src),
        list_dataset(src),
        manifest::load(dst),
        list_dataset(dst)
    )?;
    src_list.check_strict(src, opts.strict)?;
    dst_list.check_strict(dst, opts.strict)?;
    // The filter is a view: both sides are seen through it, so what lies outside it is never
    // copied, deleted or reported.
    let listed = src_list.objects.len();
    if !opts.filter.is_empty() {
        let in_view = |s: &ObjectStat| opts.filter.matches(&s.path, s.size);
        src_list.objects.retain(in_view);
        dst_list.objects.retain(in_view);
    }
    let warnings: Vec<String> = [src_list.warning(src), dst_list.warning(dst)]
        .into_iter()
        .flatten()
        .collect();
    let src_previous = src_prev.map(|s| s.manifest);
    let recalled = dst_stored
        .as_ref()
        .and_then(|d| Some((&d.manifest, d.manifest.copied_from.as_ref()?)));
    let source_id = src.identity();
    check_source_not_empty(src, listed, src_previous.is_some(), opts.allow_empty_source)?;
    if listed > 0 && src_list.objects.is_empty() && !opts.allow_empty_source {
        return Err(Error::FilterMatchesNothing {
            url: src.url.clone(),
            listed,
            filter: opts.filter.spec().to_string(),
        });
    }
    let sources = src_list
        .objects
        .into_iter()
        .map(|stat| SourceObject {
            entry: src_previous
                .as_ref()
                .and_then(|m| m.get(&stat.path))
                .filter(|e| entry_matches_stat(e, &stat))
                .cloned()
                // The destination remembers the source stat it copied each entry from: an
                // unchanged object needs no re-read even when the source manifest is gone.
                .or_else(|| {
                    let (dst_manifest, copied_from) = recalled?;
                    copied_from.source_entry(&source_id, dst_manifest.get(&stat.path)?, &stat)
                }),
            stat,
        })
        .collect();
    Ok(Sides {
        src_previous,
        sources,
        dst_stored,
        dst_list: dst_list.objects,
        warnings,
    })
}

/// Hash the source objects whose entry is unknown and whose destination twin has the same
/// size (or every object, with `rehash_source`): without a hash, `same` and `changed` cannot
/// be told apart. With `find_renames`, also those at new paths whose size a proven destination
/// object has. Returns how many were hashed.
async fn hash_where_needed(
    src: &Dataset,
    sides: &mut Sides,
    opts: &SyncOptions,
    how: Preparation,
) -> Result<usize> {
    let (rehash_source, defer_to_copy) = (how.rehash_source, how.defer_to_copy);
    let dst_stats: HashMap<&str, &ObjectStat> = sides.dst_list.iter().map(|s| (s.path.as_str(), s)).collect();
    let proven_sizes = match (&sides.dst_stored, how.find_renames) {
        (Some(d), true) => proven_sizes(&d.manifest, &dst_stats),
        _ => HashSet::new(),
    };
    let rename_candidate = |s: &SourceObject| {
        !dst_stats.contains_key(s.stat.path.as_str()) && proven_sizes.contains(&s.stat.size)
    };
    // Deferred only where the destination's hash is known (its manifest entry matches its
    // listing), so the copy can tell `same` by itself. Objects a killed sync landed have no such
    // entry: they are hashed here and proven from their metadata, not copied again.
    let deferred = |s: &SourceObject| {
        defer_to_copy
            && s.stat.size <= opts.transfer.single_put_limit() as u64
            && sides
                .dst_stored
                .as_ref()
                .and_then(|d| d.manifest.get(&s.stat.path))
                .zip(dst_stats.get(s.stat.path.as_str()))
                .is_some_and(|(e, stat)| entry_matches_stat(e, stat))
    };
    let must_hash: Vec<ObjectStat> = sides
        .sources
        .iter()
        .filter(|s| {
            rehash_source
                || (s.entry.is_none()
                    && dst_stats.get(s.stat.path.as_str()).map(|d| d.size) == Some(s.stat.size)
                    && !deferred(s))
                || (s.entry.is_none() && rename_candidate(s))
        })
        .map(|s| s.stat.clone())
        .collect();
    if must_hash.is_empty() {
        return Ok(0);
    }
    let b = BuildOptions {
        concurrency: opts.concurrency.get(),
        events: opts.events.clone(),
    };
    let built = build_from_listing(src, &must_hash, None, &b).await?;
    for e in built.manifest.shards {
        if let Ok(i) = sides.sources.binary_search_by(|s| s.stat.path.cmp(&e.path)) {
            sides.sources[i].entry = Some(e);
        }
    }
    Ok(must_hash.len())
}

/// Sizes of the destination objects whose manifest entry still describes them: the only
/// objects a copy inside the destination may start from.
fn proven_sizes(manifest: &Manifest, dst_stats: &HashMap<&str, &ObjectStat>) -> HashSet<u64> {
    manifest
        .shards
        .iter()
        .filter(|e| {
            dst_stats
                .get(e.path.as_str())
                .is_some_and(|s| entry_matches_stat(e, s))
        })
        .map(|e| e.size)
        .collect()
}

/// A proof attempt: the destination stat and whether it matches, or `None` when it is gone.
type ProofResult = Result<Option<(ObjectStat, bool)>>;

/// Settle `Unproven` items (and, in deep mode, re-hash `Same` ones to catch rot).
async fn settle_unproven(dst: &Dataset, plan: &mut Plan, opts: &SyncOptions) -> Result<()> {
    let deep = opts.verify == VerifyMode::Deep;
    // (item, the source hash it is proven against); an unproven item without a source hash is
    // settled by its copy (`defer_to_copy`).
    let to_prove: Vec<(usize, String)> = plan
        .items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.state == State::Unproven || (deep && i.state == State::Same))
        .filter_map(|(n, i)| Some((n, i.src.as_ref()?.entry.as_ref()?.sha256.clone())))
        .collect();
    if to_prove.is_empty() {
        return Ok(());
    }
    let bytes: u64 = to_prove
        .iter()
        .map(|(n, _)| plan.items[*n].dst.as_ref().map_or(0, |d| d.size))
        .sum();
    opts.events.start(Stage::Proving, to_prove.len() as u64, bytes);
    let results: Vec<(usize, ProofResult)> = futures::stream::iter(to_prove)
        .map(|(n, sha)| {
            let path = plan.items[n].path.clone();
            let progress = opts.events.clone();
            async move {
                let r = prove_same(dst, &path, &sha, opts.verify, &progress).await;
                progress.object_done(&path);
                (n, r)
            }
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    opts.events.finish();
    for (n, r) in results {
        apply_proof(&mut plan.items[n], r?);
    }
    Ok(())
}

/// Record what proving an item found.
fn apply_proof(item: &mut PlanItem, proof: Option<(ObjectStat, bool)>) {
    match proof {
        Some((stat, true)) => {
            let Some(mut e) = item.src.as_ref().and_then(|s| s.entry.clone()) else {
                return; // proven against a source hash, so there is an entry
            };
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

/// The items the copy stage takes: those that differ, the unproven ones the copy settles, and
/// in full mode the same ones too.
pub(super) fn copy_set(plan: &Plan, full: bool) -> Vec<usize> {
    plan.items
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            i.state.needs_copy() || i.state == State::Unproven || (full && i.state == State::Same)
        })
        .map(|(n, _)| n)
        .collect()
}

/// What the copy set moves between the stores, and its cost at the egress price, if known.
fn estimate(plan: &Plan, opts: &SyncOptions) -> TransferEstimate {
    // Copies made inside the destination (renames) send nothing between the stores.
    let set: Vec<usize> = copy_set(plan, opts.full)
        .into_iter()
        .filter(|&n| plan.items[n].origin.is_none())
        .collect();
    let bytes = set
        .iter()
        .filter_map(|&n| plan.items[n].src.as_ref())
        .map(|s| s.stat.size)
        .sum();
    TransferEstimate::new(set.len() as u64, bytes, opts.egress_price_usd_per_gib)
}

/// The digest of the source dataset as planned, when every source entry's hash is known.
pub(super) fn current_source_digest(plan: &Plan) -> Option<String> {
    plan.source_entries().map(|e| manifest::digest_of(&e))
}

/// Share of paths that differ (C(A,B)); `Extra` counts, `Same` does not.
pub(crate) fn inconsistency(plan: &Plan) -> f64 {
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
            "in the destination only (a sync removes it only when asked to delete)".to_string(),
        ),
        State::Changed => changed_finding(item),
        State::Unproven => (
            FindingKind::Changed,
            "destination hash unknown (not in its manifest); only a deep check proves it".to_string(),
        ),
    };
    Some(Finding {
        path: item.path.clone(),
        kind,
        detail,
    })
}

fn changed_finding(item: &PlanItem) -> (FindingKind, String) {
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
             a sync that verifies deeply rewrites it"
                .to_string(),
        ),
        _ => (
            FindingKind::Changed,
            "same size, different SHA-256; `sync` re-copies it".to_string(),
        ),
    }
}
