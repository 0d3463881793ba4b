//! Proving consistency without copying: `check` (two stores) and `verify` (one store against
//! its own manifest). Both produce a [`Report`] whose findings name every drifting path.

use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::diff::State;
use crate::error::{Error, Result};
use crate::events::{Events, Stage};
use crate::filter::Filter;
use crate::hash::{parse_footer, ParquetFacts};
use crate::listing::{list_dataset, ObjectStat};
use crate::manifest::build::entry_matches_stat;
use crate::manifest::{self, Manifest, ShardEntry};
use crate::report::{footer_findings, only_warnings, Finding, FindingKind, Report};
use crate::store::Dataset;
use crate::sync::{finding_for, prepare_with, Prepared, SyncOptions};
use crate::verify::VerifyMode;

/// The folder a shard lives in (`""` at the root): the unit a loader reads as one table.
fn folder_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Shards whose schema differs from the majority schema of their own folder:
/// `(path, schema, majority)`. Folders may differ from one another (a Hugging Face repository
/// with two configs in two folders is normal); within one folder a loader reads the shards as
/// one table, and a different schema there breaks it.
pub fn schema_drift(entries: &[ShardEntry]) -> Vec<(String, String, String)> {
    use std::collections::BTreeMap;
    let mut counts: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for e in entries {
        if let Some(s) = &e.schema {
            *counts
                .entry(folder_of(&e.path))
                .or_default()
                .entry(s.as_str())
                .or_default() += 1;
        }
    }
    // Majority per folder; ties go to the lexicographically first for a deterministic answer.
    let majority: BTreeMap<&str, &str> = counts
        .iter()
        .filter_map(|(folder, c)| {
            let (m, _) = c.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
            Some((*folder, *m))
        })
        .collect();
    entries
        .iter()
        .filter_map(|e| {
            let s = e.schema.as_deref()?;
            let m = majority.get(folder_of(&e.path))?;
            (s != *m).then(|| (e.path.clone(), s.to_string(), m.to_string()))
        })
        .collect()
}

/// Schema variety as findings (strict: it is drift) or as one warning per folder.
fn report_schema_drift(report: &mut Report, entries: &[ShardEntry], side: &str, strict: bool) {
    let drift = schema_drift(entries);
    if strict {
        report
            .findings
            .extend(drift.into_iter().map(|(path, schema, majority)| Finding {
                detail: format!(
                    "{side} schema {schema} differs from the majority schema {majority} of its folder; \
                 loaders reading the folder as one table will fail"
                ),
                path,
                kind: FindingKind::SchemaDrift,
            }));
        return;
    }
    report.warnings.extend(schema_warnings(&drift, side));
}

/// One line per folder whose shards do not share one schema.
pub fn schema_warnings(drift: &[(String, String, String)], side: &str) -> Vec<String> {
    let mut by_folder: std::collections::BTreeMap<&str, Vec<&(String, String, String)>> = Default::default();
    for d in drift {
        by_folder.entry(folder_of(&d.0)).or_default().push(d);
    }
    by_folder
        .into_iter()
        .map(|(folder, shards)| {
            let names: Vec<&str> = shards.iter().take(3).map(|d| d.0.as_str()).collect();
            let more = shards.len().saturating_sub(names.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "schema variety in {side} folder {:?}: {} shard(s) ({}{more}) differ from the folder's \
                 majority schema {}; a loader reading the folder as one table fails (strict schema \
                 checking makes this drift)",
                if folder.is_empty() { "/" } else { folder },
                shards.len(),
                names.join(", "),
                shards[0].2
            )
        })
        .collect()
}

