//! Proof that a destination object holds given bytes.
//!
//! Servers differ in what they check (see DESIGN.md), so shardsync's own hashing is the proof:
//! after a copy, `size` verification checks that the destination's listing shows the size and
//! the ETag the PUT returned, and where the listing has no ETag it reads the object's size and
//! the SHA-256 we stored in its metadata (HEAD); `deep` re-reads and re-hashes the bytes.
//! The same proofs settle `Unproven` plan items (objects landed by a killed sync, or rewritten
//! out of band) without copying them again.

use std::sync::Arc;

use object_store::{Attribute, GetOptions, ObjectStore};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::events::Events;
use crate::listing::ObjectStat;
use crate::manifest::build::hash_stream;
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
#[non_exhaustive]
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
pub async fn rehash(ds: &Dataset, path: &str, progress: &Events) -> Result<(ObjectStat, String)> {
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
        let (stat, actual) = rehash(ds, path, &Events::none()).await?;
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
    progress: &Events,
) -> Result<Option<(ObjectStat, bool)>> {
    if mode == VerifyMode::Size && ds.capabilities.user_metadata {
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

/// The SHA-256 request checksum the probe sends: base64 of the SHA-256 of other bytes than
/// the probe's, so a server that validates checksums must refuse the PUT.
const WRONG_SHA256_B64: &str = "e/Y/MCO5/dXgIH2gBazZuArBqgaS5oGZFtY50dVZ+BI=";

/// Client options whose every request carries [`WRONG_SHA256_B64`] as `x-amz-checksum-sha256`.
pub(crate) fn wrong_checksum_client() -> object_store::ClientOptions {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-checksum-sha256",
        http::HeaderValue::from_static(WRONG_SHA256_B64),
    );
    object_store::ClientOptions::new().with_default_headers(headers)
}

/// A CRC64NVME request checksum no probe body has (base64 of eight zero bytes).
const WRONG_CRC64NVME_B64: &str = "AAAAAAAAAAA=";

/// Client options whose every request carries [`WRONG_CRC64NVME_B64`] as
/// `x-amz-checksum-crc64nvme`.
pub(crate) fn wrong_crc64nvme_client() -> object_store::ClientOptions {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-checksum-crc64nvme",
        http::HeaderValue::from_static(WRONG_CRC64NVME_B64),
    );
    object_store::ClientOptions::new().with_default_headers(headers)
}

/// An S3 dataset's store again, sending CRC64NVME request checksums over unsigned payloads.
/// With the default SHA-256 request checksum, object_store hashes every byte for the checksum
/// header and the payload signature: a second SHA-256 pass beside our own. CRC64NVME costs a
/// small fraction of that, and where the server refuses a wrong one it guards the bytes on the
/// wire as well, so the PUT's ETag still proves our bytes landed.
pub(crate) struct CrcPuts {
    /// The store shard bytes go through.
    pub(crate) store: Arc<dyn object_store::ObjectStore>,
    /// A twin whose PUTs carry a wrong CRC64NVME, to ask whether the server checks it.
    pub(crate) probe: Arc<dyn object_store::ObjectStore>,
}

impl std::fmt::Debug for CrcPuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrcPuts") // never the store's Debug: it may hold credentials
    }
}

/// The store shard bytes are written through, and the request checksum the server checks on
/// them (`None`: a store without request checksums, such as a local folder). CRC64NVME where
/// the server refuses a wrong one (asked once per dataset); SHA-256 otherwise.
pub(crate) async fn put_store(
    dst: &Dataset,
) -> Result<(Arc<dyn object_store::ObjectStore>, Option<&'static str>)> {
    if dst.backend != crate::store::Backend::S3 {
        return Ok((dst.store.clone(), None));
    }
    if let Some(crc) = &dst.crc_puts {
        let checks = dst
            .probed
            .validates_crc64nvme
            .get_or_try_init(|| async {
                // A server that refuses the header whatever its value (one that does not know
                // CRC64NVME) also "refuses a wrong one": it must take a right one too. Both
                // asked at once: on a long link each is a round trip or two.
                let (refuses_wrong, accepts_right) = tokio::join!(
                    ask_checksum_validation(dst, crc.probe.as_ref(), "probe-checksum-crc64nvme"),
                    accepts_crc64nvme(dst, crc.store.as_ref())
                );
                Ok::<_, Error>(refuses_wrong? && accepts_right)
            })
            .await?;
        if *checks {
            return Ok((crc.store.clone(), Some("crc64nvme")));
        }
    }
    let sha = validates_request_checksums(dst).await?;
    Ok((dst.store.clone(), sha.then_some("sha256")))
}

