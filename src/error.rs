//! The library's error type: one variant per situation, each naming the object it concerns.
//!
//! The binary maps every variant to exit code 2; the message is what a user reads, so it says
//! which shard and why, and never carries a credential (store URLs are redacted before they get
//! here, and object_store's own errors do not include keys).

use std::path::PathBuf;

/// Errors from shardsync's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL could not be parsed or names a scheme we do not support.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A `KEY=VALUE` store option was malformed or unknown to the backend.
    #[error("invalid store option {key:?} for {scheme}: {reason}")]
    InvalidOption {
        scheme: String,
        key: String,
        reason: String,
    },

    /// A store operation failed; `path` is the object, relative to the dataset root.
    #[error("{path}: {op} failed: {source}")]
    Store {
        path: String,
        op: &'static str,
        #[source]
        source: object_store::Error,
    },

    /// The manifest is not something we can trust: bad JSON, unknown format, hostile entry.
    #[error("invalid manifest {location}: {reason}")]
    InvalidManifest { location: String, reason: String },

    /// A shard path in a manifest or listing is unsafe or malformed.
    #[error("invalid shard path {path:?}: {reason}")]
    InvalidShardPath { path: String, reason: String },

    /// The bytes read do not hash to what the plan expected. Nothing was landed.
    #[error("{path}: SHA-256 mismatch: expected {expected}, got {actual} (not landed)")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    /// The object's size differs from the one planned.
    #[error("{path}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },

    /// The source object changed after it was listed; its new bytes are not the planned ones.
    #[error("{path}: source object changed during the sync (not landed; re-run to pick up the new version)")]
    SourceChanged { path: String },

    /// A `.parquet` object whose footer cannot be read.
    #[error("{path}: not a valid Parquet file: {reason}")]
    InvalidParquet { path: String, reason: String },

    /// The destination manifest changed between the start of the sync and its commit.
    #[error("destination changed during sync: {location} was modified by another writer; nothing was committed, re-run the sync")]
    ManifestConflict { location: String },

    /// Some shards failed; the others completed. Each failure is in the list.
    #[error("{} shard(s) failed: {}", failures.len(), summarize(failures))]
    ShardsFailed { failures: Vec<(String, String)> },

    /// Local I/O (report files, demo data).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The operation was cancelled (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

fn summarize(failures: &[(String, String)]) -> String {
    let mut s = failures
        .iter()
        .take(5)
        .map(|(p, e)| format!("{p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > 5 {
        s.push_str(&format!("; and {} more", failures.len() - 5));
    }
    s
}

impl Error {
    pub(crate) fn store(path: impl Into<String>, op: &'static str, source: object_store::Error) -> Self {
        Error::Store {
            path: path.into(),
            op,
            source,
        }
    }

    /// True when retrying the same operation may succeed (network, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store { source, .. } => matches!(
                source,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
