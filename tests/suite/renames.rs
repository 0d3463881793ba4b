//! Renames and moves by hash (issue 16): a shard the destination already holds under another
//! path is made by a copy inside the destination, proven against the source's SHA-256, and only
//! then (after the commit, with `delete`) is the old path removed. No shard byte crosses
//! between the stores for a pure rename; the bytes are counted on both sides.

use shardsync::demo::shard_name;
use shardsync::diff::State;
use shardsync::sync::{prepare, sync, SyncOptions, SyncOutcome};
use shardsync::{manifest, Dataset};

use crate::backends::{delete, get, put, write_demo, Backend, Env};
use crate::harness::{assert_identical, assert_manifest_holds, shardsync, InstrumentedStore, Meter};

async fn sync_ok(src: &Dataset, dst: &Dataset, opts: &SyncOptions) -> SyncOutcome {
    sync(src, dst, opts)
        .await
        .unwrap_or_else(|e| panic!("sync {} -> {}: {e}", src.url, dst.url))
}

/// Move `from` to `to` at the source, as a producer's re-organisation does.
async fn move_object(ds: &Dataset, from: &str, to: &str) {
    let bytes = get(ds, from).await;
    put(ds, to, bytes).await;
    delete(ds, from).await;
}

/// Shard writes (PUTs and multipart uploads) a meter saw, `_shardsync/` excluded.
fn shard_writes(meter: &Meter) -> Vec<String> {
    meter
        .events()
        .into_iter()
        .filter(|e| (e.starts_with("put ") || e.starts_with("multipart ")) && !e.contains("_shardsync/"))
        .collect()
}

/// Shard bytes read from a store (full GETs of objects outside `_shardsync/`).
fn shard_reads(meter: &Meter) -> Vec<String> {
    meter.full_gets.lock().unwrap().clone()
}

/// A dataset of eight demo shards, synced once; then three moved under `v2/` at the source and
/// a fourth duplicated under `dup/`.
async fn synced_then_reorganised(src: &Dataset, dst: &Dataset) -> Vec<String> {
    let names = write_demo(src, 8, 200, 31).await;
    sync_ok(src, dst, &SyncOptions::default()).await;
    for n in &names[..3] {
        move_object(src, n, &format!("v2/{n}")).await;
    }
    put(src, &format!("dup/{}", names[3]), get(src, &names[3]).await).await;
    names
}

backend_tests!(renamed_shards_are_copied_inside_the_destination_and_old_paths_deleted_after);
async fn renamed_shards_are_copied_inside_the_destination_and_old_paths_deleted_after(backend: Backend) {
    // Two stores: on s3, two servers (as two regions are); elsewhere two buckets or folders.
    let (senv, denv) = (Env::new(backend).await, Env::new(backend).await);
    let what = format!("{backend:?}");
    let (src, dst) = (senv.open("src"), denv.open("dst"));
    let names = synced_then_reorganised(&src, &dst).await;
    // The producer re-ran `manifest build`: every source hash is known from it.
    let m = manifest::build_manifest(&src, None, &Default::default())
        .await
        .unwrap()
        .manifest;
    manifest::save(&src, &m).await.unwrap();

    let plan = prepare(&src, &dst, &SyncOptions::default()).await.unwrap().plan;
    let counts = plan.counts();
    assert_eq!((counts.new, counts.extra), (4, 3), "{what}: {counts:?}");
    assert_eq!(
        (counts.renamed, counts.copied_in_place),
        (3, 1),
        "{what}: {counts:?}"
    );
    let moved = plan
        .items
        .iter()
        .find(|i| i.path == format!("v2/{}", names[0]))
        .unwrap();
    assert_eq!(
        moved.origin.as_ref().map(|o| o.path.as_str()),
        Some(names[0].as_str())
    );

    let (msrc, src_meter) = InstrumentedStore::new(src.store.clone()).wrap(&src);
    let (mdst, dst_meter) = InstrumentedStore::new(dst.store.clone()).wrap(&dst);
    let out = sync_ok(&msrc, &mdst, &SyncOptions::default().with_delete(true)).await;
    let r = &out.report;
    assert!(r.consistent, "{what}: {r:?}");
    assert_eq!(
        (r.shards_copied, r.shards_copied_in_place),
        (4, 4),
        "{what}: {r:?}"
    );
    assert_eq!(r.bytes_copied, 0, "{what}: bytes sent between the stores");
    assert_eq!(r.shards_deleted, 3, "{what}: the old paths");
    assert_eq!(
        shard_reads(&src_meter),
        Vec::<String>::new(),
        "{what}: source shard reads"
    );
    assert_eq!(
        shard_writes(&dst_meter),
        Vec::<String>::new(),
        "{what}: shard writes"
    );
    let copies = dst_meter
        .events()
        .into_iter()
        .filter(|e| e.starts_with("copy "))
        .count();
    assert_eq!(copies, 4, "{what}: {:?}", dst_meter.events());
    // Deletions come after the commit, and the copies before it.
    let events = dst_meter.events();
    let commit = events
        .iter()
        .rposition(|e| e.contains("_shardsync/manifest.json"))
        .unwrap();
    let first_delete = events
        .iter()
        .position(|e| e.starts_with("delete ") && !e.contains("_shardsync/"));
    assert!(first_delete.is_some_and(|d| d > commit), "{what}: {events:?}");
    assert_identical(&src, &dst, &what).await;
    let m = assert_manifest_holds(&dst, &what).await.unwrap();
    assert_eq!(m.digest, plan_digest(&src).await, "{what}");
}

