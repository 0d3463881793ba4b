//! Issue 6: faults survived, hostile input refused, nothing lost, no secret leaked.
//!
//! Server faults come from [`crate::faults::FaultStore`] (a wrapping store, used through
//! `Dataset::from_store`) and from stopping the in-process S3 server; hostile manifests are
//! planted where a sync reads them; secrets are grepped for in every rendering the binary
//! makes; races are forced at a known point by pausing one sync inside its copy phase.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use proptest::prelude::*;
use shardsync::check::{check, CheckOptions};
use shardsync::manifest::{self, BuildOptions, Manifest, ShardEntry};
use shardsync::report::FindingKind;
use shardsync::store::Backend as StoreBackend;
use shardsync::sync::{sync, SyncOptions};
use shardsync::{Dataset, Error};
use tokio::sync::Notify;

use crate::backends::{get, put, snapshot, write_demo, Backend, Env, BUCKET};
use crate::check::{run, shardsync};
use crate::faults::{FaultStore, Hook, Schedule};
use crate::harness::all_keys;

const ROWS: usize = 100;

/// Source `name` with `n` demo shards and a manifest; returns the shard paths.
async fn source(env: &Env, name: &str, n: usize) -> (Dataset, Vec<String>) {
    let ds = env.open(name);
    let paths = write_demo(&ds, n, ROWS, 11).await;
    let built = manifest::build_manifest(&ds, None, &BuildOptions::default())
        .await
        .expect("build");
    manifest::save(&ds, &built.manifest).await.expect("save");
    (ds, paths)
}

/// The same dataset seen through a fault-injecting store.
fn faulty(ds: &Dataset, schedule: Schedule) -> (Dataset, Arc<FaultStore>) {
    let f = FaultStore::new(ds.store.clone(), schedule);
    let d = Dataset::from_store(f.clone(), ds.root.clone(), ds.url.clone(), ds.backend);
    (d, f)
}

/// Sync options whose whole-object retries do not make a test wait.
fn quick(attempts: u32) -> SyncOptions {
    let mut o = SyncOptions::default();
    o.transfer.attempts = attempts;
    o.transfer.backoff = Duration::from_millis(5);
    o
}

/// A hook that holds the first matching GET until `release` is notified, after notifying
/// `reached`.
fn pause_first_get() -> (Hook, Arc<Notify>, Arc<Notify>) {
    let reached = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let once = Arc::new(AtomicBool::new(false));
    let (r, l) = (reached.clone(), release.clone());
    let hook: Hook = Arc::new(move |_key| {
        let (r, l, once) = (r.clone(), l.clone(), once.clone());
        Box::pin(async move {
            if !once.swap(true, Ordering::SeqCst) {
                r.notify_one();
                l.notified().await;
            }
        })
    });
    (hook, reached, release)
}

/// `ds` seen through a store that holds the first GET of a key containing `matching` until
/// `release` is notified (after notifying `reached`): a sync paused at a known point.
fn paused_at(ds: &Dataset, matching: &str) -> (Dataset, Arc<Notify>, Arc<Notify>) {
    let (hook, reached, release) = pause_first_get();
    let f = FaultStore::new(
        ds.store.clone(),
        Schedule {
            matching: vec![matching.into()],
            ..Schedule::default()
        },
    );
    f.set_before_get(hook);
    let paused = Dataset::from_store(f, ds.root.clone(), ds.url.clone(), ds.backend);
    (paused, reached, release)
}

/// Every entry the destination manifest claims is there, with those bytes.
async fn manifest_claims_only_verified_bytes(dst: &Dataset) {
    let Some(stored) = manifest::load(dst).await.expect("load") else {
        return;
    };
    for e in &stored.manifest.shards {
        let bytes = get(dst, &e.path).await;
        assert_eq!(
            shardsync::hash::sha256_hex(&bytes),
            e.sha256,
            "{}: the manifest claims bytes the store does not hold",
            e.path
        );
    }
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// 1. Server faults

backend_tests!(sync_under_intermittent_faults_completes_byte_identical);
async fn sync_under_intermittent_faults_completes_byte_identical(backend: Backend) {
    let env = Env::new(backend).await;
    let src = env.open("a");
    write_demo(&src, 4, ROWS, 3).await;
    // One object large enough for a multipart upload. S3 (s3s-fs too) refuses parts under
    // 5 MiB; memory and local folders take small ones, which keeps this test fast.
    let part_size = if backend.is_s3() { 5 << 20 } else { 128 << 10 };
    put(&src, "blobs/tokenizer.bin", random_bytes(part_size + 1000, 1)).await;
    let built = manifest::build_manifest(&src, None, &BuildOptions::default())
        .await
        .unwrap();
    manifest::save(&src, &built.manifest).await.unwrap();
    let dst = env.open("b");

    let data = vec!["train/".to_string(), "blobs/".to_string()];
    let (fsrc, src_faults) = faulty(
        &src,
        Schedule {
            matching: data.clone(),
            fail_gets: 2,
            cut_bodies: 2,
            cut_after: 1000,
            get_delay: Duration::from_millis(20),
            ..Schedule::default()
        },
    );
    let (fdst, dst_faults) = faulty(
        &dst,
        Schedule {
            matching: data,
            fail_puts: 1,
            fail_parts: 1,
            ..Schedule::default()
        },
    );
    // 6 faults in all, so 7 attempts per object always suffice, whatever the order.
    let mut opts = quick(7);
    // Above every demo shard (they go in one PUT), below the blob (it goes multipart).
    opts.transfer.part_size = part_size;
    opts.transfer.multipart_threshold = part_size;
    let out = sync(&fsrc, &fdst, &opts).await.expect("sync");
    assert_eq!(
        src_faults.injected(),
        4,
        "{backend:?}: every source fault was hit"
    );
    assert_eq!(
        dst_faults.injected(),
        2,
        "{backend:?}: every destination fault was hit"
    );
    assert_eq!(
        out.report.shards_failed, 0,
        "{backend:?}: {:?}",
        out.report.findings
    );
    assert!(out.report.consistent, "{backend:?}: {:?}", out.report);
    assert_eq!(out.report.shards_copied, 6, "{backend:?}");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await, "{backend:?}");
    assert!(
        check(&src, &dst, &CheckOptions::default())
            .await
            .unwrap()
            .consistent,
        "{backend:?}"
    );
}

