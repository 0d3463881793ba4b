//! Issue 4: `check` and `verify` find every kind of drift from a real situation, render it as
//! text, JSON and Markdown, and exit 0 / 1 / 2 from the binary.
//!
//! Each test builds a source dataset, syncs it, then damages one side the way it happens in
//! production (an object deleted, rewritten, truncated, rotted in place, a stray file, a shard
//! written by another pipeline version) and asserts the finding a user would read.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use shardsync::check::{check, verify_store, CheckOptions};
use shardsync::manifest::{self, BuildOptions, Manifest, ShardEntry};
use shardsync::report::{Finding, FindingKind, Report};
use shardsync::sync::{sync, SyncOptions};
use shardsync::Dataset;

use crate::backends::{delete, get, put, write_demo, Backend, Env, BUCKET};
use crate::harness::committed;

const SHARDS: usize = 4;
const ROWS: usize = 200;

/// A source `a` with a manifest, synced to `b`; returns (src, dst, shard paths).
async fn synced_pair(env: &Env) -> (Dataset, Dataset, Vec<String>) {
    let (src, dst) = (env.open("a"), env.open("b"));
    let paths = write_demo(&src, SHARDS, ROWS, 7).await;
    let built = manifest::build_manifest(&src, None, &BuildOptions::default())
        .await
        .expect("build");
    manifest::save(&src, &built.manifest).await.expect("save");
    let out = sync(&src, &dst, &SyncOptions::default()).await.expect("sync");
    assert!(out.report.consistent, "{:?}: {:?}", env.backend, out.report);
    (src, dst, paths)
}

fn shallow() -> CheckOptions {
    CheckOptions::default()
}

fn deep() -> CheckOptions {
    CheckOptions {
        deep: true,
        ..CheckOptions::default()
    }
}

/// (kind, path) of every finding, in the report's order.
fn kinds(r: &Report) -> Vec<(FindingKind, &str)> {
    r.findings.iter().map(|f| (f.kind, f.path.as_str())).collect()
}

fn finding<'a>(r: &'a Report, path: &str) -> &'a Finding {
    r.findings
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no finding for {path}: {:?}", r.findings))
}

/// Parquet bytes with a schema unlike the demo's (another pipeline version wrote this shard).
fn other_schema_parquet(rows: usize) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (0..rows as i64).collect();
    let texts: Vec<String> = (0..rows).map(|i| format!("document {i}")).collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(texts)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).expect("batch");
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

/// Where an object of dataset `name` lives on disk, for backends that have a disk
/// (local folders directly; s3s-fs keeps each object as a file under `root/bucket/key`).
fn file_of(env: &Env, name: &str, rel: &str) -> Option<PathBuf> {
    match env.backend {
        Backend::Memory | Backend::Moto | Backend::Azurite => None,
        Backend::Local => Some(env.tmp.path().join(name).join(rel)),
        Backend::S3 => Some(
            env.server
                .as_ref()
                .expect("server")
                .root
                .join(BUCKET)
                .join(name)
                .join(rel),
        ),
    }
}

/// Invert one byte in the middle of a file, in place, and put its mtime back: same size,
/// same mtime (and so, for object_store's local backend, the same ETag), different bytes.
fn flip_byte_keeping_size_and_mtime(file: &Path) {
    let before = std::fs::metadata(file).expect("stat");
    let mtime = before.modified().expect("mtime");
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(file)
        .expect("open for writing");
    let at = before.len() / 2;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[!b[0]]).unwrap();
    f.set_modified(mtime).expect("restore mtime");
    drop(f);
    let after = std::fs::metadata(file).unwrap();
    assert_eq!(after.len(), before.len(), "size kept");
    assert_eq!(after.modified().unwrap(), mtime, "mtime kept");
}

