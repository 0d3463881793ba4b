//! The sync engine (issue 3) on every backend: the plan, incremental and full copies,
//! concurrency, multipart shards, bytes that must not land, `--delete` ordering, concurrent
//! writers, the source manifest write-back, and the copy engine's memory bound.

use std::collections::BTreeMap;
use std::time::Duration;

use shardsync::commit::CommitProtection;
use shardsync::demo::{shard_bytes, shard_name};
use shardsync::diff::State;
use shardsync::manifest::{self, build_manifest, BuildOptions};
use shardsync::report::FindingKind;
use shardsync::sync::{prepare, sync, SyncOptions, SyncOutcome};
use shardsync::verify::VerifyMode;
use shardsync::{Dataset, Error, Manifest};

use crate::backends::{delete, get, put, snapshot, write_demo, Backend, Env, BUCKET};
use crate::harness::{
    assert_identical, assert_manifest_holds, blob_parquet, committed, noise, paths, sha256, try_get,
    InstrumentedStore, Meter, MIB,
};

/// Build and save the source manifest, as `manifest build` would.
async fn build_and_save(ds: &Dataset) -> Manifest {
    let m = build_manifest(ds, None, &BuildOptions::default())
        .await
        .unwrap()
        .manifest;
    manifest::save(ds, &m).await.unwrap();
    m
}

/// An incomplete sync's outcome as `Ok`; any other error stays.
fn partial(e: Error) -> Result<SyncOutcome, Error> {
    match e {
        Error::Incomplete { .. } => e.into_outcome(),
        e => Err(e),
    }
}

async fn sync_ok(src: &Dataset, dst: &Dataset, opts: &SyncOptions) -> SyncOutcome {
    sync(src, dst, opts)
        .await
        .unwrap_or_else(|e| panic!("sync {} -> {}: {e}", src.url, dst.url))
}

/// A manifest with the same entries but a different SHA-256 claimed for `path`: its stat still
/// matches the object, so the sync trusts the claim and must catch the lie while copying.
fn claiming_wrong_hash(m: &Manifest, lie_about: &[&str]) -> Manifest {
    let mut shards = m.shards.clone();
    for e in shards.iter_mut().filter(|e| lie_about.contains(&e.path.as_str())) {
        e.sha256 = sha256(format!("not the bytes of {}", e.path).as_bytes());
    }
    let forged = Manifest::new(m.dataset.clone(), shards).unwrap();
    assert_eq!(forged.digest, manifest::digest_of(&forged.shards));
    forged
}

fn states(outcome_plan: &shardsync::diff::Plan) -> BTreeMap<String, State> {
    outcome_plan
        .items
        .iter()
        .map(|i| (i.path.clone(), i.state))
        .collect()
}

