//! Stage 4, tally: what the copies did, in the report and the plan, before the commit.
//!
//! Every planned copy ends as proven, already there, failed or not started; the tally counts
//! them, turns failures into findings, and keeps, per plan item, the entry the destination
//! manifest may claim.

use std::collections::HashSet;

use crate::diff::{Plan, State};
use crate::error::Error;
use crate::manifest::ShardEntry;
use crate::report::{footer_findings, Finding, FindingKind, Report};
use crate::verify::Proof;

use super::copy::{Attempt, Stopped};
use super::prove::{Confirmed, Settled};
use super::SyncOptions;

/// The copies, counted.
#[derive(Debug)]
pub(super) struct Tally {
    /// Per plan item: the proven destination entry a copy produced (or confirmed).
    pub(super) copied: Vec<Option<ShardEntry>>,
    /// (path, cause) of each shard that failed.
    pub(super) failures: Vec<(String, String)>,
    /// Planned copies that never landed (interrupted, or stopped by the destination).
    pub(super) not_started: usize,
}

impl Tally {
    /// Every planned copy landed: only then may extras be deleted.
    pub(super) fn complete(&self) -> bool {
        self.failures.is_empty() && self.not_started == 0
    }
}

/// Count the settled copies into `report`, marking items whose bytes turned out to be the
/// destination's as `Same`.
pub(super) fn record(
    plan: &mut Plan,
    confirmed: Confirmed,
    stopped: Stopped,
    opts: &SyncOptions,
    report: &mut Report,
) -> Tally {
    let mut tally = Tally {
        copied: vec![None; plan.items.len()],
        failures: Vec::new(),
        not_started: 0,
    };
    for (n, attempt) in confirmed.attempts {
        match attempt {
            Attempt::NotStarted => tally.not_started += 1,
            Attempt::Done(Settled::AlreadyThere) => {
                // Same bytes on both sides after all: the destination's proven entry stands.
                let item = &mut plan.items[n];
                item.state = State::Same;
                tally.copied[n] = item.dst_entry.clone();
            }
            Attempt::Done(Settled::Proven(p)) => {
                count_proof(report, p.proof);
                if p.in_place {
                    report.shards_copied_in_place += 1;
                    report.bytes_copied_in_place += p.entry.size;
                } else {
                    report.bytes_copied += p.entry.size;
                }
                tally.copied[n] = Some(p.entry);
            }
            Attempt::Failed(e) => {
                let path = plan.items[n].path.clone();
                report.findings.push(Finding {
                    path: path.clone(),
                    kind: finding_kind(&e),
                    detail: e.to_string(),
                });
                tally.failures.push((path, e.to_string()));
            }
        }
    }
    if opts.strict_parquet {
        strict_parquet_same(plan, report, &mut tally.failures);
    }
    report.shards_failed = tally.failures.len() as u64;
    report.shards_not_started = tally.not_started as u64;
    if tally.not_started > 0 {
        match stopped.by_destination {
            _ if stopped.max_transfer && !opts.cancel.is_cancelled() => {
                report.max_transfer_reached = true;
                report.warnings.push(format!(
                    "--max-transfer {} reached: {} shard(s) not copied; the next sync copies them",
                    crate::display::human_bytes(opts.max_transfer.unwrap_or(0)),
                    tally.not_started
                ));
            }
            Some(cause) if !opts.cancel.is_cancelled() => report.warnings.push(format!(
                "{} shard(s) not copied: the destination refused writes ({cause}); \
                 no further copy was started",
                tally.not_started
            )),
            _ => {
                report.interrupted = true;
                report.warnings.push(format!(
                    "interrupted: {} shard(s) not copied; the next sync copies them",
                    tally.not_started
                ));
            }
        }
    }
    tally
}

fn count_proof(report: &mut Report, proof: Proof) {
    report.shards_copied += 1;
    match proof {
        Proof::SizeAndEtag => report.proofs.size_and_etag += 1,
        Proof::SizeAndMetadata => report.proofs.size_and_metadata += 1,
        Proof::Size => report.proofs.size += 1,
        Proof::Rehash => report.proofs.rehash += 1,
    }
}

fn finding_kind(e: &Error) -> FindingKind {
    match e {
        Error::HashMismatch { .. } => FindingKind::Corrupt,
        Error::InvalidParquet { .. } => FindingKind::InvalidParquet,
        Error::SizeMismatch { .. } => FindingKind::SizeMismatch,
        _ => FindingKind::Error,
    }
}

/// `--strict-parquet`: shards the destination already holds (not copied this run) whose footer
/// does not decode fail the run too, so every such shard is listed.
fn strict_parquet_same(plan: &Plan, report: &mut Report, failures: &mut Vec<(String, String)>) {
    let failed: HashSet<String> = failures.iter().map(|(p, _)| p.clone()).collect();
    let held = plan
        .items
        .iter()
        .filter(|i| i.state == State::Same && !failed.contains(&i.path))
        .filter_map(|i| i.dst_entry.as_ref());
    for f in footer_findings(held, true) {
        failures.push((f.path.clone(), f.detail.clone()));
        report.findings.push(f);
    }
}
