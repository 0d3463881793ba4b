//! `shardsync._native`: the Python front end's Rust half. Each function opens the datasets the
//! way the CLI does (options, named remotes), calls the library once through [`run::run`], and
//! returns the library's result as a Python object; `shardsync/__init__.py` holds the public
//! API, its docs and the pure-Python helpers. No engine logic lives here.

mod errors;
mod run;
mod types;

use std::sync::Arc;

use pyo3::prelude::*;
use shardsync::check::{check as check_datasets, verify_store, CheckOptions};
use shardsync::events::Events;
use shardsync::filter::{Filter, FilterSpec};
use shardsync::manifest::{self, BuildOptions};
use shardsync::safety::DeleteLimit;
use shardsync::sync::{prepare, sync as sync_datasets, SyncOptions};
use shardsync::verify::VerifyMode;
use shardsync::{Dataset, OpenOptions};

use run::{Finished, Progress, Stop};
use types::{PyManifest, PyPlan, PyReport};

/// A dataset argument: its URL, its store options (`KEY -> VALUE`, the keys the CLI's
/// `--src-opt`/`--dst-opt` take) and the name those options have in messages.
struct Side<'a> {
    url: &'a str,
    options: Vec<(String, String)>,
    name: &'a str,
}

impl Side<'_> {
    /// Open as the CLI does: options checked, a named remote resolved under the explicit
    /// options, the store opened (on the runtime: some backends start tasks).
    fn open(&self, py: Python<'_>, create_local: bool, follow_symlinks: bool) -> PyResult<Dataset> {
        let raw: Vec<String> = self.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _rt = run::runtime().enter();
        let opened = shardsync::store::parse_options_from(self.name, &raw)
            .and_then(|options| shardsync::remotes::Config::load()?.resolve(self.url, &options))
            .and_then(|(url, options)| {
                Dataset::open(
                    &url,
                    &OpenOptions {
                        options,
                        create_local,
                    },
                )
            })
            .and_then(|ds| ds.with_follow_symlinks(follow_symlinks));
        opened.map_err(|e| errors::to_py(py, e))
    }
}

fn side<'a>(url: &'a str, options: Option<Vec<(String, String)>>, name: &'a str) -> Side<'a> {
    Side {
        url,
        options: options.unwrap_or_default(),
        name,
    }
}

/// The queue the engine reports into, and the library's handle on it.
fn events() -> (Arc<Progress>, Events) {
    let progress = Arc::new(Progress::default());
    let events = Events::new(progress.clone());
    (progress, events)
}

/// The value of a call that writes nothing (or writes once, at its end): an exception raised
/// while it ran wins over its result.
fn finish<T>(py: Python<'_>, done: Finished<T>, what: &str) -> PyResult<T> {
    if let Some(raised) = done.raised {
        return Err(errors::interrupted(py, raised, None, what));
    }
    match done.result {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(errors::to_py(py, e)),
        None => Err(errors::raise(py, "Error", format!("{what} was stopped"), None)),
    }
}

/// A sync's report; one interrupted by an exception raises it with the report of what was done.
fn finish_sync(py: Python<'_>, done: Finished<shardsync::sync::SyncOutcome>) -> PyResult<PyReport> {
    let result = done.result.unwrap_or(Err(shardsync::Error::Interrupted));
    if let Some(raised) = done.raised {
        let report = match result {
            Ok(o) => Some(o.report),
            Err(e) => e.into_outcome().ok().map(|o| o.report),
        };
        return Err(errors::interrupted(py, raised, report, "sync"));
    }
    result.map(|o| o.report.into()).map_err(|e| errors::to_py(py, e))
}

/// `verify="size"|"deep"` as the library's mode.
fn verify_mode(py: Python<'_>, verify: &str) -> PyResult<VerifyMode> {
    match verify {
        "size" => Ok(VerifyMode::Size),
        "deep" => Ok(VerifyMode::Deep),
        other => Err(errors::raise(
            py,
            "ConfigError",
            format!("verify must be \"size\" or \"deep\", not {other:?}"),
            None,
        )),
    }
}

/// `include`, `exclude`, `min_size`, `max_size`: a filter's parts as Python passes them.
type ViewArg = (Vec<String>, Vec<String>, Option<u64>, Option<u64>);

/// The filter (a view of both sides) as the library's; a pattern that is not a glob raises
/// `ConfigError`.
fn view(py: Python<'_>, (include, exclude, min_size, max_size): ViewArg) -> PyResult<Filter> {
    Filter::new(FilterSpec {
        include,
        exclude,
        min_size,
        max_size,
    })
    .map_err(|e| errors::to_py(py, e))
}

/// `max_delete` (`"100"` objects or `"25%"`) as the library's limit.
fn delete_limit(py: Python<'_>, max_delete: Option<&str>) -> PyResult<Option<DeleteLimit>> {
    max_delete
        .map(|m| {
            m.parse()
                .map_err(|e: String| errors::raise(py, "ConfigError", format!("max_delete {m:?}: {e}"), None))
        })
        .transpose()
}

