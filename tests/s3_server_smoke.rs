//! Proves the in-process S3 server (tests/common/s3.rs) with object_store 0.14 directly,
//! and pins down what s3s-fs 0.14.1 does with the features shardsync relies on.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, GetOptions, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, UpdateVersion, WriteMultipart,
};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift), so corruption would not hide in a pattern.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn get_bytes(store: &dyn ObjectStore, p: &Path) -> Bytes {
    store.get(p).await.unwrap().bytes().await.unwrap()
}

fn meta_attrs(sha: &str) -> Attributes {
    let mut a = Attributes::new();
    a.insert(Attribute::Metadata("sha256".into()), sha.to_string().into());
    a
}

async fn head_attrs(store: &dyn ObjectStore, p: &Path) -> Attributes {
    store
        .get_opts(
            p,
            GetOptions {
                head: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .attributes
}

async fn multipart_upload(
    store: &dyn ObjectStore,
    p: &Path,
    body: &[u8],
    opts: PutMultipartOptions,
) -> object_store::PutResult {
    let upload = store.put_multipart_opts(p, opts).await.unwrap();
    let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * MIB);
    // Feed it in odd-sized slices so part boundaries do not line up with writes.
    for chunk in body.chunks(777_777) {
        w.wait_for_capacity(4).await.unwrap();
        w.write(chunk);
    }
    w.finish().await.unwrap()
}

#[tokio::test]
async fn put_get_roundtrip() {
    let srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let store = srv.client("bkt");
    let p = Path::from("a/b/hello.bin");
    let body = data(100_000, 1);

    let put = store.put(&p, body.clone().into()).await.unwrap();
    assert!(put.e_tag.is_some(), "PutObject returns an ETag");

    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), &body[..]);
    let meta = store.head(&p).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(meta.e_tag, put.e_tag);

    // Ranged read.
    let r = store.get_range(&p, 10..20).await.unwrap();
    assert_eq!(r.as_ref(), &body[10..20]);

    // The object is a plain file under root/bucket.
    let on_disk = std::fs::read(srv.root.join("bkt/a/b/hello.bin")).unwrap();
    assert_eq!(on_disk, body);

    store.delete(&p).await.unwrap();
    assert!(matches!(
        store.head(&p).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn wrong_secret_is_rejected() {
    let srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let store = srv
        .builder("bkt")
        .with_secret_access_key("not-the-secret")
        .with_retry(RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap();
    let err = store
        .put(&Path::from("x"), PutPayload::from_static(b"x"))
        .await
        .unwrap_err();
    // SigV4 mismatch is a 403 from s3s; object_store maps it to Generic/PermissionDenied.
    let msg = err.to_string();
    assert!(
        msg.contains("403") || msg.contains("SignatureDoesNotMatch"),
        "{msg}"
    );
}

#[tokio::test]
async fn multipart_12mib_with_5mib_parts() {
    let srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let store = srv.client("bkt");
    let p = Path::from("big/shard-00000.parquet");
    let body = data(12 * MIB + 12_345, 2);

    let put = multipart_upload(store.as_ref(), &p, &body, Default::default()).await;
    let etag = put.e_tag.expect("CompleteMultipartUpload returns an ETag");
    // S3-style multipart ETag: "<md5 of part md5s>-<number of parts>" (3 parts here).
    assert!(etag.trim_matches('"').ends_with("-3"), "etag {etag}");

    let meta = store.head(&p).await.unwrap();
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(meta.e_tag.as_deref(), Some(etag.as_str()));
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), &body[..]);
}

#[tokio::test]
async fn conditional_put_create_and_update() {
    let srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let store = srv.client("bkt");
    let p = Path::from("cond/manifest.json");

    let first = store
        .put_opts(&p, "v1".into(), PutMode::Create.into())
        .await
        .unwrap();
    let err = store
        .put_opts(&p, "v2".into(), PutMode::Create.into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err:?}"
    );
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), b"v1");

    // Update with a wrong ETag → Precondition, object unchanged.
    let wrong = UpdateVersion {
        e_tag: Some("\"00000000000000000000000000000000\"".into()),
        version: None,
    };
    let err = store
        .put_opts(&p, "v3".into(), PutMode::Update(wrong).into())
        .await
        .unwrap_err();
    assert!(matches!(err, object_store::Error::Precondition { .. }), "{err:?}");
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), b"v1");

    // Update with the right ETag succeeds and returns a new ETag.
    let right = UpdateVersion::from(first.clone());
    let second = store
        .put_opts(&p, "v4".into(), PutMode::Update(right).into())
        .await
        .unwrap();
    assert_ne!(second.e_tag, first.e_tag);
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), b"v4");

    // The old ETag is now stale.
    let err = store
        .put_opts(&p, "v5".into(), PutMode::Update(first.into()).into())
        .await
        .unwrap_err();
    assert!(matches!(err, object_store::Error::Precondition { .. }), "{err:?}");
}

