//! The consistency report: one document per run, rendered as JSON (machines), a text table
//! (people) or Markdown (CI summaries). Every URL in it is already credential-free.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::commit::CommitProtection;
use crate::diff::{PlanCounts, TransferEstimate};
use crate::filter::FilterSpec;
use crate::verify::VerifyMode;

/// Report format version.
pub const REPORT_VERSION: u32 = 1;

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// In the source, absent (or listed but gone) at the destination.
    Missing,
    /// Same size, different bytes.
    Changed,
    /// At the destination only.
    Extra,
    /// Sizes differ between the two sides.
    SizeMismatch,
    /// Bytes differ from the SHA-256 a manifest records: silent corruption.
    Corrupt,
    /// A `.parquet` object whose footer cannot be read (fatal: `--strict-parquet`).
    InvalidParquet,
    /// The same, as a warning: the bytes are synced and proven, the entry has a `parquet_error`.
    UnreadableFooter,
    /// Parquet schemas differ between shards that should share one.
    SchemaDrift,
    /// An operation on this object failed.
    Error,
}

impl FindingKind {
    /// The name used in JSON and Markdown (`size_mismatch`).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Missing => "missing",
            FindingKind::Changed => "changed",
            FindingKind::Extra => "extra",
            FindingKind::SizeMismatch => "size_mismatch",
            FindingKind::Corrupt => "corrupt",
            FindingKind::InvalidParquet => "invalid_parquet",
            FindingKind::UnreadableFooter => "unreadable_footer",
            FindingKind::SchemaDrift => "schema_drift",
            FindingKind::Error => "error",
        }
    }

    /// A warning is listed but does not make a report inconsistent or a run fail.
    pub fn is_warning(self) -> bool {
        matches!(self, FindingKind::UnreadableFooter)
    }
}

/// True when no finding is more than a warning (see [`FindingKind::is_warning`]).
pub fn only_warnings(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.kind.is_warning())
}

/// One finding per entry whose footer did not decode: a warning, or with `strict`
/// (`--strict-parquet`) an `invalid_parquet` that fails the run.
pub fn footer_findings<'a>(
    entries: impl IntoIterator<Item = &'a crate::manifest::ShardEntry>,
    strict: bool,
) -> Vec<Finding> {
    entries
        .into_iter()
        .filter_map(|e| {
            let reason = e.parquet_error.as_deref()?;
            Some(Finding {
                path: e.path.clone(),
                kind: if strict {
                    FindingKind::InvalidParquet
                } else {
                    FindingKind::UnreadableFooter
                },
                detail: if strict {
                    format!("{reason} (Parquet checked strictly)")
                } else {
                    format!("{reason} (its bytes are hashed and synced like any object's; no rows recorded)")
                },
            })
        })
        .collect()
}

/// One problem, about one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The object's path relative to the dataset root.
    pub path: String,
    /// What was found.
    pub kind: FindingKind,
    /// What is wrong and what to do, for a person.
    pub detail: String,
}

/// How many objects were proven by which means.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProofCounts {
    /// Size and the PUT's ETag seen in the destination's listing.
    pub size_and_etag: u64,
    /// Size and stored SHA-256 metadata checked.
    pub size_and_metadata: u64,
    /// Size checked (backend keeps no metadata; bytes hashed in flight).
    pub size: u64,
    /// Bytes read back and hashed.
    pub rehash: u64,
}