/// Native `sync`; see `shardsync.sync`.
#[pyfunction]
#[pyo3(signature = (src, dst, *, full, delete, dry_run, jobs, verify, src_options, dst_options,
    progress, allow_empty_source, max_delete, strict, strict_parquet, follow_symlinks, part_size,
    multipart_threshold, max_memory, write_source_manifest, filter, max_transfer, bwlimit,
    egress_price))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `shardsync.sync`
fn sync(
    py: Python<'_>,
    src: &str,
    dst: &str,
    full: bool,
    delete: bool,
    dry_run: bool,
    jobs: usize,
    verify: &str,
    src_options: Option<Vec<(String, String)>>,
    dst_options: Option<Vec<(String, String)>>,
    progress: Option<Bound<'_, PyAny>>,
    allow_empty_source: bool,
    max_delete: Option<&str>,
    strict: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
    part_size: usize,
    multipart_threshold: usize,
    max_memory: usize,
    write_source_manifest: bool,
    filter: ViewArg,
    max_transfer: Option<u64>,
    bwlimit: Option<(u64, u64)>,
    egress_price: Option<f64>,
) -> PyResult<PyReport> {
    let s = side(src, src_options, "src_options").open(py, false, follow_symlinks)?;
    let d = side(dst, dst_options, "dst_options").open(py, true, false)?;
    let (queue, events) = events();
    let mut opts = SyncOptions {
        strict,
        write_source_manifest,
        ..SyncOptions::default()
    };
    opts.transfer.memory = shardsync::transfer::MemoryBudget::new(max_memory);
    opts = opts
        .with_part_size(part_size)
        .with_multipart_threshold(multipart_threshold)
        .with_full(full)
        .with_delete(delete)
        .with_dry_run(dry_run)
        .with_concurrency(jobs)
        .with_verify(verify_mode(py, verify)?)
        .with_max_delete(delete_limit(py, max_delete)?)
        .with_allow_empty_source(allow_empty_source)
        .with_strict_parquet(strict_parquet)
        .with_filter(view(py, filter)?)
        .with_max_transfer(max_transfer)
        .with_bwlimit(bwlimit)
        .with_egress_price(egress_price)
        .with_events(events);
    let stop = Stop::Cancel(opts.cancel.clone());
    let work = async move { sync_datasets(&s, &d, &opts).await };
    finish_sync(py, run::run(py, work, &queue, progress.as_ref(), stop))
}

/// Native `check`; see `shardsync.check`.
#[pyfunction]
#[pyo3(signature = (src, dst, *, deep, jobs, src_options, dst_options, progress,
    allow_empty_source, strict, strict_schema, strict_parquet, follow_symlinks, filter))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `shardsync.check`
fn check(
    py: Python<'_>,
    src: &str,
    dst: &str,
    deep: bool,
    jobs: usize,
    src_options: Option<Vec<(String, String)>>,
    dst_options: Option<Vec<(String, String)>>,
    progress: Option<Bound<'_, PyAny>>,
    allow_empty_source: bool,
    strict: bool,
    strict_schema: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
    filter: ViewArg,
) -> PyResult<PyReport> {
    let s = side(src, src_options, "src_options").open(py, false, follow_symlinks)?;
    let d = side(dst, dst_options, "dst_options").open(py, true, false)?;
    let (queue, events) = events();
    let opts = CheckOptions {
        deep,
        concurrency: jobs.max(1),
        events,
        allow_empty_source,
        strict_schema,
        strict,
        strict_parquet,
        filter: view(py, filter)?,
    };
    let work = async move { check_datasets(&s, &d, &opts).await };
    let done = run::run(py, work, &queue, progress.as_ref(), Stop::Abort);
    finish(py, done, "check").map(PyReport::from)
}

/// Native `verify`; see `shardsync.verify`.
#[pyfunction]
#[pyo3(signature = (url, *, deep, jobs, options, progress, strict, strict_schema, strict_parquet,
    follow_symlinks))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `shardsync.verify`
fn verify(
    py: Python<'_>,
    url: &str,
    deep: bool,
    jobs: usize,
    options: Option<Vec<(String, String)>>,
    progress: Option<Bound<'_, PyAny>>,
    strict: bool,
    strict_schema: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
) -> PyResult<PyReport> {
    let ds = side(url, options, "options").open(py, false, follow_symlinks)?;
    let (queue, events) = events();
    let opts = CheckOptions {
        deep,
        concurrency: jobs.max(1),
        events,
        strict_schema,
        strict,
        strict_parquet,
        ..CheckOptions::default()
    };
    let work = async move { verify_store(&ds, &opts).await };
    let done = run::run(py, work, &queue, progress.as_ref(), Stop::Abort);
    finish(py, done, "verify").map(PyReport::from)
}

