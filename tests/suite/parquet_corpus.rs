//! Parquet is knowledge, not a gate, on the corpus of tests/parquet_corpus/: files written by
//! pyarrow, fastparquet, polars and DuckDB (every codec, the encodings, data page v1/v2,
//! nested, decimal, int96, empty, many row groups, encrypted) and damaged ones.
//!
//! For every file pyarrow reads, shardsync's footer path must record pyarrow's rows and row
//! groups; where pyarrow refuses a file DuckDB's reader is the reference; a file neither reads
//! gets a `parquet_error`, and it is hashed, synced and verified like any other object.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;
use shardsync::check::{check, verify_store, CheckOptions};
use shardsync::hash::{parse_footer, Footer, ParquetFacts, StreamHasher};
use shardsync::manifest::{self, build_manifest, BuildOptions, Manifest};
use shardsync::report::{FindingKind, Report};
use shardsync::sync::{sync, SyncOptions};

use crate::backends::{put, snapshot, write_demo, Backend, Env};
use crate::check::{run, shardsync};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parquet_corpus");

#[derive(Debug, Deserialize)]
struct Expected {
    files: Vec<CorpusFile>,
}

#[derive(Debug, Deserialize)]
struct CorpusFile {
    file: String,
    writer: String,
    encrypted: bool,
    pyarrow: Reading,
    duckdb: Option<Reading>,
}

#[derive(Debug, Deserialize)]
struct Reading {
    readable: bool,
    rows: Option<u64>,
    row_groups: Option<u64>,
}

impl CorpusFile {
    /// `(rows, row_groups)` by pyarrow, else by DuckDB; `None` when neither reads the footer.
    fn reference(&self) -> Option<(u64, u64)> {
        [Some(&self.pyarrow), self.duckdb.as_ref()]
            .into_iter()
            .flatten()
            .find(|r| r.readable)
            .map(|r| (r.rows.expect("rows"), r.row_groups.expect("row_groups")))
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(format!("{CORPUS}/files/{}", self.file)).expect("corpus file")
    }
}

fn corpus() -> Vec<CorpusFile> {
    let raw = std::fs::read(format!("{CORPUS}/expected.json")).expect("expected.json");
    let e: Expected = serde_json::from_slice(&raw).expect("expected.json parses");
    e.files
}

/// The footer path a sync takes: bytes streamed through the hasher in chunks, the footer
/// decoded from the kept tail (or, when larger, from the range it asks for).
fn decode(bytes: &[u8]) -> Result<ParquetFacts, String> {
    let mut h = StreamHasher::new();
    for chunk in bytes.chunks(4096) {
        h.update(&Bytes::copy_from_slice(chunk));
    }
    match h.finish().parquet()? {
        Footer::Parsed(f) => Ok(f),
        Footer::NeedRange(r) => parse_footer(&bytes[r.start as usize..r.end as usize]),
    }
}

#[test]
fn every_corpus_file_decodes_to_the_rows_and_row_groups_pyarrow_reads() {
    let files = corpus();
    let writers: std::collections::BTreeSet<&str> = files.iter().map(|f| f.writer.as_str()).collect();
    for w in [
        "pyarrow",
        "fastparquet",
        "polars",
        "duckdb",
        "pyarrow-encryption",
        "damaged",
    ] {
        assert!(writers.contains(w), "the corpus lost its {w} files: {writers:?}");
    }
    let mut compared = 0;
    for f in &files {
        let got = decode(&f.bytes());
        match (f.reference(), &got) {
            (Some((rows, groups)), Ok(facts)) => {
                assert_eq!((facts.rows, facts.row_groups), (rows, groups), "{}", f.file);
                compared += 1;
            }
            (Some(reference), Err(e)) => {
                panic!(
                    "{}: pyarrow/DuckDB read {reference:?}, shardsync refused: {e}",
                    f.file
                )
            }
            (None, Ok(facts)) => panic!("{}: no reader decodes it, shardsync did: {facts:?}", f.file),
            (None, Err(e)) => {
                assert!(!e.is_empty(), "{}", f.file);
                if f.encrypted {
                    assert!(e.contains("encrypted Parquet footer"), "{}: {e}", f.file);
                    assert!(!e.contains("not a Parquet file"), "{}: {e}", f.file);
                }
            }
        }
    }
    assert!(compared >= 60, "only {compared} files compared with pyarrow");
}

