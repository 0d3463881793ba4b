//! Stage 5, commit: the manifests a sync writes, and when.
//!
//! The destination manifest is the dataset's claim: a training job that trusts it must find
//! every byte it names. So it is written last, after every shard it names is proven, and
//! conditionally on the version the plan read ([`crate::commit`] holds the protocol): a sync
//! that raced another fails rather than overwrite the other's claim. Before the copies, an
//! interim commit retracts entries about to be overwritten, so a sync killed mid-copy leaves a
//! manifest that claims nothing it was rewriting. The source manifest, when it was missing or
//! stale and every entry is now known, is written back afterwards (best effort).

use std::collections::HashSet;

use crate::commit::{self, CommitProtection, Expected};
use crate::diff::{Plan, State};
use crate::error::Result;
use crate::listing::{list_dataset, ObjectStat};
use crate::lock::SyncLock;
use crate::manifest::{self, CopiedFrom, Manifest, ShardEntry, SourceStat, StoredManifest};
use crate::report::Report;
use crate::store::Dataset;

use super::guard::{ensure_lease, probe_once};
use super::prove::reprove_before_commit;
use super::tally::Tally;
use super::SyncOptions;

/// The interim commit: stop claiming entries the copies are about to overwrite, or that no
/// longer hold. Returns the version the next commit must replace.
pub(super) async fn retract_overwritten(
    dst: &Dataset,
    plan: &Plan,
    copy_set: &[usize],
    stored: Option<&StoredManifest>,
    lease: &mut Option<SyncLock>,
    report: &mut Report,
) -> Result<Expected> {
    let expected: Expected = stored.map(|s| s.version.clone());
    let Some(stored) = stored else {
        return Ok(expected);
    };
    let overwriting: HashSet<&str> = copy_set
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
    if keep.len() == stored.manifest.shards.len() {
        return Ok(expected);
    }
    ensure_lease(dst, lease, &expected).await?;
    probe_once(dst, report).await?;
    let mut interim = Manifest::new(dst.url.clone(), keep)?;
    // The kept entries' source stats still hold (a stat of a dropped path finds no entry).
    interim.copied_from = stored.manifest.copied_from.clone();
    interim.filter = plan.filter.clone();
    Ok(Some(commit::commit_interim(dst, &interim, stored).await?))
}

/// The manifests the copies justify.
#[derive(Debug)]
pub(super) struct Final {
    /// Every source entry proven present on the destination.
    pub(super) destination: Manifest,
    /// The source's entries with the source's stats, when every one is known.
    pub(super) source: Option<Vec<ShardEntry>>,
}

/// Build the final manifests from the plan and the tally.
pub(super) fn final_manifests(
    src: &Dataset,
    dst: &Dataset,
    plan: &Plan,
    tally: &Tally,
    opts: &SyncOptions,
) -> Result<Final> {
    let mut dst_entries = Vec::new();
    let mut src_entries = Some(Vec::new());
    // The source stat behind each destination entry (see `Manifest::copied_from`).
    let mut src_stats = Vec::new();
    let mut remember = |s: &crate::diff::SourceObject| {
        src_stats.push(SourceStat {
            path: s.stat.path.clone(),
            mtime: Some(s.stat.mtime),
            etag: s.stat.etag.clone(),
        })
    };
    for (n, item) in plan.items.iter().enumerate() {
        let Some(s) = &item.src else { continue };
        if let Some(e) = &tally.copied[n] {
            remember(s);
            dst_entries.push(e.clone());
            let mut se = e.clone();
            se.mtime = Some(s.stat.mtime);
            se.etag = s.stat.etag.clone();
            if let Some(v) = src_entries.as_mut() {
                v.push(se);
            }
            continue;
        }
        // Not copied this run. A same shard is still claimed, unless full mode tried to copy
        // it (every same shard is in the copy set then) and failed, touching it.
        if item.state == State::Same && !opts.full {
            if let Some(d) = &item.dst_entry {
                // Same means the source entry's hash is known and equal, for this stat.
                if s.entry.is_some() {
                    remember(s);
                }
                dst_entries.push(d.clone());
            }
        }
        match (&s.entry, src_entries.as_mut()) {
            (Some(e), Some(v)) => v.push(e.clone()),
            _ => src_entries = None,
        }
    }
    let mut destination = Manifest::new(dst.url.clone(), dst_entries)?;
    src_stats.sort_by(|a, b| a.path.cmp(&b.path));
    destination.copied_from = Some(CopiedFrom {
        source: src.identity(),
        stats: src_stats,
    });
    // A filtered sync's manifest describes the view it synced, and says which.
    destination.filter = plan.filter.clone();
    Ok(Final {
        destination,
        source: src_entries,
    })
}

/// Commit the final destination manifest, unless it is the one already there. Every entry is
/// re-proven against a listing first, and the commit confirmed after.
pub(super) async fn commit_final(
    dst: &Dataset,
    manifest: &Manifest,
    stored: Option<&StoredManifest>,
    expected: &Expected,
    relisted: Option<Vec<ObjectStat>>,
    lease: &mut Option<SyncLock>,
    report: &mut Report,
) -> Result<Option<Manifest>> {
    let unchanged = stored.is_some_and(|s| {
        s.manifest.shards == manifest.shards
            && s.manifest.copied_from == manifest.copied_from
            && s.manifest.filter == manifest.filter
            && expected.as_ref() == Some(&s.version)
    });
    if unchanged {
        return Ok(None);
    }
    ensure_lease(dst, lease, expected).await?;
    probe_once(dst, report).await?;
    let listing = match relisted {
        Some(l) => l,
        None => list_dataset(dst).await?.objects,
    };
    reprove_before_commit(dst, manifest, &listing)?;
    let version = commit::commit(dst, manifest, expected).await?;
    report.committed = true;
    let protection = report.commit_protection.unwrap_or(CommitProtection::Enforced);
    commit::confirm_commit(dst, manifest, &version, protection).await?;
    Ok(Some(manifest.clone()))
}

/// Write the refreshed source manifest back when it was missing or stale and every entry is
/// known; a read-only source only warns. Returns the source digest, when known.
pub(super) async fn write_back_source(
    src: &Dataset,
    entries: Option<Vec<ShardEntry>>,
    previous: Option<&Manifest>,
    opts: &SyncOptions,
    report: &mut Report,
) -> Result<()> {
    let Some(entries) = entries else {
        return Ok(());
    };
    let src_manifest = Manifest::new(src.url.clone(), entries)?;
    report.src_digest = Some(src_manifest.digest.clone());
    let stale = previous.is_none_or(|p| p.shards != src_manifest.shards);
    // Never create `_shardsync/` under a source that held nothing (an allowed empty source).
    // A filtered sync saw only part of the source: its entries are not the source's manifest.
    if stale && opts.write_source_manifest && opts.filter.is_empty() && !src_manifest.shards.is_empty() {
        if let Err(e) = manifest::save(src, &src_manifest).await {
            let w = format!("could not write the refreshed source manifest (read-only source?): {e}");
            tracing::warn!("{w}");
            report.warnings.push(w);
        }
    }
    Ok(())
}