backend_tests!(plan_names_every_state_and_sync_copies_only_new_changed_and_missing);
async fn plan_names_every_state_and_sync_copies_only_new_changed_and_missing(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let what = format!("{backend:?}");
    write_demo(&src, 6, 300, 1).await;
    sync_ok(&src, &dst, &SyncOptions::default()).await;

    // changed at the source; new at the source; deleted out of band at the destination
    // (missing); an object only the destination has (extra); and a same-size rewrite out of
    // band at the destination, which only its hash can reveal.
    put(&src, &shard_name(1), shard_bytes(1, 300, 99).unwrap()).await;
    put(&src, &shard_name(6), shard_bytes(6, 300, 1).unwrap()).await;
    delete(&dst, &shard_name(2)).await;
    put(&dst, "old/extra.parquet", shard_bytes(7, 50, 1).unwrap()).await;
    let mut rewritten = get(&dst, &shard_name(3)).await.to_vec();
    let mid = rewritten.len() / 2;
    rewritten[mid] ^= 0xff;
    put(&dst, &shard_name(3), rewritten).await;

    let expected: BTreeMap<String, State> = [
        ("dataset_info.json".to_string(), State::Same),
        (shard_name(0), State::Same),
        (shard_name(1), State::Changed),
        (shard_name(2), State::Missing),
        (shard_name(3), State::Changed),
        (shard_name(4), State::Same),
        (shard_name(5), State::Same),
        (shard_name(6), State::New),
        ("old/extra.parquet".to_string(), State::Extra),
    ]
    .into_iter()
    .collect();
    let prepared = prepare(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert_eq!(states(&prepared.plan), expected, "{what}");

    // A dry run plans the same and touches nothing.
    let before = snapshot(&dst).await;
    let manifest_before = committed(&dst).await;
    let dry = sync_ok(&src, &dst, &SyncOptions::default().with_dry_run(true)).await;
    assert_eq!(states(&dry.plan), expected, "{what}: dry run");
    assert!(
        dry.committed.is_none() && !dry.report.committed,
        "{what}: dry run committed"
    );
    assert_eq!(dry.report.shards_copied, 0, "{what}");
    assert!(
        snapshot(&dst).await == before,
        "{what}: dry run changed the destination"
    );
    assert_eq!(
        committed(&dst).await,
        manifest_before,
        "{what}: dry run changed the manifest"
    );

    let out = sync_ok(&src, &dst, &SyncOptions::default()).await;
    assert_eq!(states(&out.plan), expected, "{what}");
    let plan = out.report.plan.as_ref().expect("plan counts");
    assert_eq!(
        (plan.new, plan.changed, plan.missing, plan.extra, plan.same),
        (1, 2, 1, 1, 4),
        "{what}"
    );
    assert_eq!(out.report.shards_copied, 4, "{what}");
    assert_eq!(out.report.shards_failed, 0, "{what}");
    assert_eq!(out.report.inconsistency_before, Some(5.0 / 9.0), "{what}");
    // Without --delete the extra object stays, so the sides are not yet identical.
    assert!(
        !out.report.consistent,
        "{what}: consistent with an extra object left"
    );
    assert!(
        out.report
            .findings
            .iter()
            .any(|f| f.path == "old/extra.parquet" && f.kind == FindingKind::Extra),
        "{what}: {:?}",
        out.report.findings
    );
    for p in [1, 2, 3, 6].map(shard_name) {
        assert_eq!(get(&dst, &p).await, get(&src, &p).await, "{what}: {p}");
    }
    let m = assert_manifest_holds(&dst, &what).await.expect("manifest");
    assert!(
        m.get("old/extra.parquet").is_none(),
        "{what}: the manifest names the extra object"
    );
    assert_eq!(m.shards.len(), 8, "{what}");

    // --delete removes it; then nothing is left to do.
    let out = sync_ok(&src, &dst, &SyncOptions::default().with_delete(true)).await;
    assert_eq!(
        (out.report.shards_copied, out.report.shards_deleted),
        (0, 1),
        "{what}"
    );
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_identical(&src, &dst, &what).await;
    let again = prepare(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert!(again.plan.is_clean(), "{what}: {:?}", states(&again.plan));
}

backend_tests!(full_sync_copies_every_shard_even_when_the_destination_already_has_it);
async fn full_sync_copies_every_shard_even_when_the_destination_already_has_it(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let what = format!("{backend:?}");
    write_demo(&src, 4, 200, 3).await;
    sync_ok(&src, &dst, &SyncOptions::default()).await;
    let noop = sync_ok(&src, &dst, &SyncOptions::default()).await;
    assert_eq!(noop.report.shards_copied, 0, "{what}");

    let full = sync_ok(&src, &dst, &SyncOptions::default().with_full(true)).await;
    assert_eq!(full.report.mode, "full", "{what}");
    assert_eq!(full.report.shards_copied, 5, "{what}: 4 shards and the sidecar");
    assert_eq!(full.report.bytes_copied, full.report.bytes_total, "{what}");
    assert_eq!(full.report.shards_skipped, 0, "{what}");
    assert!(full.report.consistent, "{what}: {:?}", full.report);
    assert_identical(&src, &dst, &what).await;
}

backend_tests!(one_transfer_at_a_time_and_eight_at_once_leave_the_same_destination);
async fn one_transfer_at_a_time_and_eight_at_once_leave_the_same_destination(backend: Backend) {
    let env = Env::new(backend).await;
    let src = env.open("src");
    let what = format!("{backend:?}");
    write_demo(&src, 8, 100, 4).await;
    build_and_save(&src).await;
    let mut digests = Vec::new();
    for j in [1, 8] {
        let dst = env.open(&format!("dst-j{j}"));
        let out = sync_ok(&src, &dst, &SyncOptions::default().with_concurrency(j)).await;
        assert_eq!(out.report.shards_copied, 9, "{what} -j {j}");
        assert!(out.report.consistent, "{what} -j {j}");
        assert_identical(&src, &dst, &format!("{what} -j {j}")).await;
        let m = committed(&dst).await.unwrap();
        let content: Vec<_> = m
            .shards
            .iter()
            .map(|e| {
                (
                    e.path.clone(),
                    e.size,
                    e.sha256.clone(),
                    e.rows,
                    e.row_groups,
                    e.schema.clone(),
                )
            })
            .collect();
        digests.push((m.digest, content));
    }
    assert_eq!(
        digests[0], digests[1],
        "{what}: -j 1 and -j 8 committed different manifests"
    );
}

backend_tests!(shard_under_the_multipart_threshold_goes_in_one_put);
/// A shard bigger than one part but under the multipart threshold goes in one PUT: one request
/// instead of three or more, and no server-side assembly of parts. Above the threshold (the
/// default's 8 MiB, or one lowered to the part size), or with a memory budget below the shard's
/// size, the same shard goes multipart.
async fn shard_under_the_multipart_threshold_goes_in_one_put(backend: Backend) {
    let big = noise(12 * MIB, 21);
    let env = Env::new(backend).await;
    let src = env.open("src");
    put(&src, "blobs/big.bin", big.clone()).await;
    // (destination, threshold, memory budget, multipart expected): a budget smaller than
    // the shard also forces multipart, since a one-PUT shard is held whole.
    for (dst_name, threshold, budget, multipart) in [
        ("dst-high", Some(16 * MIB), None, false),
        // The default threshold (8 MiB, as the AWS CLI's) sends a 12 MiB shard in parts.
        ("dst-default", None, None, true),
        ("dst-low", Some(5 * MIB), None, true),
        ("dst-small-budget", Some(16 * MIB), Some(11 * MIB), true),
    ] {
        let dst = env.open(dst_name);
        let mut opts = SyncOptions::default().with_part_size(5 * MIB);
        if let Some(t) = threshold {
            opts = opts.with_multipart_threshold(t);
        }
        if let Some(b) = budget {
            opts.transfer.memory = shardsync::transfer::MemoryBudget::new(b);
        }
        let (metered, meter) = InstrumentedStore::new(dst.store.clone()).wrap(&dst);
        let out = sync_ok(&src, &metered, &opts).await;
        let what = format!("{backend:?} {dst_name}");
        assert_eq!(out.report.shards_copied, 1, "{what}");
        assert!(get(&dst, "blobs/big.bin").await == big, "{what}: bytes differ");
        let key = dst.key("blobs/big.bin").to_string();
        let events = meter.events();
        assert_eq!(
            events.contains(&format!("multipart {key}")),
            multipart,
            "{what}: {events:?}"
        );
        assert_eq!(
            events.contains(&format!("put {key}")),
            !multipart,
            "{what}: {events:?}"
        );
    }
}

/// What s3s-fs recorded of every object it stored (one side file per object: the checksums
/// it verified, the ETag).
fn verified_checksums(env: &Env) -> Vec<String> {
    let root = &env.server.as_ref().expect("an s3s-fs server").root;
    std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let side = p.file_name()?.to_str()?.ends_with(".internal.json");
            side.then(|| std::fs::read_to_string(&p).ok()).flatten()
        })
        .collect()
}