#[test]
fn footers_the_parquet_crate_refuses_are_read_as_other_readers_read_them() {
    let by_name: BTreeMap<String, CorpusFile> = corpus().into_iter().map(|f| (f.file.clone(), f)).collect();
    let facts = |name: &str| decode(&by_name[name].bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    // fastparquet declares its empty row-group list with the wrong element type; pyarrow reads it.
    let empty = facts("fastparquet-empty.parquet");
    assert_eq!((empty.rows, empty.row_groups), (0, 0));
    assert_eq!(
        empty.schema,
        facts("fastparquet-typed.parquet").schema,
        "the Thrift path fingerprints the schema as the parquet crate's path does"
    );
    // Int128 has no Arrow form; the footer is sound and DuckDB reads it.
    let wide = facts("polars-int128.parquet");
    assert_eq!((wide.rows, wide.row_groups), (300, 1));
    assert!(
        wide.schema.starts_with("sha256:") && wide.schema.len() == 23,
        "{}",
        wide.schema
    );
}

/// The corpus under `corpus/` of a dataset on `env`, plus a sidecar.
async fn put_corpus(env: &Env, name: &str) -> shardsync::Dataset {
    let ds = env.open(name);
    for f in corpus() {
        put(&ds, &format!("corpus/{}", f.file), f.bytes()).await;
    }
    put(&ds, "dataset_info.json", &b"{}"[..]).await;
    ds
}

/// Every entry records what the reference reader read, or a `parquet_error`.
fn assert_entries_follow_the_corpus(m: &Manifest, what: &str) {
    for f in corpus() {
        let path = format!("corpus/{}", f.file);
        let e = m
            .get(&path)
            .unwrap_or_else(|| panic!("{what}: {path} not in the manifest"));
        assert_eq!(
            e.sha256,
            shardsync::hash::sha256_hex(&f.bytes()),
            "{what}: {path}"
        );
        match f.reference() {
            Some((rows, groups)) => {
                assert_eq!(
                    (e.rows, e.row_groups),
                    (Some(rows), Some(groups)),
                    "{what}: {path}"
                );
                assert!(e.schema.is_some() && e.parquet_error.is_none(), "{what}: {e:?}");
            }
            None => {
                assert_eq!(
                    (e.rows, e.row_groups, &e.schema),
                    (None, None, &None),
                    "{what}: {path}"
                );
                assert!(e.parquet_error.is_some(), "{what}: {path} has no parquet_error");
            }
        }
    }
}

fn unreadable() -> Vec<String> {
    corpus()
        .into_iter()
        .filter(|f| f.reference().is_none())
        .map(|f| format!("corpus/{}", f.file))
        .collect()
}

fn paths_of(r: &Report, kind: FindingKind) -> Vec<String> {
    let mut v: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| f.path.clone())
        .collect();
    v.sort();
    v
}

