//! Proof that a destination object holds given bytes.
//!
//! Servers differ in what they check (see DESIGN.md), so shardsync's own hashing is the proof:
//! after a copy, `size` verification checks that the destination's listing shows the size and
//! the ETag the PUT returned, and where the listing has no ETag it reads the object's size and
//! the SHA-256 we stored in its metadata (HEAD); `deep` re-reads and re-hashes the bytes.
//! The same proofs settle `Unproven` plan items (objects landed by a killed sync, or rewritten
//! out of band) without copying them again.

use object_store::{Attribute, GetOptions, ObjectStore};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::listing::ObjectStat;
use crate::manifest::build::hash_stream;
use crate::progress::Progress;
use crate::store::Dataset;
use crate::transfer::SHA256_METADATA_KEY;

/// How hard to check a destination object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Size, plus the stored SHA-256 metadata where the backend keeps it.
    #[default]
    Size,
    /// Re-read and re-hash every byte.
    Deep,
}

/// Which proof was made for an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// The destination's listing after the copies shows the object's size and the ETag its PUT
    /// was answered with: it is the very object written (whose bytes the PUT's SHA-256
    /// request checksum had the server check), not one written before or since.
    SizeAndEtag,
    /// Size matched and the stored SHA-256 metadata matched.
    SizeAndMetadata,
    /// Size matched; the backend keeps no metadata (bytes were hashed in flight).
    Size,
    /// The bytes were read back and hashed.
    Rehash,
}

/// A destination object's stat and the SHA-256 recorded in its metadata, if any.
pub async fn head_with_sha(ds: &Dataset, path: &str) -> Result<Option<(ObjectStat, Option<String>)>> {
    let opts = GetOptions {
        head: true,
        ..Default::default()
    };
    match ds.store.get_opts(&ds.key(path), opts).await {
        Ok(res) => {
            let sha = res
                .attributes
                .get(&Attribute::Metadata(SHA256_METADATA_KEY.into()))
                .map(|v| v.as_ref().to_string());
            let stat = ObjectStat {
                path: path.to_string(),
                size: res.meta.size,
                mtime: res.meta.last_modified,
                etag: res.meta.e_tag.clone(),
            };
            Ok(Some((stat, sha)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(path, "stat", e)),
    }
}

/// Read an object back and hash it; returns its stat (as served) and SHA-256.
pub async fn rehash(ds: &Dataset, path: &str, progress: &Progress) -> Result<(ObjectStat, String)> {
    let res = ds
        .store
        .get_opts(&ds.key(path), GetOptions::default())
        .await
        .map_err(|e| Error::store(path, "read back", e))?;
    let stat = ObjectStat {
        path: path.to_string(),
        size: res.meta.size,
        mtime: res.meta.last_modified,
        etag: res.meta.e_tag.clone(),
    };
    let hashed = hash_stream(path, res, progress).await?;
    Ok((stat, hashed.sha256))
}

/// Check that a just-written object is what was sent. Returns its stat and the proof made.
pub async fn verify_landed(
    ds: &Dataset,
    path: &str,
    size: u64,
    sha256: &str,
    mode: VerifyMode,
) -> Result<(ObjectStat, Proof)> {
    if mode == VerifyMode::Deep {
        let (stat, actual) = rehash(ds, path, &Progress::hidden()).await?;
        if stat.size != size {
            return Err(Error::SizeMismatch {
                path: path.into(),
                expected: size,
                actual: stat.size,
            });
        }
        if actual != sha256 {
            return Err(Error::HashMismatch {
                path: path.into(),
                expected: sha256.into(),
                actual,
            });
        }
        return Ok((stat, Proof::Rehash));
    }
    let Some((stat, stored)) = head_with_sha(ds, path).await? else {
        return Err(Error::store(
            path,
            "verify",
            object_store::Error::NotFound {
                path: path.into(),
                source: "object absent right after it was written".into(),
            },
        ));
    };
    if stat.size != size {
        return Err(Error::SizeMismatch {
            path: path.into(),
            expected: size,
            actual: stat.size,
        });
    }
    match stored {
        Some(s) if s == sha256 => Ok((stat, Proof::SizeAndMetadata)),
        Some(s) => Err(Error::HashMismatch {
            path: path.into(),
            expected: sha256.into(),
            actual: format!("{s} (stored metadata)"),
        }),
        None => Ok((stat, Proof::Size)),
    }
}

/// Decide whether a destination object of the right size holds `sha256`, as cheaply as the
/// mode allows: the stored metadata first (size mode), the bytes otherwise.
/// Returns the object's stat and whether it matches.
pub async fn prove_same(
    ds: &Dataset,
    path: &str,
    sha256: &str,
    mode: VerifyMode,
    progress: &Progress,
) -> Result<Option<(ObjectStat, bool)>> {
    if mode == VerifyMode::Size && ds.backend.supports_metadata() {
        match head_with_sha(ds, path).await? {
            None => return Ok(None),
            Some((stat, Some(stored))) => return Ok(Some((stat, stored == sha256))),
            Some((_, None)) => {}
        }
    }
    match rehash(ds, path, progress).await {
        Ok((stat, actual)) => Ok(Some((stat, actual == sha256))),
        Err(Error::Store {
            source: object_store::Error::NotFound { .. },
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}