backend_tests!(synced_datasets_check_consistent_with_equal_digests);
async fn synced_datasets_check_consistent_with_equal_digests(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst, _) = synced_pair(&env).await;
    let src_m = manifest::load(&src).await.unwrap().unwrap().manifest;
    for opts in [shallow(), deep()] {
        let r = check(&src, &dst, &opts).await.unwrap();
        assert!(r.consistent, "{backend:?} deep={}: {:?}", opts.deep, r.findings);
        assert!(r.findings.is_empty(), "{backend:?}");
        assert_eq!(
            r.src_digest.as_deref(),
            Some(src_m.digest.as_str()),
            "{backend:?}"
        );
        assert_eq!(r.dst_digest, r.src_digest, "{backend:?}");
        assert_eq!(r.inconsistency, 0.0, "{backend:?}");
        assert_eq!(r.shards_total, SHARDS as u64 + 1, "{backend:?}");
    }
    let v = verify_store(&dst, &deep()).await.unwrap();
    assert!(v.consistent, "{backend:?}: {:?}", v.findings);
}

backend_tests!(deleted_destination_shard_is_missing_in_check_and_verify);
async fn deleted_destination_shard_is_missing_in_check_and_verify(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst, paths) = synced_pair(&env).await;
    delete(&dst, &paths[2]).await;

    let r = check(&src, &dst, &shallow()).await.unwrap();
    assert!(!r.consistent, "{backend:?}");
    assert_eq!(
        kinds(&r),
        vec![(FindingKind::Missing, paths[2].as_str())],
        "{backend:?}"
    );
    assert!(
        finding(&r, &paths[2])
            .detail
            .contains("absent from the destination"),
        "{backend:?}: {:?}",
        r.findings
    );
    // One path of five differs: C(A,B) = 1/5.
    assert!(
        (r.inconsistency - 0.2).abs() < 1e-9,
        "{backend:?}: {}",
        r.inconsistency
    );
    // The destination's digest is its committed manifest's, which still claims the shard:
    // the digests agree, the finding says the store does not hold what the manifest says.
    assert!(!r.consistent, "{backend:?}");
    assert_eq!(
        r.dst_digest,
        committed(&dst).await.map(|m| m.digest),
        "{backend:?}"
    );

    let v = verify_store(&dst, &shallow()).await.unwrap();
    assert_eq!(
        kinds(&v),
        vec![(FindingKind::Missing, paths[2].as_str())],
        "{backend:?}"
    );
}

backend_tests!(rewritten_destination_shards_are_changed_or_size_mismatch);
async fn rewritten_destination_shards_are_changed_or_size_mismatch(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst, paths) = synced_pair(&env).await;
    // Same size, one byte different, written through the store (new mtime and ETag).
    let mut same_size = get(&dst, &paths[0]).await.to_vec();
    let mid = same_size.len() / 2;
    same_size[mid] ^= 0x5a;
    put(&dst, &paths[0], same_size).await;
    // Another data version of the shard: a different size.
    let other = shardsync::demo::shard_bytes(1, ROWS + 17, 99).unwrap();
    assert_ne!(other.len(), get(&dst, &paths[1]).await.len());
    put(&dst, &paths[1], other).await;

    let r = check(&src, &dst, &shallow()).await.unwrap();
    assert!(!r.consistent, "{backend:?}");
    assert_eq!(
        kinds(&r),
        vec![
            (FindingKind::Changed, paths[0].as_str()),
            (FindingKind::SizeMismatch, paths[1].as_str()),
        ],
        "{backend:?}: {:?}",
        r.findings
    );
    let sm = &finding(&r, &paths[1]).detail;
    assert!(
        sm.contains("source") && sm.contains("destination"),
        "{backend:?}: {sm}"
    );

    // The destination against its own manifest: the resized one is a size mismatch; the
    // same-size rewrite no longer has the stat the manifest recorded, so even a shallow
    // verify names it as changed (a deep one proves the bytes differ).
    let v = verify_store(&dst, &shallow()).await.unwrap();
    assert_eq!(
        kinds(&v),
        vec![
            (FindingKind::Changed, paths[0].as_str()),
            (FindingKind::SizeMismatch, paths[1].as_str()),
        ],
        "{backend:?}: {:?}",
        v.findings
    );
    assert!(!v.consistent, "{backend:?}");
    assert!(
        finding(&v, &paths[0])
            .detail
            .contains("rewritten since the manifest"),
        "{backend:?}"
    );
    let v = verify_store(&dst, &deep()).await.unwrap();
    assert_eq!(
        kinds(&v),
        vec![
            (FindingKind::SizeMismatch, paths[1].as_str()),
            (FindingKind::Corrupt, paths[0].as_str()),
        ],
        "{backend:?}: {:?}",
        v.findings
    );
}

