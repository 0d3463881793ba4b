//! `manifest build` (issue 2, item 6) on every backend: what the manifest records must be what
//! an independent reader of the same bytes sees — SHA-256 from `sha2`, rows and row groups from
//! parquet's own file reader, and, for a file written by pyarrow, what `sha256sum` and pyarrow
//! themselves reported.

use shardsync::demo::{shard_bytes, shard_name};
use shardsync::manifest::{self, build_manifest, digest_of, BuildOptions, BuildOutcome};
use shardsync::{Dataset, Error, OpenOptions};

use crate::backends::{get, put, write_demo, Backend, Env};
use crate::harness::{blob_parquet, noise, parquet_rows, put_raw, sha256, try_get, InstrumentedStore, MIB};

/// A 700-row, 3-row-group Parquet file written by pyarrow 26.0.1 (snappy; int64, string,
/// list<int32>, float32 columns), generated once with:
///
/// ```text
/// n = 700
/// t = pa.table({"doc_id": pa.array(range(n), type=pa.int64()),
///               "text": pa.array([f"document {i} " + "lorem " * (i % 3) for i in range(n)]),
///               "token_ids": pa.array([[(i * 31 + j) % 50257 for j in range(i % 13)] for i in range(n)],
///                                     type=pa.list_(pa.int32())),
///               "score": pa.array([i / 7.0 for i in range(n)], type=pa.float32())})
/// pq.write_table(t, "pyarrow_small.parquet", row_group_size=256, compression="snappy")
/// ```
const PYARROW_FIXTURE: &[u8] = include_bytes!("../fixtures/pyarrow_small.parquet");
/// What `sha256sum tests/fixtures/pyarrow_small.parquet` printed.
const PYARROW_SHA256: &str = "5c749c9507f718c8f7f1f829a4a80ef48fb18a965976130ef6300565d0c21162";
/// What `pq.read_table(f).num_rows` printed.
const PYARROW_ROWS: u64 = 700;
/// What `pq.ParquetFile(f).metadata.num_row_groups` printed.
const PYARROW_ROW_GROUPS: u64 = 3;

async fn build(ds: &Dataset) -> BuildOutcome {
    build_manifest(ds, None, &BuildOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: build failed: {e}", ds.url))
}

/// Every entry against the bytes the store serves, hashed and footer-read independently.
async fn assert_entries_match_bytes(ds: &Dataset, m: &shardsync::Manifest, what: &str) {
    for e in &m.shards {
        let bytes = try_get(ds, &e.path)
            .await
            .unwrap_or_else(|| panic!("{what}: {} is not in the store", e.path));
        assert_eq!(e.size, bytes.len() as u64, "{what}: {} size", e.path);
        assert_eq!(e.sha256, sha256(&bytes), "{what}: {} sha256", e.path);
        if e.path.ends_with(".parquet") {
            let (rows, groups) = parquet_rows(&bytes);
            assert_eq!(e.rows, Some(rows), "{what}: {} rows", e.path);
            assert_eq!(e.row_groups, Some(groups), "{what}: {} row groups", e.path);
            assert!(
                e.schema.as_deref().is_some_and(|s| s.starts_with("sha256:")),
                "{what}: {} schema fingerprint {:?}",
                e.path,
                e.schema
            );
        } else {
            assert_eq!(
                (e.rows, e.row_groups, e.schema.as_deref()),
                (None, None, None),
                "{what}: {} is a sidecar, not a shard",
                e.path
            );
        }
    }
}

backend_tests!(manifest_records_the_sha256_rows_and_row_groups_an_independent_reader_sees);
async fn manifest_records_the_sha256_rows_and_row_groups_an_independent_reader_sees(backend: Backend) {
    let env = Env::new(backend).await;
    let ds = env.open("ds");
    write_demo(&ds, 3, 300, 7).await;
    // 2,100 rows at 1,024 rows per group: three row groups.
    put(&ds, &shard_name(9), shard_bytes(9, 2100, 7).unwrap()).await;

    let built = build(&ds).await;
    let m = &built.manifest;
    let what = format!("{backend:?}");
    let paths: Vec<&str> = m.shards.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "dataset_info.json",
            "train/part-00000.parquet",
            "train/part-00001.parquet",
            "train/part-00002.parquet",
            "train/part-00009.parquet",
        ],
        "{what}"
    );
    assert_entries_match_bytes(&ds, m, &what).await;
    assert_eq!(
        m.get("train/part-00009.parquet").unwrap().row_groups,
        Some(3),
        "{what}"
    );
    let schemas: std::collections::HashSet<_> = m.shards.iter().filter_map(|e| e.schema.clone()).collect();
    assert_eq!(
        schemas.len(),
        1,
        "{what}: one schema across the demo shards: {schemas:?}"
    );

    assert_eq!(m.totals.files, 5, "{what}");
    assert_eq!(m.totals.shards, 4, "{what}");
    assert_eq!(m.totals.rows, 3 * 300 + 2100, "{what}");
    assert_eq!(
        m.totals.bytes,
        m.shards.iter().map(|e| e.size).sum::<u64>(),
        "{what}"
    );
    assert_eq!((built.hashed, built.reused), (5, 0), "{what}");
    assert_eq!(built.bytes_hashed, m.totals.bytes, "{what}");

    // The digest is SHA-256 over the sorted `path \t size \t sha256 \n` lines.
    let lines: String = m
        .shards
        .iter()
        .map(|e| format!("{}\t{}\t{}\n", e.path, e.size, e.sha256))
        .collect();
    assert_eq!(m.digest, sha256(lines.as_bytes()), "{what}");
    assert_eq!(m.digest, digest_of(&m.shards), "{what}");

    // Saved under the dataset, and read back unchanged.
    manifest::save(&ds, m).await.unwrap();
    let raw = get(&ds, "_shardsync/manifest.json").await;
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(json["format"], "shardsync.manifest/v1", "{what}");
    assert_eq!(json["digest"], m.digest.as_str(), "{what}");
    let loaded = manifest::load(&ds).await.unwrap().expect("manifest").manifest;
    assert_eq!(loaded.shards, m.shards, "{what}");
    assert_eq!(loaded.digest, m.digest, "{what}");
}

