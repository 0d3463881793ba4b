//! The sync pipeline: make a destination hold exactly the source's dataset, and prove it.
//!
//! ```text
//!  plan ──► copy ──► prove ──► tally ──► commit ──► delete ──► conclude
//!  both      -j at    one       count     manifest   extras,    verdict:
//!  sides,    once,    listing,  into the  last and   after the  the report
//!  Unproven  hashed   or HEAD   report    condi-     commit     says what
//!  settled   in                           tionally              `check` would
//!            flight
//! ```
//!
//! Each stage is a module: [`plan`] (shared with `check` and `diff`), `copy`, `prove`, `tally`,
//! `manifests` (the commit, with `guard`: the lease and the probe before any write), `delete`.
//! The types carry the order: a copy is `Unproven` until the prove stage makes it `Settled`,
//! and only settled copies reach a manifest.
//!
//! Source objects whose manifest entry no longer matches the listing are hashed while they are
//! copied, so each source byte is read once; the refreshed source manifest is written back.
//!
//! A partitioned run ([`freeze_plan`], [`sync_partition`], [`commit_plan`]) cuts the same stages
//! where the work leaves one machine: `plan` freezes the plan and its split into N shares under
//! the destination's `_shardsync/plans/<ID>/`, each worker copies and proves one share, and one
//! commit checks every receipt and commits the manifest.

mod copy;
mod copy_many;
mod delete;
mod fanout;
mod guard;
mod manifests;
mod options;
pub mod partition;
mod partitioned;
pub mod plan;
mod prove;
mod tally;

pub use fanout::sync_to_many;
pub use options::SyncOptions;
pub use partition::{PartitionSpec, PlanHead, Receipt};
pub use partitioned::{
    commit_plan, freeze_plan, sync_partition, CommitOutcome, FrozenPlan, PartitionOutcome,
};
pub use plan::{finding_for, prepare, prepare_with, Prepared};

use crate::diff::{Plan, State};
use crate::error::{Error, Result};
use crate::lock::SyncLock;
use crate::manifest::Manifest;
use crate::report::{footer_findings, Report};
use crate::safety::check_overlap;
use crate::store::Dataset;

use tally::Tally;

/// The result of a sync that copied everything it planned to: the report and the plan it
/// acted on. The destination may still hold extras (`report.consistent` is then false);
/// [`SyncOutcome::into_consistent`] turns that into an error too.
#[derive(Debug)]
pub struct SyncOutcome {
    /// What was found and done, as the CLI prints it.
    pub report: Report,
    /// The plan the sync acted on, with the states the copies settled.
    pub plan: Plan,
    /// The manifest committed to the destination, if one was.
    pub committed: Option<Manifest>,
}

impl SyncOutcome {
    /// True when any shard failed (the sync should exit 2).
    pub fn failed(&self) -> bool {
        self.report.shards_failed > 0
    }

    /// `Ok` only when the destination now holds exactly the source's dataset (what `check`
    /// would say): extras left without `delete` are [`Error::Drift`].
    pub fn into_consistent(self) -> Result<SyncOutcome> {
        if self.report.consistent {
            Ok(self)
        } else {
            Err(Error::Drift {
                outcome: Box::new(self),
            })
        }
    }
}

/// Run one sync. Per-shard failures do not abort the others; they are in the report
/// (`shards_failed`, findings of kind `error`) and the manifest committed claims none of them.
/// A sync that failed shards or was interrupted returns [`Error::Incomplete`].
pub async fn sync(src: &Dataset, dst: &Dataset, opts: &SyncOptions) -> Result<SyncOutcome> {
    opts.transfer.fitted()?;
    check_overlap(src, dst)?;
    let mut lease = None;
    let outcome = pipeline(src, dst, opts, &mut lease).await;
    finish(src, dst, outcome, lease, opts).await
}

/// After the pipeline, whatever its outcome: release the lease (first leaving a manifest that
/// claims only what is there, if it failed), settle what local folders add to the report, and
/// turn an incomplete sync into [`Error::Incomplete`].
async fn finish(
    src: &Dataset,
    dst: &Dataset,
    outcome: Result<SyncOutcome>,
    lease: Option<SyncLock>,
    opts: &SyncOptions,
) -> Result<SyncOutcome> {
    let lease_warnings = lease.as_ref().map(|l| l.warnings().to_vec()).unwrap_or_default();
    if let Some(l) = lease {
        if outcome.is_err() {
            drop_false_claims_after_failure(dst).await;
        }
        l.release().await;
    }
    let mut outcome = outcome?;
    outcome.report.warnings.extend(lease_warnings);
    crate::local::settle_sync_report(&mut outcome.report, src, dst, !opts.dry_run).await;
    if outcome.failed() || outcome.report.shards_not_started > 0 {
        // A caller that writes `sync(..).await?; train()` must not train on a partial dataset.
        return Err(Error::Incomplete {
            outcome: Box::new(outcome),
        });
    }
    Ok(outcome)
}

