//! Building a manifest: list, reuse what the previous manifest already proves, hash the rest.
//!
//! An entry is reused only when size, mtime and ETag all match the listing (those the store
//! reports); anything else is streamed once through [`StreamHasher`], which also yields the
//! Parquet footer. Hashing runs `concurrency` objects at a time; memory per object is one
//! chunk plus the kept footer tail. A `.parquet` object whose footer does not decode gets a
//! `parquet_error` in its entry; the build goes on ([`Manifest::parquet_errors`] lists them).

use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetResult, ObjectStore, ObjectStoreExt};

use super::{is_parquet_path, Manifest, ShardEntry};
use crate::error::{Error, Result};
use crate::events::{Events, Stage};
use crate::hash::{parse_footer, Footer, StreamHasher};
use crate::listing::{list_dataset, ObjectStat, SkippedKey};
use crate::store::Dataset;

/// Options for [`build_manifest`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Objects hashed at once.
    pub concurrency: usize,
    /// Where progress goes (see [`crate::events`]).
    pub events: Events,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            concurrency: 8,
            events: Events::none(),
        }
    }
}

/// What [`build_manifest`] did.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The manifest built.
    pub manifest: Manifest,
    /// Entries taken from the previous manifest without reading bytes.
    pub reused: usize,
    /// Objects streamed and hashed.
    pub hashed: usize,
    /// Bytes read to hash objects whose entries could not be reused.
    pub bytes_hashed: u64,
    /// Keys the listing did not carry (see [`crate::listing`]); empty from [`build_from_listing`].
    pub skipped: Vec<SkippedKey>,
    /// Folder markers the listing dropped.
    pub folder_markers: usize,
}

/// Whether a previous entry still describes the listed object (same size, mtime and ETag).
pub fn entry_matches_stat(e: &ShardEntry, s: &ObjectStat) -> bool {
    if e.size != s.size || (e.mtime.is_none() && e.etag.is_none()) {
        return false;
    }
    let mtime_ok = e.mtime.is_none_or(|m| m == s.mtime);
    let etag_ok = match (&e.etag, &s.etag) {
        (Some(a), Some(b)) => a == b,
        (None, None) => true,
        _ => false,
    };
    mtime_ok && etag_ok
}

/// List `ds` and produce its manifest, reusing unchanged entries of `previous`.
pub async fn build_manifest(
    ds: &Dataset,
    previous: Option<&Manifest>,
    opts: &BuildOptions,
) -> Result<BuildOutcome> {
    let listing = list_dataset(ds).await?;
    let mut built = build_from_listing(ds, &listing.objects, previous, opts).await?;
    built.skipped = listing.skipped;
    built.folder_markers = listing.folder_markers;
    Ok(built)
}

/// As [`build_manifest`], over a listing already taken.
pub async fn build_from_listing(
    ds: &Dataset,
    listing: &[ObjectStat],
    previous: Option<&Manifest>,
    opts: &BuildOptions,
) -> Result<BuildOutcome> {
    let mut entries = Vec::with_capacity(listing.len());
    let mut to_hash = Vec::new();
    for stat in listing {
        match previous.and_then(|p| p.get(&stat.path)) {
            Some(e) if entry_matches_stat(e, stat) => entries.push(e.clone()),
            _ => to_hash.push(stat.clone()),
        }
    }
    let reused = entries.len();
    let bytes_to_hash: u64 = to_hash.iter().map(|s| s.size).sum();
    opts.events
        .start(Stage::Hashing, to_hash.len() as u64, bytes_to_hash);
    // Owned items keep the future `Send`, so a caller can spawn a sync on its own task.
    let hashed: Vec<ShardEntry> = futures::stream::iter(to_hash.iter().cloned())
        .map(|stat| async move {
            let e = hash_object(ds, &stat, &opts.events).await?;
            opts.events.object_done(&stat.path);
            Ok::<_, Error>(e)
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect()
        .await?;
    opts.events.finish();
    let n_hashed = hashed.len();
    entries.extend(hashed);
    let manifest = Manifest::new(ds.url.clone(), entries)?;
    Ok(BuildOutcome {
        manifest,
        reused,
        hashed: n_hashed,
        bytes_hashed: bytes_to_hash,
        skipped: Vec::new(),
        folder_markers: 0,
    })
}

/// Stream one object, hash it, and read its Parquet footer if it is a `.parquet` file.
pub async fn hash_object(ds: &Dataset, stat: &ObjectStat, progress: &Events) -> Result<ShardEntry> {
    let key = ds.key(&stat.path);
    let res = ds
        .store
        .get_opts(&key, GetOptions::default())
        .await
        .map_err(|e| Error::store(stat.path.clone(), "read", e))?;
    let hashed = hash_stream(&stat.path, res, progress).await?;
    let mut entry = ShardEntry {
        path: stat.path.clone(),
        size: hashed.size,
        sha256: hashed.sha256.clone(),
        mtime: Some(stat.mtime),
        etag: stat.etag.clone(),
        rows: None,
        row_groups: None,
        schema: None,
        parquet_error: None,
    };
    if is_parquet_path(&stat.path) {
        record_footer(&mut entry, parquet_facts(ds, &stat.path, &hashed).await, false)?;
    }
    Ok(entry)
}

/// Put a footer read's outcome into `entry`: its facts, or the reason it has none as
/// `parquet_error` (Parquet is knowledge, not a gate). A store error stays an error, and so does
/// an unreadable footer when `strict` (`--strict-parquet`).
pub(crate) fn record_footer(
    entry: &mut ShardEntry,
    facts: Result<crate::hash::ParquetFacts>,
    strict: bool,
) -> Result<()> {
    match facts {
        Ok(f) => entry.set_footer(Ok(f)),
        Err(Error::InvalidParquet { reason, .. }) if !strict => entry.set_footer(Err(reason)),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Drain a GET body through a hasher.
pub(crate) async fn hash_stream(
    path: &str,
    res: GetResult,
    progress: &Events,
) -> Result<crate::hash::Hashed> {
    let mut hasher = StreamHasher::new();
    let mut stream = res.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::store(path.to_string(), "read", e))?;
        progress.add_bytes(chunk.len() as u64);
        hasher.update(&chunk);
    }
    Ok(hasher.finish())
}

/// Parquet facts from the kept tail, or from one ranged read when the footer is larger.
/// An unreadable footer is [`Error::InvalidParquet`]; a failed read is a store error.
pub(crate) async fn parquet_facts(
    ds: &Dataset,
    path: &str,
    hashed: &crate::hash::Hashed,
) -> Result<crate::hash::ParquetFacts> {
    let invalid = |reason: String| Error::InvalidParquet {
        path: path.to_string(),
        reason,
    };
    match hashed.parquet().map_err(invalid)? {
        Footer::Parsed(f) => Ok(f),
        Footer::NeedRange(range) => {
            let bytes = ds
                .store
                .get_range(&ds.key(path), range)
                .await
                .map_err(|e| Error::store(path.to_string(), "read footer", e))?;
            parse_footer(&bytes).map_err(invalid)
        }
    }
}
