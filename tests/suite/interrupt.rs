//! Ctrl-C and dropped futures (issue 12 items 5 and 7): an interrupted sync commits only what
//! it verified, aborts its multipart upload, releases its lease and exits 130; a dropped
//! `sync()` future releases its lease too.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;
use shardsync::sync::{sync, SyncOptions};
use shardsync::Dataset;

use crate::backends::{write_demo, Backend, Env};
use crate::common::s3;
use crate::faults::{FaultStore, PausingRelay, Schedule};
use crate::harness::{command, committed, noise, shardsync};

const MIB: usize = 1024 * 1024;

/// Wait (bounded) until `cond` holds; the bound only keeps a broken build from hanging.
async fn eventually<F: std::future::Future<Output = bool>>(mut cond: impl FnMut() -> F) -> bool {
    for _ in 0..400 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn sigint_mid_copy_aborts_the_upload_commits_only_verified_shards_and_exits_130() {
    let server = s3::start().await;
    server.create_bucket("data");
    // Hold the second part of the big shard's upload: the sync is then mid-multipart.
    let relay = PausingRelay::start(server.addr, "partNumber=2").await;
    let src = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(
            src.path().join(format!("a-small-{i}.bin")),
            noise(1000 + i, i as u64),
        )
        .unwrap();
    }
    let big = noise(30 * MIB, 9);
    std::fs::write(src.path().join("z-big.bin"), &big).unwrap();
    let dst_opts = |endpoint: String| -> Vec<String> {
        server
            .store_options()
            .into_iter()
            .flat_map(|(k, v)| {
                let v = if k == "endpoint" { endpoint.clone() } else { v };
                ["--dst-opt".to_string(), format!("{k}={v}")]
            })
            .collect()
    };
    let relayed = dst_opts(relay.endpoint());
    let mut args: Vec<String> = vec![
        "sync".into(),
        src.path().display().to_string(),
        "s3://data/dst".into(),
        "-j".into(),
        "1".into(),
        "--part-size".into(),
        "5MiB".into(),
        "--multipart-threshold".into(),
        "5MiB".into(),
    ];
    args.extend(relayed);
    let child = command(&args).spawn().expect("spawn shardsync");
    tokio::time::timeout(Duration::from_secs(60), relay.reached.notified())
        .await
        .expect("the sync reached the big shard's second part");
    let pid = child.id().expect("running") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the interrupted sync ends without the held part")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(130), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("interrupted: 3 shard(s) copied"), "{stderr}");
    assert!(stderr.contains("1 not copied"), "{stderr}");
    assert!(stdout.contains("INTERRUPTED"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // What is there: the three verified shards, committed; no big shard, no upload, no lease.
    let dst = Dataset::open(
        "s3://data/dst",
        &shardsync::OpenOptions {
            options: server.store_options(),
            create_local: false,
        },
    )
    .unwrap();
    let m = committed(&dst).await.expect("the verified shards are committed");
    let names: Vec<&str> = m.shards.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names, ["a-small-0.bin", "a-small-1.bin", "a-small-2.bin"]);
    assert!(
        dst.store.head(&dst.key("z-big.bin")).await.is_err(),
        "no big shard"
    );
    assert!(
        dst.store.head(&dst.key("_shardsync/lock.json")).await.is_err(),
        "the lease is released"
    );
    let uploads: Vec<String> = std::fs::read_dir(&server.root)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".upload-"))
        .collect();
    assert!(uploads.is_empty(), "multipart upload left behind: {uploads:?}");

    // Let the held request go; a plain re-run finishes the job.
    relay.release.notify_one();
    let mut again = vec![
        "sync".to_string(),
        src.path().display().to_string(),
        "s3://data/dst".into(),
    ];
    again.extend(dst_opts(server.endpoint.clone()));
    let run = shardsync(&again).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let m = committed(&dst).await.unwrap();
    assert_eq!(m.shards.len(), 4);
    assert_eq!(m.get("z-big.bin").unwrap().sha256, crate::harness::sha256(&big));
}

backend_tests!(dropping_a_sync_future_releases_its_lease);
async fn dropping_a_sync_future_releases_its_lease(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 3, 50, 4).await;
    let faults = FaultStore::new(
        src.store.clone(),
        Schedule {
            matching: vec![".parquet".into()],
            ..Schedule::default()
        },
    );
    let reached = Arc::new(tokio::sync::Notify::new());
    let r = reached.clone();
    faults.set_before_get(Arc::new(move |_| {
        let r = r.clone();
        Box::pin(async move {
            r.notify_one();
            futures::future::pending::<()>().await
        })
    }));
    let held = Dataset::from_store(faults, src.root.clone(), src.url.clone(), src.backend);
    let opts = SyncOptions::default();
    let mut fut = Box::pin(sync(&held, &dst, &opts));
    tokio::select! {
        r = &mut fut => panic!("{what}: the held sync ended: {:?}", r.err()),
        _ = reached.notified() => {}
    }
    let lock = dst.key("_shardsync/lock.json");
    assert!(
        dst.store.head(&lock).await.is_ok(),
        "{what}: the sync holds its lease"
    );
    drop(fut);
    let gone = eventually(|| {
        let (store, lock) = (dst.store.clone(), lock.clone());
        async move { store.head(&lock).await.is_err() }
    })
    .await;
    assert!(gone, "{what}: the dropped sync's lease is still there");
    // And nothing false is claimed: a sync from the real source finishes the job.
    sync(&src, &dst, &opts).await.unwrap().into_consistent().unwrap();
}

#[test]
fn options_that_would_hang_cannot_be_built() {
    let opts = SyncOptions::default().with_concurrency(0);
    assert_eq!(opts.concurrency.get(), 1);
}

#[tokio::test]
async fn into_consistent_refuses_extras_left_without_delete() {
    let env = Env::new(Backend::Memory).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 2, 20, 6).await;
    crate::backends::put(&dst, "stray.bin", &b"extra"[..]).await;
    let outcome = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    match outcome.into_consistent() {
        Err(e @ shardsync::Error::Drift { .. }) => {
            assert!(e.to_string().contains("drift remains"), "{e}");
            assert!(e.report().is_some_and(|r| !r.consistent));
        }
        other => panic!("extras left: {:?}", other.map(|o| o.report)),
    }
    let deleting = SyncOptions::default().with_delete(true);
    sync(&src, &dst, &deleting)
        .await
        .unwrap()
        .into_consistent()
        .unwrap();
}