backend_tests!(truncated_destination_shard_is_a_size_mismatch_in_check_and_verify);
async fn truncated_destination_shard_is_a_size_mismatch_in_check_and_verify(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst, paths) = synced_pair(&env).await;
    let full = get(&dst, &paths[3]).await;
    let cut = full.slice(..full.len() - 100);
    put(&dst, &paths[3], cut).await;

    let r = check(&src, &dst, &shallow()).await.unwrap();
    assert_eq!(
        kinds(&r),
        vec![(FindingKind::SizeMismatch, paths[3].as_str())],
        "{backend:?}"
    );
    let detail = &finding(&r, &paths[3]).detail;
    assert!(
        detail.contains(&full.len().to_string()) && detail.contains(&(full.len() - 100).to_string()),
        "{backend:?}: the detail gives both sizes: {detail}"
    );
    let v = verify_store(&dst, &shallow()).await.unwrap();
    assert_eq!(
        kinds(&v),
        vec![(FindingKind::SizeMismatch, paths[3].as_str())],
        "{backend:?}"
    );
}

backend_tests!(deep_check_finds_a_flipped_byte_that_shallow_check_cannot_see: local, s3);
/// Silent corruption: one byte inverted on disk, size and mtime kept. Only the bytes tell.
async fn deep_check_finds_a_flipped_byte_that_shallow_check_cannot_see(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst, paths) = synced_pair(&env).await;
    let victim = &paths[1];
    flip_byte_keeping_size_and_mtime(&file_of(&env, "b", victim).unwrap());

    let r = check(&src, &dst, &shallow()).await.unwrap();
    assert!(
        r.consistent,
        "{backend:?}: same size, mtime and ETag: a shallow check cannot see it: {:?}",
        r.findings
    );
    let r = check(&src, &dst, &deep()).await.unwrap();
    assert!(!r.consistent, "{backend:?}");
    assert_eq!(
        kinds(&r),
        vec![(FindingKind::Corrupt, victim.as_str())],
        "{backend:?}"
    );
    assert_eq!(r.mode, "deep");

    assert!(
        verify_store(&dst, &shallow()).await.unwrap().consistent,
        "{backend:?}"
    );
    let v = verify_store(&dst, &deep()).await.unwrap();
    assert_eq!(
        kinds(&v),
        vec![(FindingKind::Corrupt, victim.as_str())],
        "{backend:?}"
    );
    let m = manifest::load(&dst).await.unwrap().unwrap().manifest;
    assert!(
        finding(&v, victim)
            .detail
            .contains(&m.get(victim).unwrap().sha256),
        "{backend:?}: the detail names the expected digest: {:?}",
        v.findings
    );
}

/// Rot at the source is found by a deep check too, and named as the source's.
#[tokio::test]
async fn deep_check_names_corruption_at_the_source() {
    let env = Env::new(Backend::Local).await;
    let (src, dst, paths) = synced_pair(&env).await;
    flip_byte_keeping_size_and_mtime(&file_of(&env, "a", &paths[0]).unwrap());
    assert!(check(&src, &dst, &shallow()).await.unwrap().consistent);
    let r = check(&src, &dst, &deep()).await.unwrap();
    let corrupt: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Corrupt)
        .collect();
    assert_eq!(corrupt.len(), 1, "{:?}", r.findings);
    assert_eq!(corrupt[0].path, paths[0]);
    assert!(corrupt[0].detail.contains("source"), "{}", corrupt[0].detail);
}

