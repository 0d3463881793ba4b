//! The library's results as Python objects: read-only views over the Rust values, with the
//! library's own renderings (JSON, Markdown, text) and `to_dict()` from its JSON.

use pyo3::prelude::*;
use pyo3::types::PyList;
use shardsync::diff::Plan;
use shardsync::manifest::{Manifest, ShardEntry};
use shardsync::report::{Finding, Report};

/// `json.loads(text)`: the library's JSON as Python dicts and lists.
fn json_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

/// One problem the run found, about one path.
#[pyclass(name = "Finding", module = "shardsync", frozen)]
#[derive(Debug, Clone)]
pub struct PyFinding(Finding);

#[pymethods]
impl PyFinding {
    /// The object's path relative to the dataset root.
    #[getter]
    fn path(&self) -> &str {
        &self.0.path
    }
    /// What was found: `missing`, `changed`, `extra`, `size_mismatch`, `corrupt`,
    /// `invalid_parquet`, `unreadable_footer`, `schema_drift` or `error`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind.as_str()
    }
    /// What is wrong, for a person.
    #[getter]
    fn detail(&self) -> &str {
        &self.0.detail
    }
    /// A warning is listed but does not make a report inconsistent.
    #[getter]
    fn is_warning(&self) -> bool {
        self.0.kind.is_warning()
    }
    fn __repr__(&self) -> String {
        format!("Finding(kind={:?}, path={:?})", self.0.kind.as_str(), self.0.path)
    }
}

/// A run's consistency report: what `shardsync sync`, `check` and `verify` print.
#[pyclass(name = "Report", module = "shardsync", frozen)]
#[derive(Debug, Clone)]
pub struct PyReport(pub Report);

impl From<Report> for PyReport {
    fn from(r: Report) -> Self {
        PyReport(r)
    }
}

#[pymethods]
impl PyReport {
    /// `sync`, `check` or `verify`.
    #[getter]
    fn command(&self) -> &str {
        &self.0.command
    }
    /// `incremental`, `full`, `dry-run`, `shallow` or `deep`.
    #[getter]
    fn mode(&self) -> &str {
        &self.0.mode
    }
    /// The source URL (credentials removed).
    #[getter]
    fn src(&self) -> Option<&str> {
        self.0.src.as_deref()
    }
    /// The destination URL (credentials removed); `None` for `verify`.
    #[getter]
    fn dst(&self) -> Option<&str> {
        self.0.dst.as_deref()
    }
    /// True when the destination holds exactly the source's dataset (for `verify`: the store
    /// matches its manifest). The CLI exits 0 exactly when this is true.
    #[getter]
    fn consistent(&self) -> bool {
        self.0.consistent
    }
    /// The source dataset's digest (the version a training run logs), when known.
    #[getter]
    fn src_digest(&self) -> Option<&str> {
        self.0.src_digest.as_deref()
    }
    /// The destination manifest's digest (after the commit, for a sync).
    #[getter]
    fn dst_digest(&self) -> Option<&str> {
        self.0.dst_digest.as_deref()
    }
    /// Per-object findings, sorted by kind and path.
    #[getter]
    fn findings(&self) -> Vec<PyFinding> {
        self.0.findings.iter().cloned().map(PyFinding).collect()
    }
    /// Things that did not fail the run but deserve a look.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.0.warnings.clone()
    }
    /// C(A,B): the share of paths that differ between the two sides, after the run.
    #[getter]
    fn inconsistency(&self) -> f64 {
        self.0.inconsistency
    }
    /// E(A,B) = T/N: elapsed seconds per shard of the dataset.
    #[getter]
    fn seconds_per_shard(&self) -> f64 {
        self.0.seconds_per_shard
    }
    /// Objects in the source.
    #[getter]
    fn shards_total(&self) -> u64 {
        self.0.shards_total
    }
    /// Objects copied and verified by this run.
    #[getter]
    fn shards_copied(&self) -> u64 {
        self.0.shards_copied
    }
    /// Objects already identical at the destination.
    #[getter]
    fn shards_skipped(&self) -> u64 {
        self.0.shards_skipped
    }
    /// Destination extras deleted (`delete=True`).
    #[getter]
    fn shards_deleted(&self) -> u64 {
        self.0.shards_deleted
    }
    /// Objects whose copy failed (not committed).
    #[getter]
    fn shards_failed(&self) -> u64 {
        self.0.shards_failed
    }
    /// Objects not copied because the sync was interrupted or the destination refused writes.
    #[getter]
    fn shards_not_started(&self) -> u64 {
        self.0.shards_not_started
    }
    /// The sync was interrupted before it copied everything it planned to.
    #[getter]
    fn interrupted(&self) -> bool {
        self.0.interrupted
    }
    /// Bytes in the source.
    #[getter]
    fn bytes_total(&self) -> u64 {
        self.0.bytes_total
    }
    /// Bytes copied by this run.
    #[getter]
    fn bytes_copied(&self) -> u64 {
        self.0.bytes_copied
    }
    /// Bytes the plan moves between the stores (`sync`); `None` for `check` and `verify`.
    #[getter]
    fn bytes_to_transfer(&self) -> Option<u64> {
        self.0.bytes_to_transfer
    }
    /// `bytes_to_transfer` priced at the `egress_price` given, in US dollars.
    #[getter]
    fn estimated_cost_usd(&self) -> Option<f64> {
        self.0.estimated_cost_usd
    }
    /// The sync stopped starting copies at its `max_transfer`.
    #[getter]
    fn max_transfer_reached(&self) -> bool {
        self.0.max_transfer_reached
    }
    /// Seconds the run took.
    #[getter]
    fn elapsed_seconds(&self) -> f64 {
        self.0.elapsed_seconds
    }
    /// Whether a destination manifest was committed by this run.
    #[getter]
    fn committed(&self) -> bool {
        self.0.committed
    }
    /// Why the run failed as a whole, when it did.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The report as a dict: the CLI's `--format json` document.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0.to_json())
    }
    /// The report as pretty JSON (the CLI's `--format json`).
    fn to_json(&self) -> String {
        self.0.to_json()
    }
    /// The report as Markdown, for CI summaries (the CLI's `--format markdown`).
    fn to_markdown(&self) -> String {
        self.0.render_markdown()
    }
    /// The report as the CLI's text table; `color` adds ANSI colours.
    #[pyo3(signature = (color = false))]
    fn to_text(&self, color: bool) -> String {
        self.0.render_text(color)
    }
    fn __str__(&self) -> String {
        self.0.render_text(false)
    }
    fn __repr__(&self) -> String {
        let r = &self.0;
        format!(
            "Report(command={:?}, consistent={}, src={:?}, dst={:?}, findings={}, copied={}/{})",
            r.command,
            if r.consistent { "True" } else { "False" },
            r.src.as_deref().unwrap_or(""),
            r.dst.as_deref().unwrap_or(""),
            r.findings.len(),
            r.shards_copied,
            r.shards_total
        )
    }
}

