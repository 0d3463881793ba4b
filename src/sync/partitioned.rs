//! Partitioned runs: one sync split over N workers of a scheduler (a Kubernetes Indexed Job, a
//! Slurm job array), committed once.
//!
//! ```text
//!  freeze_plan ──► sync_partition × N (any order, retried freely) ──► commit_plan
//!  plan (both     each: its items only: prove what       every receipt there; prove what
//!  sides), hash,  landed (HEAD), copy the rest, prove    none covers; commit the manifest
//!  retract, split each copy, write its receipt           conditionally on the planned
//!  by bytes                                              version; remove the plan
//! ```
//!
//! The stages are the pipeline's own (`plan`, `copy`, `prove`, `tally`, `manifests`); this
//! module only cuts the run at the points where the work leaves one machine. Workers take no
//! lease and never write the dataset manifest, so they never block each other; each refuses
//! to start when the destination manifest moved since the plan (another sync committed).
//! The plan's own interim commit retracts the entries the workers will overwrite, so a reader
//! of the manifest never trusts a shard a worker is rewriting.

use std::collections::HashMap;

use futures::StreamExt;

use crate::diff::{Plan, PlanItem, SourceObject, State};
use crate::error::{Error, Result};
use crate::events::Stage;
use crate::listing::{list_dataset, ObjectStat};
use crate::manifest::{self, BuildOptions, CopiedFrom, Manifest, ShardEntry, SourceStat};
use crate::report::Report;
use crate::safety::check_overlap;
use crate::store::Dataset;
use crate::verify::prove_same;

use super::partition::{
    assign, check_plan_id, check_unmoved, get_json, items_rel, load_head, new_plan_id, plan_rel, put_json,
    receipt_rel, remove_plan, HeldEntries, HeldEntry, ManifestVersion, PartitionItems, PartitionSpec,
    PlanHead, Receipt, Share,
};
use super::{copy, manifests, plan, prove, tally, SyncOptions, SyncOutcome};

/// A plan frozen under the destination's `_shardsync/plans/<ID>/`.
#[derive(Debug)]
pub struct FrozenPlan {
    /// The plan's head: its ID, what it was made against, each partition's share.
    pub head: PlanHead,
    /// The plan already existed under this ID (a retried `plan`) and was kept as it was.
    pub reused: bool,
    /// Warnings of the planning (keys not carried, a source manifest not written back).
    pub warnings: Vec<String>,
}

/// Freeze the work of syncing `src` into `dst` as a plan for `partitions` workers and return
/// it. `id` names it (default: 12 random hex digits); a plan already under that ID, made for
/// the same count against the destination manifest as it is now, is kept (a retried plan
/// Job). Every source object is hashed (the plan records each item's SHA-256, so a worker
/// proves exactly the planned bytes), and entries the workers will overwrite are retracted
/// from the destination manifest first.
pub async fn freeze_plan(
    src: &Dataset,
    dst: &Dataset,
    partitions: usize,
    id: Option<&str>,
    opts: &SyncOptions,
) -> Result<FrozenPlan> {
    check_overlap(src, dst)?;
    let id = id.map_or_else(new_plan_id, str::to_string);
    let location = format!("{}/{}", dst.url, plan_rel(&id, "plan.json"));
    let invalid = |reason: String| Error::InvalidPlan {
        location: location.clone(),
        reason,
    };
    check_plan_id(&id).map_err(invalid)?;
    if partitions == 0 {
        return Err(invalid("needs at least one partition".into()));
    }
    if let Some(head) = existing_plan(dst, &id, partitions).await? {
        return Ok(FrozenPlan {
            head,
            reused: true,
            warnings: Vec::new(),
        });
    }
    let prepared = plan::prepare(src, dst, opts).await?;
    let mut plan = prepared.plan;
    hash_unknown_sources(src, &mut plan, opts).await?;
    let src_entries = plan
        .source_entries()
        .ok_or_else(|| invalid("a source object could not be hashed".into()))?;
    let copy_set = plan::copy_set(&plan, opts.full);
    let mut report = Report::new("plan", opts.mode(), Some(&src.url), Some(&dst.url));
    let mut lease = None;
    let stored = prepared.dst_stored.as_ref();
    let retracted =
        manifests::retract_overwritten(dst, &plan, &copy_set, stored, &mut lease, &mut report).await;
    if let Some(l) = lease {
        l.release().await;
    }
    let dst_version = retracted?.as_ref().map(ManifestVersion::from);
    let (shares, held) = write_items(dst, &id, &plan, &copy_set, partitions).await?;
    let head = PlanHead::new(
        id,
        src,
        manifest::digest_of(&src_entries),
        dst,
        dst_version,
        shares,
        held,
    );
    put_json(dst, &plan_rel(&head.id, "plan.json"), &head).await?;
    let previous = prepared.src_previous.as_ref();
    manifests::write_back_source(src, Some(src_entries), previous, opts, &mut report).await?;
    let mut warnings = prepared.warnings;
    warnings.extend(report.warnings);
    Ok(FrozenPlan {
        head,
        reused: false,
        warnings,
    })
}

