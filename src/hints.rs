//! What the command line adds to a report: the flag that acts on each kind of finding.
//!
//! The library's findings and warnings name the situation ("in the destination only"); which
//! flag of this binary acts on it is the binary's business, so the hints live here and go to
//! stderr after a text report, one line per kind present.

use shardsync::report::{FindingKind, Report};

/// One line per situation in `report` that a flag of this binary acts on.
pub fn for_report(report: &Report) -> Vec<String> {
    let count = |kind: FindingKind| report.findings.iter().filter(|f| f.kind == kind).count();
    let deep = report.mode.contains("deep");
    let mut hints = Vec::new();
    let extra = count(FindingKind::Extra);
    if extra > 0 {
        hints.push(format!(
            "`shardsync sync SRC DST --delete` removes the {extra} object(s) found only in the destination"
        ));
    }
    let corrupt = count(FindingKind::Corrupt);
    if corrupt > 0 {
        hints.push(format!(
            "`shardsync sync SRC DST --verify deep` rewrites the {corrupt} corrupt object(s)"
        ));
    }
    let changed = count(FindingKind::Changed);
    if changed > 0 && !deep && matches!(report.command.as_str(), "check" | "verify") {
        hints.push(format!(
            "`shardsync {} --deep` hashes the bytes of the {changed} changed or unproven object(s)",
            report.command
        ));
    }
    if count(FindingKind::UnreadableFooter) > 0 {
        hints.push("`--strict-parquet` makes an unreadable Parquet footer drift".into());
    }
    if report.warnings.iter().any(|w| w.contains(" is a symlink ")) {
        hints.push("`--follow-symlinks` reads through a source's symlinks".into());
    }
    hints
}

/// Print the hints to stderr (after a text report; never with JSON or `--quiet`).
pub fn print(report: &Report) {
    if crate::logging::quiet() {
        return;
    }
    for h in for_report(report) {
        eprintln!("hint: {h}");
    }
}