backend_tests!(sync_under_persistent_faults_names_the_failed_shards_and_commits_none_of_them);
async fn sync_under_persistent_faults_names_the_failed_shards_and_commits_none_of_them(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, paths) = source(&env, "a", 5).await;
    let dst = env.open("b");
    let broken = vec![paths[1].clone(), paths[3].clone()];
    let (fsrc, faults) = faulty(
        &src,
        Schedule {
            matching: vec!["train/".into()],
            always_fail_gets: broken.clone(),
            ..Schedule::default()
        },
    );
    // Per-shard failures are in the report the incomplete sync's error carries.
    let out = crate::harness::sync_incomplete(&fsrc, &dst, &quick(3)).await;
    assert!(out.failed(), "{backend:?}");
    assert_eq!(faults.injected(), 6, "{backend:?}: 3 attempts x 2 shards");
    assert_eq!(out.report.shards_failed, 2, "{backend:?}");
    assert!(!out.report.consistent, "{backend:?}");
    let failed: Vec<_> = out
        .report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Error)
        .collect();
    assert_eq!(
        failed.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        broken,
        "{backend:?}"
    );
    assert!(
        failed.iter().all(|f| f.detail.contains("injected fault")),
        "{failed:?}"
    );

    let committed = manifest::load(&dst)
        .await
        .unwrap()
        .expect("the rest is committed")
        .manifest;
    for p in &broken {
        assert!(
            committed.get(p).is_none(),
            "{backend:?}: manifest claims failed {p}"
        );
        let (store, _) = crate::backends::raw(&dst);
        assert!(
            matches!(
                store.head(&dst.key(p)).await,
                Err(object_store::Error::NotFound { .. })
            ),
            "{backend:?}: {p} must not be on the destination"
        );
    }
    assert_eq!(
        committed.shards.len(),
        4,
        "{backend:?}: the 4 good objects are claimed"
    );
    manifest_claims_only_verified_bytes(&dst).await;

    // The fault clears: the next sync copies exactly what is missing.
    faults.schedule_mut(|s| s.always_fail_gets.clear());
    let again = sync(&fsrc, &dst, &quick(3)).await.unwrap();
    assert_eq!(again.report.shards_copied, 2, "{backend:?}");
    assert!(again.report.consistent, "{backend:?}");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await, "{backend:?}");
}

/// An S3 client that gives up quickly, so a stopped server fails the sync in milliseconds.
fn impatient_s3(env: &Env) -> Arc<dyn ObjectStore> {
    let server = env.server.as_ref().expect("S3 env");
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            base: 2.0,
        },
        max_retries: 1,
        retry_timeout: Duration::from_secs(2),
    };
    Arc::new(
        server
            .builder(BUCKET)
            .with_retry(retry)
            .build()
            .expect("s3 client"),
    )
}

#[tokio::test]
async fn s3_server_stopped_mid_sync_fails_cleanly_and_a_rerun_finishes_without_recopying() {
    let mut env = Env::new(Backend::S3).await;
    let (src, _) = source(&env, "a", 6).await;
    let client = impatient_s3(&env);
    let (fsrc, reached, release) = paused_at(
        &Dataset::from_store(client.clone(), Path::from("a"), env.url("a"), StoreBackend::S3),
        "train/part-00003",
    );
    let dst = Dataset::from_store(client, Path::from("b"), env.url("b"), StoreBackend::S3);
    // One copy at a time, in path order: dataset_info.json and parts 0-2 land first.
    let opts = quick(2).with_concurrency(1);
    let server = env.server.as_mut().unwrap();
    let stop_at_part_3 = async {
        tokio::time::timeout(Duration::from_secs(120), reached.notified())
            .await
            .expect("the sync reached part 3");
        server.stop().await;
        release.notify_one();
    };
    // A guard against a hang, not a measure of speed: the commit's own retries ride out
    // a restart for a while before they give up.
    let (result, ()) = tokio::time::timeout(Duration::from_secs(300), async {
        tokio::join!(sync(&fsrc, &dst, &opts), stop_at_part_3)
    })
    .await
    .expect("a stopped server fails the sync, it does not hang it");
    // Parts 3-5 fail, and with the server gone nothing can be committed: the sync is an
    // error whose one line says why.
    let msg = result.expect_err("nothing can be committed").to_string();
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(msg.contains("Connection refused"), "{msg}");

    env.server.as_mut().unwrap().restart().await;
    let dst = env.open("b");
    manifest_claims_only_verified_bytes(&dst).await;
    let rerun = sync(&src, &dst, &SyncOptions::default()).await.expect("re-run");
    assert!(rerun.report.consistent, "{:?}", rerun.report);
    assert_eq!(
        rerun.report.shards_copied,
        3,
        "what landed before the stop is proven, not copied again: {:?}",
        rerun.plan.counts()
    );
    assert_eq!(snapshot(&src).await, snapshot(&dst).await);
}