backend_tests!(corpus_is_built_synced_and_verified_whatever_its_footers_on_every_backend);
async fn corpus_is_built_synced_and_verified_whatever_its_footers_on_every_backend(backend: Backend) {
    let odd = unreadable();
    assert!(odd.len() >= 8, "{odd:?}");
    let env = Env::new(backend).await;
    let (src, dst) = (put_corpus(&env, "a").await, env.open("b"));

    // No source manifest: every object is hashed (and its footer read) while it is copied.
    let out = sync(&src, &dst, &SyncOptions::default()).await.expect("sync");
    let r = &out.report;
    assert!(r.consistent, "{backend:?}: {}", r.render_text(false));
    assert_eq!(r.shards_failed, 0, "{backend:?}");
    assert_eq!(
        r.shards_copied,
        corpus().len() as u64 + 1,
        "{backend:?}: all, and the sidecar"
    );
    assert_eq!(paths_of(r, FindingKind::UnreadableFooter), odd, "{backend:?}");
    assert_eq!(
        snapshot(&src).await,
        snapshot(&dst).await,
        "{backend:?}: bytes differ"
    );
    let committed = manifest::load(&dst).await.unwrap().expect("committed").manifest;
    assert_entries_follow_the_corpus(&committed, &format!("{backend:?} sync"));

    // manifest build over the same objects: the same entries, no abort.
    let built = build_manifest(&src, None, &BuildOptions::default())
        .await
        .expect("build");
    assert_entries_follow_the_corpus(&built.manifest, &format!("{backend:?} build"));
    let built_odd: Vec<&str> = built.manifest.parquet_errors().map(|e| e.path.as_str()).collect();
    assert_eq!(built_odd, odd, "{backend:?}");

    // check and verify (shallow and deep) list them as warnings, nothing else but the
    // schema variety of a corpus of many writers.
    for deep in [false, true] {
        let opts = CheckOptions {
            deep,
            ..CheckOptions::default()
        };
        let c = check(&src, &dst, &opts).await.expect("check");
        assert_only_footer_warnings(&c, &odd, &format!("{backend:?} check deep={deep}"));
        let v = verify_store(&dst, &opts).await.expect("verify");
        assert_only_footer_warnings(&v, &odd, &format!("{backend:?} verify deep={deep}"));
    }
}

fn assert_only_footer_warnings(r: &Report, odd: &[String], what: &str) {
    assert_eq!(paths_of(r, FindingKind::UnreadableFooter), odd, "{what}");
    let other: Vec<_> = r
        .findings
        .iter()
        .filter(|f| !f.kind.is_warning() && f.kind != FindingKind::SchemaDrift)
        .collect();
    assert!(other.is_empty(), "{what}: {other:?}");
}

backend_tests!(odd_footers_beside_a_dataset_are_warnings_and_check_and_verify_stay_consistent);
async fn odd_footers_beside_a_dataset_are_warnings_and_check_and_verify_stay_consistent(backend: Backend) {
    let names = [
        "damaged-truncated-tail.parquet",
        "pyarrow-encrypted-footer.parquet",
        "damaged-zero-bytes.parquet",
    ];
    let by_name: BTreeMap<String, CorpusFile> = corpus().into_iter().map(|f| (f.file.clone(), f)).collect();
    let odd: Vec<String> = names.iter().map(|n| format!("train/{n}")).collect();
    let mut sorted = odd.clone();
    sorted.sort();
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("a"), env.open("b"));
    write_demo(&src, 3, 50, 7).await;
    for (n, p) in names.iter().zip(&odd) {
        put(&src, p, by_name[*n].bytes()).await;
    }
    manifest::save(
        &src,
        &build_manifest(&src, None, &BuildOptions::default())
            .await
            .unwrap()
            .manifest,
    )
    .await
    .unwrap();
    let r = sync(&src, &dst, &SyncOptions::default()).await.unwrap().report;
    assert!(
        r.consistent && r.shards_failed == 0,
        "{backend:?}: {}",
        r.render_text(false)
    );
    assert_eq!(paths_of(&r, FindingKind::UnreadableFooter), sorted, "{backend:?}");
    assert!(r.render_text(false).contains("CONSISTENT"), "{backend:?}");
    for deep in [false, true] {
        let opts = CheckOptions {
            deep,
            ..CheckOptions::default()
        };
        for rep in [
            check(&src, &dst, &opts).await.unwrap(),
            verify_store(&dst, &opts).await.unwrap(),
        ] {
            assert!(
                rep.consistent,
                "{backend:?} {} deep={deep}: {:?}",
                rep.command, rep.findings
            );
            assert_eq!(
                rep.inconsistency, 0.0,
                "{backend:?} {}: a warning is not drift",
                rep.command
            );
            assert_eq!(
                paths_of(&rep, FindingKind::UnreadableFooter),
                sorted,
                "{backend:?}"
            );
        }
    }
}

