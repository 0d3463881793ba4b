//! The dataset's own files: everything shardsync keeps inside a dataset, under `_shardsync/`.
//!
//! The layout belongs to the dataset, not to the store that holds it: a store only reads and
//! writes keys, while what those keys mean (the manifest the conditional commit swaps, the lease
//! beside it, the probes' scratch objects) is decided here, in one place. Nothing under
//! `_shardsync/` is ever listed as a shard, copied, or deleted by `--delete`.

use object_store::path::Path;

use crate::store::Dataset;

/// Where shardsync keeps its own files inside a dataset. Nothing under it is a shard.
pub const META_DIR: &str = "_shardsync";
/// The manifest's key relative to the dataset root.
pub const MANIFEST_KEY: &str = "_shardsync/manifest.json";
/// The lease's key relative to the dataset root.
pub const LOCK_KEY: &str = "_shardsync/lock.json";

/// Whether a key relative to the dataset root belongs to shardsync rather than the dataset.
pub fn is_meta_path(rel: &str) -> bool {
    rel.strip_prefix(META_DIR)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A fresh key for a probe's scratch object (`what` names the probe); random, so a retried
/// write of it can only meet our own.
pub(crate) fn probe_rel(what: &str) -> String {
    format!("{META_DIR}/{what}-{:016x}", rand::random::<u64>())
}

impl Dataset {
    /// The store key of this dataset's manifest.
    pub fn manifest_key(&self) -> Path {
        self.key(MANIFEST_KEY)
    }

    /// The store key of this dataset's lease.
    pub(crate) fn lock_key(&self) -> Path {
        self.key(LOCK_KEY)
    }

    /// The manifest's URL as messages show it.
    pub(crate) fn manifest_location(&self) -> String {
        format!("{}/{MANIFEST_KEY}", self.url)
    }
}