/// Options for [`check`] and [`verify_store`].
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Re-hash every byte on both sides.
    pub deep: bool,
    /// Objects read at once.
    pub concurrency: usize,
    /// Where progress goes (see [`crate::events`]).
    pub events: Events,
    /// Accept a source that lists no objects (by default an error: a mistyped prefix).
    pub allow_empty_source: bool,
    /// Shards whose schema differs from their folder's majority are drift (findings), not
    /// warnings.
    pub strict_schema: bool,
    /// Keys that are not carried (see [`crate::listing`]) are an error, not a warning.
    pub strict: bool,
    /// A `.parquet` shard whose footer does not decode makes the report inconsistent (it is a
    /// warning otherwise).
    pub strict_parquet: bool,
    /// Compare only the view this filter lets in, on both sides (`check`; see
    /// [`crate::filter`]). A destination manifest written by a sync with another filter is
    /// named in a warning.
    pub filter: Filter,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            deep: false,
            concurrency: 16,
            events: Events::none(),
            allow_empty_source: false,
            strict_schema: false,
            strict: false,
            strict_parquet: false,
            filter: Filter::default(),
        }
    }
}

/// Compare two datasets. Shallow: manifests, listings, sizes, stored hashes. Deep: every byte
/// re-hashed on both sides. Writes nothing.
pub async fn check(src: &Dataset, dst: &Dataset, opts: &CheckOptions) -> Result<Report> {
    let mut report = Report::new(
        "check",
        if opts.deep { "deep" } else { "shallow" },
        Some(&src.url),
        Some(&dst.url),
    );
    let sync_opts = SyncOptions {
        concurrency: std::num::NonZeroUsize::new(opts.concurrency).unwrap_or(std::num::NonZeroUsize::MIN),
        verify: if opts.deep {
            VerifyMode::Deep
        } else {
            VerifyMode::Size
        },
        events: opts.events.clone(),
        allow_empty_source: opts.allow_empty_source,
        strict: opts.strict,
        filter: opts.filter.clone(),
        ..SyncOptions::default()
    };
    let prepared = prepare_with(src, dst, &sync_opts, opts.deep).await?;
    let plan = &prepared.plan;
    report.plan = Some(plan.counts());
    report.filter = plan.filter.clone();
    report.warnings.extend(prepared.warnings.iter().cloned());
    report.warnings.extend(other_view(&prepared, &opts.filter));
    plan_findings(&mut report, &prepared, dst, opts).await?;
    record_digests(&mut report, &prepared, opts);
    let sources = plan.items.iter().filter_map(|i| i.src.as_ref());
    report.shards_total = sources.clone().count() as u64;
    report.bytes_total = sources.map(|s| s.stat.size).sum();
    report.inconsistency = crate::sync::plan::inconsistency(plan);
    crate::local::add_to_check(&mut report, src, dst);
    report.consistent = only_warnings(&report.findings);
    if report.consistent && report.src_digest.is_some() && report.dst_digest != report.src_digest {
        report.warnings.push(format!(
            "the destination holds the source's bytes, but its manifest (digest {}) is out of date; \
             the next sync rewrites it",
            report.dst_digest.as_deref().unwrap_or("none")
        ));
    }
    report.finish();
    Ok(report)
}

/// A warning when the destination manifest was written by a sync with another filter than
/// this check's: its entries describe another view of the dataset than the one compared.
fn other_view(prepared: &Prepared, filter: &Filter) -> Option<String> {
    let recorded = prepared.dst_stored.as_ref()?.manifest.filter.clone()?;
    if &recorded == filter.spec() {
        return None;
    }
    Some(format!(
        "the destination manifest was written by a sync filtered by {recorded}, but this check \
         compares the view filtered by {}: pass the sync's filter flags to compare like with like",
        filter.spec()
    ))
}