backend_tests!(strict_parquet_fails_every_unreadable_shard_and_lands_none_of_them);
async fn strict_parquet_fails_every_unreadable_shard_and_lands_none_of_them(backend: Backend) {
    let odd = unreadable();
    let env = Env::new(backend).await;
    let src = put_corpus(&env, "a").await;
    let strict = SyncOptions::default().with_strict_parquet(true);

    // Hashed while copied (no source manifest), then known from the source's manifest.
    for (round, dst) in [(1, env.open("b")), (2, env.open("c"))] {
        if round == 2 {
            let built = build_manifest(&src, None, &BuildOptions::default())
                .await
                .unwrap();
            manifest::save(&src, &built.manifest).await.unwrap();
        }
        let r = crate::harness::sync_incomplete(&src, &dst, &strict).await.report;
        assert!(!r.consistent, "{backend:?} round {round}");
        assert_eq!(r.shards_failed, odd.len() as u64, "{backend:?} round {round}");
        assert_eq!(
            paths_of(&r, FindingKind::InvalidParquet),
            odd,
            "{backend:?} round {round}"
        );
        let landed: Vec<String> = snapshot(&dst).await.into_iter().map(|(p, _)| p).collect();
        for p in &odd {
            assert!(!landed.contains(p), "{backend:?} round {round}: {p} landed");
        }
        let m = manifest::load(&dst).await.unwrap().expect("committed").manifest;
        assert_eq!(
            m.parquet_errors().count(),
            0,
            "{backend:?}: a strict run claims none"
        );
        assert_eq!(m.shards.len(), corpus().len() + 1 - odd.len(), "{backend:?}");
    }

    // A lenient sync lands them; a strict one after it still lists every one it holds.
    let dst = env.open("d");
    assert!(
        sync(&src, &dst, &SyncOptions::default())
            .await
            .unwrap()
            .report
            .consistent
    );
    let r = crate::harness::sync_incomplete(&src, &dst, &strict).await.report;
    assert_eq!(paths_of(&r, FindingKind::InvalidParquet), odd, "{backend:?}");
    assert_eq!(
        (r.shards_failed, r.shards_copied),
        (odd.len() as u64, 0),
        "{backend:?}"
    );

    for deep in [false, true] {
        let opts = CheckOptions {
            deep,
            strict_parquet: true,
            ..CheckOptions::default()
        };
        let c = check(&src, &dst, &opts).await.unwrap();
        assert!(!c.consistent, "{backend:?} deep={deep}");
        assert_eq!(paths_of(&c, FindingKind::InvalidParquet), odd, "{backend:?}");
        let v = verify_store(&dst, &opts).await.unwrap();
        assert!(!v.consistent, "{backend:?} deep={deep}");
        assert_eq!(paths_of(&v, FindingKind::InvalidParquet), odd, "{backend:?}");
    }
}

