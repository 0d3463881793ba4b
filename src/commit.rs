//! Committing a destination manifest: written last, and only if nobody else wrote it meanwhile.
//!
//! ```text
//!   read manifest (version V0) ──► [interim commit: V0 minus entries about to be overwritten]
//!        ──► copy + verify shards ──► final commit against the version we last wrote
//! ```
//!
//! A reader that trusts the manifest must never see entries the store does not hold verified.
//! So the manifest is written after every shard it names has been verified, and — when a sync
//! is about to overwrite or re-create shards the current manifest names — an interim manifest
//! without those entries is committed first. A sync killed at any moment therefore leaves a
//! manifest that claims only verified bytes, and the next sync proves what already landed.
//!
//! Both writes are conditional on the version read (or, when there was none, on absence), so two
//! syncs into one destination cannot interleave: the later commit fails with
//! [`Error::ManifestConflict`]. Not every S3-compatible server enforces the condition (Garage
//! 2.5 accepts and ignores it), so [`probe_protection`] tests the destination and the report
//! says which protection was actually in force. Local folders have no compare-and-swap in
//! object_store; there the check is emulated (stat, compare, atomic rename), which narrows the
//! race to milliseconds but does not close it.

use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::layout::{probe_rel, MANIFEST_KEY};
use crate::listing::{list_dataset, ObjectStat};
use crate::manifest::build::entry_matches_stat;
use crate::manifest::compact::StoredBody;
use crate::manifest::{Manifest, StoredManifest};
use crate::retry::{retry, RetryPolicy};
use crate::store::Dataset;

/// What protects the commit against a concurrent writer on this destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CommitProtection {
    /// The store enforces If-Match / If-None-Match.
    Enforced,
    /// Checked by us just before an atomic rename (local folders).
    Emulated,
    /// The store accepts conditional writes but ignores them: concurrent syncs can interleave.
    NotEnforced,
}

impl CommitProtection {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitProtection::Enforced => "enforced",
            CommitProtection::Emulated => "emulated",
            CommitProtection::NotEnforced => "not_enforced",
        }
    }
}

/// Find out whether the destination enforces conditional writes: create a probe object twice
/// with `If-None-Match: *`; a store that enforces it refuses the second.
pub async fn probe_protection(dst: &Dataset) -> Result<CommitProtection> {
    if let Some(known) = dst.capabilities.known_protection {
        return Ok(known);
    }
    let rel = probe_rel("probe");
    let key = dst.key(&rel);
    let policy = RetryPolicy::control_plane();
    // Both writes may be sent again (by object_store or here) after an answer was lost; the
    // key is random, so "already exists" on the first can only be our own write.
    let create = || {
        retry(&policy, "probe conditional write", |_| async {
            match dst
                .store
                .put_opts(
                    &key,
                    PutPayload::from_static(b"probe"),
                    PutOptions::from(PutMode::Create),
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => Ok(false),
                Err(e) => Err(Error::store(rel.clone(), "probe conditional write", e)),
            }
        })
    };
    create().await?;
    let second = create().await;
    let _ = dst.store.delete(&key).await;
    match second? {
        false => Ok(CommitProtection::Enforced),
        true => Ok(CommitProtection::NotEnforced),
    }
}