/// The request checksum README suggests for trusted links (`checksum_algorithm=crc64nvme`,
/// `unsigned_payload=true` on the destination) works end to end, one-PUT and multipart, and is
/// the one the server checked: s3s-fs keeps the checksums it verified in a side file per object.
#[tokio::test]
async fn crc64nvme_request_checksum_option_works_end_to_end_on_s3() {
    let env = Env::new(Backend::S3).await;
    // The source is a local folder, so every checksum the server recorded is the destination's.
    let src_dir = tempfile::tempdir().unwrap();
    let src = Dataset::open(&src_dir.path().display().to_string(), &Default::default()).unwrap();
    write_demo(&src, 3, 100, 41).await;
    put(&src, "blobs/big.bin", noise(12 * MIB, 42)).await;
    let mut options = env.options();
    options.push(("checksum_algorithm".into(), "crc64nvme".into()));
    options.push(("unsigned_payload".into(), "true".into()));
    let dst = Dataset::open(
        &env.url("dst"),
        &shardsync::OpenOptions {
            options,
            create_local: false,
        },
    )
    .unwrap();
    let opts = SyncOptions::default()
        .with_part_size(5 * MIB)
        .with_multipart_threshold(5 * MIB);
    let out = sync_ok(&src, &dst, &opts).await;
    assert!(out.report.consistent, "{:?}", out.report);
    assert_eq!(out.report.shards_copied, 5);
    assert_identical(&src, &dst, "crc64nvme").await;

    let sides = verified_checksums(&env);
    let crc = sides.iter().filter(|s| s.contains("checksum_crc64nvme")).count();
    assert!(crc >= 4, "{crc} objects with a verified CRC64NVME: {sides:?}");
    assert!(
        !sides.iter().any(|s| s.contains("checksum_sha256")),
        "a SHA-256 checksum was sent anyway: {sides:?}"
    );
}

backend_tests!(shard_puts_carry_crc64nvme_where_the_server_checks_it: s3, moto);
/// One SHA-256 pass per byte by default (issue 18.3): where the server refuses a wrong
/// CRC64NVME (s3s-fs), shard PUTs carry CRC64NVME over an unsigned payload instead of a second
/// SHA-256, and the report says which checksum the server checked. Where it checks none (moto),
/// the report names none and every copy is read back.
async fn shard_puts_carry_crc64nvme_where_the_server_checks_it(backend: Backend) {
    let env = Env::new(backend).await;
    let src_dir = tempfile::tempdir().unwrap();
    let src = Dataset::open(&src_dir.path().display().to_string(), &Default::default()).unwrap();
    write_demo(&src, 3, 100, 43).await;
    put(&src, "blobs/big.bin", noise(12 * MIB, 44)).await;
    let dst = env.open("dst");
    let out = sync_ok(&src, &dst, &SyncOptions::default()).await;
    let what = format!("{backend:?}");
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_identical(&src, &dst, &what).await;
    let r = &out.report;
    if backend == Backend::Moto {
        assert_eq!(r.request_checksum, None, "{what}");
        assert_eq!(r.proofs.rehash, 5, "{what}: {:?}", r.proofs);
        return;
    }
    assert_eq!(r.request_checksum.as_deref(), Some("crc64nvme"), "{what}");
    assert_eq!(r.proofs.rehash, 0, "{what}: {:?}", r.proofs);
    let sides = verified_checksums(&env);
    // The four one-PUT objects; s3s-fs records no checksum for a completed multipart one.
    let crc = sides.iter().filter(|s| s.contains("checksum_crc64nvme")).count();
    assert!(crc >= 4, "{crc} objects with a verified CRC64NVME: {sides:?}");
}

backend_tests!(shard_above_the_multipart_threshold_arrives_byte_identical);
async fn shard_above_the_multipart_threshold_arrives_byte_identical(backend: Backend) {
    let big = blob_parquet(12 * MIB, 64, 8);
    let big_sha = sha256(&big);
    let env = Env::new(backend).await;
    let src = env.open("src");
    let what = format!("{backend:?}");
    put(&src, "train/big.parquet", big.clone()).await;
    put(&src, "train/small.parquet", shard_bytes(0, 100, 1).unwrap()).await;
    let opts = SyncOptions::default()
        .with_part_size(5 * MIB)
        .with_multipart_threshold(5 * MIB);

    // First without a source manifest (hashed while it flows), then with one (the hash is
    // known before the copy and stored in the destination's metadata).
    for (n, dst_name) in ["dst-unplanned", "dst-planned"].into_iter().enumerate() {
        let dst = env.open(dst_name);
        let (metered, meter) = InstrumentedStore::new(dst.store.clone()).wrap(&dst);
        let out = sync_ok(&src, &metered, &opts).await;
        let what = format!("{what} {dst_name}");
        assert_eq!(out.report.shards_copied, 2, "{what}");
        assert!(out.report.consistent, "{what}: {:?}", out.report);
        assert!(
            get(&dst, "train/big.parquet").await == big,
            "{what}: bytes differ"
        );
        let e = committed(&dst).await.unwrap();
        let e = e.get("train/big.parquet").unwrap();
        assert_eq!(
            (e.size, e.sha256.as_str()),
            (big.len() as u64, big_sha.as_str()),
            "{what}"
        );
        assert_eq!((e.rows, e.row_groups), (Some(192), Some(3)), "{what}");
        // It went as a multipart upload (3 parts of 5 MiB at most), the small one as a PUT.
        let events = meter.events();
        let big_key = dst.key("train/big.parquet").to_string();
        assert!(
            events.contains(&format!("multipart {big_key}")),
            "{what}: {events:?}"
        );
        assert!(
            events.contains(&format!("complete {big_key}")),
            "{what}: {events:?}"
        );
        assert!(
            events.contains(&format!("put {}", dst.key("train/small.parquet"))),
            "{what}: {events:?}"
        );
        if n == 0 {
            assert!(
                committed(&src).await.is_some(),
                "{what}: source manifest written back"
            );
        }
    }
}

