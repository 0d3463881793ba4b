//! Listing a dataset: every object under the root except `_shardsync/`, validated and sorted.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectMeta;

use crate::error::{Error, Result};
use crate::manifest::{is_meta_path, validate_path};
use crate::store::Dataset;

/// An object as the store lists it, path relative to the dataset root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStat {
    pub path: String,
    pub size: u64,
    pub mtime: DateTime<Utc>,
    pub etag: Option<String>,
}

impl ObjectStat {
    pub(crate) fn from_meta(ds: &Dataset, meta: &ObjectMeta) -> Option<ObjectStat> {
        Some(ObjectStat {
            path: ds.relative(&meta.location)?,
            size: meta.size,
            mtime: meta.last_modified,
            etag: meta.e_tag.clone(),
        })
    }
}

/// List the dataset (nested prefixes included), sorted by path. Paths that are unsafe to carry
/// to another store are refused by name.
pub async fn list_dataset(ds: &Dataset) -> Result<Vec<ObjectStat>> {
    let prefix = if ds.root.as_ref().is_empty() {
        None
    } else {
        Some(&ds.root)
    };
    let metas: Vec<ObjectMeta> = ds
        .store
        .list(prefix)
        .try_collect()
        .await
        .map_err(|e| Error::store(ds.url.clone(), "list", e))?;
    let mut out = Vec::with_capacity(metas.len());
    for m in &metas {
        let Some(stat) = ObjectStat::from_meta(ds, m) else {
            continue;
        };
        if is_meta_path(&stat.path) {
            continue;
        }
        validate_path(&stat.path)?;
        out.push(stat);
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(w) = out.windows(2).find(|w| w[0].path == w[1].path) {
        return Err(Error::InvalidShardPath {
            path: w[0].path.clone(),
            reason: "listed twice by the store".into(),
        });
    }
    Ok(out)
}