backend_tests!(non_parquet_file_named_parquet_is_built_with_a_parquet_error_and_verify_warns_of_it);
async fn non_parquet_file_named_parquet_is_built_with_a_parquet_error_and_verify_warns_of_it(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    let ds = env.open("a");
    write_demo(&ds, 2, ROWS, 3).await;
    let stray = "train/part-00099.parquet";
    let body = b"this is a CSV export, not Parquet\nid,text\n1,hello\n".to_vec();
    put(&ds, stray, body.clone()).await;

    let built = manifest::build_manifest(&ds, None, &BuildOptions::default())
        .await
        .expect("one odd shard does not abort the build");
    let e = built
        .manifest
        .get(stray)
        .expect("the odd shard is in the manifest");
    assert_eq!(
        (e.rows, e.sha256.clone()),
        (None, shardsync::hash::sha256_hex(&body)),
        "{backend:?}"
    );
    assert!(
        e.parquet_error.as_deref().unwrap().contains("PAR1"),
        "{backend:?}: {e:?}"
    );
    if backend == Backend::Local {
        let (code, out, err) = run(shardsync().args(["manifest", "build", &env.url("a")])).await;
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains(stray) && err.contains("1 Parquet shard(s)"), "{err}");
    }

    // A manifest that includes it anyway (written by an older tool, or by hand).
    let mut entries = manifest::build_manifest(&env.open("a-ok"), None, &BuildOptions::default())
        .await
        .unwrap()
        .manifest
        .shards;
    assert!(entries.is_empty());
    for p in [shardsync::demo::shard_name(0), shardsync::demo::shard_name(1)] {
        let bytes = get(&ds, &p).await;
        let facts = shardsync::hash::parse_footer(footer_of(&bytes)).unwrap();
        entries.push(entry(&p, &bytes, Some(facts)));
    }
    entries.push(entry(stray, &body, None));
    let info = get(&ds, "dataset_info.json").await;
    entries.push(entry("dataset_info.json", &info, None));
    manifest::save(&ds, &Manifest::new(ds.url.clone(), entries).unwrap())
        .await
        .unwrap();

    for opts in [shallow(), deep()] {
        let v = verify_store(&ds, &opts).await.unwrap();
        assert!(v.consistent, "{backend:?}: a warning only: {:?}", v.findings);
        assert_eq!(
            kinds(&v),
            vec![(FindingKind::UnreadableFooter, stray)],
            "{backend:?} deep={}: {:?}",
            opts.deep,
            v.findings
        );
        assert!(finding(&v, stray).detail.contains("PAR1"), "{:?}", v.findings);
    }
}

/// `metadata ‖ len ‖ PAR1` of a whole Parquet file.
fn footer_of(bytes: &[u8]) -> &[u8] {
    let n = bytes.len();
    let len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    &bytes[n - 8 - len..]
}

fn entry(path: &str, bytes: &[u8], facts: Option<shardsync::hash::ParquetFacts>) -> ShardEntry {
    ShardEntry {
        path: path.into(),
        size: bytes.len() as u64,
        sha256: shardsync::hash::sha256_hex(bytes),
        mtime: None,
        etag: None,
        rows: facts.as_ref().map(|f| f.rows),
        row_groups: facts.as_ref().map(|f| f.row_groups),
        schema: facts.map(|f| f.schema),
        parquet_error: None,
    }
}