backend_tests!(bytes_that_do_not_hash_to_the_manifest_never_land);
async fn bytes_that_do_not_hash_to_the_manifest_never_land(backend: Backend) {
    let big = blob_parquet(11 * MIB, 64, 9);
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let what = format!("{backend:?}");
    write_demo(&src, 4, 100, 5).await;
    put(&src, "train/big.parquet", big.clone()).await;
    let honest = build_and_save(&src).await;
    let liars = [shard_name(1), "train/big.parquet".to_string()];
    let liars: Vec<&str> = liars.iter().map(String::as_str).collect();
    manifest::save(&src, &claiming_wrong_hash(&honest, &liars))
        .await
        .unwrap();
    // The destination already holds shard 1's previous version: it must survive untouched.
    let v0 = shard_bytes(1, 120, 77).unwrap();
    put(&dst, &shard_name(1), v0.clone()).await;
    put(&dst, "old/extra.bin", &b"extra"[..]).await;

    let (metered, meter) = InstrumentedStore::new(dst.store.clone()).wrap(&dst);
    let opts = SyncOptions::default()
        .with_part_size(5 * MIB)
        .with_multipart_threshold(5 * MIB)
        .with_delete(true);
    let out = crate::harness::sync_incomplete(&src, &metered, &opts).await;
    let r = &out.report;
    assert_eq!(r.shards_failed, 2, "{what}: {r:?}");
    assert!(out.failed(), "{what}: the binary exits 2 on this");
    assert!(!r.consistent, "{what}");
    for liar in &liars {
        let f = r
            .findings
            .iter()
            .find(|f| f.path == *liar)
            .unwrap_or_else(|| panic!("{what}: no finding for {liar}: {:?}", r.findings));
        assert_eq!(f.kind, FindingKind::Corrupt, "{what}: {f:?}");
        assert!(f.detail.contains("SHA-256 mismatch"), "{what}: {f:?}");
    }
    // Not landed: the small one was never PUT, the big one's upload was aborted.
    let events = meter.events();
    let (small_key, big_key) = (
        dst.key(&shard_name(1)).to_string(),
        dst.key("train/big.parquet").to_string(),
    );
    assert!(
        !events.contains(&format!("put {small_key}")),
        "{what}: {events:?}"
    );
    assert!(events.contains(&format!("abort {big_key}")), "{what}: {events:?}");
    assert!(
        !events.contains(&format!("complete {big_key}")),
        "{what}: {events:?}"
    );
    assert!(
        try_get(&dst, "train/big.parquet").await.is_none(),
        "{what}: big landed"
    );
    assert_eq!(
        try_get(&dst, &shard_name(1)).await.as_deref(),
        Some(&v0[..]),
        "{what}"
    );
    // The committed manifest names neither; everything else landed and is named.
    let m = assert_manifest_holds(&dst, &what).await.expect("manifest");
    for liar in &liars {
        assert!(m.get(liar).is_none(), "{what}: the manifest names {liar}");
    }
    assert_eq!(m.shards.len(), 4, "{what}: {:?}", m.shards);
    // With a failed shard, --delete keeps its hands off the extras.
    assert_eq!(r.shards_deleted, 0, "{what}");
    assert!(
        try_get(&dst, "old/extra.bin").await.is_some(),
        "{what}: extra deleted"
    );
    if backend == Backend::Local {
        // No temporary files of the aborted upload are left in the destination folder.
        let mut stray = Vec::new();
        let mut dirs = vec![env.tmp.path().join("dst")];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.to_string_lossy().contains('#') {
                    stray.push(p);
                }
            }
        }
        assert!(stray.is_empty(), "{what}: {stray:?}");
    }
}

