//! The library's [`shardsync::Error`] as Python exceptions.
//!
//! The classes live in `shardsync/errors.py`; this module only picks one per variant, builds
//! the message (the library's, redacted again, plus the keyword argument that changes the
//! situation, as the CLI adds a flag) and attaches the report of a sync that ran.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shardsync::report::{FindingKind, Report};
use shardsync::Error;

use crate::types::PyReport;

/// The Python class (in `shardsync.errors`) a library error is raised as.
fn class_of(e: &Error) -> &'static str {
    match e {
        Error::InvalidConfig { .. }
        | Error::RemoteSecretUnset { .. }
        | Error::InvalidUrl { .. }
        | Error::InvalidOption { .. }
        | Error::InvalidFilter { .. } => "ConfigError",
        Error::EmptySource { .. }
        | Error::FilterMatchesNothing { .. }
        | Error::TooManyDeletes { .. }
        | Error::Overlap { .. } => "RefusedError",
        Error::Store { .. }
        | Error::AwsCredentials { .. }
        | Error::Io { .. }
        | Error::UnsupportedKeys { .. } => "StoreError",
        Error::InvalidManifest { .. } => "ManifestError",
        Error::ManifestConflict { .. }
        | Error::DestinationLocked { .. }
        | Error::ChangedUnderCommit { .. } => "ConflictError",
        Error::InvalidShardPath { .. }
        | Error::HashMismatch { .. }
        | Error::SizeMismatch { .. }
        | Error::SourceChanged { .. }
        | Error::DestinationReplaced { .. }
        | Error::InvalidParquet { .. }
        | Error::ShardsFailed { .. } => "ShardError",
        Error::Incomplete { .. } => "IncompleteError",
        Error::Drift { .. } => "DriftError",
        Error::Interrupted => "Interrupted",
        _ => "Error",
    }
}

/// What the caller can change, in this API's words (the CLI names its flags instead).
fn hint(e: &Error) -> Option<&'static str> {
    match e {
        Error::EmptySource { .. } => Some("pass allow_empty_source=True if the source is meant to be empty"),
        Error::TooManyDeletes { .. } => Some("pass max_delete=N or max_delete=\"P%\" to allow it"),
        _ => None,
    }
}

/// The message a person reads: the library's, each failed shard with its cause for a sync
/// whose shards failed, the hint; credential-bearing parts of server answers removed.
pub fn message(e: &Error) -> String {
    let mut msg = e.to_string();
    if let Some(r) = e.report() {
        msg.push_str(&failed_shards(r));
    }
    if let Some(h) = hint(e) {
        msg.push_str(&format!(" ({h})"));
    }
    shardsync::display::escape_controls_keep_lines(&shardsync::error::redact_secrets(&msg))
}

/// One line per failed shard (`path: cause`), as the CLI lists them.
fn failed_shards(r: &Report) -> String {
    r.findings
        .iter()
        .filter(|f| f.kind == FindingKind::Error)
        .map(|f| {
            if f.detail.starts_with(&f.path) {
                format!("\n  {}", f.detail)
            } else {
                format!("\n  {}: {}", f.path, f.detail)
            }
        })
        .collect()
}

/// An instance of `shardsync.errors.<class>(message, report=...)` as a `PyErr`.
pub fn raise(py: Python<'_>, class: &str, message: String, report: Option<Report>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = py.import("shardsync.errors")?.getattr(class)?;
        let kwargs = PyDict::new(py);
        if let Some(r) = report {
            kwargs.set_item("report", Py::new(py, PyReport::from(r))?)?;
        }
        Ok(PyErr::from_value(cls.call((message,), Some(&kwargs))?))
    };
    build().unwrap_or_else(|e| e)
}

/// The library's error as the Python exception for it. An incomplete sync that was
/// interrupted is `Interrupted` (a `KeyboardInterrupt`), with its report.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let interrupted = e.report().is_some_and(|r| r.interrupted);
    let class = if interrupted { "Interrupted" } else { class_of(&e) };
    let msg = message(&e);
    let report = e.into_outcome().ok().map(|o| o.report);
    raise(py, class, msg, report)
}

/// A call stopped by an exception raised while it ran (Ctrl-C, or the progress callback's
/// own): a `KeyboardInterrupt` becomes `shardsync.Interrupted` with the report of what was
/// done; any other exception is raised as it is.
pub fn interrupted(py: Python<'_>, raised: PyErr, report: Option<Report>, what: &str) -> PyErr {
    if !raised.is_instance_of::<PyKeyboardInterrupt>(py) {
        return raised;
    }
    let msg = match &report {
        Some(r) => format!(
            "{what} interrupted: {} shard(s) copied, verified and committed; {} not copied; \
             the same call finishes the job",
            r.shards_copied, r.shards_not_started
        ),
        None if what == "sync" => {
            "sync interrupted; what is committed stays true, the same call finishes the job".into()
        }
        None => format!("{what} interrupted"),
    };
    let err = raise(py, "Interrupted", msg, report);
    err.set_cause(py, Some(raised));
    err
}