#[tokio::test]
async fn s3_server_restarted_mid_sync_is_ridden_out_by_retries() {
    let mut env = Env::new(Backend::S3).await;
    let (src, _) = source(&env, "a", 4).await;
    let (fsrc, reached, release) = paused_at(&src, "train/part-00002");
    let dst = env.open("b");
    let opts = SyncOptions::default().with_concurrency(1);
    let server = env.server.as_mut().unwrap();
    let bounce = async {
        reached.notified().await;
        server.stop().await;
        release.notify_one();
        // object_store backs off from 100 ms over 6 retries: back within 250 ms is ridden out.
        tokio::time::sleep(Duration::from_millis(250)).await;
        server.restart().await;
    };
    let (out, ()) = tokio::join!(sync(&fsrc, &dst, &opts), bounce);
    let out = out.expect("sync");
    assert!(out.report.consistent, "{:?}", out.report);
    assert_eq!(snapshot(&src).await, snapshot(&env.open("b")).await);
}

/// A persistent fault from the binary: a source shard whose bytes rotted (size and mtime kept,
/// so its manifest entry still looks current). Its bytes never hash to the plan.
#[tokio::test]
async fn binary_sync_of_a_rotted_source_shard_exits_2_naming_it_and_does_not_land_it() {
    let env = Env::new(Backend::Local).await;
    let (_, paths) = source(&env, "a", 3).await;
    let file = env.tmp.path().join("a").join(&paths[1]);
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let (code, out, err) = run(shardsync().args(["sync", &env.url("a"), &env.url("b")])).await;
    assert_eq!(code, 2, "{out}{err}");
    let last = err
        .trim_end()
        .lines()
        .find(|l| l.starts_with("shardsync: error:"))
        .expect(&err);
    assert!(last.contains("1 shard(s) failed"), "{err}");
    assert!(
        err.contains(&paths[1]) && err.contains("SHA-256 mismatch"),
        "{err}"
    );
    assert!(!env.tmp.path().join("b").join(&paths[1]).exists(), "not landed");
    let dst = env.open("b");
    let m = manifest::load(&dst).await.unwrap().unwrap().manifest;
    assert!(m.get(&paths[1]).is_none());
    assert_eq!(m.shards.len(), 3, "the good ones are committed");
}

// ---------------------------------------------------------------------------------------------
// 2. Hostile manifests

/// A valid manifest document of two entries, as a JSON value to spoil.
fn valid_doc() -> serde_json::Value {
    let e = |p: &str| ShardEntry {
        path: p.into(),
        size: 10,
        sha256: "ab".repeat(32),
        mtime: None,
        etag: None,
        rows: None,
        row_groups: None,
        schema: None,
        parquet_error: None,
    };
    let m = Manifest::new(
        "memory://x/a",
        vec![e("dataset_info.json"), e("train/part-00000.parquet")],
    )
    .unwrap();
    serde_json::from_slice(&m.to_json()).unwrap()
}

/// (what, document, text the refusal must contain).
fn hostile_manifests() -> Vec<(&'static str, Vec<u8>, String)> {
    let with_entry = |path: serde_json::Value| {
        let mut v = valid_doc();
        let mut e = v["shards"][0].clone();
        e["path"] = path;
        v["shards"].as_array_mut().unwrap().insert(0, e);
        v["digest"] = "".into();
        serde_json::to_vec(&v).unwrap()
    };
    let with_field = |i: usize, key: &str, val: serde_json::Value| {
        let mut v = valid_doc();
        v["shards"][i][key] = val;
        v["digest"] = "".into();
        serde_json::to_vec(&v).unwrap()
    };
    let path_case = |what, p: &str| (what, with_entry(p.into()), format!("{p:?}"));
    let mut dup = valid_doc();
    let first = dup["shards"][0].clone();
    dup["shards"].as_array_mut().unwrap().insert(1, first);
    dup["digest"] = "".into();
    let mut unknown = valid_doc();
    unknown["format"] = "shardsync.manifest/v9".into();
    let mut no_format = valid_doc();
    no_format.as_object_mut().unwrap().remove("format");
    let mut tampered = valid_doc();
    tampered["shards"][1]["size"] = 11.into();
    vec![
        (
            "not JSON",
            b"{\"format\": \"shardsync.manifest/v1\", \"shards\": [".to_vec(),
            "not valid JSON".into(),
        ),
        (
            "binary garbage",
            vec![0xff, 0xfe, 0x00, 0x01],
            "not valid JSON".into(),
        ),
        (
            "unknown format",
            serde_json::to_vec(&unknown).unwrap(),
            "shardsync.manifest/v9".into(),
        ),
        (
            "no format",
            serde_json::to_vec(&no_format).unwrap(),
            "missing \"format\"".into(),
        ),
        (
            "duplicate path",
            serde_json::to_vec(&dup).unwrap(),
            "duplicate path \"dataset_info.json\"".into(),
        ),
        path_case("absolute path", "/etc/cron.d/evil"),
        path_case("parent segment", "../../outside.parquet"),
        path_case("inner parent segment", "train/../../../outside.parquet"),
        path_case("dot segment", "./train/x.parquet"),
        path_case("backslash", "..\\..\\evil.parquet"),
        path_case("empty segment", "train//x.parquet"),
        path_case("trailing slash", "train/"),
        path_case("own folder", "_shardsync/manifest.json"),
        path_case("control character", "train/a\u{7}b.parquet"),
        path_case("empty path", ""),
        (
            "path too long",
            with_entry("a".repeat(2000).into()),
            "longer than 1024 bytes".into(),
        ),
        ("path not a string", with_entry(7.into()), "entry 0".into()),
        (
            "negative size",
            with_field(1, "size", (-1).into()),
            "entry 1 \"train/part-00000.parquet\"".into(),
        ),
        (
            "size beyond u64",
            with_field(1, "size", serde_json::from_str("18446744073709551616").unwrap()),
            "entry 1 \"train/part-00000.parquet\"".into(),
        ),
        (
            "float size",
            with_field(1, "size", 1e300.into()),
            "entry 1 \"train/part-00000.parquet\"".into(),
        ),
        (
            "absurd size",
            with_field(1, "size", (6u64 << 40).into()),
            "train/part-00000.parquet: size".into(),
        ),
        (
            "short hash",
            with_field(1, "sha256", "ab".repeat(31).into()),
            "train/part-00000.parquet: sha256".into(),
        ),
        (
            "uppercase hash",
            with_field(1, "sha256", "AB".repeat(32).into()),
            "train/part-00000.parquet: sha256".into(),
        ),
        (
            "hash not hex",
            with_field(1, "sha256", "zz".repeat(32).into()),
            "train/part-00000.parquet: sha256".into(),
        ),
        (
            "hash not a string",
            with_field(1, "sha256", 12.into()),
            "entry 1 \"train/part-00000.parquet\"".into(),
        ),
        (
            "unknown entry field",
            with_field(1, "owner", "eve".into()),
            "entry 1 \"train/part-00000.parquet\"".into(),
        ),
        (
            "edited after digest",
            serde_json::to_vec(&tampered).unwrap(),
            "does not match its entries".into(),
        ),
    ]
}