/// One object of a dataset as its manifest records it.
#[pyclass(name = "ShardEntry", module = "shardsync", frozen)]
#[derive(Debug, Clone)]
pub struct PyShardEntry(ShardEntry);

#[pymethods]
impl PyShardEntry {
    /// Path relative to the dataset root, `/`-separated.
    #[getter]
    fn path(&self) -> &str {
        &self.0.path
    }
    /// Size in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.0.size
    }
    /// SHA-256 of the bytes, lowercase hex.
    #[getter]
    fn sha256(&self) -> &str {
        &self.0.sha256
    }
    /// Parquet row count (`None` for other objects).
    #[getter]
    fn rows(&self) -> Option<u64> {
        self.0.rows
    }
    /// Parquet row-group count.
    #[getter]
    fn row_groups(&self) -> Option<u64> {
        self.0.row_groups
    }
    /// Fingerprint of the Arrow schema (`sha256:` + 16 hex digits).
    #[getter]
    fn schema(&self) -> Option<&str> {
        self.0.schema.as_deref()
    }
    /// Why a `.parquet` object has no rows or schema: its footer did not decode.
    #[getter]
    fn parquet_error(&self) -> Option<&str> {
        self.0.parquet_error.as_deref()
    }
    /// Whether this is a Parquet shard (as opposed to a sidecar file).
    #[getter]
    fn is_parquet(&self) -> bool {
        self.0.is_parquet()
    }
    /// The entry as a dict, as the manifest's JSON holds it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = serde_json::to_string(&self.0)
            .map_err(|e| crate::errors::raise(py, "Error", e.to_string(), None))?;
        json_to_py(py, &text)
    }
    fn __repr__(&self) -> String {
        format!(
            "ShardEntry(path={:?}, size={}, sha256={:?}, rows={:?})",
            self.0.path, self.0.size, self.0.sha256, self.0.rows
        )
    }
}

/// A dataset version: every object's path, size, SHA-256 and Parquet facts, and one digest
/// that names the version.
#[pyclass(name = "Manifest", module = "shardsync", frozen, sequence)]
#[derive(Debug, Clone)]
pub struct PyManifest(pub Manifest);