backend_tests!(nested_paths_and_names_with_spaces_and_non_ascii_are_recorded_relative_to_the_root);
async fn nested_paths_and_names_with_spaces_and_non_ascii_are_recorded_relative_to_the_root(
    backend: Backend,
) {
    // Written the way another tool names them (raw keys, real file names on disk).
    let names = [
        "a/b/c/deep.parquet",
        "dir with spaces/shard 01.parquet",
        "emoji 🚀 notes.txt",
        "top.parquet",
        "v1.0 #2 [final] 100%.parquet",
        "ünïcødé/日本語 データ.parquet",
    ];
    let env = Env::new(backend).await;
    let ds = env.open("ds");
    // A sibling whose name extends the root's must not leak in, nor shardsync's own files.
    let sibling = env.open("ds-other");
    put(&sibling, "x.parquet", shard_bytes(0, 50, 1).unwrap()).await;
    put(&ds, "_shardsync/leftover-probe", &b"probe"[..]).await;
    for (i, n) in names.iter().enumerate() {
        let bytes = if n.ends_with(".parquet") {
            shard_bytes(i, 100 + i, 3).unwrap()
        } else {
            b"tokenizer notes".to_vec()
        };
        put_raw(&ds, n, bytes).await;
    }
    let what = format!("{backend:?}");
    // The names really are these on disk (local folder, s3s-fs bucket directory).
    let disk_root = match backend {
        Backend::Local => Some(env.tmp.path().join("ds")),
        Backend::S3 => Some(
            env.server
                .as_ref()
                .unwrap()
                .root
                .join(crate::backends::BUCKET)
                .join("ds"),
        ),
        Backend::Memory | Backend::Moto | Backend::Azurite => None,
    };
    if let Some(root) = &disk_root {
        for n in names {
            assert!(
                root.join(n).is_file(),
                "{what}: {n} is not a file under {}",
                root.display()
            );
        }
    }

    let m = build(&ds).await.manifest;
    let got: Vec<&str> = m.shards.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        got, names,
        "{what}: paths relative to the root, sorted, nothing else"
    );
    assert_entries_match_bytes(&ds, &m, &what).await;
    let rows: u64 = (0..names.len() as u64).filter(|&i| i != 2).map(|i| 100 + i).sum();
    assert_eq!(m.totals.rows, rows, "{what}");

    // Save, then rebuild: the manifest is not an object of the dataset, and every name
    // survives the round trip through JSON and the store.
    manifest::save(&ds, &m).await.unwrap();
    let again = build_manifest(&ds, Some(&m), &BuildOptions::default())
        .await
        .unwrap();
    assert_eq!(again.manifest.shards, m.shards, "{what}");
    assert_eq!((again.reused, again.hashed), (names.len(), 0), "{what}");
}