/// A finding per plan item that differs (in deep mode, a changed object whose metadata claims
/// the source's hash is corruption), and one per corrupt source object.
async fn plan_findings(
    report: &mut Report,
    prepared: &Prepared,
    dst: &Dataset,
    opts: &CheckOptions,
) -> Result<()> {
    for item in &prepared.plan.items {
        let Some(mut f) = finding_for(item) else {
            continue;
        };
        if opts.deep && f.kind == FindingKind::Changed && claims_source_hash(dst, item).await? {
            f.kind = FindingKind::Corrupt;
            f.detail = "bytes differ from the SHA-256 recorded in the destination object's metadata, \
                        which is the source's (silent corruption; a shallow check trusts the metadata); \
                        a sync that verifies deeply rewrites it"
                .into();
        }
        report.findings.push(f);
    }
    for path in &prepared.src_corrupt {
        report.findings.push(Finding {
            path: path.clone(),
            kind: FindingKind::Corrupt,
            detail:
                "source bytes differ from the source manifest's SHA-256 (silent corruption at the source)"
                    .into(),
        });
    }
    Ok(())
}

/// Each side's real digest: the source's dataset as it is now, and the manifest the
/// destination has committed (what a training run there logs), not the matching subset. The
/// source's schema and footer findings come with its entries.
fn record_digests(report: &mut Report, prepared: &Prepared, opts: &CheckOptions) {
    let plan = &prepared.plan;
    if let Some(src_entries) = &plan.source_entries() {
        report_schema_drift(report, src_entries, "source", opts.strict_schema);
        report
            .findings
            .extend(footer_findings(src_entries, opts.strict_parquet));
        report.src_digest = Some(manifest::digest_of(src_entries));
    }
    let dst_entries: Vec<ShardEntry> = plan
        .items
        .iter()
        .filter(|i| i.state == State::Same)
        .filter_map(|i| i.dst_entry.clone())
        .collect();
    report.dst_digest = match &prepared.dst_stored {
        Some(stored) => Some(stored.manifest.digest.clone()),
        None if dst_entries.len() == plan.items.len() => Some(manifest::digest_of(&dst_entries)),
        None => None,
    };
}

/// Whether a destination object that a deep check found to differ carries the source's SHA-256
/// in its metadata: the copy was verified once and the bytes rotted since. Stores whose
/// listings do not reproduce the manifest's cache key (mtime precision, no ETag in listings)
/// lose the manifest's word for the object; the metadata still says what was landed.
async fn claims_source_hash(dst: &Dataset, item: &crate::diff::PlanItem) -> Result<bool> {
    let Some(src) = item.src.as_ref().and_then(|s| s.entry.as_ref()) else {
        return Ok(false);
    };
    if !dst.capabilities.user_metadata || item.dst.as_ref().is_none_or(|d| d.size != src.size) {
        return Ok(false);
    }
    Ok(matches!(
        crate::verify::head_with_sha(dst, &item.path).await?,
        Some((_, Some(stored))) if stored == src.sha256
    ))
}

/// Compare the manifest with the listing: extras, missing objects, size mismatches and (when
/// shallow) rewritten objects become findings; the entries left are returned to be read.
fn compare_with_listing(
    m: &Manifest,
    listing: &[ObjectStat],
    opts: &CheckOptions,
    report: &mut Report,
) -> Vec<ShardEntry> {
    let listed: std::collections::HashMap<&str, &ObjectStat> =
        listing.iter().map(|s| (s.path.as_str(), s)).collect();
    for s in listing {
        if m.get(&s.path).is_none() {
            report.findings.push(Finding {
                path: s.path.clone(),
                kind: FindingKind::Extra,
                detail: "in the store but not in its manifest; `manifest build` adds it".into(),
            });
        }
    }
    let mut to_read = Vec::new();
    for e in &m.shards {
        match listed.get(e.path.as_str()) {
            None => report.findings.push(Finding {
                path: e.path.clone(),
                kind: FindingKind::Missing,
                detail: "listed in the manifest, absent from the store".into(),
            }),
            Some(s) if s.size != e.size => report.findings.push(Finding {
                path: e.path.clone(),
                kind: FindingKind::SizeMismatch,
                detail: format!("manifest says {} bytes, store has {}", e.size, s.size),
            }),
            // Entries with no cache key (hand-written manifests) have nothing to compare.
            Some(s) if !opts.deep && has_cache_key(e) && !entry_matches_stat(e, s) => {
                report.findings.push(Finding {
                    path: e.path.clone(),
                    kind: FindingKind::Changed,
                    detail: "rewritten since the manifest recorded it (its ETag/mtime differ); \
                         a deep verify compares the bytes"
                        .into(),
                })
            }
            Some(_) => to_read.push(e.clone()),
        }
    }
    to_read
}

