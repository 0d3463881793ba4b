//! The main loop on every backend: build, sync, change, re-sync, check.

use shardsync::diff::State;
use shardsync::manifest::{self, BuildOptions};
use shardsync::sync::{sync, SyncOptions};

use crate::backends::{snapshot, write_demo, Backend, Env};

#[tokio::test]
async fn sync_then_incremental_resync_copies_only_rewritten_shards() {
    for backend in Backend::all() {
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
}
