//! The partition protocol's files: a frozen plan, its byte-balanced assignment, and receipts.
//!
//! ```text
//! <dst>/_shardsync/plans/<ID>/plan.json        the head: source digest, destination version, N, shares
//!                             items/<I>.json   partition I's items (what its worker copies)
//!                             same.json        entries already on the destination (for the commit)
//!                             receipts/<I>.json what partition I proved on the destination
//! ```
//!
//! The head is written last by `plan` (a plan without one does not exist) and the whole folder
//! is removed by `commit`. A worker reads only the head and its own items file, so its memory
//! and requests follow its share, not the dataset.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, UpdateVersion};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::ShardEntry;
use crate::retry::{retry, RetryPolicy};
use crate::store::Dataset;

/// The format tag of a plan head.
const PLAN_FORMAT: &str = "shardsync-plan/1";
/// Where plans live inside a dataset.
pub(crate) const PLANS_DIR: &str = "_shardsync/plans";
/// A plan file larger than this is not read (a worker's items are a share of a manifest).
const MAX_PLAN_FILE_BYTES: u64 = 1024 * 1024 * 1024;

/// A frozen plan's head (`plan.json`): what it was made against and how it is split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanHead {
    /// `shardsync-plan/1`.
    pub format: String,
    /// The plan's ID (its folder name).
    pub id: String,
    /// The source URL the plan was made from (as given; redacted).
    pub src: String,
    /// The source dataset's identity, recorded as the committed manifest's `copied_from`.
    pub source_identity: String,
    /// The digest of the source dataset as planned (every entry hashed).
    pub src_digest: String,
    /// The destination URL.
    pub dst: String,
    /// The destination manifest version the plan was made against (`None`: there was none).
    pub dst_version: Option<ManifestVersion>,
    /// How many partitions share the work.
    pub partitions: usize,
    /// Per partition: how many items and bytes it copies.
    pub shares: Vec<Share>,
    /// Entries already on the destination, committed as they are.
    pub same: usize,
}

/// One partition's share of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Items it copies.
    pub items: usize,
    /// Bytes it copies.
    pub bytes: u64,
}

/// A manifest object's version, as a plan records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestVersion {
    /// The manifest object's ETag.
    pub e_tag: Option<String>,
    /// The store's object version, where it keeps versions.
    pub version: Option<String>,
}

impl From<&UpdateVersion> for ManifestVersion {
    fn from(v: &UpdateVersion) -> Self {
        ManifestVersion {
            e_tag: v.e_tag.clone(),
            version: v.version.clone(),
        }
    }
}

impl From<&ManifestVersion> for UpdateVersion {
    fn from(v: &ManifestVersion) -> Self {
        UpdateVersion {
            e_tag: v.e_tag.clone(),
            version: v.version.clone(),
        }
    }
}

/// Partition `I`'s items: the source entries its worker copies (with the source's stat).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartitionItems {
    pub(crate) partition: usize,
    pub(crate) items: Vec<ShardEntry>,
}

/// An entry the destination already held when the plan was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeldEntry {
    /// The source's entry (its stat becomes the manifest's `copied_from`).
    pub(crate) src: ShardEntry,
    /// The destination's proven entry.
    pub(crate) dst: ShardEntry,
}

/// The entries already held (`same.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeldEntries {
    pub(crate) entries: Vec<HeldEntry>,
}

/// What one partition proved on the destination (`receipts/<I>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    /// The plan's ID.
    pub plan: String,
    /// The partition's index.
    pub partition: usize,
    /// Each proven item's destination entry (size, SHA-256, destination ETag and mtime).
    pub entries: Vec<ShardEntry>,
}

/// Which partition a worker runs: `I/N`, or `auto/N` (the index from the scheduler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSpec {
    /// The partition's index, `0..count`.
    pub index: usize,
    /// How many partitions the run has; must be the plan's.
    pub count: usize,
}

/// The environment variables a scheduler names a worker's index in: Kubernetes Indexed Jobs,
/// then Slurm job arrays.
pub const INDEX_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"];

impl PartitionSpec {
    /// Parse `I/N` or `auto/N`; `auto` (or an empty index) reads the first set variable of
    /// [`INDEX_VARIABLES`] through `env`.
    pub fn parse(s: &str, env: impl Fn(&str) -> Option<String>) -> std::result::Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not I/N (e.g. 2/4, or auto/4)"))?;
        let count: usize = n
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{n:?} is not a partition count (at least 1)"))?;
        let i = i.trim();
        let (index_text, from) = if i.is_empty() || i == "auto" {
            INDEX_VARIABLES
                .iter()
                .find_map(|v| env(v).map(|x| (x, *v)))
                .ok_or_else(|| format!("{s:?}: neither {} is set", INDEX_VARIABLES.join(" nor ")))?
        } else {
            (i.to_string(), "the index")
        };
        let index: usize = index_text
            .trim()
            .parse()
            .map_err(|_| format!("{from} {index_text:?} is not a partition index"))?;
        if index >= count {
            return Err(format!("partition {index} is not below the count {count}"));
        }
        Ok(PartitionSpec { index, count })
    }
}