/// Read the entries' objects (their footers; with `deep`, every byte) and return the findings.
async fn read_entries(ds: &Dataset, to_read: Vec<ShardEntry>, opts: &CheckOptions) -> Vec<Vec<Finding>> {
    let bytes: u64 = if opts.deep {
        to_read.iter().map(|e| e.size).sum()
    } else {
        0
    };
    opts.events.start(
        if opts.deep {
            Stage::Hashing
        } else {
            Stage::ReadingFooters
        },
        to_read.len() as u64,
        bytes,
    );
    let results: Vec<Vec<Finding>> = futures::stream::iter(to_read)
        .map(|e| async move {
            let r = verify_entry(ds, &e, opts).await;
            opts.events.object_done(&e.path);
            r.unwrap_or_else(|err| {
                vec![Finding {
                    path: e.path.clone(),
                    kind: FindingKind::Error,
                    detail: err.to_string(),
                }]
            })
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    opts.events.finish();
    results
}

/// Share of the manifest's entries (and extras) that have a finding that is not a warning.
fn verify_inconsistency(report: &Report, m: &Manifest) -> f64 {
    let bad: std::collections::HashSet<&str> = report
        .findings
        .iter()
        .filter(|f| !f.kind.is_warning())
        .map(|f| f.path.as_str())
        .collect();
    let n = (m.shards.len()
        + report
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Extra)
            .count())
    .max(1);
    bad.len() as f64 / n as f64
}

/// Check one store against its own manifest: missing objects, size mismatches, unreadable
/// Parquet footers, schema drift, extras; with `deep`, hash mismatches.
pub async fn verify_store(ds: &Dataset, opts: &CheckOptions) -> Result<Report> {
    let mut report = Report::new(
        "verify",
        if opts.deep { "deep" } else { "shallow" },
        Some(&ds.url),
        None,
    );
    let stored = manifest::load(ds).await?.ok_or_else(|| Error::InvalidManifest {
        location: ds.manifest_location(),
        reason: "no manifest (run `shardsync manifest build` first)".into(),
    })?;
    let m: Manifest = stored.manifest;
    let listing = list_dataset(ds).await?;
    listing.check_strict(ds, opts.strict)?;
    report.warnings.extend(listing.warning(ds));
    // A manifest written by a filtered sync describes that view: objects outside it are not
    // extras.
    let view = Filter::new(m.filter.clone().unwrap_or_default())?;
    report.filter = m.filter.clone();
    let listing: Vec<ObjectStat> = listing
        .objects
        .into_iter()
        .filter(|s| view.matches(&s.path, s.size))
        .collect();
    report.src_digest = Some(m.digest.clone());
    report.shards_total = m.shards.len() as u64;
    report.bytes_total = m.totals.bytes;

    let to_read = compare_with_listing(&m, &listing, opts, &mut report);
    let results = read_entries(ds, to_read, opts).await;
    report.findings.extend(results.into_iter().flatten());
    report_schema_drift(&mut report, &m.shards, "manifest", opts.strict_schema);
    crate::local::add_to_verify(&mut report, ds);
    report
        .findings
        .extend(footer_findings(&m.shards, opts.strict_parquet));
    report.consistent = only_warnings(&report.findings);
    report.inconsistency = verify_inconsistency(&report, &m);
    report.finish();
    Ok(report)
}

fn has_cache_key(e: &ShardEntry) -> bool {
    e.mtime.is_some() || e.etag.is_some()
}

async fn verify_entry(ds: &Dataset, e: &ShardEntry, opts: &CheckOptions) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let facts: Option<std::result::Result<ParquetFacts, String>> = if opts.deep {
        let (sha, facts) = rehash_with_facts(ds, e, &opts.events).await?;
        if sha != e.sha256 {
            out.push(Finding {
                path: e.path.clone(),
                kind: FindingKind::Corrupt,
                detail: format!("SHA-256 {sha} differs from the manifest's {}", e.sha256),
            });
        }
        facts
    } else if e.is_parquet() {
        Some(read_footer(ds, &e.path, e.size).await?)
    } else {
        None
    };
    match facts {
        // Expected: the manifest records the footer as unreadable (listed from the manifest).
        Some(Err(_)) if e.parquet_error.is_some() => {}
        Some(Err(reason)) if e.rows.is_some() => out.push(Finding {
            path: e.path.clone(),
            kind: FindingKind::Corrupt,
            detail: format!(
                "footer no longer decodes ({reason}) though the manifest recorded {} rows: the bytes changed",
                e.rows.unwrap_or(0)
            ),
        }),
        Some(Err(reason)) => {
            let mut unknown = e.clone();
            unknown.parquet_error = Some(reason);
            out.extend(footer_findings([&unknown], opts.strict_parquet));
        }
        Some(Ok(f)) if e.rows.is_some_and(|r| r != f.rows) => out.push(Finding {
            path: e.path.clone(),
            kind: FindingKind::Changed,
            detail: format!("footer says {} rows, manifest {}", f.rows, e.rows.unwrap_or(0)),
        }),
        _ => {}
    }
    Ok(out)
}

