//! Stage 6, delete: with `--delete`, remove the destination's extras, only after the commit
//! (so the manifest never names a deleted object) and only when every planned copy landed.
//! Before anything is written, [`check_limit`] refuses a deletion larger than the limit.

use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::commit::Expected;
use crate::diff::{Plan, State};
use crate::error::{Error, Result};
use crate::lock::SyncLock;
use crate::report::Report;
use crate::safety::{check_deletions, DeleteLimit};
use crate::store::Dataset;

use super::guard::ensure_lease;
use super::SyncOptions;

/// Refuse a `--delete` that would remove more of the destination than the limit allows.
pub(super) fn check_limit(dst: &Dataset, plan: &Plan, opts: &SyncOptions) -> Result<()> {
    let extras = plan.in_state(State::Extra).count();
    let total = plan.items.iter().filter(|i| i.dst.is_some()).count();
    let limit = opts.max_delete.unwrap_or(DeleteLimit::DEFAULT);
    check_deletions(dst, extras, total, limit)
}

/// Delete the extras; a failed delete is a warning (the object is not in the manifest).
pub(super) async fn extras(
    dst: &Dataset,
    plan: &mut Plan,
    lease: &mut Option<SyncLock>,
    expected: &Expected,
    opts: &SyncOptions,
    report: &mut Report,
) -> Result<()> {
    let extras: Vec<String> = plan.in_state(State::Extra).map(|i| i.path.clone()).collect();
    if !extras.is_empty() {
        ensure_lease(dst, lease, expected).await?;
    }
    let deleted: Vec<Result<()>> = futures::stream::iter(extras)
        .map(|p| async move {
            dst.store
                .delete(&dst.key(&p))
                .await
                .map_err(|e| Error::store(p.clone(), "delete", e))
        })
        .buffer_unordered(opts.concurrency.get())
        .collect()
        .await;
    for d in deleted {
        match d {
            Ok(()) => report.shards_deleted += 1,
            Err(e) => report.warnings.push(e.to_string()),
        }
    }
    for item in plan.items.iter_mut().filter(|i| i.state == State::Extra) {
        item.state = State::Same; // gone now; counts as consistent below
    }
    Ok(())
}
