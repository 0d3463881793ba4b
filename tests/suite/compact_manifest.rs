//! The compact manifest (a JSON head, a Parquet body) on real stores: every field round-trips,
//! syncs read and write it beside v1 documents, the commit of its head stays conditional, old
//! bodies are collected, and a missing or corrupt body is an error naming the body.

use chrono::{TimeZone, Utc};
use object_store::ObjectStoreExt;
use shardsync::manifest::{self, CopiedFrom, Manifest, SourceStat, FORMAT_COMPACT};
use shardsync::sync::{sync, SyncOptions};
use shardsync::Dataset;

use crate::backends::{put, snapshot, write_demo, Backend, Env};
use crate::harness::{assert_manifest_holds, put_raw, shardsync, try_get};

/// A dataset that stores every manifest compact.
fn compact(mut ds: Dataset) -> Dataset {
    ds.compact_manifest_from = 0;
    ds
}

/// The parsed `manifest.json` document as stored.
async fn stored_document(ds: &Dataset) -> serde_json::Value {
    let bytes = try_get(ds, "_shardsync/manifest.json").await.expect("a manifest");
    serde_json::from_slice(&bytes).expect("manifest.json is JSON")
}

/// The manifest bodies under `_shardsync/manifests/`.
async fn bodies(ds: &Dataset) -> Vec<String> {
    use futures::TryStreamExt;
    let prefix = ds.key("_shardsync/manifests");
    let mut keys: Vec<String> = ds
        .store
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap_or_default();
    keys.sort();
    keys
}

backend_tests!(a_compact_manifest_round_trips_every_field: local, s3);
async fn a_compact_manifest_round_trips_every_field(backend: Backend) {
    let env = Env::new(backend).await;
    let ds = compact(env.open("data"));
    write_demo(&ds, 3, 50, 1).await;
    put(&ds, "broken.parquet", &b"not parquet at all"[..]).await;
    let built = manifest::build_manifest(&ds, None, &Default::default())
        .await
        .unwrap();
    let mut m = built.manifest;
    assert!(m.parquet_errors().count() == 1 && m.shards.iter().any(|e| e.rows.is_some()));
    let t = Utc.timestamp_opt(1_700_000_000, 987_654_321).unwrap();
    m.copied_from = Some(CopiedFrom {
        source: "s3 http://e bucket /src".into(),
        stats: vec![
            SourceStat {
                path: "broken.parquet".into(),
                mtime: Some(t),
                etag: Some("\"x\"".into()),
            },
            SourceStat {
                path: "gone.parquet".into(),
                mtime: None,
                etag: None,
            },
        ],
    });
    manifest::save(&ds, &m).await.unwrap();
    let head = stored_document(&ds).await;
    assert_eq!(head["format"], FORMAT_COMPACT, "{backend:?}: {head}");
    assert!(
        head.get("shards").is_none(),
        "{backend:?}: the head carries no entries"
    );
    assert_eq!(head["digest"], m.digest.as_str());
    let back = manifest::load(&ds).await.unwrap().expect("stored").manifest;
    assert_eq!(back, m, "{backend:?}");

    // Saved again with one entry less: one body left, the head's.
    let first_bodies = bodies(&ds).await;
    assert_eq!(first_bodies.len(), 1, "{backend:?}: {first_bodies:?}");
    m.shards.pop();
    let m = Manifest {
        copied_from: None,
        ..Manifest::new(m.dataset.clone(), m.shards).unwrap()
    };
    manifest::save(&ds, &m).await.unwrap();
    let now = bodies(&ds).await;
    assert_eq!(
        now.len(),
        1,
        "{backend:?}: the replaced body is collected: {now:?}"
    );
    assert_ne!(now, first_bodies, "{backend:?}");
    assert_eq!(
        manifest::load(&ds).await.unwrap().unwrap().manifest,
        m,
        "{backend:?}"
    );
}

backend_tests!(syncs_read_and_write_compact_and_v1_manifests_alike: local, s3);
async fn syncs_read_and_write_compact_and_v1_manifests_alike(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), compact(env.open("dst")));
    write_demo(&src, 4, 60, 1).await;
    let built = manifest::build_manifest(&src, None, &Default::default())
        .await
        .unwrap();
    manifest::save(&src, &built.manifest).await.unwrap();
    assert_eq!(
        stored_document(&src).await["format"],
        manifest::FORMAT,
        "small stays v1"
    );

    // v1 source into a compact destination.
    let first = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert!(
        first.report.consistent && first.report.committed,
        "{backend:?}: {:?}",
        first.report
    );
    assert_eq!(
        stored_document(&dst).await["format"],
        FORMAT_COMPACT,
        "{backend:?}"
    );
    assert_manifest_holds(&dst, "after the first sync")
        .await
        .expect("committed");
    let noop = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert_eq!(noop.report.shards_copied, 0, "{backend:?}");
    assert!(
        !noop.report.committed,
        "{backend:?}: a no-op sync rewrote the compact manifest"
    );

    // A rewrite: the overwriting sync commits an interim and a final head; one body is left.
    let bytes = shardsync::demo::shard_bytes(2, 60, 7).unwrap();
    put(&src, &shardsync::demo::shard_name(2), bytes).await;
    let second = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert_eq!(second.report.shards_copied, 1, "{backend:?}");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await, "{backend:?}");
    assert_manifest_holds(&dst, "after the rewrite")
        .await
        .expect("committed");
    assert_eq!(
        bodies(&dst).await.len(),
        1,
        "{backend:?}: {:?}",
        bodies(&dst).await
    );

    // The compact destination as a source, into a v1 destination.
    let (back, v1) = (env.open("dst"), env.open("v1"));
    let third = sync(&back, &v1, &SyncOptions::default()).await.unwrap();
    assert!(third.report.consistent, "{backend:?}: {:?}", third.report);
    assert_eq!(
        stored_document(&v1).await["format"],
        manifest::FORMAT,
        "{backend:?}"
    );
    assert_eq!(snapshot(&src).await, snapshot(&v1).await, "{backend:?}");
}