backend_tests!(shard_with_another_schema_is_schema_drift_in_build_check_and_verify);
async fn shard_with_another_schema_is_schema_drift_in_build_check_and_verify(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("a"), env.open("b"));
    write_demo(&src, 3, ROWS, 5).await;
    let odd = "train/part-00003.parquet";
    put(&src, odd, other_schema_parquet(50)).await;

    let built = manifest::build_manifest(&src, None, &BuildOptions::default())
        .await
        .unwrap();
    let drift = shardsync::check::schema_drift(&built.manifest.shards);
    assert_eq!(drift.len(), 1, "{backend:?}: {drift:?}");
    assert_eq!(drift[0].0, odd);
    let majority = built
        .manifest
        .get(&shardsync::demo::shard_name(0))
        .unwrap()
        .schema
        .clone()
        .unwrap();
    assert_eq!(
        drift[0].2, majority,
        "{backend:?}: drift is measured against the majority"
    );
    manifest::save(&src, &built.manifest).await.unwrap();
    if backend == Backend::Local {
        let (code, out, err) = run(shardsync().args(["manifest", "build", &env.url("a")])).await;
        assert_eq!(code, 0, "drift is a warning at build time: {out}{err}");
        let warning = err.lines().find(|l| l.contains("warning")).expect(&err);
        assert!(warning.contains(odd) && warning.contains(&majority), "{warning}");
    }
    sync(&src, &dst, &SyncOptions::default()).await.unwrap();

    // Both sides hold the same bytes: that is not drift between them. The odd shard is a
    // warning naming its folder; strict schema checking makes it drift.
    let r = check(&src, &dst, &shallow()).await.unwrap();
    assert!(
        r.consistent && r.findings.is_empty(),
        "{backend:?}: {:?}",
        r.findings
    );
    assert_eq!(r.src_digest, r.dst_digest, "{backend:?}: the bytes are identical");
    let w = r
        .warnings
        .iter()
        .find(|w| w.contains("schema variety"))
        .expect("schema warning");
    assert!(
        w.contains("\"train\"") && w.contains(odd) && w.contains(&majority),
        "{w}"
    );
    let strict = CheckOptions {
        strict_schema: true,
        ..shallow()
    };
    let r = check(&src, &dst, &strict).await.unwrap();
    assert_eq!(kinds(&r), vec![(FindingKind::SchemaDrift, odd)], "{backend:?}");
    assert!(!r.consistent, "{backend:?}");
    assert!(finding(&r, odd).detail.contains(&majority), "{:?}", r.findings);

    let v = verify_store(&dst, &shallow()).await.unwrap();
    assert!(v.consistent, "{backend:?}: {:?}", v.findings);
    let v = verify_store(&dst, &strict).await.unwrap();
    assert_eq!(kinds(&v), vec![(FindingKind::SchemaDrift, odd)], "{backend:?}");

    // Another folder with another schema (a second config) is no variety at all.
    let (src2, dst2) = (env.open("hf"), env.open("hf-copy"));
    write_demo(&src2, 2, ROWS, 5).await;
    put(&src2, "other_config/part-0.parquet", other_schema_parquet(50)).await;
    put(&src2, "other_config/part-1.parquet", other_schema_parquet(60)).await;
    sync(&src2, &dst2, &SyncOptions::default()).await.unwrap();
    let r = check(&src2, &dst2, &strict).await.unwrap();
    assert!(
        r.consistent && r.warnings.is_empty(),
        "{backend:?}: {:?} {:?}",
        r.findings,
        r.warnings
    );
}

// ---------------------------------------------------------------------------------------------
// Renderings

/// A report with three kinds of finding: one shard deleted, one truncated, one extra file.
async fn drifting_report(env: &Env) -> (Report, Vec<String>) {
    let (src, dst, paths) = synced_pair(env).await;
    delete(&dst, &paths[0]).await;
    let full = get(&dst, &paths[1]).await;
    put(&dst, &paths[1], full.slice(..full.len() / 2)).await;
    put(&dst, "stray.txt", &b"left behind"[..]).await;
    let r = check(&src, &dst, &shallow()).await.unwrap();
    assert_eq!(
        kinds(&r),
        vec![
            (FindingKind::Missing, paths[0].as_str()),
            (FindingKind::Extra, "stray.txt"),
            (FindingKind::SizeMismatch, paths[1].as_str()),
        ]
    );
    (r, paths)
}