/// Whether a PUT with a right CRC64NVME request checksum goes through `crc_store`.
async fn accepts_crc64nvme(dst: &Dataset, crc_store: &dyn ObjectStore) -> bool {
    let key = dst.key(&crate::layout::probe_rel("probe-checksum-crc64nvme-ok"));
    let put = object_store::ObjectStoreExt::put(
        crc_store,
        &key,
        object_store::PutPayload::from_static(b"checksum probe"),
    )
    .await;
    let _ = object_store::ObjectStoreExt::delete(dst.store.as_ref(), &key).await;
    if let Err(e) = &put {
        tracing::debug!("{} refused a right CRC64NVME checksum: {e}", dst.url);
    }
    put.is_ok()
}

/// Whether the destination refuses a PUT whose SHA-256 request checksum does not match its
/// bytes. Where it does, the PUT's ETag in a listing proves our bytes landed (the server
/// checked them against the hash we computed); where it accepts them (moto does), that proof
/// is void and copies are read back instead. Asked once per dataset; stores
/// without a probe (AWS itself, local folders, memory) count as validating.
pub async fn validates_request_checksums(dst: &Dataset) -> Result<bool> {
    let Some(probe) = &dst.checksum_probe else {
        return Ok(true);
    };
    dst.probed
        .validates_checksums
        .get_or_try_init(|| ask_checksum_validation(dst, probe.as_ref(), "probe-checksum"))
        .await
        .copied()
}

/// PUT a probe object `name` with a wrong request checksum through `probe` (a twin of the
/// dataset's store) and read the server's answer.
async fn ask_checksum_validation(
    dst: &Dataset,
    probe: &dyn object_store::ObjectStore,
    name: &str,
) -> Result<bool> {
    let rel = crate::layout::probe_rel(name);
    let key = dst.key(&rel);
    // The server's answer only: the status and body object_store quotes after its mark, with
    // the probe's own key (in the URL, and in the body's `<Resource>`) taken out, since the
    // key itself says "checksum". A transport error quotes no answer.
    let refused_for_checksum = |e: &object_store::Error| {
        const MARK: &str = "Server returned non-2xx status code: ";
        let msg = e.to_string();
        let answer = msg.find(MARK).map_or("", |i| &msg[i..]);
        let answer = answer.replace(key.as_ref(), "").to_ascii_lowercase();
        ["baddigest", "checksum", "digest"]
            .iter()
            .any(|w| answer.contains(w))
    };
    // A lost answer or a server away for a moment is no answer: ask again, and if it cannot
    // be asked, fail rather than report (and remember) that the server accepts bad checksums.
    let policy = crate::retry::RetryPolicy::control_plane();
    let put = crate::retry::retry(&policy, "checksum probe", |_| async {
        let put = object_store::ObjectStoreExt::put(
            probe,
            &key,
            object_store::PutPayload::from_static(b"checksum probe"),
        )
        .await;
        match put {
            Err(e)
                if !refused_for_checksum(&e)
                    && crate::retry::classify_store(&e) == crate::retry::Failure::Transient =>
            {
                Err(Error::store(rel.clone(), "checksum probe", e))
            }
            answer => Ok(answer),
        }
    })
    .await;
    // s3s-fs stores the bytes before it refuses them: remove the probe either way.
    let _ = object_store::ObjectStoreExt::delete(dst.store.as_ref(), &key).await;
    let validates = match put? {
        Ok(_) => false,
        Err(e) => {
            let refused = refused_for_checksum(&e);
            if !refused {
                tracing::debug!("checksum probe on {} failed for another reason: {e}", dst.url);
            }
            // Refused for another reason, we cannot tell: assume the weaker case.
            refused
        }
    };
    Ok(validates)
}