#[pymethods]
impl PyManifest {
    /// SHA-256 over the sorted `(path, size, sha256)` triples: the dataset version in one
    /// string, for a training run to log.
    #[getter]
    fn digest(&self) -> &str {
        &self.0.digest
    }
    /// The dataset's URL (credentials removed) when the manifest was built.
    #[getter]
    fn dataset(&self) -> &str {
        &self.0.dataset
    }
    /// When the manifest was built (RFC 3339).
    #[getter]
    fn created_at(&self) -> String {
        self.0.created_at.to_rfc3339()
    }
    /// `{"shards": Parquet shards, "files": all objects, "bytes": ..., "rows": ...}`.
    #[getter]
    fn totals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = &self.0.totals;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("shards", t.shards)?;
        d.set_item("files", t.files)?;
        d.set_item("bytes", t.bytes)?;
        d.set_item("rows", t.rows)?;
        Ok(d.into_any())
    }
    /// The entry for `path`, or `None`.
    fn get(&self, path: &str) -> Option<PyShardEntry> {
        self.0.get(path).cloned().map(PyShardEntry)
    }
    /// The manifest as a dict, as its JSON holds it.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.to_json())
    }
    /// The manifest's JSON, as stored under `_shardsync/manifest.json`.
    fn to_json(&self) -> String {
        String::from_utf8_lossy(&self.0.to_json()).into_owned()
    }
    fn __len__(&self) -> usize {
        self.0.shards.len()
    }
    fn __getitem__(&self, index: isize) -> PyResult<PyShardEntry> {
        let n = self.0.shards.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if !(0..n).contains(&i) {
            return Err(pyo3::exceptions::PyIndexError::new_err(
                "manifest index out of range",
            ));
        }
        Ok(PyShardEntry(self.0.shards[i as usize].clone()))
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let entries: Vec<PyShardEntry> = self.0.shards.iter().cloned().map(PyShardEntry).collect();
        PyList::new(py, entries)?.try_iter().map(Bound::into_any)
    }
    fn __repr__(&self) -> String {
        format!(
            "Manifest(dataset={:?}, digest={:?}, files={}, bytes={})",
            self.0.dataset, self.0.digest, self.0.totals.files, self.0.totals.bytes
        )
    }
}

/// One path of a plan.
#[pyclass(name = "PlanItem", module = "shardsync", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct PyPlanItem {
    /// The path relative to the dataset root.
    pub path: String,
    /// `new`, `changed`, `missing`, `extra`, `same` or `unproven`.
    pub state: &'static str,
    /// The source object's size, if the source has it.
    pub src_size: Option<u64>,
    /// The destination object's size, if the destination has it.
    pub dst_size: Option<u64>,
}

#[pymethods]
impl PyPlanItem {
    fn __repr__(&self) -> String {
        format!("PlanItem(path={:?}, state={:?})", self.path, self.state)
    }
}

/// What a sync would do, path by path: the CLI's `diff`. Nothing is copied.
#[pyclass(name = "Plan", module = "shardsync", frozen)]
#[derive(Debug)]
pub struct PyPlan {
    src: String,
    dst: String,
    plan: Plan,
    warnings: Vec<String>,
}

impl PyPlan {
    pub fn new(src: String, dst: String, plan: Plan, warnings: Vec<String>) -> Self {
        PyPlan {
            src,
            dst,
            plan,
            warnings,
        }
    }

    fn json(&self) -> serde_json::Value {
        self.plan.to_json_value(&self.src, &self.dst)
    }
}

#[pymethods]
impl PyPlan {
    /// The source URL (credentials removed).
    #[getter]
    fn src(&self) -> &str {
        &self.src
    }
    /// The destination URL (credentials removed).
    #[getter]
    fn dst(&self) -> &str {
        &self.dst
    }
    /// True when nothing differs: a sync would copy and delete nothing (the CLI exits 0).
    #[getter]
    fn is_clean(&self) -> bool {
        self.plan.is_clean()
    }
    /// Paths per state: `{"new": .., "changed": .., "missing": .., "extra": .., "same": ..,
    /// "unproven": ..}`.
    #[getter]
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.json()["counts"].to_string())
    }
    /// Every path of either side, sorted.
    #[getter]
    fn items(&self) -> Vec<PyPlanItem> {
        self.plan
            .items
            .iter()
            .map(|i| PyPlanItem {
                path: i.path.clone(),
                state: i.state.as_str(),
                src_size: i.src.as_ref().map(|s| s.stat.size),
                dst_size: i.dst.as_ref().map(|d| d.size),
            })
            .collect()
    }
    /// What the listing left out or could not carry, one line each.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
    /// The plan as a dict: the CLI's `diff --format json` document.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.json().to_string())
    }
    fn __len__(&self) -> usize {
        self.plan.items.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.items())?.try_iter().map(Bound::into_any)
    }
    fn __repr__(&self) -> String {
        let c = self.plan.counts();
        format!(
            "Plan(src={:?}, dst={:?}, new={}, changed={}, missing={}, extra={}, same={})",
            self.src, self.dst, c.new, c.changed, c.missing, c.extra, c.same
        )
    }
}
