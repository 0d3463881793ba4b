//! Never destroy data, never claim what is not there (issue 11), on every backend: a mistyped
//! (empty) source, `--delete` beyond its limit, overlapping datasets, and syncs racing on a
//! store that accepts conditional writes and ignores them (as Garage 2.5 does).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use shardsync::commit::CommitProtection;
use shardsync::safety::DeleteLimit;
use shardsync::store::Backend as StoreBackend;
use shardsync::sync::{sync, SyncOptions};
use shardsync::{Dataset, Error};

use crate::backends::{put, snapshot, write_demo, Backend, Env};
use crate::harness::{all_keys, committed, noise, sha256, shardsync, try_get};

backend_tests!(a_mistyped_source_is_an_error_before_anything_is_written_anywhere);
async fn a_mistyped_source_is_an_error_before_anything_is_written_anywhere(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("real"), env.open("mirror"));
    write_demo(&src, 4, 50, 1).await;
    sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    let before = (snapshot(&dst).await, committed(&dst).await);

    // An existing but empty prefix/folder: on local folders `env.open` creates it.
    let typo = env.open("reall");
    for opts in [
        SyncOptions::default().with_delete(true),
        SyncOptions::default().with_delete(true).with_dry_run(true),
        SyncOptions::default(),
    ] {
        match sync(&typo, &dst, &opts).await {
            Err(e @ Error::EmptySource { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("holds no objects") && msg.contains("wrong prefix"),
                    "{what}: {msg}"
                );
                assert!(msg.contains(&typo.url), "{what}: names the source: {msg}");
            }
            other => panic!("{what}: sync from an empty source: {other:?}"),
        }
    }
    let check = shardsync::check::check(&typo, &dst, &Default::default()).await;
    assert!(
        matches!(check, Err(Error::EmptySource { .. })),
        "{what}: check: {check:?}"
    );
    let plan = shardsync::sync::prepare(&typo, &dst, &SyncOptions::default()).await;
    assert!(matches!(plan, Err(Error::EmptySource { .. })), "{what}: diff");
    assert!(
        (snapshot(&dst).await, committed(&dst).await) == before,
        "{what}: the destination changed"
    );
    assert_eq!(
        all_keys(&typo).await,
        Vec::<String>::new(),
        "{what}: wrote into the typo"
    );

    // Allowed explicitly, and with the delete limit lifted, it empties the destination —
    // and still creates no `_shardsync/` under the empty source.
    let opts = SyncOptions::default()
        .with_delete(true)
        .with_allow_empty_source(true)
        .with_max_delete(Some(DeleteLimit::Percent(100.0)));
    let out = sync(&typo, &dst, &opts).await.unwrap();
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_eq!(snapshot(&dst).await.len(), 0, "{what}: destination not emptied");
    assert_eq!(
        all_keys(&typo).await,
        Vec::<String>::new(),
        "{what}: wrote into the empty source"
    );
}

backend_tests!(delete_beyond_half_the_destination_stops_before_writing_unless_allowed);
async fn delete_beyond_half_the_destination_stops_before_writing_unless_allowed(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 9, 20, 1).await; // 10 objects with dataset_info.json
    sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    // The source loses 6 of its 10 objects: a --delete would remove 6 of 10 at the
    // destination. A new shard also appears, so the refusal must come before any copy.
    for p in shardsync_paths(&src).await.into_iter().take(6) {
        crate::backends::delete(&src, &p).await;
    }
    put(&src, "train/new.bin", noise(1000, 7)).await;
    let before = (snapshot(&dst).await, committed(&dst).await);

    for (limit, dry) in [(None, false), (None, true), (Some(DeleteLimit::Count(5)), false)] {
        let opts = SyncOptions::default()
            .with_delete(true)
            .with_dry_run(dry)
            .with_max_delete(limit);
        match sync(&src, &dst, &opts).await {
            Err(
                e @ Error::TooManyDeletes {
                    count: 6, total: 10, ..
                },
            ) => {
                assert!(e.to_string().contains("nothing was written"), "{what}: {e}");
            }
            other => panic!("{what}: limit {limit:?} dry {dry}: {other:?}"),
        }
        assert!(
            (snapshot(&dst).await, committed(&dst).await) == before,
            "{what}: refused sync changed the destination"
        );
    }
    // Without --delete nothing is deleted, so there is nothing to refuse.
    sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    for limit in [DeleteLimit::Count(6), DeleteLimit::Percent(60.0)] {
        let opts = SyncOptions::default()
            .with_delete(true)
            .with_max_delete(Some(limit));
        let out = sync(&src, &dst, &opts).await.unwrap();
        assert!(out.report.consistent, "{what}: {limit:?}");
    }
    let names: Vec<String> = snapshot(&dst).await.into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        names,
        shardsync_paths(&src).await,
        "{what}: destination mirrors the source"
    );
}