type ShaAndFacts = (String, Option<std::result::Result<ParquetFacts, String>>);

/// Re-hash an object and, for Parquet, decode the footer from the same pass.
async fn rehash_with_facts(ds: &Dataset, e: &ShardEntry, progress: &Events) -> Result<ShaAndFacts> {
    let res = ds
        .store
        .get_opts(&ds.key(&e.path), Default::default())
        .await
        .map_err(|err| Error::store(e.path.clone(), "read", err))?;
    let hashed = crate::manifest::build::hash_stream(&e.path, res, progress).await?;
    let facts = if e.is_parquet() {
        Some(
            match crate::manifest::build::parquet_facts(ds, &e.path, &hashed).await {
                Ok(f) => Ok(f),
                Err(Error::InvalidParquet { reason, .. }) => Err(reason),
                Err(other) => return Err(other),
            },
        )
    } else {
        None
    };
    Ok((hashed.sha256, facts))
}

/// Read just the footer of a Parquet object (one ranged read, two for very large footers).
pub async fn read_footer(
    ds: &Dataset,
    path: &str,
    size: u64,
) -> Result<std::result::Result<ParquetFacts, String>> {
    const GUESS: u64 = 64 * 1024;
    if size < 12 {
        return Ok(Err(crate::footer::too_short(size)));
    }
    let key = ds.key(path);
    let start = size.saturating_sub(GUESS);
    let tail = ds
        .store
        .get_range(&key, start..size)
        .await
        .map_err(|e| Error::store(path, "read footer", e))?;
    let t = &tail[..];
    let need = match crate::footer::meta_len(t, size) {
        Ok(len) => (len + crate::footer::FOOTER_LEN) as u64,
        Err(reason) => return Ok(Err(reason)),
    };
    if need as usize <= t.len() {
        return Ok(parse_footer(&t[t.len() - need as usize..]));
    }
    let footer = ds
        .store
        .get_range(&key, size - need..size)
        .await
        .map_err(|e| Error::store(path, "read footer", e))?;
    Ok(parse_footer(&footer))
}