/// This sync may have written shards. Where the lease is not enforced another sync may have
/// committed meanwhile, and our writes may contradict its manifest: leave a manifest that
/// claims only what is there.
async fn drop_false_claims_after_failure(dst: &Dataset) {
    match crate::commit::drop_false_claims(dst).await {
        Ok(dropped) if !dropped.is_empty() => tracing::warn!(
            "{}",
            crate::commit::describe_changed(
                &dropped,
                "no longer held what the committed manifest claimed; dropped from it"
            )
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("could not re-check the destination manifest after the failure: {e}"),
    }
}

/// The stages, in order (see the module doc). `lease` is taken before the first write.
async fn pipeline(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    lease: &mut Option<SyncLock>,
) -> Result<SyncOutcome> {
    let ready = match before_copies(src, dst, opts, lease).await? {
        Ahead::Copy(ready) => ready,
        Ahead::Done(outcome) => return Ok(*outcome),
    };
    let copies = copy::run(src, dst, &ready.plan, &ready.copy_set, &ready.opts).await;
    after_copies(src, dst, *ready, copies, lease).await
}

/// A destination planned, its interim commit made and its lease held: ready for the copies.
struct Ready {
    report: Report,
    plan: Plan,
    copy_set: Vec<usize>,
    prepared: PreparedRest,
    /// The destination manifest version the final commit must replace.
    expected: crate::commit::Expected,
    /// The options the copies run under (see [`copy::proof_options`]).
    opts: SyncOptions,
}

/// What the plan stage read besides the plan.
struct PreparedRest {
    src_previous: Option<Manifest>,
    dst_stored: Option<crate::manifest::StoredManifest>,
}

/// What comes after the plan: copies to make, or a sync already done (a dry run).
enum Ahead {
    Copy(Box<Ready>),
    Done(Box<SyncOutcome>),
}

/// Stages before the copies: plan, the delete limit, the interim commit, the lease and the
/// request-checksum probes.
async fn before_copies(
    src: &Dataset,
    dst: &Dataset,
    opts: &SyncOptions,
    lease: &mut Option<SyncLock>,
) -> Result<Ahead> {
    let mut report = Report::new("sync", opts.mode(), Some(&src.url), Some(&dst.url));
    report.verify = Some(opts.verify);
    let prepared = plan::prepare_for_sync(src, dst, opts).await?;
    let plan = prepared.plan;
    log_decisions(&plan, opts);
    planned(
        &mut report,
        &plan,
        prepared.warnings,
        prepared.dst_stored.as_ref(),
    );
    if opts.delete {
        delete::check_limit(dst, &plan, opts)?;
    }
    let copy_set = plan::copy_set(&plan, opts.full);
    if opts.dry_run {
        return Ok(Ahead::Done(Box::new(dry_run(report, plan, copy_set.len()))));
    }
    if opts.cancel.is_cancelled() {
        return Err(Error::Interrupted); // nothing written yet
    }
    let stored = prepared.dst_stored.as_ref();
    // The request-checksum probes (cached on the dataset) go out while the interim commit is
    // made: on a long link each costs round trips the copies would otherwise wait for. An
    // error here is asked again, and reported, where the copies need the answer.
    let (expected, _) = tokio::join!(
        manifests::retract_overwritten(dst, &plan, &copy_set, stored, lease, &mut report),
        async {
            if !copy_set.is_empty() {
                let _ = crate::verify::put_store(dst).await;
            }
        }
    );
    let expected = expected?;
    if !copy_set.is_empty() {
        guard::ensure_lease(dst, lease, &expected).await?;
    }
    let opts = copy::proof_options(dst, &plan, &copy_set, opts, &mut report).await?;
    Ok(Ahead::Copy(Box::new(Ready {
        report,
        plan,
        copy_set,
        prepared: PreparedRest {
            src_previous: prepared.src_previous,
            dst_stored: prepared.dst_stored,
        },
        expected,
        opts,
    })))
}

/// Stages after the copies: prove, tally, commit, write the source manifest back, delete, and
/// the verdict.
async fn after_copies(
    src: &Dataset,
    dst: &Dataset,
    ready: Ready,
    copies: copy::Copies,
    lease: &mut Option<SyncLock>,
) -> Result<SyncOutcome> {
    let Ready {
        mut report,
        mut plan,
        prepared,
        expected,
        opts,
        ..
    } = ready;
    let opts = &opts;
    let stored = prepared.dst_stored.as_ref();
    let stopped = copies.stopped.clone();
    let confirmed = prove::confirm_copies(dst, copies, opts).await?;
    let relisted = confirmed.relisted.clone();
    let tally = tally::record(&mut plan, confirmed, stopped, opts, &mut report);
    let fin = manifests::final_manifests(src, dst, &plan, &tally, opts)?;
    let committed = manifests::commit_final(
        dst,
        &fin.destination,
        stored,
        &expected,
        relisted,
        lease,
        &mut report,
    )
    .await?;
    report.dst_digest = Some(fin.destination.digest.clone());
    if !opts.strict_parquet {
        report
            .findings
            .extend(footer_findings(&fin.destination.shards, false));
    }
    manifests::write_back_source(src, fin.source, prepared.src_previous.as_ref(), opts, &mut report).await?;
    if opts.delete && tally.complete() {
        delete::extras(dst, &mut plan, lease, &expected, opts, &mut report).await?;
    }
    conclude(&mut report, &plan, &tally, opts);
    Ok(SyncOutcome {
        report,
        plan,
        committed,
    })
}

/// Each path's decision and why, as `tracing` info lines (the binary's `-v`).
fn log_decisions(plan: &Plan, opts: &SyncOptions) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    for item in &plan.items {
        let why = match item.state {
            State::New => "copy: not at the destination",
            State::Changed => "copy: size or SHA-256 differs from the destination's",
            State::Missing => "copy: the destination's manifest lists it but its store does not hold it",
            State::Same if opts.full => "copy: same size and SHA-256, copied again (--full)",
            State::Same => "skip: same size and SHA-256 at the destination",
            State::Unproven => "compare: same size, the destination's SHA-256 not known yet",
            State::Extra if opts.delete => "delete: only at the destination (--delete), after the commit",
            State::Extra => "keep: only at the destination (left in place without --delete)",
        };
        tracing::info!("{}: {why}", crate::display::escape_controls(&item.path));
    }
}