#[tokio::test]
async fn user_metadata_roundtrip_put_and_multipart() {
    let srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let store = srv.client("bkt");
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    // Single PUT.
    let p = Path::from("meta/small.bin");
    let opts = PutOptions {
        attributes: meta_attrs(sha),
        ..Default::default()
    };
    store.put_opts(&p, "test".into(), opts).await.unwrap();

    // head() does not carry attributes in object_store 0.14 (ObjectMeta has none);
    // get_opts(head: true) does.
    let attrs = head_attrs(store.as_ref(), &p).await;
    assert_eq!(
        attrs
            .get(&Attribute::Metadata("sha256".into()))
            .map(|v| v.as_ref()),
        Some(sha),
        "s3s-fs returns x-amz-meta-sha256 set on PutObject: {attrs:?}"
    );
    // A full GET carries it too.
    let got = store.get(&p).await.unwrap();
    assert_eq!(
        got.attributes
            .get(&Attribute::Metadata("sha256".into()))
            .map(|v| v.as_ref()),
        Some(sha)
    );

    // Multipart: metadata given at CreateMultipartUpload.
    let p = Path::from("meta/big.bin");
    let body = data(11 * MIB, 3);
    let opts = PutMultipartOptions {
        attributes: meta_attrs(sha),
        ..Default::default()
    };
    multipart_upload(store.as_ref(), &p, &body, opts).await;
    let attrs = head_attrs(store.as_ref(), &p).await;
    assert_eq!(
        attrs
            .get(&Attribute::Metadata("sha256".into()))
            .map(|v| v.as_ref()),
        Some(sha),
        "s3s-fs returns metadata set on CreateMultipartUpload: {attrs:?}"
    );

    // An object put without metadata has none.
    let p = Path::from("meta/plain.bin");
    store.put(&p, "x".into()).await.unwrap();
    let attrs = head_attrs(store.as_ref(), &p).await;
    assert!(
        attrs.get(&Attribute::Metadata("sha256".into())).is_none(),
        "{attrs:?}"
    );
}