#[test]
fn hostile_manifests_are_refused_naming_the_entry() {
    for (what, doc, needle) in hostile_manifests() {
        let err = Manifest::from_json(&doc, "s3://bucket/ds/_shardsync/manifest.json").expect_err(what);
        let msg = err.to_string();
        assert!(msg.contains(&needle), "{what}: {msg:?} lacks {needle:?}");
        assert!(
            matches!(
                err,
                Error::InvalidManifest { .. } | Error::InvalidShardPath { .. }
            ),
            "{what}: {err:?}"
        );
        assert_eq!(msg.lines().count(), 1, "{what}: {msg}");
        assert!(
            msg.len() < 2000,
            "{what}: a hostile entry does not make a huge message"
        );
    }
}

backend_tests!(sync_refuses_a_hostile_source_or_destination_manifest_before_writing_anything);
async fn sync_refuses_a_hostile_source_or_destination_manifest_before_writing_anything(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, _) = source(&env, "a", 2).await;
    let good = get(&src, shardsync::store::MANIFEST_KEY).await;
    for (what, doc, needle) in hostile_manifests() {
        put(&src, shardsync::store::MANIFEST_KEY, doc.clone()).await;
        let dst = env.open(&format!("dst-{}", what.replace(' ', "-")));
        let err = sync(&src, &dst, &SyncOptions::default()).await.expect_err(what);
        assert!(err.to_string().contains(&needle), "{backend:?} {what}: {err}");
        assert_eq!(
            all_keys(&dst).await,
            Vec::<String>::new(),
            "{backend:?} {what}: wrote to dst"
        );
    }
    // A hostile destination manifest: the destination keeps exactly what it had.
    put(&src, shardsync::store::MANIFEST_KEY, good.clone()).await;
    let dst = env.open("dst-hostile");
    let (what, doc, needle) = hostile_manifests()
        .into_iter()
        .find(|c| c.0 == "parent segment")
        .unwrap();
    put(&dst, shardsync::store::MANIFEST_KEY, doc.clone()).await;
    let before = all_keys(&dst).await;
    let err = sync(&src, &dst, &SyncOptions::default()).await.expect_err(what);
    assert!(err.to_string().contains(&needle), "{backend:?}: {err}");
    assert_eq!(all_keys(&dst).await, before, "{backend:?}");
}

/// Every file under a folder, relative.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn binary_refuses_hostile_manifests_with_exit_2_naming_the_entry() {
    let env = Env::new(Backend::Local).await;
    let (src, _) = source(&env, "a", 1).await;
    for (n, (what, doc, needle)) in hostile_manifests().into_iter().enumerate() {
        put(&src, shardsync::store::MANIFEST_KEY, doc).await;
        let dst = env.tmp.path().join(format!("dst{n}"));
        for args in [
            vec!["sync", &env.url("a"), dst.to_str().unwrap()],
            vec!["check", &env.url("a"), dst.to_str().unwrap()],
            vec!["verify", &env.url("a")],
        ] {
            let (code, out, err) = run(shardsync().args(&args)).await;
            assert_eq!(code, 2, "{what} {}: {out}{err}", args[0]);
            let line = err.trim_end();
            assert_eq!(line.lines().count(), 1, "{what}: {err}");
            // The message quotes the entry with Rust escapes; compare unescaped for the binary.
            assert!(
                line.contains(&needle) || line.contains(needle.trim_matches('"')),
                "{what} {}: {err:?} lacks {needle:?}",
                args[0]
            );
        }
        assert_eq!(
            files_under(&dst),
            Vec::<String>::new(),
            "{what}: wrote to the destination"
        );
    }
}