async fn shardsync_paths(ds: &Dataset) -> Vec<String> {
    crate::harness::paths(ds).await
}

backend_tests!(overlapping_source_and_destination_are_refused_on_every_backend);
async fn overlapping_source_and_destination_are_refused_on_every_backend(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let outer = env.open("o");
    write_demo(&env.open("o/inner"), 3, 20, 1).await;
    put(&outer, "top.json", &b"{}"[..]).await;
    let before = all_keys(&outer).await;
    for (s, d) in [
        ("o/inner", "o"),
        ("o", "o/inner"),
        ("o", "o"),
        ("o/inner", "o/inner"),
    ] {
        let (src, dst) = (env.open(s), env.open(d));
        let opts = SyncOptions::default().with_delete(true);
        match sync(&src, &dst, &opts).await {
            Err(e @ Error::Overlap { .. }) => {
                assert!(e.to_string().contains("overlap"), "{what}: {e}");
            }
            other => panic!("{what}: {s} -> {d}: {other:?}"),
        }
    }
    assert_eq!(
        all_keys(&outer).await,
        before,
        "{what}: an overlapping sync wrote"
    );
    // Siblings whose names share a prefix do not overlap.
    let out = sync(
        &env.open("o/inner"),
        &env.open("o/inner2"),
        &SyncOptions::default(),
    )
    .await;
    assert!(out.is_ok(), "{what}: o/inner -> o/inner2: {out:?}");
}

#[tokio::test]
async fn the_same_folder_spelt_two_ways_is_refused() {
    let env = Env::new(Backend::Local).await;
    let src = env.open("ds");
    write_demo(&src, 2, 20, 1).await;
    let link = env.tmp.path().join("alias");
    std::os::unix::fs::symlink(env.tmp.path().join("ds"), &link).unwrap();
    let spellings = [
        link.display().to_string(),
        format!("{}/x/../ds", env.tmp.path().display()),
        format!("file://{}", env.tmp.path().join("ds").display()),
    ];
    for dst_url in spellings {
        let dst = Dataset::open(
            &dst_url,
            &shardsync::OpenOptions {
                options: vec![],
                create_local: true,
            },
        )
        .unwrap();
        let r = sync(&src, &dst, &SyncOptions::default().with_delete(true)).await;
        assert!(matches!(r, Err(Error::Overlap { .. })), "{dst_url}: {r:?}");
    }
}

/// A store that accepts `If-None-Match` / `If-Match` and ignores them, as Garage 2.5 does; and
/// an interloper that writes other bytes to `victim` just before the first manifest write.
#[derive(Debug)]
struct IgnoresConditions {
    inner: Arc<dyn ObjectStore>,
    interloper: Option<(Path, Bytes, AtomicBool)>,
}