/// A run's consistency report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The report format's version.
    pub version: u32,
    /// The command that made it (`sync`, `check`, `verify`).
    pub command: String,
    /// `incremental`, `full`, `dry-run`, `shallow`, `deep`.
    pub mode: String,
    /// The source URL (credentials removed).
    pub src: Option<String>,
    /// The destination URL (credentials removed).
    pub dst: Option<String>,
    /// When the command started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Seconds between the two.
    pub elapsed_seconds: f64,
    /// True when the two sides hold the same dataset (or the store matches its manifest).
    pub consistent: bool,
    /// The source dataset's manifest digest, when every entry is known.
    pub src_digest: Option<String>,
    /// The destination's manifest digest (after the commit, for a sync).
    pub dst_digest: Option<String>,
    /// Shards in the source.
    pub shards_total: u64,
    /// Shards copied and verified this run.
    pub shards_copied: u64,
    /// Shards already identical at the destination.
    pub shards_skipped: u64,
    /// Destination extras deleted (`--delete`).
    pub shards_deleted: u64,
    /// Shards whose copy failed (not committed).
    pub shards_failed: u64,
    /// Shards a sync did not copy because it was interrupted (Ctrl-C).
    #[serde(default)]
    pub shards_not_started: u64,
    /// The sync was interrupted before it copied everything it planned to.
    #[serde(default)]
    pub interrupted: bool,
    /// The sync stopped starting copies at its `--max-transfer` limit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub max_transfer_reached: bool,
    /// The filter (`--include`, `--exclude`, size limits) both sides were seen through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
    /// Bytes the plan moves from the source's store to the destination's (sync).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_to_transfer: Option<u64>,
    /// The price of a GiB of egress the estimate used, in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_price_usd_per_gib: Option<f64>,
    /// `bytes_to_transfer` priced at `egress_price_usd_per_gib`, in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_cost_usd: Option<f64>,
    /// Bytes in the source.
    pub bytes_total: u64,
    /// Bytes copied this run from the source (they crossed between the stores).
    pub bytes_copied: u64,
    /// Of the shards copied, those made inside the destination from bytes it already held
    /// under another path (a rename or move at the source): no byte crossed between the stores.
    #[serde(default)]
    pub shards_copied_in_place: u64,
    /// Bytes of the shards copied inside the destination (not in `bytes_copied`).
    #[serde(default)]
    pub bytes_copied_in_place: u64,
    /// Bytes not copied because already there.
    pub bytes_skipped: u64,
    /// Bytes copied per second of the whole run.
    pub throughput_bytes_per_sec: f64,
    /// C(A,B): the share of paths that differ between the two sides, after the run.
    pub inconsistency: f64,
    /// C(A,B) before the run (sync only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inconsistency_before: Option<f64>,
    /// E(A,B) = T/N: elapsed seconds per shard of the dataset.
    pub seconds_per_shard: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// How copies were verified.
    pub verify: Option<VerifyMode>,
    /// How many copies each kind of proof settled.
    pub proofs: ProofCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Whether the destination enforces conditional writes (from the probe).
    pub commit_protection: Option<CommitProtection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The request checksum the destination server checked on every shard PUT (`crc64nvme` or
    /// `sha256`; from the probes), when one was.
    pub request_checksum: Option<String>,
    /// Whether a destination manifest was committed this run.
    pub committed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// What the plan found, per state.
    pub plan: Option<PlanCounts>,
    /// Things that did not fail the run but deserve a look.
    pub warnings: Vec<String>,
    /// Per-object findings.
    pub findings: Vec<Finding>,
    /// Why the run failed as a whole (lease lost, commit refused, a store unreachable), when
    /// it did: the counts then say what was known when it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// An empty report for `command`, started now.
    pub fn new(command: &str, mode: &str, src: Option<&str>, dst: Option<&str>) -> Report {
        let now = Utc::now();
        Report {
            version: REPORT_VERSION,
            command: command.into(),
            mode: mode.into(),
            src: src.map(str::to_string),
            dst: dst.map(str::to_string),
            started_at: now,
            finished_at: now,
            elapsed_seconds: 0.0,
            consistent: false,
            src_digest: None,
            dst_digest: None,
            shards_total: 0,
            shards_copied: 0,
            shards_skipped: 0,
            shards_deleted: 0,
            shards_failed: 0,
            shards_not_started: 0,
            interrupted: false,
            max_transfer_reached: false,
            filter: None,
            bytes_to_transfer: None,
            egress_price_usd_per_gib: None,
            estimated_cost_usd: None,
            bytes_total: 0,
            bytes_copied: 0,
            shards_copied_in_place: 0,
            bytes_copied_in_place: 0,
            bytes_skipped: 0,
            throughput_bytes_per_sec: 0.0,
            inconsistency: 0.0,
            inconsistency_before: None,
            seconds_per_shard: 0.0,
            verify: None,
            proofs: ProofCounts::default(),
            commit_protection: None,
            request_checksum: None,
            committed: false,
            plan: None,
            warnings: Vec::new(),
            findings: Vec::new(),
            error: None,
        }
    }

    /// The report of a run that failed as a whole with `error`, finished now.
    pub fn failed(mut self, error: &dyn std::fmt::Display) -> Report {
        self.consistent = false;
        self.error = Some(error.to_string());
        self.finish();
        self
    }

    /// Stamp the end time and derive the timing measures.
    pub fn finish(&mut self) {
        self.finished_at = Utc::now();
        self.elapsed_seconds = (self.finished_at - self.started_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1e6;
        self.throughput_bytes_per_sec = if self.elapsed_seconds > 0.0 {
            self.bytes_copied as f64 / self.elapsed_seconds
        } else {
            0.0
        };
        self.seconds_per_shard = if self.shards_total > 0 {
            self.elapsed_seconds / self.shards_total as f64
        } else {
            0.0
        };
        self.findings
            .sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }
}

fn short(d: &Option<String>) -> String {
    d.as_deref()
        .map_or("-".to_string(), |d| d.chars().take(16).collect())
}

/// `s` in ANSI colour `code` when `color`.
fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn bytes(n: u64) -> String {
    crate::display::human_bytes(n)
}

impl Report {
    /// Why planned copies were not made: interrupted, the limit, or the destination.
    pub fn not_copied_reason(&self) -> &'static str {
        if self.interrupted {
            "interrupted"
        } else if self.max_transfer_reached {
            "--max-transfer reached"
        } else {
            "the destination refused writes"
        }
    }

    /// Record what the plan moves and costs.
    pub fn set_transfer(&mut self, t: &TransferEstimate) {
        self.bytes_to_transfer = Some(t.bytes_to_transfer);
        self.egress_price_usd_per_gib = t.egress_price_usd_per_gib;
        self.estimated_cost_usd = t.estimated_cost_usd;
    }

    /// The transfer line: bytes to move and their estimated cost.
    fn transfer_note(&self) -> Option<String> {
        let to_move = self.bytes_to_transfer?;
        let mut s = format!("{} to move between the stores", bytes(to_move));
        if let (Some(cost), Some(price)) = (self.estimated_cost_usd, self.egress_price_usd_per_gib) {
            s.push_str(&format!(
                ", estimated egress cost {} (at ${price}/GiB)",
                crate::diff::usd(cost)
            ));
        }
        Some(s)
    }

    fn not_copied_note(&self) -> String {
        if self.shards_not_started > 0 {
            format!(
                ", {} not copied ({})",
                self.shards_not_started,
                self.not_copied_reason()
            )
        } else {
            String::new()
        }
    }

    /// The copies made inside the destination (renamed or moved at the source), if any.
    fn in_place_note(&self) -> String {
        if self.shards_copied_in_place == 0 {
            return String::new();
        }
        format!(
            "; {} in {} shard(s) copied inside the destination (renamed or moved: not sent again)",
            bytes(self.bytes_copied_in_place),
            self.shards_copied_in_place
        )
    }

    /// A compact table for a terminal. `color` adds ANSI colour (use only on a TTY).
    pub fn render_text(&self, color: bool) -> String {
        use std::fmt::Write;
        let paint = |code: &str, s: &str| paint(color, code, s);
        let status = self.status(color);
        let mut o = String::new();
        let sides = match (&self.src, &self.dst) {
            (Some(s), Some(d)) => format!("{s} -> {d}"),
            (Some(s), None) => s.clone(),
            _ => String::new(),
        };
        let _ = writeln!(o, "shardsync {} ({})  {sides}  {status}", self.command, self.mode);
        self.render_counts(&mut o);
        for w in &self.warnings {
            let _ = writeln!(o, "  {} {w}", paint("33", "warning:"));
        }
        self.render_findings(&mut o);
        o
    }

    /// The verdict, as the first line shows it.
    fn status(&self, color: bool) -> String {
        let paint = |code: &str, s: &str| paint(color, code, s);
        if let Some(e) = &self.error {
            paint("1;31", &format!("FAILED: {e}"))
        } else if self.consistent {
            paint("1;32", "CONSISTENT")
        } else if self.interrupted {
            paint(
                "1;31",
                &format!("INTERRUPTED ({} not copied)", self.shards_not_started),
            )
        } else if self.shards_failed > 0 {
            paint("1;31", &format!("FAILED ({} shard(s))", self.shards_failed))
        } else {
            paint("1;33", &format!("DRIFT ({} finding(s))", self.findings.len()))
        }
    }

    /// Whether this run copies (a sync); `check` and `verify` copy nothing, so their reports
    /// show no copy statistics.
    fn copies(&self) -> bool {
        !matches!(self.command.as_str(), "check" | "verify")
    }

    /// The shards line: what a sync did, or what a check looked at.
    fn shards_line(&self) -> String {
        if self.copies() {
            format!(
                "{} total, {} copied, {} skipped, {} deleted, {} failed{}",
                self.shards_total,
                self.shards_copied,
                self.shards_skipped,
                self.shards_deleted,
                self.shards_failed,
                self.not_copied_note()
            )
        } else {
            format!("{} total, {} finding(s)", self.shards_total, self.findings.len())
        }
    }

    /// The two measures in words: the share of shards that differ (C) and the time per shard (E).
    fn measures(&self) -> (String, String) {
        let percent = self.inconsistency * 100.0;
        // A few differing shards of many still show as more than zero.
        let shown = if percent > 0.0 && percent < 0.1 {
            format!("{percent:.4}%")
        } else {
            format!("{percent:.1}%")
        };
        (
            format!("inconsistency C(A,B): {shown} of shards differ"),
            format!(
                "transfer cost E(A,B): {:.4} s per shard ({:.2} s for {} shard(s))",
                self.seconds_per_shard, self.elapsed_seconds, self.shards_total
            ),
        )
    }

    /// Shards, bytes, digests, measures and the commit, one line each.
    fn render_counts(&self, o: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(o, "  shards   {}", self.shards_line());
        if self.copies() {
            let _ = writeln!(
                o,
                "  bytes    {} total, {} copied, in {:.2} s ({}/s){}",
                bytes(self.bytes_total),
                bytes(self.bytes_copied),
                self.elapsed_seconds,
                bytes(self.throughput_bytes_per_sec as u64),
                self.in_place_note()
            );
        } else {
            let _ = writeln!(
                o,
                "  bytes    {} total, in {:.2} s",
                bytes(self.bytes_total),
                self.elapsed_seconds
            );
        }
        let _ = writeln!(
            o,
            "  digest   src {}  dst {}",
            short(&self.src_digest),
            short(&self.dst_digest)
        );
        let (c, e) = self.measures();
        let _ = writeln!(o, "  {c}\n  {e}");
        if let Some(t) = self.transfer_note() {
            let _ = writeln!(o, "  transfer {t}");
        }
        if let Some(f) = &self.filter {
            let _ = writeln!(o, "  filter   {f}");
        }
        if let Some(p) = &self.commit_protection {
            let _ = writeln!(
                o,
                "  commit   protection {}{}",
                p.as_str(),
                if self.committed { ", committed" } else { "" }
            );
        }
        if let Some(c) = &self.request_checksum {
            let _ = writeln!(o, "  puts     {c} request checksum checked by the server");
        }
    }

    /// The findings as a table.
    fn render_findings(&self, o: &mut String) {
        use std::fmt::Write;
        if !self.findings.is_empty() {
            let width = self
                .findings
                .iter()
                .map(|f| f.path.chars().count())
                .max()
                .unwrap_or(4)
                .clamp(4, 60);
            let _ = writeln!(o, "  {:<15} {:<width$}  DETAIL", "KIND", "PATH");
            for f in &self.findings {
                let _ = writeln!(o, "  {:<15} {:<width$}  {}", f.kind.as_str(), f.path, f.detail);
            }
        }
    }

    /// Markdown for CI summaries (GitHub's step summary, merge-request comments).
    pub fn render_markdown(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let icon = if self.consistent { "✅" } else { "❌" };
        let verdict = if self.error.is_some() {
            "FAILED"
        } else if self.consistent {
            "consistent"
        } else {
            "not consistent"
        };
        let _ = writeln!(o, "### {icon} shardsync {}: {verdict}\n", self.command);
        if let Some(e) = &self.error {
            let _ = writeln!(o, "> {}\n", e.replace('|', "\\|"));
        }
        let _ = writeln!(o, "| | |\n|---|---|");
        if let Some(s) = &self.src {
            let _ = writeln!(o, "| source | `{s}` |");
        }
        if let Some(d) = &self.dst {
            let _ = writeln!(o, "| destination | `{d}` |");
        }
        let _ = writeln!(o, "| mode | {} |", self.mode);
        let _ = writeln!(o, "| shards | {} |", self.shards_line());
        if self.copies() {
            let _ = writeln!(
                o,
                "| bytes | {} total, {} copied{} |",
                bytes(self.bytes_total),
                bytes(self.bytes_copied),
                self.in_place_note()
            );
        } else {
            let _ = writeln!(o, "| bytes | {} total |", bytes(self.bytes_total));
        }
        let _ = writeln!(
            o,
            "| source digest | `{}` |",
            self.src_digest.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            o,
            "| destination digest | `{}` |",
            self.dst_digest.as_deref().unwrap_or("-")
        );
        if let Some(t) = self.transfer_note() {
            let _ = writeln!(o, "| transfer | {t} |");
        }
        if let Some(f) = &self.filter {
            let _ = writeln!(
                o,
                "| filter | `{}` |",
                f.to_string().replace('|', "\\|").replace('`', "'")
            );
        }
        let (c, e) = self.measures();
        for m in [c, e] {
            if let Some((name, value)) = m.split_once(": ") {
                let _ = writeln!(o, "| {name} | {value} |");
            }
        }
        let _ = writeln!(o, "| elapsed | {:.2} s |", self.elapsed_seconds);
        for w in &self.warnings {
            let _ = writeln!(o, "\n> ⚠️ {}", w.replace('|', "\\|"));
        }
        if !self.findings.is_empty() {
            let _ = writeln!(o, "\n| kind | path | detail |\n|---|---|---|");
            for f in &self.findings {
                let _ = writeln!(
                    o,
                    "| {} | `{}` | {} |",
                    f.kind.as_str(),
                    f.path.replace('|', "\\|").replace('`', "'"),
                    f.detail.replace('|', "\\|")
                );
            }
        }
        o
    }
}