backend_tests!(delete_removes_extras_only_after_the_manifest_is_committed);
async fn delete_removes_extras_only_after_the_manifest_is_committed(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let what = format!("{backend:?}");
    write_demo(&src, 5, 100, 6).await;
    sync_ok(&src, &dst, &SyncOptions::default()).await;
    // The source drops a shard the destination manifest names; junk appears at the destination.
    delete(&src, &shard_name(4)).await;
    put(&dst, "tmp/junk.bin", &b"junk"[..]).await;
    put(&src, &shard_name(0), shard_bytes(0, 100, 60).unwrap()).await;

    let (metered, meter) = InstrumentedStore::new(dst.store.clone()).wrap(&dst);
    let out = sync_ok(&src, &metered, &SyncOptions::default().with_delete(true)).await;
    assert_eq!(out.report.shards_deleted, 2, "{what}");
    assert_eq!(out.report.shards_copied, 1, "{what}");
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    let events = meter.events();
    let manifest_key = dst.manifest_key().to_string();
    let last_commit = events
        .iter()
        .rposition(|e| *e == format!("put {manifest_key}"))
        .unwrap_or_else(|| panic!("{what}: no commit: {events:?}"));
    // Deletes of dataset objects (the commit-protection probe under _shardsync/ is not one).
    let deletes: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.starts_with("delete ") && !e.contains("/_shardsync/"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(deletes.len(), 2, "{what}: {events:?}");
    assert!(
        deletes.iter().all(|&i| i > last_commit),
        "{what}: a delete before the commit: {events:?}"
    );
    assert!(
        !events.iter().any(|e| *e == format!("delete {manifest_key}")),
        "{what}: {events:?}"
    );
    assert_identical(&src, &dst, &what).await;
    let m = committed(&dst).await.unwrap();
    assert!(
        m.get(&shard_name(4)).is_none() && m.get("tmp/junk.bin").is_none(),
        "{what}"
    );
}

backend_tests!(two_syncs_into_one_destination_at_once_commit_one_and_refuse_the_other);
async fn two_syncs_into_one_destination_at_once_commit_one_and_refuse_the_other(backend: Backend) {
    let env = Env::new(backend).await;
    let (a, b, base) = (env.open("a"), env.open("b"), env.open("base"));
    // Two versions of the same dataset: same paths, different bytes.
    write_demo(&a, 4, 100, 11).await;
    write_demo(&b, 4, 100, 22).await;
    write_demo(&base, 4, 100, 33).await;
    for (n, fresh) in [(0, true), (1, false)] {
        let plain = env.open(&format!("dst{n}"));
        // Both syncs read the destination before either may commit: a real overlap on
        // every backend, whatever order the scheduler and the server run them in.
        let (dst, _) = InstrumentedStore::new(plain.store.clone())
            .latency(Duration::from_millis(1))
            .gate_manifest_writes(2)
            .wrap(&plain);
        let what = format!(
            "{backend:?}, {} destination",
            if fresh { "fresh" } else { "committed" }
        );
        if !fresh {
            sync_ok(&base, &plain, &SyncOptions::default()).await;
        }
        let opts = SyncOptions::default().with_concurrency(2);
        let (ra, rb) = tokio::join!(sync(&a, &dst, &opts), sync(&b, &dst, &opts));
        // A winner whose shard the loser overwrote commits the rest and says so.
        let (ra, rb) = (ra.or_else(partial), rb.or_else(partial));
        let conflict = |r: &Result<SyncOutcome, Error>| {
            matches!(
                r,
                Err(Error::ManifestConflict { .. } | Error::DestinationLocked { .. })
            )
        };
        let (winner_src, winner) = match (&ra, &rb) {
            (Ok(o), r) if conflict(r) => (&a, o),
            (r, Ok(o)) if conflict(r) => (&b, o),
            (Ok(oa), Ok(ob)) => {
                // Both committed: only acceptable where the condition is emulated.
                assert_eq!(backend, Backend::Local, "{what}: both syncs committed");
                assert_eq!(oa.report.commit_protection, Some(CommitProtection::Emulated));
                (&b, ob)
            }
            _ => panic!(
                "{what}: unexpected outcomes: {:?} / {:?}",
                ra.as_ref().err(),
                rb.as_ref().err()
            ),
        };
        let loser_err = [&ra, &rb].into_iter().find_map(|r| r.as_ref().err());
        if let Some(e) = loser_err {
            assert!(
                e.to_string().contains("destination changed during sync"),
                "{what}: {e}"
            );
        }
        let expected = match backend {
            Backend::Local => CommitProtection::Emulated,
            _ => CommitProtection::Enforced,
        };
        assert_eq!(winner.report.commit_protection, Some(expected), "{what}");

        // The committed manifest is the winner's, and claims only bytes of the winner's
        // source. The loser's shard writes may still have landed over the winner's (the
        // condition guards the manifest, not each shard): the winner then reports that
        // shard as failed, or its manifest entry's stat no longer matches the store, so it
        // is never trusted as is — and the next sync of the winner's source repairs it.
        // A loser that fails after writing re-checks the winner's manifest and drops the
        // entries its own late writes replaced: what stays is the winner's, minus those.
        let m = committed(&dst).await.expect("manifest");
        let won = winner.committed.as_ref().expect("the winner committed");
        for e in &m.shards {
            assert_eq!(
                won.get(&e.path),
                Some(e),
                "{what}: {} is not the winner's entry",
                e.path
            );
        }
        for e in won.shards.iter().filter(|e| m.get(&e.path).is_none()) {
            assert_ne!(
                sha256(&get(&dst, &e.path).await),
                e.sha256,
                "{what}: {} was dropped although it holds the winner's bytes",
                e.path
            );
        }
        for e in &m.shards {
            assert_eq!(
                e.sha256,
                sha256(&get(winner_src, &e.path).await),
                "{what}: {}",
                e.path
            );
        }
        assert_manifest_honest(&plain, &what).await;
        let again = sync_ok(winner_src, &dst, &SyncOptions::default()).await;
        assert!(again.report.consistent, "{what}: {:?}", again.report);
        assert_identical(winner_src, &dst, &what).await;
    }
}

/// Every entry of the committed manifest either still describes the object (same size, mtime
/// and ETag, and then the bytes must hash to it) or visibly does not (absent, or another stat),
/// so `verify` and the next sync re-prove it: the manifest never vouches for bytes it did not see.
async fn assert_manifest_honest(ds: &Dataset, what: &str) {
    let m = committed(ds).await.expect("manifest");
    let listing = shardsync::listing::list_dataset(ds).await.unwrap().objects;
    for e in &m.shards {
        let Some(stat) = listing.iter().find(|s| s.path == e.path) else {
            continue;
        };
        if shardsync::manifest::build::entry_matches_stat(e, stat) {
            let bytes = try_get(ds, &e.path).await.expect("listed object");
            assert_eq!(
                sha256(&bytes),
                e.sha256,
                "{what}: {} has the stat the manifest records but other bytes",
                e.path
            );
        }
    }
}

backend_tests!(a_rewrite_landing_after_a_shard_was_verified_is_not_vouched_for_by_the_commit);
async fn a_rewrite_landing_after_a_shard_was_verified_is_not_vouched_for_by_the_commit(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, plain) = (env.open("src"), env.open("dst"));
    let what = format!("{backend:?}");
    write_demo(&src, 3, 100, 17).await;
    let victim = shard_name(1);
    let mut other = get(&src, &victim).await.to_vec();
    other.reverse(); // same size, other bytes
                     // Listings of s3s-fs carry no ETag and HEAD answers whole seconds: a rewrite within the
                     // second of the verification is indistinguishable there, so it lands a second later.
    let delay = Duration::from_millis(if backend == Backend::S3 { 1100 } else { 0 });
    let (dst, _) = InstrumentedStore::new(plain.store.clone())
        .rewrite_after_verify(plain.key(&victim), other.clone(), delay)
        .wrap(&plain);
    crate::harness::sync_outcome(&src, &dst, &SyncOptions::default()).await;
    assert_eq!(
        get(&plain, &victim).await,
        other,
        "{what}: the rewrite did not happen"
    );

    // Whatever the commit says about the shard, it does not vouch for the new bytes ...
    assert_manifest_honest(&plain, &what).await;
    // ... so the next sync sees the rewrite and repairs it.
    let again = sync_ok(&src, &plain, &SyncOptions::default()).await;
    assert_eq!(again.report.shards_copied, 1, "{what}: {:?}", again.report);
    assert_identical(&src, &plain, &what).await;
}

