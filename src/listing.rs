//! Listing a dataset: every object under the root except `_shardsync/`, validated and sorted,
//! with the keys that are not carried set aside by name rather than failing the whole listing.
//!
//! Keys as stores hold them:
//! - **Folder markers** (zero-byte `dir/` keys that consoles create) are not objects of the
//!   dataset. object_store lists one on S3 as a zero-byte `dir` (it strips the trailing `/`),
//!   whose GET then answers 404, so a listed zero-byte object that a HEAD cannot find is a
//!   marker and is dropped. (s3s-fs stores markers as directories and never lists them.)
//! - **Keys we do not carry** (a backslash, a C1 control character, longer than 1024 bytes)
//!   are listed in [`Listing::skipped`]; the rest of the dataset still syncs, and `--strict`
//!   makes them fatal.
//! - A key object_store cannot represent at all (`a//b`, a `.` or `..` segment on S3, GCS or
//!   Azure; a file name with an ASCII control character in a local folder) ends object_store's
//!   listing there: S3 loses the whole page, and a local walk stops. On S3 the dataset is then
//!   listed again with a raw ListObjectsV2 (`s3_control`), which yields the same
//!   `ObjectMeta` object_store would for every other key, and the unrepresentable keys join
//!   [`Listing::skipped`]. Elsewhere it is fatal, naming the key, since syncing a partial
//!   listing would copy (and with `--delete` prune to) a partial dataset.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};

use crate::display::escape_controls;
use crate::error::{Error, Result};
use crate::manifest::{is_meta_path, validate_path};
use crate::store::{Backend, Dataset};

/// An object as the store lists it, path relative to the dataset root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStat {
    /// Path relative to the dataset root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modified, as the store reports it.
    pub mtime: DateTime<Utc>,
    /// The store's ETag, where it gives one.
    pub etag: Option<String>,
}

impl ObjectStat {
    pub(crate) fn from_meta(ds: &Dataset, meta: &ObjectMeta) -> Option<ObjectStat> {
        Some(ObjectStat {
            path: ds.relative(&meta.location)?,
            size: meta.size,
            mtime: meta.last_modified,
            etag: match ds.backend {
                crate::store::Backend::Azure => meta.e_tag.as_deref().map(quoted_etag),
                _ => meta.e_tag.clone(),
            },
        })
    }
}

/// An Azure ETag in the quoted form HTTP headers give it. List Blobs answers `0x8D…` where
/// the PUT and HEAD of the same blob say `"0x8D…"`; quoting the listing's makes them compare
/// equal. (S3's listings quote them already; local folders and memory stores quote none.)
fn quoted_etag(e: &str) -> String {
    if e.starts_with('"') || e.starts_with("W/\"") {
        e.to_string()
    } else {
        format!("\"{e}\"")
    }
}

/// A key the listing did not carry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key relative to the dataset root, raw (escape it before showing it).
    pub key: String,
    /// Why it is not carried.
    pub reason: String,
}

/// What [`list_dataset`] found.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The dataset's objects, sorted by path.
    pub objects: Vec<ObjectStat>,
    /// Keys under the root that are not carried (see the module doc).
    pub skipped: Vec<SkippedKey>,
    /// Folder markers seen and dropped.
    pub folder_markers: usize,
}

/// How many skipped keys a message names before it says "and N more".
const NAMED: usize = 10;

impl Listing {
    /// A one-line warning naming the skipped keys (escaped), if there are any.
    pub fn warning(&self, ds: &Dataset) -> Option<String> {
        skipped_warning(ds, &self.skipped)
    }

    /// With `strict`, skipped keys are an error naming them.
    pub fn check_strict(&self, ds: &Dataset, strict: bool) -> Result<()> {
        check_strict(ds, &self.skipped, strict)
    }
}

/// A one-line warning naming skipped keys (escaped), if there are any.
pub fn skipped_warning(ds: &Dataset, skipped: &[SkippedKey]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    Some(format!(
        "{}: {} key(s) not carried: {}",
        ds.url,
        skipped.len(),
        named(skipped)
    ))
}

/// With `strict`, skipped keys are an error naming them.
pub fn check_strict(ds: &Dataset, skipped: &[SkippedKey], strict: bool) -> Result<()> {
    if strict && !skipped.is_empty() {
        return Err(Error::UnsupportedKeys {
            location: ds.url.clone(),
            count: skipped.len(),
            keys: named(skipped),
        });
    }
    Ok(())
}

fn named(skipped: &[SkippedKey]) -> String {
    let mut s = skipped
        .iter()
        .take(NAMED)
        .map(|k| format!("{:?} ({})", k.key, k.reason))
        .collect::<Vec<_>>()
        .join(", ");
    if skipped.len() > NAMED {
        s.push_str(&format!(", and {} more", skipped.len() - NAMED));
    }
    s
}

/// List the dataset (nested prefixes included), sorted by path; see the module doc for the keys
/// that are set aside.
/// A listing cut midway (a body truncated, a connection lost between pages) is listed again.
pub async fn list_dataset(ds: &Dataset) -> Result<Listing> {
    let policy = crate::retry::RetryPolicy::control_plane();
    crate::retry::retry(&policy, &format!("list {}", ds.url), |_| list_once(ds)).await
}