#[tokio::test]
async fn checksum_sha256_put_and_multipart() {
    let srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let store = srv.client_with("bkt", &[("aws_checksum_algorithm", "sha256")]);

    let p = Path::from("ck/small.bin");
    let body = data(300_000, 4);
    store.put(&p, body.clone().into()).await.unwrap();
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), &body[..]);
    // The header was sent, validated (s3s-fs recomputes it) and stored.
    assert_eq!(
        srv.stored_checksum_sha256("bkt", "ck/small.bin"),
        Some(common::s3::base64_std(&Sha256::digest(&body)))
    );

    let p = Path::from("ck/big.bin");
    let body = data(12 * MIB, 5);
    multipart_upload(store.as_ref(), &p, &body, Default::default()).await;
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), &body[..]);
    // object_store sends x-amz-checksum-sha256 on every UploadPart, but s3s-fs 0.14.1
    // neither checks part checksums nor stores a checksum for the completed object.
    let info = srv.internal_info("bkt", "ck/big.bin").expect("sidecar");
    assert!(info.get("checksum_sha256").is_none(), "{info}");
    assert!(info["e_tag"].as_str().unwrap().ends_with("-3"), "{info}");

    // Without the option nothing is sent, so nothing is stored.
    let plain = srv.client("bkt");
    plain
        .put(&Path::from("ck/plain.bin"), body[..1000].to_vec().into())
        .await
        .unwrap();
    assert_eq!(srv.stored_checksum_sha256("bkt", "ck/plain.bin"), None);

    // Conditional put still works with checksums on.
    let err = store
        .put_opts(&p, "x".into(), PutMode::Create.into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn list_prefix_and_unusual_keys() {
    let srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let store = srv.client("bkt");

    let keys = [
        "ds/train/part-0.parquet",
        "ds/train/part-1.parquet",
        "ds/val/part-0.parquet",
        "ds/README.md",
        "other/x.parquet",
        "dir one/ünï cødé.parquet",
        "dir one/a+b=c&d.parquet",
    ];
    for (i, k) in keys.iter().enumerate() {
        // Path::parse keeps the key verbatim; Path::from would percent-encode it (see below).
        store
            .put(&Path::parse(k).unwrap(), data(100 + i, i as u64 + 10).into())
            .await
            .unwrap();
    }

    let mut listed: Vec<(String, u64)> = store
        .list(Some(&Path::from("ds")))
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("ds/README.md".to_string(), 103),
            ("ds/train/part-0.parquet".to_string(), 100),
            ("ds/train/part-1.parquet".to_string(), 101),
            ("ds/val/part-0.parquet".to_string(), 102),
        ]
    );

    let mut train: Vec<String> = store
        .list(Some(&Path::from("ds/train")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    train.sort();
    assert_eq!(train, vec!["ds/train/part-0.parquet", "ds/train/part-1.parquet"]);

    let d = store.list_with_delimiter(Some(&Path::from("ds"))).await.unwrap();
    let mut dirs: Vec<String> = d.common_prefixes.iter().map(|p| p.to_string()).collect();
    dirs.sort();
    assert_eq!(dirs, vec!["ds/train", "ds/val"]);
    let files: Vec<String> = d.objects.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(files, vec!["ds/README.md"]);

    // Spaces, non-ASCII and URL-reserved characters survive put/list/get/head.
    let mut odd: Vec<String> = store
        .list(Some(&Path::from("dir one")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    odd.sort();
    assert_eq!(odd, vec!["dir one/a+b=c&d.parquet", "dir one/ünï cødé.parquet"]);
    let p = Path::parse("dir one/ünï cødé.parquet").unwrap();
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), &data(105, 15)[..]);
    assert_eq!(store.head(&p).await.unwrap().size, 105);
    let p = Path::parse("dir one/a+b=c&d.parquet").unwrap();
    assert_eq!(get_bytes(store.as_ref(), &p).await.as_ref(), &data(106, 16)[..]);
    assert!(srv.root.join("bkt/dir one/ünï cødé.parquet").is_file());

    // Pitfall: `Path::from(&str)` percent-encodes every non-ASCII byte (and `%`, `#`, `?`,
    // `[`, `~`, ... — object_store's INVALID set), so the S3 key becomes the literal text
    // "%C3%BC..." and does not match the source key. Build paths from listed keys or
    // user input with `Path::parse`, never `Path::from`.
    let encoded = Path::from("enc/ünï.parquet");
    assert_eq!(encoded.as_ref(), "enc/%C3%BCn%C3%AF.parquet");
    store.put(&encoded, "e".into()).await.unwrap();
    assert!(srv.root.join("bkt/enc/%C3%BCn%C3%AF.parquet").is_file());
    assert!(!srv.root.join("bkt/enc/ünï.parquet").exists());
    assert!(matches!(
        store.head(&Path::parse("enc/ünï.parquet").unwrap()).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn stop_and_restart_keep_port_and_data() {
    let mut srv = common::s3::start().await;
    srv.create_bucket("bkt");
    let endpoint = srv.endpoint.clone();
    let quick = || {
        srv.builder("bkt")
            .with_retry(RetryConfig {
                max_retries: 0,
                retry_timeout: Duration::from_secs(2),
                backoff: BackoffConfig::default(),
            })
            .build()
            .unwrap()
    };
    let store = quick();
    let p = Path::from("k");
    store.put(&p, "before".into()).await.unwrap();

    srv.stop().await;
    assert!(!srv.is_running());
    let err = tokio::time::timeout(Duration::from_secs(120), store.get(&p))
        .await
        .expect("a stopped server fails fast")
        .unwrap_err();
    assert!(!matches!(err, object_store::Error::NotFound { .. }), "{err}");

    srv.restart().await;
    assert!(srv.is_running());
    assert_eq!(srv.endpoint, endpoint);
    // The same client (its pooled connections were dropped by the server) works again.
    assert_eq!(get_bytes(&store, &p).await.as_ref(), b"before");
    store.put(&p, "after".into()).await.unwrap();
    assert_eq!(get_bytes(&store, &p).await.as_ref(), b"after");
}
