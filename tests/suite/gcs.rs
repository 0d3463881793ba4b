//! Google Cloud Storage through the binary, on fake-gcs-server. The emulator serves the XML
//! API reads object_store makes but refuses its uploads, so datasets are seeded with the JSON
//! API (`common::gcs::upload`) and these tests prove the read path: `sync gs:// → local`,
//! `check`, `diff`, `verify` and `manifest build` hashing what they read. Writes to `gs://`
//! are tested only for how their failure is reported.

use crate::backends::{snapshot, Backend, Env};
use crate::common::gcs;
use crate::harness::{committed, sha256, shardsync, Run};

/// A fresh bucket holding a demo dataset under `ds/`; its `gs://` URL and (path, bytes).
async fn seeded() -> (String, Vec<(String, Vec<u8>)>) {
    // No '-': object_store percent-encodes it in the bucket of its XML-API URLs (`%2D`), which
    // GCS decodes and fake-gcs-server does not.
    let bucket = format!("gcs{:016x}", rand::random::<u64>());
    let mut objects: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            let bytes = shardsync::demo::shard_bytes(i, 100, 11).expect("shard bytes");
            (shardsync::demo::shard_name(i), bytes)
        })
        .collect();
    objects.push(("dataset_info.json".into(), b"{\"name\": \"gcs\"}".to_vec()));
    let seed = (bucket.clone(), objects.clone());
    tokio::task::spawn_blocking(move || {
        gcs::create_bucket(&seed.0);
        for (path, bytes) in &seed.1 {
            gcs::upload(&seed.0, &format!("ds/{path}"), bytes);
        }
    })
    .await
    .expect("seed fake-gcs-server");
    objects.sort();
    (format!("gs://{bucket}/ds"), objects)
}

fn args(cmd: &[&str], urls: &[&str], flags: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = cmd.iter().chain(urls).map(|s| s.to_string()).collect();
    for flag in flags {
        for (k, v) in gcs::store_options() {
            a.extend([flag.to_string(), format!("{k}={v}")]);
        }
    }
    a
}

fn first_line(r: &Run) -> &str {
    r.stderr.lines().find(|l| l.contains("error")).unwrap_or_default()
}

#[tokio::test]
async fn a_gcs_dataset_is_read_by_sync_check_diff_and_manifest_build() {
    let (url, objects) = seeded().await;
    let local = Env::new(Backend::Local).await;
    let dst = local.url("copy");

    let r = shardsync(args(&["sync"], &[&url, &dst], &["--src-opt"])).await;
    assert_eq!(r.code, Some(0), "sync gs:// -> local: {r:?}");
    let copied = snapshot(&local.open("copy")).await;
    let copied: Vec<(String, Vec<u8>)> = copied.into_iter().map(|(p, b)| (p, b.to_vec())).collect();
    assert_eq!(copied, objects, "the copy holds the bytes seeded on the emulator");

    for cmd in ["check", "diff"] {
        let r = shardsync(args(&[cmd], &[&url, &dst], &["--src-opt"])).await;
        assert_eq!(r.code, Some(0), "{cmd} after the sync: {r:?}");
    }

    // The hashes the sync made while reading from the emulator are those of the seeded bytes.
    let m = committed(&local.open("copy")).await.expect("the copy's manifest");
    for (path, bytes) in &objects {
        let e = m.shards.iter().find(|e| &e.path == path).expect("entry");
        assert_eq!(e.sha256, sha256(bytes), "{path}");
    }

    // `manifest build` reads and hashes, then its write of the manifest into the bucket is
    // refused by the emulator: exit 2 naming the store, the rest of the answer under -v.
    let r = shardsync(args(&["manifest", "build"], &[&url], &["--opt"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let line = first_line(&r);
    assert!(
        line.contains(&url) && line.contains("write manifest failed"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_changed_gcs_object_is_found_by_check_and_verify() {
    let (url, objects) = seeded().await;
    let local = Env::new(Backend::Local).await;
    let dst = local.url("copy");
    let r = shardsync(args(&["sync"], &[&url, &dst], &["--src-opt"])).await;
    assert_eq!(r.code, Some(0), "{r:?}");

    // The destination's manifest describes the seeded bytes: put it beside them on the
    // emulator, so `verify gs://…` has a manifest to verify against.
    let manifest = std::fs::read(local.tmp.path().join("copy/_shardsync/manifest.json")).expect("manifest");
    let bucket = url
        .trim_start_matches("gs://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (b, mf) = (bucket.clone(), manifest.clone());
    tokio::task::spawn_blocking(move || gcs::upload(&b, "ds/_shardsync/manifest.json", &mf))
        .await
        .unwrap();
    let r = shardsync(args(&["verify"], &[&url, "--deep"], &["--opt"])).await;
    assert_eq!(r.code, Some(0), "verify --deep on the emulator: {r:?}");

    // Same size, other bytes.
    let (path, bytes) = &objects[1];
    let mut changed = bytes.clone();
    let mid = changed.len() / 2;
    changed[mid] ^= 0xff;
    let (b, key) = (bucket.clone(), format!("ds/{path}"));
    tokio::task::spawn_blocking(move || gcs::upload(&b, &key, &changed))
        .await
        .unwrap();
    let r = shardsync(args(&["verify"], &[&url, "--deep"], &["--opt"])).await;
    assert_eq!(r.code, Some(1), "verify --deep after a change: {r:?}");
    assert!(r.stdout.contains(path.as_str()), "{r:?}");
    let r = shardsync(args(&["check"], &[&url, &dst, "--deep"], &["--src-opt"])).await;
    assert_eq!(r.code, Some(1), "check after a change: {r:?}");
    assert!(r.stdout.contains(path.as_str()), "{r:?}");
}

#[tokio::test]
async fn a_write_the_emulator_refuses_is_one_line_naming_the_destination() {
    let (url, _) = seeded().await;
    let local = Env::new(Backend::Local).await;
    let src = local.open("src");
    crate::backends::write_demo(&src, 2, 50, 3).await;
    let dst = format!("{url}-out");
    let r = shardsync(args(&["sync"], &[&local.url("src"), &dst], &["--dst-opt"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let line = first_line(&r);
    assert!(line.contains(&format!("destination {dst}")), "{r:?}");
}