impl std::fmt::Display for IgnoresConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresConditions({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for IgnoresConditions {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if location.as_ref().ends_with("_shardsync/manifest.json") {
            if let Some((victim, bytes, done)) = &self.interloper {
                if !done.swap(true, Ordering::SeqCst) {
                    self.inner.put(victim, PutPayload::from(bytes.clone())).await?;
                }
            }
        }
        opts.mode = PutMode::Overwrite;
        jitter().await;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        jitter().await;
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Up to a millisecond of delay, so two syncs on one task interleave at every request (an
/// in-memory store answers without ever yielding otherwise).
async fn jitter() {
    let us = rand::random::<u64>() % 1000;
    tokio::time::sleep(std::time::Duration::from_micros(us)).await;
}

/// `ds` behind [`IgnoresConditions`], reported as S3 so its protection is probed, not assumed.
fn lax(ds: &Dataset, interloper: Option<(&str, Vec<u8>)>) -> Dataset {
    let interloper = interloper.map(|(p, b)| (ds.key(p), Bytes::from(b), AtomicBool::new(false)));
    let store = Arc::new(IgnoresConditions {
        inner: ds.store.clone(),
        interloper,
    });
    Dataset::from_store(store, ds.root.clone(), ds.url.clone(), StoreBackend::S3)
}

/// Every entry of the committed manifest is present with those bytes.
async fn manifest_is_true(ds: &Dataset) -> bool {
    let Some(m) = committed(ds).await else {
        return true;
    };
    for e in &m.shards {
        match try_get(ds, &e.path).await {
            Some(b) if sha256(&b) == e.sha256 => {}
            _ => return false,
        }
    }
    true
}

backend_tests!(a_write_between_the_last_check_and_the_commit_fails_the_sync_and_is_not_claimed: memory, s3);
async fn a_write_between_the_last_check_and_the_commit_fails_the_sync_and_is_not_claimed(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, raw_dst) = (env.open("src"), env.open("dst"));
    let shards = write_demo(&src, 4, 50, 1).await;
    let other = noise(5000, 9);
    let dst = lax(&raw_dst, Some((&shards[2], other.clone())));
    let r = sync(&src, &dst, &SyncOptions::default()).await;
    match &r {
        Err(e @ Error::ChangedUnderCommit { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("destination changed during sync"),
                "{what}: {msg}"
            );
            assert!(msg.contains(&shards[2]), "{what}: names the shard: {msg}");
        }
        other => panic!("{what}: {other:?}"),
    }
    assert!(
        manifest_is_true(&raw_dst).await,
        "{what}: the manifest claims bytes that are not there"
    );
    let m = committed(&raw_dst).await.expect("repaired manifest");
    assert!(
        m.get(&shards[2]).is_none(),
        "{what}: the replaced shard is still claimed"
    );
    assert_eq!(m.shards.len(), 4, "{what}: the other entries stay");
    // The other writer's object is left alone; the next sync puts the source's back.
    assert_eq!(
        try_get(&raw_dst, &shards[2]).await.as_deref(),
        Some(&other[..]),
        "{what}"
    );
    let out = sync(&src, &lax(&raw_dst, None), &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(
        out.report.commit_protection,
        Some(CommitProtection::NotEnforced),
        "{what}"
    );
    assert!(
        out.report.warnings.iter().any(|w| w.contains("does not enforce")),
        "{what}: the weaker guarantee is stated: {:?}",
        out.report.warnings
    );
    assert!(
        out.report.consistent && manifest_is_true(&raw_dst).await,
        "{what}"
    );
}

#[tokio::test]
async fn racing_syncs_on_a_store_that_ignores_conditions_never_succeed_with_a_false_manifest() {
    // Two sources with the same paths and different bytes, synced into one destination at once,
    // many times with varied timing. Whatever interleaving happens, a sync that returns Ok must
    // leave a manifest that holds; the committed manifest must hold unless the sync that wrote
    // it failed (and said so).
    let env = Env::new(Backend::Memory).await;
    let (a, b) = (env.open("a"), env.open("b"));
    write_demo(&a, 6, 40, 1).await;
    write_demo(&b, 6, 40, 2).await;
    let mut false_claims_with_ok = 0;
    let mut failures = 0;
    for trial in 0..30u64 {
        let raw_dst = env.open(&format!("dst{trial}"));
        if trial % 2 == 1 {
            sync(&a, &raw_dst, &SyncOptions::default()).await.unwrap(); // incremental races too
        }
        let dst = lax(&raw_dst, None);
        let opts = SyncOptions::default().with_concurrency(1 + (trial % 4) as usize);
        let delay = std::time::Duration::from_micros(trial * 137 % 3000);
        let (ra, rb) = tokio::join!(sync(&a, &dst, &opts), async {
            tokio::time::sleep(delay).await;
            sync(&b, &dst, &opts).await
        });
        let final_digest = committed(&raw_dst).await.map(|m| m.digest);
        let holds = manifest_is_true(&raw_dst).await;
        for r in [&ra, &rb] {
            match r {
                Ok(o) if !holds && o.report.dst_digest == final_digest => false_claims_with_ok += 1,
                Ok(_) => {}
                Err(_) => failures += 1,
            }
        }
        if !holds {
            let winner_ok = [&ra, &rb]
                .iter()
                .any(|r| r.as_ref().is_ok_and(|o| o.report.dst_digest == final_digest));
            assert!(
                !winner_ok,
                "trial {trial}: a sync succeeded with a false manifest"
            );
        }
    }
    assert_eq!(false_claims_with_ok, 0);
    // Not a timing assertion: with no lease enforcement, some of 30 races must collide.
    assert!(
        failures > 0,
        "no trial raced; the test does not exercise the interleavings"
    );
}

/// Run the binary; returns (exit code, stdout, stderr).
async fn run(args: &[String]) -> (Option<i32>, String, String) {
    let r = shardsync(args).await;
    (r.code, r.stdout, r.stderr)
}

backend_tests!(binary_refuses_an_empty_source_mass_deletion_and_overlap_with_exit_2_and_the_flag_to_use: local, s3);
async fn binary_refuses_an_empty_source_mass_deletion_and_overlap_with_exit_2_and_the_flag_to_use(
    backend: Backend,
) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 3, 20, 1).await;
    if backend == Backend::Local {
        std::fs::create_dir(env.tmp.path().join("typo")).unwrap(); // exists, and is empty
    }
    let args = |s: &str, d: &str, extra: &[&str]| -> Vec<String> {
        let mut a = vec!["sync".to_string(), env.url(s), env.url(d)];
        a.extend(env.cli_options("--src-opt"));
        a.extend(env.cli_options("--dst-opt"));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (code, _, err) = run(&args("src", "dst", &[])).await;
    assert_eq!(code, Some(0), "{what}: {err}");
    let before = snapshot(&dst).await;

    let (code, _, err) = run(&args("typo", "dst", &["--delete"])).await;
    assert_eq!(code, Some(2), "{what}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
    assert!(
        err.contains("holds no objects") && err.contains("--allow-empty-source"),
        "{what}: {err}"
    );
    for cmd in ["check", "diff"] {
        let mut a = args("typo", "dst", &[]);
        a[0] = cmd.into();
        let (code, _, err) = run(&a).await;
        assert_eq!(code, Some(2), "{what}: {cmd}: {err}");
        assert!(err.contains("holds no objects"), "{what}: {cmd}: {err}");
    }

    put(&dst, "stale/a.bin", noise(10, 1)).await;
    put(&dst, "stale/b.bin", noise(10, 2)).await;
    put(&dst, "stale/c.bin", noise(10, 3)).await;
    put(&dst, "stale/d.bin", noise(10, 4)).await;
    put(&dst, "stale/e.bin", noise(10, 5)).await;
    let with_extras = snapshot(&dst).await;
    let (code, _, err) = run(&args("src", "dst", &["--delete"])).await;
    assert_eq!(code, Some(2), "{what}: {err}");
    assert!(
        err.contains("refusing to delete 5 of the 9 objects") && err.contains("--max-delete"),
        "{what}: {err}"
    );
    assert!(snapshot(&dst).await == with_extras, "{what}: refused sync wrote");
    let (code, _, err) = run(&args("src", "dst", &["--delete", "--max-delete", "5"])).await;
    assert_eq!(code, Some(0), "{what}: {err}");
    assert!(snapshot(&dst).await == before, "{what}: extras not deleted");
    let (code, _, err) = run(&args("src", "dst", &["--delete", "--max-delete", "lots"])).await;
    assert_eq!(code, Some(2), "{what}: {err}");

    let (code, _, err) = run(&args("dst", "dst/nested", &[])).await;
    assert_eq!(code, Some(2), "{what}: {err}");
    assert!(err.contains("overlap"), "{what}: {err}");
    assert!(snapshot(&dst).await == before, "{what}: overlapping sync wrote");
}

backend_tests!(sync_exit_code_its_report_and_a_check_right_after_always_agree: local, s3);
async fn sync_exit_code_its_report_and_a_check_right_after_always_agree(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let src = env.open("src");
    write_demo(&src, 3, 20, 1).await;
    let dst = env.open("dst");
    put(&dst, "leftover/old.bin", noise(100, 3)).await; // an extra a glob would read
    let report_file = env.tmp.path().join("report.json");
    let cmd = |name: &str, extra: &[&str]| -> Vec<String> {
        let mut a = vec![name.to_string(), env.url("src"), env.url("dst")];
        a.extend(env.cli_options("--src-opt"));
        a.extend(env.cli_options("--dst-opt"));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let verdict = || -> bool {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
        r["consistent"].as_bool().unwrap()
    };
    let rf = report_file.display().to_string();
    let (code, _, err) = run(&cmd("sync", &["--report", &rf])).await;
    assert_eq!(
        code,
        Some(1),
        "{what}: extras remain, so the sync reports drift: {err}"
    );
    assert!(
        err.contains("drift remains") && err.contains("--delete"),
        "{what}: {err}"
    );
    assert!(!verdict(), "{what}: report verdict");
    let (code, out, _) = run(&cmd("check", &[])).await;
    assert_eq!(code, Some(1), "{what}: check right after: {out}");

    let (code, _, err) = run(&cmd("sync", &["--delete", "--report", &rf])).await;
    assert_eq!(code, Some(0), "{what}: {err}");
    assert!(verdict(), "{what}: report verdict after --delete");
    let (code, out, _) = run(&cmd("check", &["--format", "json"])).await;
    assert_eq!(code, Some(0), "{what}: check right after: {out}");
    let check: serde_json::Value = serde_json::from_str(&out).unwrap();
    let synced: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    let m = committed(&dst).await.unwrap();
    for r in [&check, &synced] {
        assert_eq!(r["dst_digest"].as_str(), Some(m.digest.as_str()), "{what}: {r}");
        assert_eq!(r["src_digest"], r["dst_digest"], "{what}");
    }
}