backend_tests!(empty_dataset_gets_an_empty_manifest_that_round_trips);
async fn empty_dataset_gets_an_empty_manifest_that_round_trips(backend: Backend) {
    let env = Env::new(backend).await;
    let ds = env.open("empty");
    // Only shardsync's own folder: still no objects.
    put(&ds, "_shardsync/leftover-probe", &b"probe"[..]).await;
    let built = build(&ds).await;
    let m = &built.manifest;
    let what = format!("{backend:?}");
    assert!(m.shards.is_empty(), "{what}: {:?}", m.shards);
    assert_eq!(
        (m.totals.files, m.totals.shards, m.totals.bytes, m.totals.rows),
        (0, 0, 0, 0)
    );
    assert_eq!(m.digest, sha256(b""), "{what}: the digest of no lines");
    manifest::save(&ds, m).await.unwrap();
    let loaded = manifest::load(&ds).await.unwrap().expect("manifest").manifest;
    assert!(loaded.shards.is_empty(), "{what}");
    assert_eq!(loaded.digest, m.digest, "{what}");
}

backend_tests!(shard_larger_than_the_multipart_threshold_is_hashed_in_one_pass);
async fn shard_larger_than_the_multipart_threshold_is_hashed_in_one_pass(backend: Backend) {
    // 12 MiB (above the 5 and 8 MiB part sizes), 64 rows of 64 KiB per group: 3 row groups.
    let big = blob_parquet(12 * MIB, 64, 5);
    let expected_sha = sha256(&big);
    let (rows, groups) = parquet_rows(&big);
    assert_eq!((rows, groups), (192, 3));
    let env = Env::new(backend).await;
    let ds = env.open("big");
    put(&ds, "train/big.parquet", big.clone()).await;
    put(&ds, "vocab.bin", noise(3 * MIB + 17, 2)).await;
    let (metered, meter) = InstrumentedStore::new(ds.store.clone()).wrap(&ds);

    let built = build(&metered).await;
    let what = format!("{backend:?}");
    let e = built.manifest.get("train/big.parquet").expect("entry");
    assert_eq!(e.size, big.len() as u64, "{what}");
    assert_eq!(e.sha256, expected_sha, "{what}");
    assert_eq!((e.rows, e.row_groups), (Some(rows), Some(groups)), "{what}");
    assert_entries_match_bytes(&ds, &built.manifest, &what).await;

    // One streamed read per object; the footer came from the streamed tail.
    let mut gets = meter.full_gets.lock().unwrap().clone();
    gets.sort();
    assert_eq!(
        gets,
        [
            ds.key("train/big.parquet").to_string(),
            ds.key("vocab.bin").to_string()
        ],
        "{what}"
    );
    assert!(
        meter.ranged_gets.lock().unwrap().is_empty(),
        "{what}: a second read of the footer"
    );
}

backend_tests!(rebuild_reuses_unchanged_entries_and_rehashes_only_rewritten_objects);
async fn rebuild_reuses_unchanged_entries_and_rehashes_only_rewritten_objects(backend: Backend) {
    let env = Env::new(backend).await;
    let ds = env.open("ds");
    write_demo(&ds, 5, 300, 1).await;
    let first = build(&ds).await.manifest;
    manifest::save(&ds, &first).await.unwrap();
    let what = format!("{backend:?}");

    // One shard rewritten with new content.
    let v2 = shard_bytes(2, 300, 99).unwrap();
    put(&ds, &shard_name(2), v2.clone()).await;
    let second = build_manifest(&ds, Some(&first), &BuildOptions::default())
        .await
        .unwrap();
    assert_eq!((second.reused, second.hashed), (5, 1), "{what}");
    assert_eq!(second.bytes_hashed, v2.len() as u64, "{what}");
    let m2 = &second.manifest;
    assert_eq!(m2.get(&shard_name(2)).unwrap().sha256, sha256(&v2), "{what}");
    for e in first.shards.iter().filter(|e| e.path != shard_name(2)) {
        assert_eq!(m2.get(&e.path), Some(e), "{what}: {} was reused as is", e.path);
    }
    assert_ne!(m2.digest, first.digest, "{what}");

    // A rewrite that keeps the size (a timestamp-only tool could miss it) is re-hashed too.
    let info = get(&ds, "dataset_info.json").await;
    let mut same_size = info.to_vec();
    same_size.reverse();
    assert_ne!(same_size, info.to_vec());
    put(&ds, "dataset_info.json", same_size.clone()).await;
    let third = build_manifest(&ds, Some(m2), &BuildOptions::default())
        .await
        .unwrap();
    assert_eq!((third.reused, third.hashed), (5, 1), "{what}");
    assert_eq!(
        third.manifest.get("dataset_info.json").unwrap().sha256,
        sha256(&same_size),
        "{what}"
    );

    // Nothing changed: nothing read.
    let fourth = build_manifest(&ds, Some(&third.manifest), &BuildOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (fourth.reused, fourth.hashed, fourth.bytes_hashed),
        (6, 0, 0),
        "{what}"
    );
    assert_eq!(fourth.manifest.shards, third.manifest.shards, "{what}");
    assert_entries_match_bytes(&ds, &fourth.manifest, &what).await;
}