backend_tests!(a_compact_commit_still_refuses_a_concurrent_change: local, s3);
async fn a_compact_commit_still_refuses_a_concurrent_change(backend: Backend) {
    let env = Env::new(backend).await;
    let ds = compact(env.open("data"));
    write_demo(&ds, 2, 20, 1).await;
    let m = manifest::build_manifest(&ds, None, &Default::default())
        .await
        .unwrap()
        .manifest;
    let v0 = shardsync::commit::commit(&ds, &m, &None).await.unwrap();
    // Another writer commits over v0 ...
    let mut other = m.clone();
    other.shards.pop();
    let other = Manifest::new(other.dataset.clone(), other.shards).unwrap();
    shardsync::commit::commit(&ds, &other, &Some(v0.clone()))
        .await
        .unwrap();
    // ... so a commit that read v0 is refused, and leaves no body behind.
    let err = shardsync::commit::commit(&ds, &m, &Some(v0)).await.unwrap_err();
    assert!(
        matches!(err, shardsync::Error::ManifestConflict { .. }),
        "{backend:?}: {err}"
    );
    assert_eq!(
        manifest::load(&ds).await.unwrap().unwrap().manifest.digest,
        other.digest
    );
    assert_eq!(bodies(&ds).await.len(), 1, "{backend:?}: {:?}", bodies(&ds).await);
}

backend_tests!(a_missing_or_corrupt_body_is_an_error_naming_it: local, s3);
async fn a_missing_or_corrupt_body_is_an_error_naming_it(backend: Backend) {
    let env = Env::new(backend).await;
    let ds = compact(env.open("data"));
    write_demo(&ds, 2, 20, 1).await;
    let m = manifest::build_manifest(&ds, None, &Default::default())
        .await
        .unwrap()
        .manifest;
    manifest::save(&ds, &m).await.unwrap();
    let head = stored_document(&ds).await;
    let body = head["body"]["key"].as_str().expect("body key").to_string();

    // Corrupt: the binary exits 2 naming the body.
    put_raw(&ds, &body, &b"PAR1 not a parquet body PAR1"[..]).await;
    let mut args = vec!["verify".to_string(), env.url("data")];
    args.extend(env.cli_options("--opt"));
    let r = shardsync(&args).await;
    assert_eq!(r.code, Some(2), "{backend:?}: {r:?}");
    assert!(
        r.stderr.contains(&body),
        "{backend:?}: the error names the body: {}",
        r.stderr
    );

    // Another manifest's body: refused by the digest.
    let mut other = m.clone();
    other.shards.pop();
    let other = Manifest::new(other.dataset.clone(), other.shards).unwrap();
    let other_body = manifest::compact::encode_body(&other).unwrap();
    put_raw(&ds, &body, other_body).await;
    let e = manifest::load(&ds).await.unwrap_err().to_string();
    assert!(e.contains(&body) && e.contains("digest"), "{backend:?}: {e}");

    // Missing.
    ds.store.delete(&ds.key(&body)).await.unwrap();
    let e = manifest::load(&ds).await.unwrap_err().to_string();
    assert!(e.contains(&body) && e.contains("missing"), "{backend:?}: {e}");
}

backend_tests!(an_interim_commit_writes_only_a_head_over_the_stored_body: local, s3);
async fn an_interim_commit_writes_only_a_head_over_the_stored_body(backend: Backend) {
    let env = Env::new(backend).await;
    let ds = compact(env.open("data"));
    write_demo(&ds, 4, 20, 1).await;
    let m = manifest::build_manifest(&ds, None, &Default::default())
        .await
        .unwrap()
        .manifest;
    shardsync::commit::commit(&ds, &m, &None).await.unwrap();
    let stored = manifest::load(&ds).await.unwrap().expect("committed");
    let body = bodies(&ds).await;

    // Two rounds of retraction over one body: the second retracts more of the same body.
    let mut expected = stored;
    for drop in ["train/part-00001.parquet", "train/part-00003.parquet"] {
        let keep = expected
            .manifest
            .shards
            .iter()
            .filter(|e| e.path != drop)
            .cloned()
            .collect();
        let interim = Manifest::new(ds.url.clone(), keep).unwrap();
        shardsync::commit::commit_interim(&ds, &interim, &expected)
            .await
            .unwrap();
        let head = stored_document(&ds).await;
        assert!(
            head["retracted"]
                .as_array()
                .is_some_and(|r| r.iter().any(|p| p == drop)),
            "{head}"
        );
        assert_eq!(bodies(&ds).await, body, "{backend:?}: no second body was written");
        expected = manifest::load(&ds).await.unwrap().expect("interim");
        assert_eq!(expected.manifest.shards, interim.shards, "{backend:?}");
    }
    assert_eq!(expected.manifest.shards.len(), m.shards.len() - 2);

    // The final commit writes a new body and collects the old one.
    shardsync::commit::commit(&ds, &m, &Some(expected.version))
        .await
        .unwrap();
    let now = bodies(&ds).await;
    assert!(now.len() == 1 && now != body, "{backend:?}: {now:?}");
    assert!(stored_document(&ds).await.get("retracted").is_none());
    assert_eq!(
        manifest::load(&ds).await.unwrap().unwrap().manifest.shards,
        m.shards
    );
}
