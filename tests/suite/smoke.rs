//! The main loop on every backend: build, sync, change, re-sync, check.

use shardsync::diff::State;
use shardsync::manifest::{self, BuildOptions};
use shardsync::sync::{sync, SyncOptions};

use crate::backends::{snapshot, write_demo, Backend, Env};

backend_tests!(sync_then_incremental_resync_copies_only_rewritten_shards);
async fn sync_then_incremental_resync_copies_only_rewritten_shards(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("a"), env.open("b"));
    write_demo(&src, 6, 300, 1).await;
    let built = manifest::build_manifest(&src, None, &BuildOptions::default())
        .await
        .unwrap();
    manifest::save(&src, &built.manifest).await.unwrap();
    assert_eq!(built.manifest.totals.files, 7, "{backend:?}");
    assert_eq!(built.manifest.totals.rows, 6 * 300, "{backend:?}");

    let first = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert_eq!(first.report.shards_copied, 7, "{backend:?}");
    assert!(first.report.consistent, "{backend:?}: {:?}", first.report);
    assert_eq!(snapshot(&src).await, snapshot(&dst).await, "{backend:?}");
    assert_committed_manifest_is_trusted_by_the_listing(&src, &dst, backend).await;

    // A new version of two shards.
    for i in [1usize, 4] {
        let bytes = shardsync::demo::shard_bytes(i, 300, 99).unwrap();
        crate::backends::put(&src, &shardsync::demo::shard_name(i), bytes).await;
    }
    let second = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    let changed: Vec<_> = second
        .plan
        .in_state(State::Changed)
        .map(|i| i.path.clone())
        .collect();
    assert_eq!(
        changed,
        vec!["train/part-00001.parquet", "train/part-00004.parquet"],
        "{backend:?}"
    );
    assert_eq!(second.report.shards_copied, 2, "{backend:?}");
    assert!(second.report.consistent, "{backend:?}");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await, "{backend:?}");

    let noop = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert_eq!(noop.report.shards_copied, 0, "{backend:?}");
    assert!(
        !noop.report.committed,
        "{backend:?}: a no-op sync must not rewrite the manifest"
    );
}

/// The committed destination manifest's cache keys must match the destination's own listing,
/// or every later sync pays a HEAD (or a re-hash) per object to prove what it already knows.
async fn assert_committed_manifest_is_trusted_by_the_listing(
    src: &shardsync::Dataset,
    dst: &shardsync::Dataset,
    backend: Backend,
) {
    let src_m = manifest::load(src).await.unwrap().unwrap().manifest;
    let dst_m = manifest::load(dst).await.unwrap().unwrap().manifest;
    let sources: Vec<_> = shardsync::listing::list_dataset(src)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|stat| shardsync::diff::SourceObject {
            entry: src_m.get(&stat.path).cloned(),
            stat,
        })
        .collect();
    let listing = shardsync::listing::list_dataset(dst).await.unwrap().objects;
    let plan = shardsync::diff::diff(sources, Some(&dst_m), listing);
    let untrusted: Vec<_> = plan
        .items
        .iter()
        .filter(|i| i.state != State::Same)
        .map(|i| &i.path)
        .collect();
    assert!(
        untrusted.is_empty(),
        "{backend:?}: not trusted without a proof: {untrusted:?}"
    );
}