backend_tests!(size_mode_proves_copies_by_the_listing_where_it_shows_etags);
/// In size mode a copy is proven by the one listing that follows the copies when it shows the
/// PUT's ETag (memory, local folders), and by a HEAD per shard where listings carry no ETag
/// (s3s-fs).
async fn size_mode_proves_copies_by_the_listing_where_it_shows_etags(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 3, 100, 5).await;
    let out = sync_ok(&src, &dst, &SyncOptions::default()).await;
    let (p, copied) = (&out.report.proofs, out.report.shards_copied);
    let what = format!("{backend:?}: {p:?}");
    assert_eq!(copied, 4, "{what}");
    match backend {
        Backend::S3 => assert_eq!(p.size_and_metadata, copied, "{what}"),
        // moto accepts a PUT whose SHA-256 checksum is wrong, so its ETag proves nothing
        // about the bytes: the probe finds that out and every copy is read back instead.
        Backend::Moto => {
            assert_eq!(p.rehash, copied, "{what}");
            assert!(
                out.report
                    .warnings
                    .iter()
                    .any(|w| w.contains("request checksum did not match")),
                "{what}: {:?}",
                out.report.warnings
            );
        }
        _ => assert_eq!(p.size_and_etag, copied, "{what}"),
    }
    if backend != Backend::Moto {
        assert!(
            !out.report.warnings.iter().any(|w| w.contains("request checksum")),
            "{what}: a validating store was reported as not validating: {:?}",
            out.report.warnings
        );
    }
    // The recorded cache keys are the listing's: a second sync copies and proves nothing.
    let again = sync_ok(&src, &dst, &SyncOptions::default()).await;
    assert_eq!(again.report.shards_copied, 0, "{what}");
    assert_eq!(again.report.plan.as_ref().unwrap().same, 4, "{what}");
}

backend_tests!(a_rewrite_landing_between_put_and_verification_is_refused);
/// Another writer replacing a shard between our PUT and its verification, with its own hash in
/// the metadata: whatever the backend, the shard is not claimed, the other writer's bytes are
/// left alone (not deleted as a failed copy of ours), and the sync fails naming the shard.
async fn a_rewrite_landing_between_put_and_verification_is_refused(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, plain) = (env.open("src"), env.open("dst"));
    let what = format!("{backend:?}");
    write_demo(&src, 3, 100, 18).await;
    let victim = shard_name(2);
    let mut other = get(&src, &victim).await.to_vec();
    other.reverse(); // same size, other bytes
    let (dst, _) = InstrumentedStore::new(plain.store.clone())
        .rewrite_after_put(plain.key(&victim), other.clone())
        .wrap(&plain);
    let out = crate::harness::sync_incomplete(&src, &dst, &SyncOptions::default()).await;
    assert!(out.failed(), "{what}: {:?}", out.report);
    assert_eq!(out.report.shards_failed, 1, "{what}");
    let finding = out.report.findings.iter().find(|f| f.path == victim);
    assert!(
        finding.is_some_and(|f| f.detail.contains("replaced by another writer")),
        "{what}: {:?}",
        out.report.findings
    );
    assert_eq!(
        get(&plain, &victim).await,
        other,
        "{what}: the other writer's bytes were touched"
    );
    let m = committed(&plain).await.expect("the other shards are committed");
    assert!(m.get(&victim).is_none(), "{what}: the replaced shard is claimed");
    assert_manifest_honest(&plain, &what).await;
}