#[tokio::test]
async fn json_report_carries_every_field_of_the_contract_and_the_schema() {
    let env = Env::new(Backend::Memory).await;
    let (r, paths) = drifting_report(&env).await;
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    for key in [
        "version",
        "command",
        "mode",
        "src",
        "dst",
        "started_at",
        "finished_at",
        "elapsed_seconds",
        "consistent",
        "src_digest",
        "dst_digest",
        "shards_total",
        "shards_copied",
        "shards_skipped",
        "shards_deleted",
        "bytes_total",
        "bytes_copied",
        "throughput_bytes_per_sec",
        "inconsistency",
        "seconds_per_shard",
        "findings",
    ] {
        assert!(v.get(key).is_some(), "report lacks {key}: {v}");
    }
    assert_eq!(v["version"], 1);
    assert_eq!(v["command"], "check");
    assert_eq!(v["mode"], "shallow");
    assert_eq!(v["consistent"], false);
    assert_eq!(v["src"], env.url("a"));
    assert_eq!(v["dst"], env.url("b"));
    assert_eq!(v["src_digest"].as_str(), r.src_digest.as_deref());
    // 3 of 6 paths differ (5 source objects + 1 extra).
    assert!((v["inconsistency"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    let findings = v["findings"].as_array().unwrap();
    let got: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("missing", paths[0].as_str()),
            ("extra", "stray.txt"),
            ("size_mismatch", paths[1].as_str()),
        ]
    );
    assert!(findings.iter().all(|f| !f["detail"].as_str().unwrap().is_empty()));

    // The published schema and the code agree: every required key is emitted, and nothing
    // is emitted that the schema does not describe (it sets additionalProperties: false).
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/manifests/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let props = schema["properties"].as_object().unwrap();
    for req in schema["required"].as_array().unwrap() {
        assert!(v.get(req.as_str().unwrap()).is_some(), "schema requires {req}");
    }
    for key in v.as_object().unwrap().keys() {
        assert!(
            props.contains_key(key),
            "report emits {key}, which the schema does not describe"
        );
    }
    let kinds_in_schema = serde_json::to_string(&schema).unwrap();
    for k in [
        "missing",
        "changed",
        "extra",
        "size_mismatch",
        "corrupt",
        "invalid_parquet",
        "schema_drift",
        "error",
    ] {
        assert!(
            kinds_in_schema.contains(&format!("\"{k}\"")),
            "schema lacks kind {k}"
        );
    }
}

#[tokio::test]
async fn text_and_markdown_renderings_name_paths_kinds_and_digests() {
    let env = Env::new(Backend::Memory).await;
    let (r, paths) = drifting_report(&env).await;
    let src_digest = r.src_digest.clone().unwrap();
    let dst_digest = r.dst_digest.clone().unwrap();

    let text = r.render_text(false);
    assert!(!text.contains('\x1b'), "no colour off a TTY: {text:?}");
    assert!(text.contains("DRIFT (3 finding(s))"), "{text}");
    assert!(
        text.contains(&src_digest[..16]) && text.contains(&dst_digest[..16]),
        "{text}"
    );
    for (kind, path) in [
        ("missing", paths[0].as_str()),
        ("extra", "stray.txt"),
        ("size_mismatch", paths[1].as_str()),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("{path} not in {text}"));
        assert!(line.trim_start().starts_with(kind), "{line}");
    }
    assert!(
        text.contains("inconsistency C(A,B): 50.0% of shards differ"),
        "{text}"
    );
    assert!(text.contains("transfer cost E(A,B): "), "{text}");
    // A check copies nothing: no copy statistics.
    assert!(!text.contains("copied") && !text.contains("skipped"), "{text}");
    let colored = r.render_text(true);
    assert!(colored.contains("\x1b["), "colour on request");

    let md = r.render_markdown();
    assert!(md.starts_with("### ❌ shardsync check: not consistent"), "{md}");
    assert!(
        md.contains(&format!("| source digest | `{src_digest}` |")),
        "{md}"
    );
    assert!(
        md.contains(&format!("| destination digest | `{dst_digest}` |")),
        "{md}"
    );
    assert!(md.contains(&format!("| missing | `{}` |", paths[0])), "{md}");
    assert!(
        md.contains(&format!("| size_mismatch | `{}` |", paths[1])),
        "{md}"
    );
    assert!(md.contains("| extra | `stray.txt` |"), "{md}");
    assert!(
        md.contains("| inconsistency C(A,B) | 50.0% of shards differ"),
        "{md}"
    );
    assert!(!md.contains("copied"), "{md}");
    assert!(md.contains(&format!("| source | `{}` |", env.url("a"))), "{md}");
}