#[tokio::test]
async fn oversized_manifest_is_refused_before_it_is_read() {
    let env = Env::new(Backend::Local).await;
    let (src, _) = source(&env, "a", 1).await;
    // A sparse file: 1 GiB + 1 byte on paper, nothing on disk.
    let path = env.tmp.path().join("a").join(shardsync::store::MANIFEST_KEY);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(manifest::MAX_MANIFEST_BYTES + 1)
        .unwrap();
    let err = manifest::load(&src).await.expect_err("too large");
    assert!(err.to_string().contains("-byte bound"), "{err}");
    let (code, _, err) = run(shardsync().args(["sync", &env.url("a"), &env.url("b")])).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("manifest.json") && err.contains("bound"), "{err}");
    assert_eq!(files_under(&env.tmp.path().join("b")), Vec::<String>::new());
}

backend_tests!(odd_but_valid_names_round_trip_unchanged);
/// Names that `Path::from` would percent-encode survive a sync under their own names, and a
/// second sync finds nothing to do.
async fn odd_but_valid_names_round_trip_unchanged(backend: Backend) {
    let names = [
        "meta/a#b.json",
        "meta/per%cent.json",
        "meta/sp ace.json",
        "meta/ünïcödé.json",
        "meta/brackets[1]{2}.json",
        "meta/tilde~caret^.json",
        "meta/...dots.json",
    ];
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("a"), env.open("b"));
    for (i, n) in names.iter().enumerate() {
        put(&src, n, format!("sidecar {i}")).await;
    }
    let first = sync(&src, &dst, &SyncOptions::default()).await.expect("sync");
    assert!(first.report.consistent, "{backend:?}: {:?}", first.report);
    let listed: Vec<String> = snapshot(&dst).await.into_iter().map(|(p, _)| p).collect();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want, "{backend:?}");
    let second = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert_eq!(
        second.report.shards_copied,
        0,
        "{backend:?}: {:?}",
        second.plan.counts()
    );
    assert!(!second.report.committed, "{backend:?}");
}

// ---------------------------------------------------------------------------------------------
// Fuzzing the parser and path validation. Concrete cases found are in `regressions.rs`.

/// Paths built from the pieces that make paths dangerous, plus arbitrary strings; mostly
/// plain segments, so that many generated paths are valid and reach the checks after them.
fn paths() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        8 => "[a-z0-9]{1,4}",
        1 => Just(String::new()),
        1 => Just(".".to_string()),
        1 => Just("..".to_string()),
        1 => Just("_shardsync".to_string()),
        1 => Just("...".to_string()),
        1 => "[#%?*~\\[\\]{}|<>\\\\: .\"]{1,3}",
        1 => "[\\x00-\\x1f\\x7f\u{80}-\u{9f}]",
        1 => "\\PC{1,3}",
    ];
    prop_oneof![
        6 => prop::collection::vec(segment, 1..4).prop_map(|segs| segs.join("/")),
        1 => "/[a-z]{1,3}",
        1 => any::<String>(),
    ]
}

/// Sizes: mostly plausible, and every way a number can be wrong.
fn json_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        6 => (0u64..=manifest::MAX_OBJECT_SIZE).prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::from(manifest::MAX_OBJECT_SIZE + 1)),
        1 => any::<u64>().prop_map(serde_json::Value::from),
        1 => any::<i64>().prop_map(serde_json::Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)),
        1 => Just(serde_json::Value::Null),
        1 => Just(serde_json::Value::from("12")),
    ]
}

fn sha() -> impl Strategy<Value = String> {
    prop_oneof![6 => "[0-9a-f]{64}", 1 => "[0-9a-fA-Fg]{60,66}", 1 => any::<String>()]
}

/// Row counts: Parquet footers are not checked against anything, so any u64 can come in.
fn rows() -> impl Strategy<Value = Option<u64>> {
    prop::option::of(prop_oneof![0u64..1_000_000, Just(u64::MAX), any::<u64>()])
}