/// What the plan says, into the report, before anything is copied.
fn planned(
    report: &mut Report,
    plan: &Plan,
    warnings: Vec<String>,
    stored: Option<&crate::manifest::StoredManifest>,
) {
    report.warnings.extend(warnings);
    report.inconsistency_before = Some(plan::inconsistency(plan));
    report.plan = Some(plan.counts());
    // The source's digest as it is now: known when every source entry is (a stale manifest's
    // digest would name another version). Set again after the copies hash what was unknown.
    report.src_digest = plan::current_source_digest(plan);
    report.dst_digest = stored.map(|s| s.manifest.digest.clone());
    report.set_transfer(&plan.transfer);
    report.filter = plan.filter.clone();
    let sources = plan.items.iter().filter_map(|i| i.src.as_ref());
    report.shards_total = sources.clone().count() as u64;
    report.bytes_total = sources.map(|s| s.stat.size).sum();
}

/// A dry run ends after the plan: its findings and what a sync would copy.
fn dry_run(mut report: Report, plan: Plan, copies: usize) -> SyncOutcome {
    for item in &plan.items {
        report.findings.extend(finding_for(item));
    }
    report.consistent = plan.is_clean();
    report.inconsistency = report.inconsistency_before.unwrap_or(0.0);
    report.shards_skipped = report.shards_total - copies as u64;
    report.finish();
    SyncOutcome {
        report,
        plan,
        committed: None,
    }
}

/// The verdict: consistent only when the destination holds exactly the source's dataset.
fn conclude(report: &mut Report, plan: &Plan, tally: &Tally, opts: &SyncOptions) {
    let failed = tally.failures.len() as u64;
    report.shards_skipped = report.shards_total - report.shards_copied - failed - tally.not_started as u64;
    report.bytes_skipped = report
        .bytes_total
        .saturating_sub(report.bytes_copied + report.bytes_copied_in_place);
    report.consistent = tally.complete()
        && plan
            .items
            .iter()
            .all(|i| i.src.is_some() || i.state == State::Same)
        && report.src_digest.is_some()
        && report.src_digest == report.dst_digest;
    let remaining = plan
        .items
        .iter()
        .enumerate()
        .filter(|(n, i)| {
            tally.copied[*n].is_none() && i.state != State::Same && !(i.state == State::Extra && opts.delete)
        })
        .count();
    report.inconsistency = if plan.items.is_empty() {
        0.0
    } else {
        remaining as f64 / plan.items.len() as f64
    };
    for item in plan.items.iter().filter(|i| i.state == State::Extra) {
        report.findings.extend(finding_for(item));
    }
    report.finish();
}
