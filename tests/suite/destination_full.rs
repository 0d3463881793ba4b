//! A destination that refuses every write (disk full, quota) stops the copies at once and says
//! so once, instead of failing every remaining shard one by one (issue 12 item 6).

use std::sync::Arc;

use shardsync::manifest::{self, BuildOptions};
use shardsync::sync::SyncOptions;
use shardsync::Dataset;

use crate::backends::{snapshot, write_demo, Backend, Env};
use crate::faults::{FaultStore, Schedule};
use crate::harness::{assert_manifest_holds, sync_incomplete, sync_outcome};

const SHARDS: usize = 16;
const AT_ONCE: usize = 2;

fn filling_up(ds: &Dataset, writes: usize) -> (Dataset, Arc<FaultStore>) {
    let schedule = Schedule {
        matching: vec!["train/".into()],
        full_after_writes: Some(writes),
        ..Schedule::default()
    };
    let f = FaultStore::new(ds.store.clone(), schedule);
    let d = Dataset::from_store(f.clone(), ds.root.clone(), ds.url.clone(), ds.backend);
    (d, f)
}

backend_tests!(a_full_destination_stops_new_copies_and_says_why_once);
async fn a_full_destination_stops_new_copies_and_says_why_once(backend: Backend) {
    let env = Env::new(backend).await;
    let src = env.open("a");
    write_demo(&src, SHARDS, 50, 3).await;
    let built = manifest::build_manifest(&src, None, &BuildOptions::default())
        .await
        .unwrap();
    manifest::save(&src, &built.manifest).await.unwrap();
    let dst = env.open("b");
    let (full, faults) = filling_up(&dst, 3);
    let opts = SyncOptions::default().with_concurrency(AT_ONCE);

    let outcome = sync_incomplete(&src, &full, &opts).await;
    let r = &outcome.report;
    // Without the stop, each of the 13 remaining shards would be tried and fail.
    assert!(faults.injected() > 0, "{backend:?}: the store never filled up");
    assert!(
        faults.injected() <= AT_ONCE,
        "{backend:?}: {} writes tried after the destination was full",
        faults.injected()
    );
    assert!(
        r.shards_failed >= 1 && r.shards_failed <= AT_ONCE as u64,
        "{backend:?}: {r:?}"
    );
    assert!(r.shards_not_started > 0, "{backend:?}: {r:?}");
    assert!(!r.interrupted, "{backend:?}: not the user's Ctrl-C: {r:?}");
    let said: Vec<&String> = r
        .warnings
        .iter()
        .filter(|w| w.contains("refused writes"))
        .collect();
    assert_eq!(said.len(), 1, "{backend:?}: {:?}", r.warnings);
    assert!(said[0].contains("No space left"), "{}", said[0]);
    assert!(!r.consistent);
    assert_manifest_holds(&dst, &format!("{backend:?}: after the disk filled")).await;

    // Space freed: the same sync finishes what was not done.
    let done = sync_outcome(&src, &dst, &SyncOptions::default()).await;
    assert!(done.report.consistent, "{backend:?}: {:?}", done.report);
    assert_eq!(snapshot(&src).await, snapshot(&dst).await, "{backend:?}");
}