async fn list_once(ds: &Dataset) -> Result<Listing> {
    let prefix = if ds.root.as_ref().is_empty() {
        None
    } else {
        Some(&ds.root)
    };
    let mut listing = Listing::default();
    let (metas, unrepresentable) = list_metas(ds, prefix).await?;
    listing.skipped = unrepresentable;
    for m in &metas {
        let Some(stat) = ObjectStat::from_meta(ds, m) else {
            continue;
        };
        if is_meta_path(&stat.path) {
            continue;
        }
        match validate_path(&stat.path) {
            Ok(()) => listing.objects.push(stat),
            Err(Error::InvalidShardPath { reason, .. }) => listing.skipped.push(SkippedKey {
                key: stat.path,
                reason,
            }),
            Err(e) => return Err(e),
        }
    }
    listing.objects.sort_by(|a, b| a.path.cmp(&b.path));
    drop_folder_markers(ds, &mut listing).await?;
    if let Some(w) = listing.objects.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(Error::InvalidShardPath {
            path: w[0].path.clone(),
            reason: "listed twice by the store".into(),
        });
    }
    listing.skipped.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(listing)
}

/// Everything under the root as object_store lists it; on S3, when object_store stops at a key
/// it cannot represent, everything as a raw listing sees it, with those keys set aside.
async fn list_metas(ds: &Dataset, prefix: Option<&Path>) -> Result<(Vec<ObjectMeta>, Vec<SkippedKey>)> {
    let mut stream = ds.store.list(prefix);
    let mut metas: Vec<ObjectMeta> = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(m) => metas.push(m),
            Err(object_store::Error::InvalidPath { source }) => {
                let (key, reason) = unrepresentable(ds, &source);
                let Some(control) = ds.s3_control.as_deref() else {
                    let only_s3 = if matches!(ds.backend, Backend::Gcs | Backend::Azure) {
                        " (shardsync lists around such keys on S3 only)"
                    } else {
                        ""
                    };
                    return Err(Error::InvalidShardPath {
                        path: key,
                        reason: format!(
                            "{reason}: object_store cannot represent this key and stops listing at \
                             it, so nothing was done{only_s3}; rename or remove it, or use a prefix \
                             without it"
                        ),
                    });
                };
                drop(stream);
                tracing::info!(
                    "{}: object_store cannot represent {:?}; listing again with raw ListObjectsV2",
                    ds.url,
                    key
                );
                return list_raw(ds, control).await;
            }
            Err(e) => return Err(Error::store(ds.url.clone(), "list", e)),
        }
    }
    Ok((metas, Vec::new()))
}

/// The raw listing: representable keys become the `ObjectMeta` object_store would make
/// (`Path::parse` of the key, size, last-modified and ETag as sent), the others skipped keys.
async fn list_raw(
    ds: &Dataset,
    control: &crate::s3_control::S3Control,
) -> Result<(Vec<ObjectMeta>, Vec<SkippedKey>)> {
    let root = ds.root.as_ref();
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    let raw = control
        .list_objects(&prefix)
        .await
        .map_err(|e| Error::store(ds.url.clone(), "list", e.into()))?;
    let mut metas = Vec::with_capacity(raw.len());
    let mut skipped = Vec::new();
    for o in raw {
        match Path::parse(&o.key) {
            Ok(location) => metas.push(ObjectMeta {
                location,
                last_modified: o.last_modified,
                size: o.size,
                e_tag: o.e_tag,
                version: None,
            }),
            Err(e) => {
                let (key, reason) = unrepresentable(ds, &e);
                if !is_meta_path(&key) {
                    skipped.push(SkippedKey { key, reason });
                }
            }
        }
    }
    Ok((metas, skipped))
}

/// The key (relative to the root when it is under it) and the reason of a path object_store
/// refused while listing.
fn unrepresentable(ds: &Dataset, e: &object_store::path::Error) -> (String, String) {
    use object_store::path::Error as P;
    let raw = match e {
        P::EmptySegment { path } | P::BadSegment { path, .. } | P::NonUnicode { path, .. } => path.clone(),
        P::InvalidPath { path } | P::Canonicalize { path, .. } => path.display().to_string(),
        _ => String::new(),
    };
    let reason = match e {
        P::EmptySegment { .. } => "empty path segment".to_string(),
        P::BadSegment { .. } => "a control character or '.'/'..' name object_store cannot represent".into(),
        _ => e.to_string(),
    };
    let trimmed = raw.trim_start_matches('/');
    let root = ds.root.as_ref();
    let key = if root.is_empty() {
        trimmed
    } else {
        trimmed
            .strip_prefix(root)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(trimmed)
    };
    (key.to_string(), escape_controls(&reason).into_owned())
}

/// Drop folder markers: on S3, GCS and Azure, a zero-byte listed object that a HEAD does not
/// find (the real key ends with `/`). One HEAD per zero-byte object; those are few.
async fn drop_folder_markers(ds: &Dataset, listing: &mut Listing) -> Result<()> {
    if matches!(ds.backend, Backend::Local | Backend::Memory) {
        return Ok(());
    }
    // A marker `dir/` beside a real zero-byte `dir` is listed as `dir` twice.
    let before = listing.objects.len();
    listing
        .objects
        .dedup_by(|a, b| a.path == b.path && a.size == 0 && b.size == 0);
    listing.folder_markers += before - listing.objects.len();
    let empty: Vec<String> = listing
        .objects
        .iter()
        .filter(|o| o.size == 0)
        .map(|o| o.path.clone())
        .collect();
    let missing: Vec<String> = futures::stream::iter(empty)
        .map(|path| async move {
            match ds.store.head(&ds.key(&path)).await {
                Ok(_) => Ok(None),
                Err(object_store::Error::NotFound { .. }) => Ok(Some(path)),
                Err(e) => Err(Error::store(path, "stat", e)),
            }
        })
        .buffer_unordered(16)
        .try_filter_map(|p| async move { Ok(p) })
        .try_collect()
        .await?;
    if !missing.is_empty() {
        listing.objects.retain(|o| !missing.contains(&o.path));
        listing.folder_markers += missing.len();
    }
    Ok(())
}