backend_tests!(a_stale_source_shard_is_read_once_and_written_only_if_it_differs);
/// Source shards rewritten behind the source manifest's back, keeping their size, are read
/// once: the copy hashes them and writes only those whose bytes differ from the destination's.
async fn a_stale_source_shard_is_read_once_and_written_only_if_it_differs(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (plain_src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&plain_src, 3, 100, 31).await;
    let built = build_manifest(&plain_src, None, &BuildOptions::default())
        .await
        .unwrap();
    manifest::save(&plain_src, &built.manifest).await.unwrap();
    sync_ok(&plain_src, &dst, &SyncOptions::default()).await;

    // One shard re-written with its own bytes (new mtime/ETag), one with a flipped byte.
    let (touched, rewritten) = (shard_name(0), shard_name(1));
    // moto's ETag is the bytes' MD5 and its mtime has whole seconds: only a later second
    // makes a same-bytes rewrite look stale, as it must for this test.
    let pause = if backend == Backend::Moto { 1100 } else { 20 };
    tokio::time::sleep(Duration::from_millis(pause)).await;
    let same = get(&plain_src, &touched).await;
    put(&plain_src, &touched, same).await;
    let mut other = get(&plain_src, &rewritten).await.to_vec();
    let mid = other.len() / 2;
    other[mid] ^= 0xff;
    put(&plain_src, &rewritten, other.clone()).await;

    let (src, src_meter) = InstrumentedStore::new(plain_src.store.clone()).wrap(&plain_src);
    let (metered_dst, dst_meter) = InstrumentedStore::new(dst.store.clone()).wrap(&dst);
    let out = sync_ok(&src, &metered_dst, &SyncOptions::default()).await;
    let reads = src_meter.full_gets.lock().unwrap().clone();
    for p in [&touched, &rewritten] {
        let key = plain_src.key(p).to_string();
        let n = reads.iter().filter(|r| **r == key).count();
        assert_eq!(n, 1, "{what}: {p} read {n} times: {reads:?}");
    }
    let events = dst_meter.events();
    assert!(
        !events.contains(&format!("put {}", dst.key(&touched))),
        "{what}: rewrote a shard the destination holds: {events:?}"
    );
    assert!(
        events.contains(&format!("put {}", dst.key(&rewritten))),
        "{what}: {events:?}"
    );
    assert_eq!(out.report.shards_copied, 1, "{what}: {:?}", out.report);
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_identical(&plain_src, &dst, &what).await;
    assert_manifest_honest(&dst, &what).await;
    // Both manifests now know the new stats: the next sync reads no shard.
    let (src, src_meter) = InstrumentedStore::new(plain_src.store.clone()).wrap(&plain_src);
    let again = sync_ok(&src, &dst, &SyncOptions::default()).await;
    assert_eq!(again.report.shards_copied, 0, "{what}");
    assert!(src_meter.full_gets.lock().unwrap().is_empty(), "{what}");
}

backend_tests!(source_without_a_manifest_gets_one_written_back_unless_told_not_to);
async fn source_without_a_manifest_gets_one_written_back_unless_told_not_to(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let src = env.open("src");
    write_demo(&src, 4, 100, 12).await;
    assert!(committed(&src).await.is_none());

    let off = SyncOptions {
        write_source_manifest: false,
        ..SyncOptions::default()
    };
    let out = sync_ok(&src, &env.open("dst-no-write"), &off).await;
    assert!(out.report.consistent, "{what}");
    assert!(
        committed(&src).await.is_none(),
        "{what}: wrote the source manifest anyway"
    );

    // Each source byte is read once: hashed while it is copied, footer from the tail.
    let (metered_src, meter) = InstrumentedStore::new(src.store.clone()).wrap(&src);
    let dst = env.open("dst");
    let out = sync_ok(&metered_src, &dst, &SyncOptions::default()).await;
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    let mut gets = meter.full_gets.lock().unwrap().clone();
    gets.sort();
    let mut expected: Vec<String> = paths(&src).await.iter().map(|p| src.key(p).to_string()).collect();
    expected.sort();
    assert_eq!(gets, expected, "{what}: source reads");
    assert!(meter.ranged_gets.lock().unwrap().is_empty(), "{what}");

    let m = committed(&src).await.expect("source manifest written back");
    for e in &m.shards {
        assert_eq!(e.sha256, sha256(&get(&src, &e.path).await), "{what}: {}", e.path);
    }
    assert_eq!(m.totals.rows, 400, "{what}");
    assert_eq!(Some(m.digest.clone()), out.report.src_digest, "{what}");
    assert_eq!(m.digest, committed(&dst).await.unwrap().digest, "{what}");
    // The next sync trusts it and reads nothing from the source.
    meter.full_gets.lock().unwrap().clear();
    let noop = sync_ok(&metered_src, &dst, &SyncOptions::default()).await;
    assert_eq!(noop.report.shards_copied, 0, "{what}");
    assert!(meter.full_gets.lock().unwrap().is_empty(), "{what}");
}

backend_tests!(read_only_source_only_warns);
async fn read_only_source_only_warns(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let src = env.open("src");
    write_demo(&src, 3, 100, 13).await;
    let (ro, _) = InstrumentedStore::new(src.store.clone()).read_only().wrap(&src);
    let dst = env.open("dst");
    let out = sync_ok(&ro, &dst, &SyncOptions::default()).await;
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_eq!(out.report.shards_failed, 0, "{what}");
    assert!(
        out.report
            .warnings
            .iter()
            .any(|w| w.contains("could not write the refreshed source manifest")),
        "{what}: {:?}",
        out.report.warnings
    );
    assert!(committed(&src).await.is_none(), "{what}");
    assert_identical(&src, &dst, &what).await;
}