async fn plan_digest(src: &Dataset) -> String {
    manifest::load(src).await.unwrap().unwrap().manifest.digest
}

backend_tests!(renamed_shards_without_a_fresh_source_manifest_are_read_once_and_not_sent: local, s3);
async fn renamed_shards_without_a_fresh_source_manifest_are_read_once_and_not_sent(backend: Backend) {
    let (senv, denv) = (Env::new(backend).await, Env::new(backend).await);
    let what = format!("{backend:?}");
    let (src, dst) = (senv.open("src"), denv.open("dst"));
    let names = synced_then_reorganised(&src, &dst).await;
    // The source manifest still names the old paths: the moved shards' hashes are unknown, so
    // they are hashed at the source (read once) to be recognised; none is written again.
    let (msrc, src_meter) = InstrumentedStore::new(src.store.clone()).wrap(&src);
    let (mdst, dst_meter) = InstrumentedStore::new(dst.store.clone()).wrap(&dst);
    let out = sync_ok(&msrc, &mdst, &SyncOptions::default()).await;
    assert_eq!(out.report.shards_copied_in_place, 4, "{what}: {:?}", out.report);
    assert_eq!(out.report.bytes_copied, 0, "{what}");
    assert_eq!(shard_writes(&dst_meter), Vec::<String>::new(), "{what}");
    let mut reads = shard_reads(&src_meter);
    reads.sort();
    let mut expected: Vec<String> = names[..3]
        .iter()
        .map(|n| src.key(&format!("v2/{n}")).to_string())
        .chain([src.key(&format!("dup/{}", names[3])).to_string()])
        .collect();
    expected.sort();
    assert_eq!(reads, expected, "{what}: each new path read once, to hash it");
    // Without `delete` the old paths stay, as extras.
    assert!(!out.report.consistent, "{what}");
    assert_eq!(out.plan.in_state(State::Extra).count(), 3, "{what}");
    for n in &names[..3] {
        assert_eq!(
            get(&dst, &format!("v2/{n}")).await,
            get(&src, &format!("v2/{n}")).await
        );
    }
}

backend_tests!(a_store_that_cannot_copy_gets_the_bytes_from_the_source: local, s3);
async fn a_store_that_cannot_copy_gets_the_bytes_from_the_source(backend: Backend) {
    let (senv, denv) = (Env::new(backend).await, Env::new(backend).await);
    let what = format!("{backend:?}");
    let (src, dst) = (senv.open("src"), denv.open("dst"));
    synced_then_reorganised(&src, &dst).await;
    let (mdst, dst_meter) = InstrumentedStore::new(dst.store.clone())
        .refuse_copies()
        .wrap(&dst);
    let out = sync_ok(&src, &mdst, &SyncOptions::default().with_delete(true)).await;
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_eq!(out.report.shards_copied_in_place, 0, "{what}");
    assert_eq!(
        shard_writes(&dst_meter).len(),
        4,
        "{what}: {:?}",
        dst_meter.events()
    );
    assert_identical(&src, &dst, &what).await;
}

backend_tests!(a_changed_origin_is_not_trusted_for_a_rename: local, s3);
async fn a_changed_origin_is_not_trusted_for_a_rename(backend: Backend) {
    let (senv, denv) = (Env::new(backend).await, Env::new(backend).await);
    let what = format!("{backend:?}");
    let (src, dst) = (senv.open("src"), denv.open("dst"));
    let names = synced_then_reorganised(&src, &dst).await;
    // Someone rewrote the old path at the destination behind the manifest's back: its bytes are
    // no longer the ones the manifest proves, so it is no origin.
    let mut other = get(&dst, &names[0]).await.to_vec();
    other[10] ^= 0xff;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    put(&dst, &names[0], other).await;
    let out = sync_ok(&src, &dst, &SyncOptions::default().with_delete(true)).await;
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_eq!(out.report.shards_copied_in_place, 3, "{what}: {:?}", out.report);
    assert_identical(&src, &dst, &what).await;
}

#[tokio::test]
async fn diff_and_dry_run_show_the_renames_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, d) = (tmp.path().join("src"), tmp.path().join("dst"));
    let (src, dst) = (open_local(&s), open_local(&d));
    let names = synced_then_reorganised(&src, &dst).await;
    let (s, d) = (s.display().to_string(), d.display().to_string());
    let run = shardsync(["manifest", "build", &s]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = shardsync(["diff", &s, &d]).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stdout.contains("3 renamed or moved and 1 duplicated"),
        "{}",
        run.stdout
    );
    let line = format!("v2/{}  (copy of {})", names[1], names[1]);
    assert!(run.stdout.contains(&line), "{}", run.stdout);
    let run = shardsync(["diff", &s, &d, "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["counts"]["renamed"], 3, "{v}");
    let run = shardsync(["sync", &s, &d, "--delete"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("4 shard(s) copied inside the destination"),
        "{}",
        run.stdout
    );
    assert_eq!(shard_name(0), names[0]);
}

fn open_local(p: &std::path::Path) -> Dataset {
    Dataset::open(
        &p.display().to_string(),
        &shardsync::OpenOptions {
            options: vec![],
            create_local: true,
        },
    )
    .unwrap()
}