backend_tests!(object_named_parquet_that_is_not_parquet_is_built_with_its_parquet_error);
async fn object_named_parquet_that_is_not_parquet_is_built_with_its_parquet_error(backend: Backend) {
    let good = shard_bytes(0, 100, 1).unwrap();
    let mut bogus_footer = b"PAR1 not really parquet".to_vec();
    bogus_footer.extend_from_slice(&u32::MAX.to_le_bytes());
    bogus_footer.extend_from_slice(b"PAR1");
    let bad: [(&str, Vec<u8>); 4] = [
        (
            "train/notes.parquet",
            b"this is a text file with the wrong name".to_vec(),
        ),
        ("train/cut.parquet", good[..good.len() - 100].to_vec()),
        ("train/bogus footer.parquet", bogus_footer),
        ("train/empty.parquet", Vec::new()),
    ];
    let env = Env::new(backend).await;
    for (i, (name, bytes)) in bad.iter().enumerate() {
        let ds = env.open(&format!("ds{i}"));
        write_demo(&ds, 2, 100, 1).await;
        put(&ds, name, bytes.clone()).await;
        let m = build_manifest(&ds, None, &BuildOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{backend:?}: {name}: one odd shard aborted the build: {e}"))
            .manifest;
        assert_eq!(m.shards.len(), 4, "{backend:?}: every object has an entry");
        let e = m.get(name).expect("entry");
        assert_eq!(e.sha256, sha256(bytes), "{backend:?}: {name}");
        assert_eq!(
            (e.rows, e.row_groups, &e.schema),
            (None, None, &None),
            "{backend:?}"
        );
        assert!(e.parquet_error.is_some(), "{backend:?}: {name}: {e:?}");
        let odd: Vec<&str> = m.parquet_errors().map(|e| e.path.as_str()).collect();
        assert_eq!(odd, [*name], "{backend:?}");
    }
}

backend_tests!(unknown_option_is_an_error_that_names_it);
async fn unknown_option_is_an_error_that_names_it(backend: Backend) {
    let env = Env::new(backend).await;
    let mut options = env.options();
    options.push(("no_such_option".into(), "1".into()));
    let err = Dataset::open(
        &env.url("ds"),
        &OpenOptions {
            options,
            create_local: true,
        },
    )
    .expect_err("unknown option accepted");
    match &err {
        Error::InvalidOption { key, .. } => assert_eq!(key, "no_such_option", "{backend:?}"),
        other => panic!("{backend:?}: expected InvalidOption, got {other:?}"),
    }
    assert!(err.to_string().contains("no_such_option"), "{backend:?}: {err}");
}

/// What no backend is asked about: a scheme shardsync does not know, an option without `=`,
/// a local source folder that does not exist.
#[tokio::test]
async fn unknown_scheme_malformed_option_and_missing_folder_are_errors_that_name_them() {
    let err = Dataset::open("ftp://host/data", &OpenOptions::default()).expect_err("ftp accepted");
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("\"ftp\""), "{err}");

    let err = shardsync::store::parse_options(&["endpoint".to_string()]).expect_err("no '='");
    assert!(err.to_string().contains("KEY=VALUE"), "{err}");

    let missing = tempfile::tempdir().unwrap().path().join("no-such-folder");
    let err = Dataset::open(&missing.display().to_string(), &OpenOptions::default())
        .expect_err("missing source folder accepted");
    assert!(err.to_string().contains("no-such-folder"), "{err}");
}

backend_tests!(pyarrow_written_shard_records_the_sha256_sha256sum_prints_and_the_rows_pyarrow_reads);
async fn pyarrow_written_shard_records_the_sha256_sha256sum_prints_and_the_rows_pyarrow_reads(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    let ds = env.open("from-pyarrow");
    put(&ds, "train/part-0.parquet", PYARROW_FIXTURE).await;
    let m = build(&ds).await.manifest;
    let e = m.get("train/part-0.parquet").expect("entry");
    assert_eq!(e.sha256, PYARROW_SHA256, "{backend:?}");
    assert_eq!(e.size, PYARROW_FIXTURE.len() as u64, "{backend:?}");
    assert_eq!(e.rows, Some(PYARROW_ROWS), "{backend:?}");
    assert_eq!(e.row_groups, Some(PYARROW_ROW_GROUPS), "{backend:?}");
    assert_eq!(m.totals.rows, PYARROW_ROWS, "{backend:?}");
}