/// The plan already under `id`, when it is still good for this run: same count, made
/// against the destination manifest as it is now. A stale one (the destination moved, so it
/// can never commit) is removed and replaced; one for another count is refused.
async fn existing_plan(dst: &Dataset, id: &str, partitions: usize) -> Result<Option<PlanHead>> {
    let head = match load_head(dst, id).await {
        Ok(h) => h,
        Err(Error::PlanNotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match check_unmoved(dst, &head).await {
        Ok(()) => {
            head.check_count(dst, partitions)?;
            Ok(Some(head))
        }
        Err(Error::PlanStale { .. }) => {
            for w in remove_plan(dst, id).await {
                tracing::warn!("{w}");
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Hash the source objects the plan has no entry for (the diff leaves new ones to the copy
/// to hash; a frozen plan must name each item's bytes).
async fn hash_unknown_sources(src: &Dataset, plan: &mut Plan, opts: &SyncOptions) -> Result<()> {
    let unknown: Vec<ObjectStat> = plan
        .items
        .iter()
        .filter_map(|i| i.src.as_ref())
        .filter(|s| s.entry.is_none())
        .map(|s| s.stat.clone())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let b = BuildOptions {
        concurrency: opts.concurrency.get(),
        events: opts.events.clone(),
    };
    let built = manifest::build::build_from_listing(src, &unknown, None, &b).await?;
    for e in built.manifest.shards {
        if let Ok(n) = plan.items.binary_search_by(|i| i.path.cmp(&e.path)) {
            if let Some(s) = plan.items[n].src.as_mut() {
                s.entry = Some(e);
            }
        }
    }
    Ok(())
}

/// Split the copy set over the partitions and write each one's items file and the held
/// entries. Returns the shares and how many entries are held already.
async fn write_items(
    dst: &Dataset,
    id: &str,
    plan: &Plan,
    copy_set: &[usize],
    partitions: usize,
) -> Result<(Vec<Share>, usize)> {
    let entries: Vec<&ShardEntry> = copy_set
        .iter()
        .filter_map(|&n| plan.items[n].src.as_ref()?.entry.as_ref())
        .collect();
    let sized: Vec<(&str, u64)> = entries.iter().map(|e| (e.path.as_str(), e.size)).collect();
    let owner = assign(&sized, partitions);
    let mut files: Vec<PartitionItems> = (0..partitions)
        .map(|partition| PartitionItems {
            partition,
            items: Vec::new(),
        })
        .collect();
    for (e, p) in entries.iter().zip(owner) {
        files[p].items.push((*e).clone());
    }
    let shares = files
        .iter()
        .map(|f| Share {
            items: f.items.len(),
            bytes: f.items.iter().map(|e| e.size).sum(),
        })
        .collect();
    let copying: std::collections::HashSet<usize> = copy_set.iter().copied().collect();
    let held: Vec<HeldEntry> = plan
        .items
        .iter()
        .enumerate()
        .filter(|(n, i)| i.state == State::Same && !copying.contains(n))
        .filter_map(|(_, i)| {
            Some(HeldEntry {
                src: i.src.as_ref()?.entry.clone()?,
                dst: i.dst_entry.clone()?,
            })
        })
        .collect();
    let count = held.len();
    futures::future::try_join_all(
        files
            .iter()
            .map(|f| async move { put_json(dst, &items_rel(id, f.partition), f).await }),
    )
    .await?;
    put_json(dst, &plan_rel(id, "same.json"), &HeldEntries { entries: held }).await?;
    Ok((shares, count))
}

/// What one partition did.
#[derive(Debug)]
pub struct PartitionOutcome {
    /// The partition's report: its items, what was copied, what was already there.
    pub report: Report,
    /// The receipt written for it.
    pub receipt: Receipt,
}

/// Run partition `spec` of plan `id`: prove which of its items already landed (a HEAD, or a
/// read-back where the store keeps no hash), copy and prove the rest, and write its receipt.
/// Takes no lease and never writes the dataset manifest. A partition with failed or
/// interrupted copies writes no receipt and returns [`Error::Incomplete`]; running it again
/// copies only what is still missing.
pub async fn sync_partition(
    src: &Dataset,
    dst: &Dataset,
    id: &str,
    spec: PartitionSpec,
    opts: &SyncOptions,
) -> Result<PartitionOutcome> {
    opts.transfer.fitted()?;
    let head = load_head(dst, id).await?;
    head.check_count(dst, spec.count)?;
    check_source(src, dst, &head)?;
    check_unmoved(dst, &head).await?;
    let items: PartitionItems =
        get_json(dst, &items_rel(id, spec.index))
            .await?
            .ok_or_else(|| Error::InvalidPlan {
                location: format!("{}/{}", dst.url, items_rel(id, spec.index)),
                reason: "the partition's items file is missing".into(),
            })?;
    let mut report = Report::new("sync", "partition", Some(&src.url), Some(&dst.url));
    report.verify = Some(opts.verify);
    report.shards_total = items.items.len() as u64;
    report.bytes_total = items.items.iter().map(|e| e.size).sum();
    let (held, mut plan) = prove_landed(dst, items.items, opts).await?;
    if opts.cancel.is_cancelled() {
        return Err(Error::Interrupted); // nothing written yet
    }
    let copy_set: Vec<usize> = (0..plan.items.len()).collect();
    let copy_opts = copy::proof_options(dst, &plan, &copy_set, opts, &mut report).await?;
    let copies = copy::run(src, dst, &plan, &copy_set, &copy_opts).await;
    let stopped = copies.stopped.clone();
    let confirmed = prove::confirm_each(dst, copies, &copy_opts).await;
    let tally = tally::record(&mut plan, confirmed, stopped, opts, &mut report);
    report.shards_skipped = held.len() as u64;
    report.bytes_skipped = held.iter().map(|e| e.size).sum();
    report.consistent = tally.complete();
    report.finish();
    if !tally.complete() {
        return Err(Error::Incomplete {
            outcome: Box::new(SyncOutcome {
                report,
                plan,
                committed: None,
            }),
        });
    }
    let mut entries = held;
    entries.extend(tally.copied.into_iter().flatten());
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let receipt = Receipt {
        plan: id.to_string(),
        partition: spec.index,
        entries,
    };
    put_json(dst, &receipt_rel(id, spec.index), &receipt).await?;
    Ok(PartitionOutcome { report, receipt })
}

/// A plan is run against the source it was made from.
fn check_source(src: &Dataset, dst: &Dataset, head: &PlanHead) -> Result<()> {
    if src.url == head.src {
        return Ok(());
    }
    Err(Error::InvalidPlan {
        location: format!("{}/{}", dst.url, plan_rel(&head.id, "plan.json")),
        reason: format!("made for the source {}, not {}", head.src, src.url),
    })
}

/// Prove, item by item, which planned items the destination holds already (a re-run after a
/// kill): those become proven entries; the rest a plan of copies.
async fn prove_landed(
    dst: &Dataset,
    items: Vec<ShardEntry>,
    opts: &SyncOptions,
) -> Result<(Vec<ShardEntry>, Plan)> {
    let bytes = items.iter().map(|e| e.size).sum();
    opts.events.start(Stage::Proving, items.len() as u64, bytes);
    // Per item: the destination's stat and whether it holds the item's bytes (`None`: absent).
    type Proven = Result<Option<(ObjectStat, bool)>>;
    let proofs: Vec<(ShardEntry, Proven)> = futures::stream::iter(items)
        .map(|e| async move {
            let r = prove_same(dst, &e.path, &e.sha256, opts.verify, &opts.events).await;
            opts.events.object_done(&e.path);
            (e, r)
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    opts.events.finish();
    let mut held = Vec::new();
    let mut plan = Plan::default();
    for (e, r) in proofs {
        match r? {
            Some((stat, true)) => {
                let mut d = e;
                d.mtime = Some(stat.mtime);
                d.etag = stat.etag;
                held.push(d);
            }
            found => plan.items.push(copy_item(e, found.map(|(stat, _)| stat))),
        }
    }
    plan.items.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((held, plan))
}

/// A plan item that copies the source entry `e` over `dst` (what the destination holds now).
fn copy_item(e: ShardEntry, dst: Option<ObjectStat>) -> PlanItem {
    let stat = ObjectStat {
        path: e.path.clone(),
        size: e.size,
        mtime: e.mtime.unwrap_or_default(),
        etag: e.etag.clone(),
    };
    PlanItem {
        path: e.path.clone(),
        state: if dst.is_some() { State::Changed } else { State::New },
        src: Some(SourceObject { stat, entry: Some(e) }),
        dst,
        dst_entry: None,
        origin: None,
    }
}

/// What a commit of a plan did.
#[derive(Debug)]
pub struct CommitOutcome {
    /// The commit's report: the entries committed, the digests, the proof of the commit.
    pub report: Report,
    /// The manifest committed (`None`: the destination's was already it).
    pub committed: Option<Manifest>,
}

/// Commit plan `id`: every partition's receipt must be there ([`Error::ReceiptsMissing`]
/// names the others), entries no receipt covers are proven on the destination, and the
/// manifest is committed conditionally on the version the plan was made against, under the
/// destination's lease. Then the plan is removed.
pub async fn commit_plan(
    src: &Dataset,
    dst: &Dataset,
    id: &str,
    opts: &SyncOptions,
) -> Result<CommitOutcome> {
    let head = load_head(dst, id).await?;
    check_source(src, dst, &head)?;
    check_unmoved(dst, &head).await?;
    let receipts = load_receipts(dst, &head).await?;
    let stored = manifest::load(dst).await?;
    let mut report = Report::new("commit", "partitioned", Some(&src.url), Some(&dst.url));
    let (mut destination, uncovered) = final_manifest(dst, &head, receipts, opts).await?;
    report.shards_copied = uncovered as u64;
    let listing = list_dataset(dst).await?.objects;
    // Cache keys only: the digest (over path, size, SHA-256) stays.
    rekey_from_listing(&mut destination.shards, &listing);
    if destination.digest != head.src_digest {
        return Err(Error::InvalidPlan {
            location: format!("{}/{}", dst.url, plan_rel(id, "plan.json")),
            reason: "the receipts do not add up to the planned source digest".into(),
        });
    }
    let expected = head.dst_version.as_ref().map(object_store::UpdateVersion::from);
    let mut lease = None;
    let committed = manifests::commit_final(
        dst,
        &destination,
        stored.as_ref(),
        &expected,
        Some(listing),
        &mut lease,
        &mut report,
    )
    .await;
    if let Some(l) = lease {
        report.warnings.extend(l.warnings().to_vec());
        l.release().await;
    }
    let committed = committed?;
    report.warnings.extend(remove_plan(dst, id).await);
    report.shards_total = destination.shards.len() as u64;
    report.bytes_total = destination.shards.iter().map(|e| e.size).sum();
    report.src_digest = Some(head.src_digest.clone());
    report.dst_digest = Some(destination.digest.clone());
    report.consistent = true;
    report.finish();
    Ok(CommitOutcome { report, committed })
}

/// Every partition's receipt, or [`Error::ReceiptsMissing`] naming those without one.
async fn load_receipts(dst: &Dataset, head: &PlanHead) -> Result<Vec<Receipt>> {
    let read = futures::future::try_join_all(
        (0..head.partitions)
            .map(|i| async move { get_json::<Receipt>(dst, &receipt_rel(&head.id, i)).await }),
    )
    .await?;
    let missing: Vec<usize> = read
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| i)
        .collect();
    if !missing.is_empty() {
        return Err(Error::ReceiptsMissing {
            plan: head.id.clone(),
            partitions: head.partitions,
            missing,
        });
    }
    Ok(read.into_iter().flatten().collect())
}

/// The manifest the receipts justify: the held entries, each planned item as its receipt
/// records it, and any planned item no receipt covers proven on the destination now. Returns
/// it and how many items had to be proven here.
async fn final_manifest(
    dst: &Dataset,
    head: &PlanHead,
    receipts: Vec<Receipt>,
    opts: &SyncOptions,
) -> Result<(Manifest, usize)> {
    let held: HeldEntries = get_json(dst, &plan_rel(&head.id, "same.json"))
        .await?
        .unwrap_or(HeldEntries { entries: Vec::new() });
    let mut proven: HashMap<String, ShardEntry> = receipts
        .into_iter()
        .flat_map(|r| r.entries)
        .map(|e| (e.path.clone(), e))
        .collect();
    let mut entries = Vec::new();
    let mut stats = Vec::new();
    let mut uncovered = Vec::new();
    for p in 0..head.partitions {
        let items: PartitionItems = get_json(dst, &items_rel(&head.id, p))
            .await?
            .unwrap_or(PartitionItems {
                partition: p,
                items: Vec::new(),
            });
        for src in items.items {
            stats.push(source_stat(&src));
            match proven.remove(&src.path).filter(|d| d.same_content(&src)) {
                Some(d) => entries.push(d),
                None => uncovered.push(src),
            }
        }
    }
    let count = uncovered.len();
    entries.extend(prove_uncovered(dst, uncovered, opts).await?);
    for h in held.entries {
        stats.push(source_stat(&h.src));
        entries.push(h.dst);
    }
    stats.sort_by(|a, b| a.path.cmp(&b.path));
    let mut m = Manifest::new(dst.url.clone(), entries)?;
    m.copied_from = Some(CopiedFrom {
        source: head.source_identity.clone(),
        stats,
    });
    Ok((m, count))
}

fn source_stat(e: &ShardEntry) -> SourceStat {
    SourceStat {
        path: e.path.clone(),
        mtime: e.mtime,
        etag: e.etag.clone(),
    }
}

/// Prove planned items no receipt covers; one that is not on the destination fails the commit.
async fn prove_uncovered(
    dst: &Dataset,
    items: Vec<ShardEntry>,
    opts: &SyncOptions,
) -> Result<Vec<ShardEntry>> {
    let (held, rest) = prove_landed(dst, items, opts).await?;
    if rest.items.is_empty() {
        return Ok(held);
    }
    Err(Error::ShardsFailed {
        failures: rest
            .items
            .into_iter()
            .map(|i| {
                (
                    i.path,
                    "planned, but no receipt covers it and the destination does not hold it".into(),
                )
            })
            .collect(),
    })
}

/// Each entry's cache key becomes the object's stat as the destination lists it, where the
/// listing shows the very object proven (a HEAD's stat can differ from a listing's).
fn rekey_from_listing(entries: &mut [ShardEntry], listing: &[ObjectStat]) {
    for e in entries {
        let Ok(i) = listing.binary_search_by(|s| s.path.as_str().cmp(&e.path)) else {
            continue;
        };
        if prove::lists_verified_object(&listing[i], e) {
            e.mtime = Some(listing[i].mtime);
            e.etag = listing[i].etag.clone();
        }
    }
}