backend_tests!(deep_verify_repairs_a_destination_shard_that_rotted_with_its_stat_intact: local, s3);
async fn deep_verify_repairs_a_destination_shard_that_rotted_with_its_stat_intact(backend: Backend) {
    // Rot that keeps size, mtime and ETag can only be made where the bytes are files we can
    // rewrite in place: local folders and the s3s-fs bucket directory.
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let what = format!("{backend:?}");
    write_demo(&src, 4, 100, 14).await;
    sync_ok(&src, &dst, &SyncOptions::default()).await;

    let file = match backend {
        Backend::Local => env.tmp.path().join("dst"),
        _ => env.server.as_ref().unwrap().root.join(BUCKET).join("dst"),
    }
    .join(shard_name(2));
    rot_in_place(&file);
    let rotted = get(&dst, &shard_name(2)).await;
    assert_ne!(rotted, get(&src, &shard_name(2)).await, "{what}: not rotted");

    // Size verification cannot see it (that is what deep is for) ...
    let shallow = sync_ok(&src, &dst, &SyncOptions::default()).await;
    assert_eq!(
        shallow.report.shards_copied, 0,
        "{what}: the rot changed the stat"
    );
    // ... deep verification re-hashes the destination and repairs it.
    let deep = sync_ok(&src, &dst, &SyncOptions::default().with_verify(VerifyMode::Deep)).await;
    assert_eq!(deep.report.shards_copied, 1, "{what}: {:?}", deep.report);
    assert_eq!(deep.report.proofs.rehash, 1, "{what}");
    assert!(deep.report.consistent, "{what}");
    assert_identical(&src, &dst, &what).await;
}

/// Flip one byte in the middle of a file and put its mtime back: same size, same mtime, same
/// inode (so the same local ETag; s3s-fs keeps its ETag aside), different bytes.
fn rot_in_place(file: &std::path::Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mtime = std::fs::metadata(file).unwrap().modified().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mid = f.metadata().unwrap().len() / 2;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(mid)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(mid)).unwrap();
    f.write_all(&[b[0] ^ 0x5a]).unwrap();
    f.set_modified(mtime).unwrap();
    f.sync_all().unwrap();
}

/// The copy engine's bound (issue 3: memory bounded by -j × part size whatever the shard size):
/// a 40 MiB shard through 5 MiB parts to a slow destination never has more than
/// `parts_in_flight` parts uploading, nor more than the striped read-ahead (`stripes` ranges of
/// `stripe_size`) plus `parts_in_flight + 1` parts' worth of bytes read from the source and not
/// yet acknowledged by the destination.
#[tokio::test]
async fn copy_engine_holds_at_most_parts_in_flight_plus_one_parts_of_a_large_shard() {
    let env = Env::new(Backend::Memory).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let blob = noise(40 * MIB + 123, 15);
    put(&src, "blobs/huge.bin", blob.clone()).await;
    let part = 5 * MIB;
    // A network-like source (64 KiB chunks), then a source that hands over the whole object in
    // one chunk (the in-memory store does): the bound must hold for both.
    for (n, chunk) in [Some(64 * 1024), None].into_iter().enumerate() {
        let meter = std::sync::Arc::new(Meter::default());
        let mut s = InstrumentedStore::new(src.store.clone()).with_meter(meter.clone());
        if let Some(c) = chunk {
            s = s.rechunk(c);
        }
        let (metered_src, _) = s.wrap(&src);
        let (metered_dst, _) = InstrumentedStore::new(dst.store.clone())
            .with_meter(meter.clone())
            .part_delay(Duration::from_millis(25))
            .wrap(&dst);
        let opts = SyncOptions::default()
            .with_part_size(part)
            .with_multipart_threshold(part)
            .with_full(n > 0);
        let in_flight = opts.transfer.parts_in_flight;
        let out = sync_ok(&metered_src, &metered_dst, &opts).await;
        let what = format!("source chunks {chunk:?}");
        assert_eq!(out.report.shards_copied, 1, "{what}");
        assert!(get(&dst, "blobs/huge.bin").await == blob, "{what}: bytes differ");
        let peak_parts = meter
            .peak_parts_in_flight_bytes
            .load(std::sync::atomic::Ordering::SeqCst);
        assert!(peak_parts > 0, "{what}: no multipart upload seen");
        assert!(
            peak_parts <= (in_flight * part) as u64,
            "{what}: {peak_parts} bytes of parts uploading at once, bound {} parts of {part}",
            in_flight
        );
        if let Some(c) = chunk {
            let peak = meter.peak_buffered.load(std::sync::atomic::Ordering::SeqCst);
            let read_ahead = opts.transfer.stripes * opts.transfer.stripe_size;
            let bound = (read_ahead + (in_flight + 1) * part + c) as u64;
            assert!(peak <= bound, "{what}: held {peak} bytes, bound {bound}");
            // And the bound is not vacuous: the engine did fill its parts.
            assert!(peak >= part as u64, "{what}: held only {peak} bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_sync_runs_on_a_spawned_task() {
    let env = Env::new(Backend::Memory).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 3, 100, 16).await;
    let task = {
        let (src, dst) = (src.clone(), dst.clone());
        tokio::spawn(async move { sync(&src, &dst, &SyncOptions::default()).await })
    };
    assert_eq!(task.await.unwrap().unwrap().report.shards_copied, 4);
    assert_eq!(snapshot(&src).await, snapshot(&dst).await);
}
