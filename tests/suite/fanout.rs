//! Fan-out (issue 16): `sync SRC DST1 DST2` reads each source byte once and writes every
//! destination; each destination has its own lease, commit and verdict, and one that fails
//! fails alone. The source's bytes are counted.

use std::sync::atomic::Ordering;

use shardsync::sync::{sync_to_many, SyncOptions};
use shardsync::{manifest, Dataset};

use crate::backends::{put, snapshot, write_demo, Backend, Env};
use crate::harness::{assert_identical, noise, shardsync, InstrumentedStore, MIB};

/// Six demo shards and one shard big enough for a multipart upload (and striped reads), with
/// the source manifest built as a producer would. Returns the dataset's bytes.
async fn source_dataset(src: &Dataset) -> u64 {
    write_demo(src, 6, 300, 7).await;
    put(src, "big/shard.bin", noise(20 * MIB, 3)).await;
    let m = manifest::build_manifest(src, None, &Default::default())
        .await
        .unwrap()
        .manifest;
    manifest::save(src, &m).await.unwrap();
    m.shards.iter().map(|e| e.size).sum()
}

backend_tests!(fan_out_reads_each_source_byte_once_and_every_destination_commits: local, s3, moto);
async fn fan_out_reads_each_source_byte_once_and_every_destination_commits(backend: Backend) {
    // On s3: three servers, one per region.
    let (se, ae, be) = (
        Env::new(backend).await,
        Env::new(backend).await,
        Env::new(backend).await,
    );
    let what = format!("{backend:?}");
    let src = se.open("src");
    let dataset_bytes = source_dataset(&src).await;
    let (a, b) = (ae.open("a"), be.open("b"));
    put(&b, "stray.txt", "left from before").await;

    let (metered, meter) = InstrumentedStore::new(src.store.clone()).wrap(&src);
    let opts = SyncOptions::default()
        .with_delete(true)
        .with_max_delete(Some(shardsync::safety::DeleteLimit::Count(1)));
    let results = sync_to_many(&metered, &[a.clone(), b.clone()], &opts)
        .await
        .unwrap();
    for (r, d) in results.iter().zip(["a", "b"]) {
        let out = r
            .as_ref()
            .unwrap_or_else(|e| panic!("{what}: destination {d}: {e}"));
        assert!(out.report.consistent, "{what} {d}: {:?}", out.report);
        assert_eq!(out.report.bytes_copied, dataset_bytes, "{what} {d}");
    }
    assert_eq!(results[1].as_ref().unwrap().report.shards_deleted, 1, "{what}");
    let shard_bytes_read = meter.shard_bytes_read.load(Ordering::SeqCst);
    assert_eq!(
        shard_bytes_read, dataset_bytes,
        "{what}: source bytes read for two destinations"
    );
    assert_identical(&src, &a, &what).await;
    assert_identical(&src, &b, &what).await;

    // Again: nothing to copy anywhere, and nothing read.
    let (metered, meter) = InstrumentedStore::new(src.store.clone()).wrap(&src);
    let again = sync_to_many(&metered, &[a.clone(), b.clone()], &opts)
        .await
        .unwrap();
    for r in &again {
        assert_eq!(r.as_ref().unwrap().report.shards_copied, 0, "{what}");
    }
    assert!(meter.full_gets.lock().unwrap().is_empty(), "{what}");
}

backend_tests!(a_destination_that_fails_fails_alone: local, s3);
async fn a_destination_that_fails_fails_alone(backend: Backend) {
    let (se, ae, be) = (
        Env::new(backend).await,
        Env::new(backend).await,
        Env::new(backend).await,
    );
    let what = format!("{backend:?}");
    let src = se.open("src");
    source_dataset(&src).await;
    let (a, b) = (ae.open("a"), be.open("b"));
    let (refusing, _) = InstrumentedStore::new(b.store.clone()).read_only().wrap(&b);
    let results = sync_to_many(&src, &[refusing, a.clone()], &SyncOptions::default())
        .await
        .unwrap();
    assert!(
        results[0].is_err(),
        "{what}: a read-only destination cannot succeed"
    );
    let out = results[1].as_ref().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_identical(&src, &a, &what).await;
    assert!(
        snapshot(&b).await.is_empty(),
        "{what}: nothing landed on the refusing one"
    );
}

#[tokio::test]
async fn destinations_that_overlap_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let open = |p: &str| {
        Dataset::open(
            &tmp.path().join(p).display().to_string(),
            &shardsync::OpenOptions {
                options: vec![],
                create_local: true,
            },
        )
        .unwrap()
    };
    let src = open("src");
    source_dataset(&src).await;
    let (a, inner) = (open("a"), open("a/inner"));
    let r = sync_to_many(&src, &[a.clone(), inner], &SyncOptions::default()).await;
    assert!(r.is_err(), "overlapping destinations");
    assert!(snapshot(&a).await.is_empty());
}

#[tokio::test]
async fn the_command_line_fans_out_with_a_section_per_destination_and_the_worst_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).display().to_string();
    let (src, a, b) = (p("src"), p("a"), p("b"));
    let src_ds = Dataset::open(
        &src,
        &shardsync::OpenOptions {
            options: vec![],
            create_local: true,
        },
    )
    .unwrap();
    write_demo(&src_ds, 4, 200, 9).await;
    let run = shardsync(["sync", &src, &a, &b]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("destination file://{a}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("destination file://{b}")),
        "{}",
        run.stdout
    );
    // A stray file at one destination: that one is not consistent (exit 1), the other is.
    std::fs::write(tmp.path().join("b/stray.txt"), "x").unwrap();
    let run = shardsync(["sync", &src, &a, &b, "--json"]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let d = v["destinations"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0]["consistent"].as_bool(), d[1]["consistent"].as_bool()),
        (Some(true), Some(false))
    );
    let run = shardsync(["watch", &src, &a, &b]).await;
    assert_eq!(
        run.code,
        Some(2),
        "watch refuses more than one destination: {}",
        run.stderr
    );
}
