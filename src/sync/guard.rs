//! What must hold before each write: this sync holds the destination's lease, the manifest is
//! still the one the plan was made against, and the commit protection has been probed.
//!
//! The lease is taken lazily, before the first write: a sync with nothing to do writes nothing
//! and takes nothing.

use object_store::ObjectStoreExt;

use crate::commit::{self, CommitProtection, Expected};
use crate::error::{Error, Result};
use crate::lock::SyncLock;
use crate::report::Report;
use crate::store::Dataset;

/// Take the destination's lease before the first write, then make sure the manifest is still
/// the one the plan was made against: with the lease held, nobody else can change it.
pub(super) async fn ensure_lease(
    dst: &Dataset,
    lease: &mut Option<SyncLock>,
    planned: &Expected,
) -> Result<()> {
    if let Some(l) = lease {
        if l.is_lost() {
            return Err(Error::DestinationLocked {
                location: format!("{}/{}", dst.url, crate::layout::LOCK_KEY),
                holder: "this sync's lease expired while it stalled and was taken over".into(),
            });
        }
        return Ok(());
    }
    *lease = Some(crate::lock::acquire(dst).await?);
    let policy = crate::retry::RetryPolicy::control_plane();
    let now = crate::retry::retry(&policy, "read manifest", |_| async {
        match dst.store.head(&dst.manifest_key()).await {
            Ok(meta) => Ok(Some(meta.e_tag)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(crate::layout::MANIFEST_KEY, "read manifest", e)),
        }
    })
    .await?;
    if now != planned.as_ref().map(|v| v.e_tag.clone()) {
        return Err(Error::ManifestConflict {
            location: dst.manifest_location(),
        });
    }
    Ok(())
}

/// Probe the destination's commit protection before its first commit (a no-op sync writes
/// nothing and so pays nothing), and warn when conditions are not enforced.
pub(super) async fn probe_once(dst: &Dataset, report: &mut Report) -> Result<()> {
    if report.commit_protection.is_some() {
        return Ok(());
    }
    let protection = commit::probe_protection(dst).await?;
    report.commit_protection = Some(protection);
    if protection == CommitProtection::NotEnforced {
        let w = format!(
            "{} accepts conditional writes but does not enforce them: two syncs into it at once can \
             interleave; this sync re-checked every entry against the store after its commit, which \
             detects such interference (and fails) but cannot prevent it",
            dst.url
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
    Ok(())
}