fn entry_value() -> impl Strategy<Value = serde_json::Value> {
    (
        paths(),
        json_number(),
        sha(),
        rows(),
        prop::option::of(json_number()),
    )
        .prop_map(|(path, size, sha, rows, row_groups)| {
            let mut e = serde_json::json!({"path": path, "size": size, "sha256": sha});
            if let Some(r) = rows {
                e["rows"] = r.into();
            }
            if let Some(g) = row_groups {
                e["row_groups"] = g;
            }
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn validate_path_accepts_only_paths_that_stay_under_the_root(p in paths()) {
        if shardsync::manifest::validate_path(&p).is_ok() {
            prop_assert!(!p.is_empty() && !p.starts_with('/'), "{:?}", p);
            prop_assert!(!p.contains('\\'), "{:?}", p);
            prop_assert!(!p.chars().any(char::is_control), "{:?}", p);
            prop_assert!(p.len() <= shardsync::manifest::MAX_PATH_BYTES);
            prop_assert!(p.split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{:?}", p);
            prop_assert!(p != "_shardsync" && !p.starts_with("_shardsync/"), "{:?}", p);
            // What is written is what will be listed: the key is the path, under the root.
            let ds = Dataset::open("memory://prop/root", &Default::default()).unwrap();
            let key = ds.key(&p);
            prop_assert_eq!(key.as_ref(), format!("root/{p}"));
            prop_assert_eq!(ds.relative(&key), Some(p.clone()));
        }
    }

    #[test]
    fn manifest_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::from_json(&bytes, "fuzz");
    }

    #[test]
    fn manifest_parser_accepts_only_safe_consistent_documents(
        entries in prop::collection::vec(entry_value(), 0..6),
        sort in any::<bool>(),
    ) {
        let mut entries = entries;
        if sort {
            entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
            entries.dedup_by(|a, b| a["path"] == b["path"]);
        }
        let doc = serde_json::json!({
            "format": manifest::FORMAT,
            "dataset": "memory://fuzz",
            "created_at": "2026-11-25T00:00:00Z",
            "generator": "fuzz",
            "digest": "",
            "totals": {"shards": 0, "files": 0, "bytes": 0, "rows": 0},
            "shards": entries,
        });
        if let Ok(m) = Manifest::from_json(&serde_json::to_vec(&doc).unwrap(), "fuzz") {
            for w in m.shards.windows(2) {
                prop_assert!(w[0].path < w[1].path, "sorted, no duplicates");
            }
            for e in &m.shards {
                prop_assert!(shardsync::manifest::validate_path(&e.path).is_ok(), "{:?}", e.path);
                prop_assert!(shardsync::manifest::is_sha256_hex(&e.sha256));
                prop_assert!(e.size <= manifest::MAX_OBJECT_SIZE);
            }
            prop_assert_eq!(&m.digest, &manifest::digest_of(&m.shards));
            prop_assert_eq!(m.totals.files, m.shards.len() as u64);
            // What was accepted serializes back to a document that is accepted again.
            let again = Manifest::from_json(&m.to_json(), "fuzz").unwrap();
            prop_assert_eq!(again.shards, m.shards);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Secrets

/// Everything the binary printed or wrote, for grepping.
struct Transcript(String);

impl Transcript {
    async fn record(&mut self, cmd: &mut tokio::process::Command) -> i32 {
        let (code, out, err) = run(cmd).await;
        self.0.push_str(&out);
        self.0.push_str(&err);
        code
    }
}

fn with_secret(opts: &[(String, String)], flag: &str, secret: &str) -> Vec<String> {
    opts.iter()
        .flat_map(|(k, v)| {
            let v = if k == "secret_access_key" {
                secret
            } else {
                v.as_str()
            };
            [flag.to_string(), format!("{k}={v}")]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_log_report_or_debug_rendering_carries_a_credential() {
    let env = Env::new(Backend::S3).await;
    let server = env.server.as_ref().unwrap();
    source(&env, "a", 2).await;
    let (a, b) = (env.url("a"), env.url("b"));
    let opts = env.options();
    let wrong = format!("wrong{:016x}", rand::random::<u64>());
    let report = env.tmp.path().join("report.json");
    let summary = env.tmp.path().join("summary.md");
    let mut t = Transcript(String::new());

    for (secret, expect) in [
        (server.secret_key.as_str(), [0, 0, 0]),
        (wrong.as_str(), [2, 2, 2]),
    ] {
        let pair: Vec<String> = [
            with_secret(&opts, "--src-opt", secret),
            with_secret(&opts, "--dst-opt", secret),
        ]
        .concat();
        let one = with_secret(&opts, "--opt", secret);
        let code = t
            .record(
                shardsync()
                    .args(["sync", &a, &b, "-vv", "--report"])
                    .arg(&report)
                    .args(&pair),
            )
            .await;
        assert_eq!(code, expect[0], "{}", t.0);
        t.record(shardsync().args(["sync", &a, &b, "-vv", "--json"]).args(&pair))
            .await;
        for format in ["text", "json", "markdown"] {
            let code = t
                .record(
                    shardsync()
                        .args(["check", &a, &b, "-vv", "--deep", "--format", format])
                        .args(&pair)
                        .env("GITHUB_STEP_SUMMARY", &summary),
                )
                .await;
            assert_eq!(code, expect[1], "{}", t.0);
            let code = t
                .record(
                    shardsync()
                        .args(["verify", &b, "-vv", "--format", format])
                        .args(&one),
                )
                .await;
            assert_eq!(code, expect[2], "{}", t.0);
        }
        for format in ["text", "json"] {
            t.record(
                shardsync()
                    .args(["diff", &a, &b, "-vv", "--format", format])
                    .args(&pair),
            )
            .await;
        }
        t.record(
            shardsync()
                .args(["manifest", "build", &a, "-vv", "--json"])
                .args(&one),
        )
        .await;
    }
    // The AWS_* fallback, and credentials written into the URL itself.
    let mut envs = shardsync();
    envs.args(["sync", &a, &b, "-vv"])
        .env("AWS_ACCESS_KEY_ID", &server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &wrong)
        .env("AWS_ENDPOINT", &server.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false");
    assert_eq!(t.record(&mut envs).await, 2, "{}", t.0);
    let in_url = format!(
        "s3://{}:{}@{BUCKET}/a?token={wrong}",
        server.access_key, server.secret_key
    );
    t.record(
        shardsync()
            .args(["sync", &in_url, &b, "-vv"])
            .args(with_secret(&opts, "--dst-opt", &wrong)),
    )
    .await;
    t.record(shardsync().args(["check", &in_url, &b, "--format", "json"]))
        .await;

    t.0.push_str(&std::fs::read_to_string(&report).expect("report written"));
    t.0.push_str(&std::fs::read_to_string(&summary).expect("summary written"));
    // The library's own renderings.
    let ds = env.open("a");
    t.0.push_str(&format!("{ds:?}"));
    let bad = Dataset::open(
        &a,
        &shardsync::OpenOptions {
            options: opts
                .iter()
                .map(|(k, v)| {
                    let v = if k == "secret_access_key" { &wrong } else { v };
                    (k.clone(), v.clone())
                })
                .collect(),
            create_local: false,
        },
    )
    .unwrap();
    t.0.push_str(&format!("{bad:?}"));
    let err = manifest::load(&bad).await.expect_err("wrong key");
    t.0.push_str(&format!("{err}\n{err:?}\n"));
    assert!(
        t.0.contains("SignatureDoesNotMatch") || t.0.contains("403"),
        "the wrong key was used"
    );
    assert!(
        t.0.contains("CONSISTENT") && t.0.contains("\"findings\""),
        "the right key worked"
    );

    for needle in [&server.secret_key, &wrong, &server.access_key] {
        if let Some(i) = t.0.find(needle.as_str()) {
            let from = t.0[..i].char_indices().rev().nth(200).map_or(0, |(j, _)| j);
            let context = t.0.get(from..(i + 40).min(t.0.len())).unwrap_or("");
            panic!("credential {needle} leaked: ...{context}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Races

backend_tests!(second_of_two_concurrent_syncs_fails_with_destination_changed);
async fn second_of_two_concurrent_syncs_fails_with_destination_changed(backend: Backend) {
    for existing in [false, true] {
        let env = Env::new(backend).await;
        let (src, paths) = source(&env, "a", 3).await;
        let dst = env.open("b");
        if existing {
            // A destination with a manifest: the commits are compare-and-swap updates.
            sync(&src, &dst, &SyncOptions::default()).await.unwrap();
            for p in &paths[..2] {
                put(&src, p, shardsync::demo::shard_bytes(9, ROWS, 5).unwrap()).await;
            }
            let built = manifest::build_manifest(&src, None, &BuildOptions::default())
                .await
                .unwrap();
            manifest::save(&src, &built.manifest).await.unwrap();
        }
        let (slow, reached, release) = paused_at(&src, "train/");
        // The first sync holds the destination's lease while it copies; the second,
        // started meanwhile, must write nothing and say why.
        let other = async {
            reached.notified().await;
            let r = sync(&src, &dst, &SyncOptions::default()).await;
            release.notify_one();
            r
        };
        let defaults = SyncOptions::default();
        let (first, second) = tokio::join!(sync(&slow, &dst, &defaults), other);
        let (winner, err) = match (first, second) {
            (Ok(w), Err(e)) | (Err(e), Ok(w)) => (w, e),
            (a, b) => panic!("{backend:?} {existing}: exactly one must commit: {a:?} / {b:?}"),
        };
        assert!(winner.report.committed && winner.report.consistent, "{backend:?}");
        assert!(
            matches!(
                err,
                Error::ManifestConflict { .. } | Error::DestinationLocked { .. }
            ),
            "{backend:?} {existing}: {err:?}"
        );
        assert!(
            err.to_string().contains("destination changed during sync"),
            "{err}"
        );
        let m = manifest::load(&dst).await.unwrap().unwrap().manifest;
        assert_eq!(
            Some(m.digest),
            winner.report.dst_digest,
            "{backend:?}: the winner's manifest stands"
        );
        assert!(
            check(&src, &dst, &CheckOptions::default())
                .await
                .unwrap()
                .consistent,
            "{backend:?}"
        );
        manifest_claims_only_verified_bytes(&dst).await;
    }
}

/// The same race from the binary: another sync holds the destination (paused at its first
/// shard read) when the binary starts; the binary exits 2, writes nothing, and the holder commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_sync_that_loses_a_race_exits_2_with_destination_changed() {
    let env = Env::new(Backend::S3).await;
    let (src, _) = source(&env, "a", 2).await;
    let dst = env.open("b");
    let (slow, reached, release) = paused_at(&src, "train/");
    let run_binary = async {
        tokio::time::timeout(Duration::from_secs(120), reached.notified())
            .await
            .expect("the holder reached its first shard copy");
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            shardsync()
                .args(["sync", &env.url("a"), &env.url("b"), "-j", "1"])
                .args(env.cli_options("--src-opt"))
                .args(env.cli_options("--dst-opt"))
                .output(),
        )
        .await
        .expect("binary finishes")
        .unwrap();
        release.notify_one();
        out
    };
    let defaults = SyncOptions::default();
    let (held, out) = tokio::join!(sync(&slow, &dst, &defaults), run_binary);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("destination changed during sync"), "{err}");
    assert!(err.contains("another sync is writing to it"), "{err}");
    let held = held.expect("the holder commits");
    assert!(held.report.committed && held.report.consistent);
    let m = manifest::load(&dst).await.unwrap().unwrap().manifest;
    assert_eq!(Some(m.digest), held.report.dst_digest);
}

backend_tests!(source_shard_rewritten_during_the_sync_is_not_landed_and_a_rerun_takes_the_new_version);
async fn source_shard_rewritten_during_the_sync_is_not_landed_and_a_rerun_takes_the_new_version(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    let (src, paths) = source(&env, "a", 3).await;
    let dst = env.open("b");
    let victim = paths[1].clone();
    // The new version has the same size: only the bytes tell.
    let mut new = get(&src, &victim).await.to_vec();
    let mid = new.len() / 2;
    new[mid] ^= 0xff;
    let new = Bytes::from(new);

    let f = FaultStore::new(
        src.store.clone(),
        Schedule {
            matching: vec![victim.clone()],
            ..Schedule::default()
        },
    );
    let (inner, key, body, once) = (
        src.store.clone(),
        src.key(&victim),
        new.clone(),
        Arc::new(AtomicBool::new(false)),
    );
    f.set_before_get(Arc::new(move |_| {
        let (inner, key, body, once) = (inner.clone(), key.clone(), body.clone(), once.clone());
        Box::pin(async move {
            if !once.swap(true, Ordering::SeqCst) {
                inner.put(&key, PutPayload::from(body)).await.expect("rewrite");
            }
        })
    }));
    let rewriting = Dataset::from_store(f, src.root.clone(), src.url.clone(), src.backend);

    let out = crate::harness::sync_incomplete(&rewriting, &dst, &quick(2)).await;
    assert_eq!(
        out.report.shards_failed, 1,
        "{backend:?}: {:?}",
        out.report.findings
    );
    let finding = out
        .report
        .findings
        .iter()
        .find(|f| f.path == victim)
        .expect("named");
    assert!(
        finding.detail.contains("not landed"),
        "{backend:?}: {}",
        finding.detail
    );
    if backend == Backend::Local {
        // The read is pinned to the listed ETag, so the rewrite is named as such. (Memory
        // reads are not pinned, and s3s-fs lists no ETags: there the bytes' hash catches it.)
        assert!(
            finding.detail.contains("source object changed during the sync"),
            "{}",
            finding.detail
        );
    }
    let (store, _) = crate::backends::raw(&dst);
    assert!(
        matches!(
            store.head(&dst.key(&victim)).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "{backend:?}: nothing landed under the old plan"
    );
    let m = manifest::load(&dst).await.unwrap().unwrap().manifest;
    assert!(m.get(&victim).is_none(), "{backend:?}");

    let rerun = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert!(rerun.report.consistent, "{backend:?}: {:?}", rerun.report);
    assert_eq!(get(&dst, &victim).await, new, "{backend:?}: the new version");
    let m = manifest::load(&dst).await.unwrap().unwrap().manifest;
    assert_eq!(m.get(&victim).unwrap().sha256, shardsync::hash::sha256_hex(&new));
}

// ---------------------------------------------------------------------------------------------
// 5. Clear failures

/// The single `shardsync: error:` line of a failed run.
fn error_line(err: &str) -> &str {
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("shardsync: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line: {err}");
    lines[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_wrong_key_and_unreachable_endpoint_exit_2_with_a_one_line_cause() {
    let env = Env::new(Backend::S3).await;
    let local = env.tmp.path().join("local");
    shardsync::demo::write_dataset(&local, 1, 10, 1).unwrap();
    let local = local.display().to_string();

    let (code, _, err) = run(shardsync()
        .args(["sync", &local, "s3://no-such-bucket/ds"])
        .args(env.cli_options("--dst-opt")))
    .await;
    assert_eq!(code, 2, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("no-such-bucket") && line.contains("NoSuchBucket"),
        "{line}"
    );

    let (code, _, err) = run(shardsync()
        .args(["check", &local, &env.url("b")])
        .args(with_secret(&env.options(), "--dst-opt", "not-the-secret")))
    .await;
    assert_eq!(code, 2, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains("403") && line.contains("SignatureDoesNotMatch"),
        "{line}"
    );

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let opts: Vec<String> = env
        .options()
        .into_iter()
        .flat_map(|(k, v)| {
            let v = if k == "endpoint" {
                format!("http://{closed}")
            } else {
                v
            };
            ["--dst-opt".to_string(), format!("{k}={v}")]
        })
        .collect();
    let (code, _, err) = run(shardsync().args(["sync", &local, &env.url("b")]).args(&opts)).await;
    assert_eq!(code, 2, "{err}");
    let line = error_line(&err);
    assert!(
        line.contains(&closed.to_string()) && line.contains("Connection refused"),
        "{line}"
    );
    let (_, _, err) = run(shardsync()
        .args(["sync", &local, &env.url("b"), "-v"])
        .args(&opts))
    .await;
    assert!(
        err.contains("tcp connect error"),
        "--verbose gives the chain: {err}"
    );
}

/// A full disk, simulated without root: the file-size limit (`ulimit -f`) makes writes past it
/// fail with EFBIG, as ENOSPC would (SIGXFSZ ignored, so the write returns the error).
#[tokio::test]
async fn full_local_disk_exits_2_naming_the_shards_and_commits_none_of_them() {
    let env = Env::new(Backend::Local).await;
    let (_, paths) = source(&env, "a", 2).await;
    let dst = env.tmp.path().join("b");
    let script = format!(
        "trap '' XFSZ; ulimit -f 16 || exit 99; exec '{}' sync '{}' '{}'",
        env!("CARGO_BIN_EXE_shardsync"),
        env.url("a"),
        dst.display()
    );
    let (code, out, err) = run(tokio::process::Command::new("sh").args(["-c", &script])).await;
    if code == 99 {
        eprintln!("skipped: this shell cannot lower the file-size limit");
        return;
    }
    assert_eq!(code, 2, "{out}{err}");
    let line = error_line(&err);
    assert!(line.contains("2 shard(s) failed"), "{line}");
    for p in &paths {
        assert!(err.contains(p), "{p} named: {err}");
        assert!(!dst.join(p).exists(), "{p} not landed");
    }
    assert!(err.contains("File too large"), "the OS's cause: {err}");
    let m = manifest::load(&env.open("b")).await.unwrap().unwrap().manifest;
    assert_eq!(
        m.shards.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        vec!["dataset_info.json"],
        "only what fit is claimed"
    );
}