/// The put mode that replaces `key` only if it is still at version `expected`: `Update` where
/// the store has compare-and-swap; on local folders (which lack it) a stat compared just before
/// the atomic rename. `Ok(None)` when that local check already shows another version.
pub(crate) async fn replace_mode(
    dst: &Dataset,
    key: &object_store::path::Path,
    expected: &UpdateVersion,
) -> std::result::Result<Option<PutMode>, object_store::Error> {
    if dst.capabilities.conditional_update {
        return Ok(Some(PutMode::Update(expected.clone())));
    }
    match dst.store.head(key).await {
        Ok(meta) if meta.e_tag == expected.e_tag => Ok(Some(PutMode::Overwrite)),
        Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The manifest version a commit must replace: `None` when the destination had no manifest.
pub type Expected = Option<UpdateVersion>;

/// Write `manifest` as the destination's manifest if the current one is still `expected`.
/// Returns the version written, to chain a later commit on.
///
/// A compact manifest's body is written first, under a key of its own; only the head is
/// written conditionally. After the commit, the body of the head it replaced is deleted; a
/// refused commit deletes its own body.
pub async fn commit(dst: &Dataset, manifest: &Manifest, expected: &Expected) -> Result<UpdateVersion> {
    let encoded = crate::manifest::encode_for(dst, manifest)?;
    commit_encoded(dst, manifest, encoded, expected).await
}

/// The interim commit: `interim` is the stored manifest less the entries about to be
/// overwritten. Over a compact manifest this dataset read, only a head is written, naming the
/// stored body and the paths it no longer claims, so an overwriting sync writes one full
/// manifest (the final one), not two.
pub async fn commit_interim(
    dst: &Dataset,
    interim: &Manifest,
    stored: &StoredManifest,
) -> Result<UpdateVersion> {
    let expected = Some(stored.version.clone());
    match crate::manifest::encode_retraction(dst, stored, interim) {
        Some(encoded) => commit_encoded(dst, interim, encoded, &expected).await,
        None => commit(dst, interim, &expected).await,
    }
}

async fn commit_encoded(
    dst: &Dataset,
    manifest: &Manifest,
    encoded: crate::manifest::Encoded,
    expected: &Expected,
) -> Result<UpdateVersion> {
    let policy = RetryPolicy::control_plane();
    crate::manifest::put_body(dst, &encoded).await?;
    let head = encoded.head;
    let result = retry(&policy, "commit manifest", |_| {
        commit_once(dst, manifest, head.clone(), expected)
    })
    .await;
    collect_bodies(
        dst,
        encoded.body,
        encoded.new_body.is_some(),
        expected,
        result.as_ref().ok(),
    )
    .await;
    result
}

/// After a commit: delete the bodies no head names any more (the replaced head's, or a new
/// one of ours when the commit was refused or an identical manifest won), and remember ours.
async fn collect_bodies(
    dst: &Dataset,
    ours: Option<StoredBody>,
    ours_is_new: bool,
    expected: &Expected,
    written: Option<&UpdateVersion>,
) {
    use crate::manifest::{delete_body, known_body, remember_body};
    let Some(written) = written else {
        if let Some(ours) = ours.filter(|_| ours_is_new) {
            delete_body(dst, &ours.body.key).await;
        }
        return;
    };
    match (known_body(dst, written), ours) {
        (Some(current), Some(ours)) if current.body.key != ours.body.key => {
            if ours_is_new {
                delete_body(dst, &ours.body.key).await;
            }
        }
        (_, Some(ours)) => remember_body(dst, written, ours),
        (_, None) => {}
    }
    let now = known_body(dst, written).map(|k| k.body.key);
    let replaced = expected.as_ref().and_then(|v| known_body(dst, v));
    if let Some(old) = replaced.filter(|old| Some(&old.body.key) != now.as_ref()) {
        delete_body(dst, &old.body.key).await;
    }
}

async fn commit_once(
    dst: &Dataset,
    manifest: &Manifest,
    body: PutPayload,
    expected: &Expected,
) -> Result<UpdateVersion> {
    let key = dst.manifest_key();
    let conflict = || Error::ManifestConflict {
        location: dst.manifest_location(),
    };
    let mode = match expected {
        None => PutMode::Create,
        Some(v) => match replace_mode(dst, &key, v).await {
            Ok(Some(mode)) => mode,
            Ok(None) => return Err(conflict()),
            Err(e) => return Err(Error::store(MANIFEST_KEY, "commit manifest", e)),
        },
    };
    let res = dst.store.put_opts(&key, body, PutOptions::from(mode)).await;
    match res {
        Ok(r) => {
            let mut version = UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            };
            if version.e_tag.is_none() && version.version.is_none() {
                // Some stores return no ETag on PUT; read it back so the next commit can chain.
                if let Ok(meta) = dst.store.head(&key).await {
                    version.e_tag = meta.e_tag;
                    version.version = meta.version;
                }
            }
            Ok(version)
        }
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
            // Refused: by another writer's manifest, or by our own write, re-sent after its
            // answer was lost. The stored manifest tells which.
            match crate::manifest::load(dst).await? {
                Some(stored) if stored.manifest.digest == manifest.digest => Ok(stored.version),
                _ => Err(conflict()),
            }
        }
        Err(e) => Err(Error::store(MANIFEST_KEY, "commit manifest", e)),
    }
}