/// Assign items (path, size) to `n` partitions balanced by bytes: largest first, each to the
/// partition with the fewest bytes so far (the lowest index on a tie); equal sizes in path
/// order. The same items always get the same assignment. Returns each item's partition.
pub fn assign(items: &[(&str, u64)], n: usize) -> Vec<usize> {
    let n = n.max(1);
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[b].1.cmp(&items[a].1).then(items[a].0.cmp(items[b].0)));
    let mut load = vec![0u64; n];
    let mut counts = vec![0usize; n];
    let mut out = vec![0; items.len()];
    for k in order {
        // Fewest bytes, then fewest items (so zero-byte objects spread too), then lowest index.
        let p = (0..n)
            .min_by_key(|&p| (load[p], counts[p], p))
            .expect("n is at least 1");
        load[p] += items[k].1;
        counts[p] += 1;
        out[k] = p;
    }
    out
}

/// A plan ID: 1-64 of `[A-Za-z0-9._-]`, not starting with a dot (it is a folder name).
pub fn check_plan_id(id: &str) -> std::result::Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a plan ID (1-64 letters, digits, '.', '_' or '-')",
            crate::display::escape_controls(id)
        ))
    }
}

/// A fresh random plan ID (12 hex digits).
pub(crate) fn new_plan_id() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// The key of a plan file, relative to the dataset root.
pub(crate) fn plan_rel(id: &str, file: &str) -> String {
    format!("{PLANS_DIR}/{id}/{file}")
}

/// The key of partition `i`'s items file.
pub(crate) fn items_rel(id: &str, i: usize) -> String {
    plan_rel(id, &format!("items/{i}.json"))
}

/// The key of partition `i`'s receipt.
pub(crate) fn receipt_rel(id: &str, i: usize) -> String {
    plan_rel(id, &format!("receipts/{i}.json"))
}

/// Write a plan file (unconditionally: a re-run writes the same content).
pub(crate) async fn put_json<T: Serialize>(ds: &Dataset, rel: &str, value: &T) -> Result<()> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| Error::InvalidPlan {
        location: format!("{}/{rel}", ds.url),
        reason: e.to_string(),
    })?;
    let payload = PutPayload::from(body);
    let key = ds.key(rel);
    retry(&RetryPolicy::control_plane(), "write plan file", |_| async {
        ds.store
            .put(&key, payload.clone())
            .await
            .map(|_| ())
            .map_err(|e| Error::store(rel, "write plan file", e))
    })
    .await
}

/// Read a plan file; `Ok(None)` when it is not there.
pub(crate) async fn get_json<T: DeserializeOwned + Send + 'static>(
    ds: &Dataset,
    rel: &str,
) -> Result<Option<T>> {
    let key = ds.key(rel);
    let location = format!("{}/{rel}", ds.url);
    let bytes = retry(&RetryPolicy::control_plane(), "read plan file", |_| async {
        match ds.store.get(&key).await {
            Ok(r) if r.meta.size > MAX_PLAN_FILE_BYTES => Err(Error::InvalidPlan {
                location: location.clone(),
                reason: format!("{} bytes, larger than the bound", r.meta.size),
            }),
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| Error::store(rel, "read plan file", e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(rel, "read plan file", e)),
        }
    })
    .await?;
    let Some(bytes) = bytes else { return Ok(None) };
    let value = tokio::task::spawn_blocking(move || serde_json::from_slice::<T>(&bytes))
        .await
        .map_err(|e| Error::InvalidPlan {
            location: location.clone(),
            reason: format!("parsing stopped: {e}"),
        })?
        .map_err(|e| Error::InvalidPlan {
            location: location.clone(),
            reason: e.to_string(),
        })?;
    Ok(Some(value))
}

/// Read a plan's head, checking its format; [`Error::PlanNotFound`] when there is none.
pub async fn load_head(dst: &Dataset, id: &str) -> Result<PlanHead> {
    let rel = plan_rel(id, "plan.json");
    let location = format!("{}/{rel}", dst.url);
    check_plan_id(id).map_err(|reason| Error::InvalidPlan {
        location: location.clone(),
        reason,
    })?;
    let head: PlanHead = get_json(dst, &rel).await?.ok_or(Error::PlanNotFound {
        location: location.clone(),
    })?;
    if head.format != PLAN_FORMAT || head.shares.len() != head.partitions || head.id != id {
        return Err(Error::InvalidPlan {
            location,
            reason: format!("not a {PLAN_FORMAT} plan head for ID {id}"),
        });
    }
    Ok(head)
}