/// Arguments `cmd… URL… [--opt K=V …] extra…` for this backend.
fn args(env: &Env, cmd: &[&str], urls: &[&str], flag: &[&str], extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    a.extend(urls.iter().map(|u| env.url(u)));
    for f in flag {
        a.extend(env.cli_options(f));
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

backend_tests!(cli_exit_codes_with_an_odd_parquet_file_in_build_sync_check_and_verify: local, s3);
async fn cli_exit_codes_with_an_odd_parquet_file_in_build_sync_check_and_verify(backend: Backend) {
    let encrypted = "corpus/pyarrow-encrypted-footer.parquet";
    let env = Env::new(backend).await;
    let src = env.open("a");
    let by_name: BTreeMap<String, CorpusFile> = corpus().into_iter().map(|f| (f.file.clone(), f)).collect();
    for name in [
        "pyarrow-codec-lz4.parquet",
        "pyarrow-encrypted-footer.parquet",
        "damaged-truncated-tail.parquet",
    ] {
        put(&src, &format!("corpus/{name}"), by_name[name].bytes()).await;
    }
    let odd = ["corpus/damaged-truncated-tail.parquet", encrypted];
    let pair = |cmd: &[&str], dst: &str, extra: &[&str]| {
        args(&env, cmd, &["a", dst], &["--src-opt", "--dst-opt"], extra)
    };
    let one = |cmd: &[&str], url: &str, extra: &[&str]| args(&env, cmd, &[url], &["--opt"], extra);

    // sync --strict-parquet on a source without a manifest: exit 2, both named, neither landed.
    let (code, out, err) = run(shardsync().args(pair(&["sync"], "strict", &["--strict-parquet"]))).await;
    assert_eq!(code, 2, "{backend:?}: {out}{err}");
    for p in odd {
        assert!(err.contains(p), "{backend:?}: {p} not named: {err}");
    }
    let line = err.lines().find(|l| l.contains(encrypted)).expect("named");
    assert!(line.contains("encrypted Parquet footer"), "{line}");
    assert!(!line.contains("not a Parquet file"), "{line}");

    // manifest build: --strict-parquet exits 2 and writes nothing; without it, exit 1.
    let (code, out, err) =
        run(shardsync().args(one(&["manifest", "build"], "a", &["--strict-parquet"]))).await;
    assert_eq!(code, 2, "{backend:?}: {out}{err}");
    assert!(
        manifest::load(&src).await.unwrap().is_none(),
        "{backend:?}: strict build wrote a manifest"
    );
    let (code, out, err) = run(shardsync().args(one(&["manifest", "build"], "a", &["--json"]))).await;
    assert_eq!(code, 1, "{backend:?}: {out}{err}");
    assert!(err.contains("2 Parquet shard(s)"), "{backend:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json output");
    assert_eq!(v["parquet_errors"].as_array().map(Vec::len), Some(2), "{out}");
    let m = manifest::load(&src)
        .await
        .unwrap()
        .expect("manifest written")
        .manifest;
    assert_eq!(m.shards.len(), 3, "{backend:?}");

    // sync: exit 0, every byte proven, the odd ones listed as warnings in the report.
    let report_file = env.tmp.path().join("report.json");
    let rf = report_file.display().to_string();
    let (code, out, err) = run(shardsync().args(pair(&["sync"], "b", &["--report", &rf]))).await;
    assert_eq!(code, 0, "{backend:?}: {out}{err}");
    assert!(
        out.contains("unreadable_footer") && out.contains(encrypted),
        "{out}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["consistent"], true, "{report}");
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["unreadable_footer", "unreadable_footer"], "{report}");
    assert_eq!(
        snapshot(&src).await,
        snapshot(&env.open("b")).await,
        "{backend:?}"
    );

    // check and verify: 0, and 1 with --strict-parquet.
    for strict in [false, true] {
        let flag: &[&str] = if strict { &["--strict-parquet"] } else { &[] };
        let (code, out, err) = run(shardsync().args(pair(&["check"], "b", flag))).await;
        assert_eq!(
            code,
            i32::from(strict),
            "{backend:?} check strict={strict}: {out}{err}"
        );
        let (code, out, err) = run(shardsync().args(one(&["verify"], "b", flag))).await;
        assert_eq!(
            code,
            i32::from(strict),
            "{backend:?} verify strict={strict}: {out}{err}"
        );
        assert!(out.contains(encrypted), "{out}");
    }
    // sync --strict-parquet into the synced destination: exit 2, each named.
    let (code, out, err) = run(shardsync().args(pair(&["sync"], "b", &["--strict-parquet"]))).await;
    assert_eq!(code, 2, "{backend:?}: {out}{err}");
    for p in odd {
        assert!(err.contains(p), "{backend:?}: {p} not named: {err}");
    }
}