/// Paths of `manifest`'s entries that `listing` does not show as the object the entry's cache
/// key (size, ETag, mtime) names: absent, or replaced since the entry was proven.
pub fn entries_not_in_listing(manifest: &Manifest, listing: &[ObjectStat]) -> Vec<String> {
    manifest
        .shards
        .iter()
        .filter(|e| {
            listing
                .binary_search_by(|s| s.path.as_str().cmp(&e.path))
                .map_or(true, |i| !entry_matches_stat(e, &listing[i]))
        })
        .map(|e| e.path.clone())
        .collect()
}

/// "N objects (a, b, c and 2 more) {what}".
pub(crate) fn describe_changed(paths: &[String], what: &str) -> String {
    let shown: Vec<&str> = paths.iter().take(3).map(String::as_str).collect();
    let more = paths.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("{} object(s) ({}{tail}) {what}", paths.len(), shown.join(", "))
}

/// Read back what was just committed. The manifest must still be the version written (its
/// ETag); where the store does not enforce conditional writes, a conditional commit proves
/// nothing, so the manifest is also read whole and every entry it names is checked against a
/// fresh listing. An entry another writer replaced in between is dropped by a repair commit, so
/// the manifest left behind claims only what is there, and the sync fails.
pub async fn confirm_commit(
    dst: &Dataset,
    manifest: &Manifest,
    version: &UpdateVersion,
    protection: CommitProtection,
) -> Result<()> {
    let location = dst.manifest_location();
    let replaced = || Error::ChangedUnderCommit {
        location: location.clone(),
        detail: "another writer replaced the manifest right after this sync committed it".into(),
    };
    let key = dst.manifest_key();
    let policy = RetryPolicy::control_plane();
    let meta = retry(&policy, "read back manifest", |_| async {
        match dst.store.head(&key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(MANIFEST_KEY, "read back manifest", e)),
        }
    })
    .await?
    .ok_or_else(replaced)?;
    if version.e_tag.is_some() && meta.e_tag != version.e_tag {
        return Err(replaced());
    }
    if protection != CommitProtection::NotEnforced {
        return Ok(());
    }
    let stored = crate::manifest::load(dst).await?.ok_or_else(replaced)?;
    if stored.manifest.digest != manifest.digest {
        return Err(replaced());
    }
    let listing = list_dataset(dst).await?.objects;
    let changed = entries_not_in_listing(manifest, &listing);
    if changed.is_empty() {
        return Ok(());
    }
    let outcome = match drop_false_claims(dst).await {
        Ok(_) => "dropped from the committed manifest",
        Err(_) => "claimed by the committed manifest, which could not be repaired",
    };
    Err(Error::ChangedUnderCommit {
        location: dst.url.clone(),
        detail: describe_changed(
            &changed,
            &format!("were replaced by another writer around the commit; {outcome}"),
        ),
    })
}

/// Make the destination's committed manifest claim only what the store holds: drop every
/// entry a fresh listing contradicts, commit that against the version read, and look again
/// (on a store that ignores conditions the repair itself can race). Returns the entries
/// dropped. A sync that wrote shards and then failed calls this too: where the lease is not
/// enforced, its late writes may have replaced shards another sync's manifest names.
pub async fn drop_false_claims(dst: &Dataset) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    for _ in 0..3 {
        let Some(stored) = crate::manifest::load(dst).await? else {
            return Ok(dropped);
        };
        let listing = list_dataset(dst).await?;
        let changed = entries_not_in_listing(&stored.manifest, &listing.objects);
        if changed.is_empty() {
            return Ok(dropped);
        }
        let honest: Vec<_> = stored
            .manifest
            .shards
            .iter()
            .filter(|e| changed.binary_search(&e.path).is_err())
            .cloned()
            .collect();
        let mut repaired = Manifest::new(stored.manifest.dataset.clone(), honest)?;
        // Still the view a filtered sync claimed, less what is gone.
        repaired.filter = stored.manifest.filter.clone();
        commit(dst, &repaired, &Some(stored.version)).await?;
        dropped.extend(changed);
    }
    Err(Error::ChangedUnderCommit {
        location: dst.url.clone(),
        detail: "other writers kept changing it while this sync repaired its manifest".into(),
    })
}