impl PlanHead {
    /// A new head in the current format.
    #[allow(clippy::too_many_arguments)] // the head's fields, named at the one call
    pub(crate) fn new(
        id: String,
        src: &Dataset,
        src_digest: String,
        dst: &Dataset,
        dst_version: Option<ManifestVersion>,
        shares: Vec<Share>,
        same: usize,
    ) -> PlanHead {
        PlanHead {
            format: PLAN_FORMAT.into(),
            id,
            src: src.url.clone(),
            source_identity: src.identity(),
            src_digest,
            dst: dst.url.clone(),
            dst_version,
            partitions: shares.len(),
            shares,
            same,
        }
    }

    /// The run's partition count must be the plan's.
    pub fn check_count(&self, dst: &Dataset, count: usize) -> Result<()> {
        if count == self.partitions {
            return Ok(());
        }
        Err(Error::InvalidPlan {
            location: format!("{}/{}", dst.url, plan_rel(&self.id, "plan.json")),
            reason: format!("made for {} partitions, not {count}", self.partitions),
        })
    }
}

/// The ETag/version of the destination manifest now (`None`: there is none).
pub(crate) async fn manifest_version_now(dst: &Dataset) -> Result<Option<ManifestVersion>> {
    retry(&RetryPolicy::control_plane(), "read manifest", |_| async {
        match dst.store.head(&dst.manifest_key()).await {
            Ok(meta) => Ok(Some(ManifestVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(crate::layout::MANIFEST_KEY, "read manifest", e)),
        }
    })
    .await
}

/// Refuse when the destination manifest is no longer the version the plan was made against.
pub(crate) async fn check_unmoved(dst: &Dataset, head: &PlanHead) -> Result<()> {
    let now = manifest_version_now(dst).await?;
    let same = match (&now, &head.dst_version) {
        (None, None) => true,
        (Some(a), Some(b)) => a.e_tag == b.e_tag && (a.version.is_none() || a.version == b.version),
        _ => false,
    };
    if same {
        return Ok(());
    }
    Err(Error::PlanStale {
        plan: head.id.clone(),
        location: dst.manifest_location(),
    })
}

/// Remove a plan's folder (after its commit). Best effort: a leftover file is only clutter.
pub(crate) async fn remove_plan(dst: &Dataset, id: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let prefix: Path = dst.key(&format!("{PLANS_DIR}/{id}"));
    let mut failed = Vec::new();
    let keys: Vec<Path> = match dst
        .store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
    {
        Ok(k) => k,
        Err(e) => return vec![format!("could not list plan {id} to remove it: {e}")],
    };
    // The head first: a half-removed plan is then no plan at all.
    let head = dst.key(&plan_rel(id, "plan.json"));
    let mut ordered: Vec<&Path> = keys.iter().filter(|k| **k == head).collect();
    ordered.extend(keys.iter().filter(|k| **k != head));
    for k in ordered {
        if let Err(e) = dst.store.delete(k).await {
            failed.push(format!("could not remove {k}: {e}"));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_balances_bytes_and_is_deterministic() {
        let sizes: Vec<(String, u64)> = (0..200u64)
            .map(|i| (format!("s/{i:03}.parquet"), 1000 + (i * 7919) % 50_000))
            .collect();
        let items: Vec<(&str, u64)> = sizes.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        let a = assign(&items, 4);
        assert_eq!(a, assign(&items, 4));
        let total: u64 = items.iter().map(|i| i.1).sum();
        for p in 0..4 {
            let mine: u64 = items
                .iter()
                .zip(&a)
                .filter(|(_, q)| **q == p)
                .map(|(i, _)| i.1)
                .sum();
            let share = mine as f64 / total as f64;
            assert!((0.20..=0.30).contains(&share), "partition {p}: {share}");
        }
    }

    #[test]
    fn partition_spec_reads_the_schedulers_index() {
        let none = |_: &str| None;
        assert_eq!(
            PartitionSpec::parse("2/4", none),
            Ok(PartitionSpec { index: 2, count: 4 })
        );
        assert!(PartitionSpec::parse("4/4", none).is_err());
        assert!(PartitionSpec::parse("auto/4", none).is_err());
        assert!(PartitionSpec::parse("1/0", none).is_err());
        let slurm = |v: &str| (v == "SLURM_ARRAY_TASK_ID").then(|| "3".to_string());
        assert_eq!(PartitionSpec::parse("auto/4", slurm).unwrap().index, 3);
        let both = |v: &str| Some(if v == "JOB_COMPLETION_INDEX" { "1" } else { "3" }.to_string());
        assert_eq!(PartitionSpec::parse("/4", both).unwrap().index, 1);
    }

    #[test]
    fn plan_ids_are_folder_names() {
        assert!(check_plan_id("run-7.a_b").is_ok());
        assert!(check_plan_id("../x").is_err());
        assert!(check_plan_id("").is_err());
        assert!(check_plan_id(".hidden").is_err());
    }
}
