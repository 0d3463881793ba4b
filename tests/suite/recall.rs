//! The destination manifest remembers the source stat each entry was copied from (issue 18.4):
//! a source whose own manifest was removed (a producer's `aws s3 sync --delete` deletes
//! `_shardsync/`) is recognised from its listing alone, not re-read whole.

use shardsync::demo::shard_bytes;
use shardsync::sync::{sync, SyncOptions};

use crate::backends::{delete, get, put, write_demo, Backend, Env};
use crate::harness::{try_get, InstrumentedStore};

backend_tests!(a_source_that_lost_its_manifest_is_read_only_where_it_changed: local, s3, moto);
/// After a sync, the source manifest is deleted and one shard rewritten: the next sync reads
/// only that shard's bytes from the source, lands it, and the destination is the source's.
async fn a_source_that_lost_its_manifest_is_read_only_where_it_changed(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let paths = write_demo(&src, 6, 200, 1).await;
    let opts = SyncOptions::default();
    sync(&src, &dst, &opts).await.expect("first sync");
    delete(&src, "_shardsync/manifest.json").await;
    let rewritten = &paths[2];
    let fresh = shard_bytes(2, 200, 77).expect("shard bytes");
    put(&src, rewritten, fresh.clone()).await;

    let (metered, meter) = InstrumentedStore::new(src.store.clone()).wrap(&src);
    let out = sync(&metered, &dst, &opts).await.expect("second sync");
    let what = format!("{backend:?}");
    assert!(out.report.consistent, "{what}: {:?}", out.report.findings);
    assert_eq!(out.report.shards_copied, 1, "{what}");
    let read: Vec<String> = meter.full_gets.lock().unwrap().clone();
    assert_eq!(
        read,
        vec![src.key(rewritten).to_string()],
        "{what}: source objects read whole"
    );
    assert!(meter.ranged_gets.lock().unwrap().is_empty(), "{what}");
    assert!(
        get(&dst, rewritten).await == fresh,
        "{what}: the rewrite did not land"
    );
    // Every source entry was known, so the source gets its manifest back.
    assert!(
        try_get(&src, "_shardsync/manifest.json").await.is_some(),
        "{what}: source manifest not written back"
    );
}
