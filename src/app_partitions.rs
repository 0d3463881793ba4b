//! The partitioned commands of the binary: `plan`, `sync --plan --partition`, `commit`. The
//! library does the work (`shardsync::sync::{freeze_plan, sync_partition, commit_plan}`);
//! these print what it did and choose the exit code.

use anyhow::Result;
use shardsync::report::Report;
use shardsync::sync::{commit_plan, freeze_plan, sync_partition, PartitionSpec, SyncOptions};
use shardsync::Dataset;

use crate::bars::Bars;
use crate::cli::{CommitArgs, Format, PlanArgs, ReportOpts};

/// `shardsync plan`: freeze the plan, print its ID (the last line of stdout, for scripts).
pub async fn plan(src: &Dataset, dst: &Dataset, a: &PlanArgs, progress: Bars, quiet: bool) -> Result<u8> {
    let opts = SyncOptions {
        write_source_manifest: !a.no_source_write,
        strict: a.strict,
        ..SyncOptions::default()
    }
    .with_full(a.full)
    .with_concurrency(a.jobs)
    .with_allow_empty_source(a.guard.allow_empty_source)
    .with_events(progress.events());
    let frozen = freeze_plan(src, dst, a.partitions, a.id.as_deref(), &opts).await;
    progress.finish();
    let frozen = frozen?;
    for w in &frozen.warnings {
        eprintln!("warning: {w}");
    }
    let head = &frozen.head;
    if a.json {
        let mut v = serde_json::to_value(head)?;
        v["reused"] = frozen.reused.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if !quiet {
        let verb = if frozen.reused {
            "kept the existing"
        } else {
            "froze"
        };
        eprintln!(
            "{verb} plan {} for {} partition(s) under {}/_shardsync/plans/{}/ ({} entries already there)",
            head.id, head.partitions, dst.url, head.id, head.same
        );
        for (i, s) in head.shares.iter().enumerate() {
            eprintln!(
                "  partition {i}/{}: {} item(s), {}",
                head.partitions,
                s.items,
                shardsync::display::human_bytes(s.bytes)
            );
        }
    }
    println!("{}", head.id);
    Ok(0)
}

/// `shardsync sync --plan ID --partition I/N`: one worker's share.
#[allow(clippy::too_many_arguments)] // the sync's flags, passed through
pub async fn sync_one_partition(
    src: &Dataset,
    dst: &Dataset,
    id: &str,
    partition: Option<&str>,
    opts: &SyncOptions,
    bars: &Bars,
    output: &ReportOpts,
    quiet: bool,
) -> Result<u8> {
    let text = output.format() == Format::Text;
    let show = |report: &Report| -> Result<()> {
        match &output.report {
            // Quiet: the report file is still written; stdout stays quiet.
            Some(p) if quiet && text => crate::app::write_report(p, report),
            None if quiet && text => Ok(()),
            _ => crate::app::emit(report, output),
        }
    };
    let spec = match partition {
        Some(p) => p.to_string(),
        // No --partition: the scheduler's index, and the plan's count.
        None => format!(
            "auto/{}",
            shardsync::sync::partition::load_head(dst, id).await?.partitions
        ),
    };
    let spec = PartitionSpec::parse(&spec, |v| std::env::var(v).ok())
        .map_err(|e| anyhow::anyhow!("--partition: {e}"))?;
    let result = sync_partition(src, dst, id, spec, opts).await;
    bars.finish();
    let report = match result {
        Ok(o) => o.report,
        Err(shardsync::Error::Incomplete { outcome }) => {
            show(&outcome.report)?;
            let r = &outcome.report;
            if r.interrupted {
                eprintln!(
                    "shardsync: interrupted: partition {}/{} wrote no receipt; the same command \
                     copies what is still missing",
                    spec.index, spec.count
                );
                return Ok(crate::app::INTERRUPTED);
            }
            anyhow::bail!(
                "partition {}/{}: {} shard(s) failed, no receipt written (re-run it; a source \
                 object changed since the plan needs a new plan): {}",
                spec.index,
                spec.count,
                r.shards_failed,
                r.findings
                    .iter()
                    .filter(|f| !f.kind.is_warning())
                    .map(|f| f.detail.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Err(e) => return Err(e.into()),
    };
    show(&report)?;
    if text && !quiet {
        eprintln!(
            "partition {}/{} of plan {id}: receipt written ({} copied, {} already there)",
            spec.index, spec.count, report.shards_copied, report.shards_skipped
        );
    }
    Ok(0)
}

/// `shardsync commit --plan ID`.
pub async fn commit(src: &Dataset, dst: &Dataset, a: &CommitArgs, progress: Bars) -> Result<u8> {
    let opts = SyncOptions::default()
        .with_concurrency(a.jobs)
        .with_events(progress.events());
    let outcome = commit_plan(src, dst, &a.plan, &opts).await;
    progress.finish();
    let outcome = outcome?;
    crate::app::emit(&outcome.report, &a.output)?;
    if a.output.format() == crate::cli::Format::Text {
        let what = if outcome.committed.is_some() {
            "committed"
        } else {
            "already the destination's manifest"
        };
        eprintln!(
            "plan {}: {what}: {} entries, digest {}; plan removed",
            a.plan,
            outcome.report.shards_total,
            outcome.report.dst_digest.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}