#[test]
fn markdown_escapes_table_breaking_characters_in_paths_and_details() {
    let mut r = Report::new("check", "shallow", Some("memory://x/a"), Some("memory://x/b"));
    r.findings.push(Finding {
        path: "odd|name`.parquet".into(),
        kind: FindingKind::Changed,
        detail: "a | b".into(),
    });
    r.finish();
    let md = r.render_markdown();
    let row = md.lines().find(|l| l.starts_with("| changed")).expect(&md);
    // Four unescaped pipes: the row keeps its three cells.
    let cells = row.replace("\\|", "").matches('|').count();
    assert_eq!(cells, 4, "{row}");
}

// ---------------------------------------------------------------------------------------------
// The binary: exit codes and the CI step summary.

pub fn shardsync() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardsync"));
    c.env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("SHARDSYNC_LOG")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    c
}

/// Run to completion without blocking the runtime (the S3 server runs on it): exit code,
/// stdout, stderr.
pub async fn run(cmd: &mut tokio::process::Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().await.expect("run shardsync");
    (
        status.code().expect("exit code"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_exits_0_1_2_and_appends_markdown_to_the_step_summary() {
    let env = Env::new(Backend::Local).await;
    let (_, dst, paths) = synced_pair(&env).await;
    let (a, b) = (env.url("a"), env.url("b"));
    let summary = env.tmp.path().join("step-summary.md");
    std::fs::write(&summary, "# earlier step\n").unwrap();

    let (code, out, err) = run(shardsync()
        .args(["check", &a, &b])
        .env("GITHUB_STEP_SUMMARY", &summary))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("CONSISTENT"), "{out}");

    delete(&dst, &paths[2]).await;
    let (code, out, err) = run(shardsync()
        .args(["check", &a, &b, "--format", "json"])
        .env("GITHUB_STEP_SUMMARY", &summary))
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is the JSON report");
    assert_eq!(v["findings"][0]["path"], paths[2].as_str());
    assert_eq!(v["findings"][0]["kind"], "missing");

    let (code, out, _) = run(shardsync().args(["check", &a, &b, "--format", "markdown"])).await;
    assert_eq!(code, 1);
    assert!(out.contains(&format!("| missing | `{}` |", paths[2])), "{out}");

    let s = std::fs::read_to_string(&summary).unwrap();
    assert!(
        s.starts_with("# earlier step\n"),
        "appended, not overwritten: {s}"
    );
    assert_eq!(s.matches("### ").count(), 2, "one summary per run: {s}");
    assert!(s.contains("### ✅ shardsync check: consistent"), "{s}");
    assert!(s.contains("### ❌ shardsync check: not consistent"), "{s}");
    assert!(s.contains(&format!("| missing | `{}` |", paths[2])), "{s}");

    let gone = env.tmp.path().join("no-such-dataset");
    let (code, out, err) = run(shardsync().args(["check", gone.to_str().unwrap(), &b])).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no-such-dataset"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[tokio::test]
async fn verify_exits_0_1_2_from_the_binary() {
    let env = Env::new(Backend::Local).await;
    let (_, dst, paths) = synced_pair(&env).await;
    let b = env.url("b");

    let (code, out, err) = run(shardsync().args(["verify", &b, "--deep"])).await;
    assert_eq!(code, 0, "{out}{err}");

    let full = get(&dst, &paths[0]).await;
    put(&dst, &paths[0], full.slice(..full.len() - 1)).await;
    let (code, out, err) = run(shardsync().args(["verify", &b, "--format", "json"])).await;
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["command"], "verify");
    assert_eq!(v["findings"][0]["kind"], "size_mismatch");
    assert_eq!(v["findings"][0]["path"], paths[0].as_str());

    // A store without a manifest cannot be verified: an error, not drift.
    let bare = env.open("bare");
    write_demo(&bare, 1, 10, 1).await;
    let (code, out, err) = run(shardsync().args(["verify", &env.url("bare")])).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no manifest"), "{err}");
}
