//! Large shards are read as several ranged GETs at once (one TCP connection of a long link is
//! window-bound), hashed in order, once. Tests: a striped copy lands the exact bytes and really
//! is striped; a source rewritten between two ranges never lands as a blend of two versions.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use shardsync::sync::{sync, SyncOptions};
use shardsync::Dataset;

use crate::backends::{get, put, Backend, Env};
use crate::harness::{noise, sha256, InstrumentedStore, MIB};

/// A source that rewrites `key` (same size, other bytes) right after answering its first
/// ranged GET, and counts the ranged GETs of it.
struct RewriteBetweenRanges {
    inner: Arc<dyn ObjectStore>,
    key: Path,
    bytes: Bytes,
    done: AtomicBool,
    ranged: AtomicUsize,
}

impl fmt::Debug for RewriteBetweenRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RewriteBetweenRanges")
    }
}

impl fmt::Display for RewriteBetweenRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RewriteBetweenRanges")
    }
}

#[async_trait]
impl ObjectStore for RewriteBetweenRanges {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> object_store::Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        let ranged = o.range.is_some() && !o.head && *l == self.key;
        let res = self.inner.get_opts(l, o).await?;
        if ranged {
            self.ranged.fetch_add(1, Ordering::SeqCst);
            if !self.done.swap(true, Ordering::SeqCst) {
                self.inner
                    .put(&self.key, PutPayload::from(self.bytes.clone()))
                    .await?;
            }
        }
        Ok(res)
    }
    async fn get_ranges(&self, l: &Path, r: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(l, r).await
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(l)
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(p)
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(f, t, o).await
    }
}

backend_tests!(a_large_shard_is_read_as_ranges_and_lands_exactly: local, s3);
/// A 21 MiB shard in 4 MiB ranges, one-PUT and multipart: the destination holds the exact
/// bytes, the manifest their hash, and the source was read as several ranged GETs.
async fn a_large_shard_is_read_as_ranges_and_lands_exactly(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let blob = noise(21 * MIB + 7, 3);
    put(&src, "train/big.bin", blob.clone()).await;
    for (n, threshold) in [64 * MIB, 8 * MIB].into_iter().enumerate() {
        let (metered, meter) = InstrumentedStore::new(src.store.clone()).wrap(&src);
        let opts = SyncOptions::default()
            .with_multipart_threshold(threshold)
            .with_full(n > 0);
        let out = sync(&metered, &dst, &opts).await.expect("sync");
        let what = format!("{backend:?}, multipart threshold {threshold}");
        assert_eq!(out.report.shards_copied, 1, "{what}");
        assert!(get(&dst, "train/big.bin").await == blob, "{what}: bytes differ");
        let entry = out.committed.expect("committed").shards;
        assert_eq!(entry[0].sha256, sha256(&blob), "{what}");
        let ranged = meter
            .ranged_gets
            .lock()
            .unwrap()
            .iter()
            .filter(|k| k.ends_with("big.bin"))
            .count();
        assert!(
            ranged >= 6,
            "{what}: {ranged} ranged GETs of a 21 MiB shard in 4 MiB stripes"
        );
    }
}

/// The source shard is rewritten (same size) between its first ranged GET and the others, and
/// the source has no manifest, so the copy's own hash is the only record of it: the destination
/// must hold one version whole, and the manifest that version's hash, never a blend.
#[tokio::test]
async fn a_source_rewritten_between_ranges_never_lands_as_a_blend() {
    let env = Env::new(Backend::Memory).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let (old, new) = (noise(12 * MIB, 5), noise(12 * MIB, 6));
    put(&src, "train/big.bin", old.clone()).await;
    let rewriting = Arc::new(RewriteBetweenRanges {
        inner: src.store.clone(),
        key: src.key("train/big.bin"),
        bytes: Bytes::from(new.clone()),
        done: AtomicBool::new(false),
        ranged: AtomicUsize::new(0),
    });
    let src2 = Dataset::from_store(rewriting.clone(), src.root.clone(), src.url.clone(), src.backend);
    let result = sync(&src2, &dst, &SyncOptions::default()).await;
    assert!(
        rewriting.ranged.load(Ordering::SeqCst) >= 2,
        "the copy was not striped"
    );
    match result {
        Ok(out) => {
            let landed = get(&dst, "train/big.bin").await;
            assert!(landed == old || landed == new, "a blend of two versions landed");
            let shards = out.committed.expect("committed").shards;
            assert_eq!(
                shards[0].sha256,
                sha256(&landed),
                "the manifest names other bytes"
            );
        }
        Err(shardsync::Error::Incomplete { outcome }) => {
            // Failed as changed at the source: nothing landed, and no manifest claims it.
            let f = &outcome.report.findings;
            assert!(
                f.iter()
                    .any(|f| f.path == "train/big.bin" && f.detail.contains("changed")),
                "{f:?}"
            );
            assert!(outcome.committed.is_none_or(|m| m.shards.is_empty()));
            let landed = dst.store.get(&dst.key("train/big.bin")).await;
            assert!(landed.is_err(), "bytes landed for a shard that failed");
        }
        Err(e) => panic!("{e}"),
    }
}