/// Native `diff`; see `shardsync.diff`.
#[pyfunction]
#[pyo3(signature = (src, dst, *, jobs, src_options, dst_options, progress, allow_empty_source,
    strict, follow_symlinks, filter, egress_price))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `shardsync.diff`
fn diff(
    py: Python<'_>,
    src: &str,
    dst: &str,
    jobs: usize,
    src_options: Option<Vec<(String, String)>>,
    dst_options: Option<Vec<(String, String)>>,
    progress: Option<Bound<'_, PyAny>>,
    allow_empty_source: bool,
    strict: bool,
    follow_symlinks: bool,
    filter: ViewArg,
    egress_price: Option<f64>,
) -> PyResult<PyPlan> {
    let s = side(src, src_options, "src_options").open(py, false, follow_symlinks)?;
    let d = side(dst, dst_options, "dst_options").open(py, true, false)?;
    let (queue, events) = events();
    let mut opts = SyncOptions::default()
        .with_concurrency(jobs)
        .with_allow_empty_source(allow_empty_source)
        .with_filter(view(py, filter)?)
        .with_egress_price(egress_price)
        .with_events(events);
    opts.strict = strict;
    let (src_url, dst_url) = (s.url.clone(), d.url.clone());
    let work = async move { prepare(&s, &d, &opts).await };
    let done = run::run(py, work, &queue, progress.as_ref(), Stop::Abort);
    let prepared = finish(py, done, "diff")?;
    Ok(PyPlan::new(src_url, dst_url, prepared.plan, prepared.warnings))
}

/// Native `Manifest.build`: hash the dataset (reusing the previous manifest's entries whose
/// objects did not change) and write `<url>/_shardsync/manifest.json`, as `shardsync manifest
/// build` does.
#[pyfunction]
#[pyo3(signature = (url, *, jobs, options, progress, strict, strict_parquet, follow_symlinks))]
#[allow(clippy::too_many_arguments)] // the keyword arguments of `shardsync.Manifest.build`
fn build_manifest(
    py: Python<'_>,
    url: &str,
    jobs: usize,
    options: Option<Vec<(String, String)>>,
    progress: Option<Bound<'_, PyAny>>,
    strict: bool,
    strict_parquet: bool,
    follow_symlinks: bool,
) -> PyResult<PyManifest> {
    let ds = side(url, options, "options").open(py, false, follow_symlinks)?;
    let (queue, events) = events();
    let opts = BuildOptions {
        concurrency: jobs.max(1),
        events,
    };
    let work = async move {
        let previous = manifest::load(&ds).await?;
        let built = manifest::build_manifest(&ds, previous.as_ref().map(|p| &p.manifest), &opts).await?;
        shardsync::listing::check_strict(&ds, &built.skipped, strict)?;
        if strict_parquet {
            if let Some(e) = built.manifest.parquet_errors().next() {
                return Err(shardsync::Error::InvalidParquet {
                    path: e.path.clone(),
                    reason: format!(
                        "{} (strict Parquet: no manifest written)",
                        e.parquet_error.as_deref().unwrap_or_default()
                    ),
                });
            }
        }
        manifest::save(&ds, &built.manifest).await?;
        Ok(built.manifest)
    };
    let done = run::run(py, work, &queue, progress.as_ref(), Stop::Abort);
    finish(py, done, "manifest build").map(PyManifest)
}

/// Native `Manifest.load`: the dataset's committed manifest; `ManifestError` when it has none.
#[pyfunction]
#[pyo3(signature = (url, *, options, follow_symlinks))]
fn load_manifest(
    py: Python<'_>,
    url: &str,
    options: Option<Vec<(String, String)>>,
    follow_symlinks: bool,
) -> PyResult<PyManifest> {
    let ds = side(url, options, "options").open(py, false, follow_symlinks)?;
    let location = format!("{}/{}", ds.url, shardsync::layout::MANIFEST_KEY);
    let work = async move { manifest::load(&ds).await };
    let done = run::run(py, work, &Arc::new(Progress::default()), None, Stop::Abort);
    match finish(py, done, "manifest load")? {
        Some(stored) => Ok(PyManifest(stored.manifest)),
        None => Err(errors::raise(
            py,
            "ManifestError",
            format!("{location}: no manifest (build one with shardsync.Manifest.build or a sync)"),
            None,
        )),
    }
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sync, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(build_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(load_manifest, m)?)?;
    m.add_class::<PyReport>()?;
    m.add_class::<types::PyFinding>()?;
    m.add_class::<PyManifest>()?;
    m.add_class::<types::PyShardEntry>()?;
    m.add_class::<PyPlan>()?;
    m.add_class::<types::PyPlanItem>()?;
    m.add_class::<run::ProgressEvent>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
