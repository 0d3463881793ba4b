//! What the manifest, sync and CLI tests share beside the store factory: independent oracles
//! (SHA-256 straight from `sha2`, row counts from parquet's own file reader, never shardsync's
//! code), generators for shards of a chosen size, and [`InstrumentedStore`], a wrapping
//! `ObjectStore` (like object_store's `throttle.rs`) that records what the engine does to a
//! store: the order of writes and deletes, GETs per path, multipart bytes in flight.

#![allow(dead_code)]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use shardsync::{Dataset, Manifest};

pub const MIB: usize = 1024 * 1024;

/// SHA-256 of `bytes`, lowercase hex, computed here and not by shardsync.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Row count and row-group count as parquet's own reader sees them.
pub fn parquet_rows(bytes: &[u8]) -> (u64, u64) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = SerializedFileReader::new(Bytes::copy_from_slice(bytes)).expect("parquet reader");
    let md = r.metadata();
    (md.file_metadata().num_rows() as u64, md.num_row_groups() as u64)
}

/// Deterministic pseudo-random bytes (xorshift64): cheap in debug builds, and corruption
/// cannot hide in a pattern.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
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

/// A Parquet shard of about `approx_bytes`: rows of 64 KiB incompressible blobs, uncompressed,
/// `rows_per_group` rows per row group. Same arguments, same bytes; any seed, same size.
pub fn blob_parquet(approx_bytes: usize, rows_per_group: usize, seed: u64) -> Vec<u8> {
    use arrow::array::{ArrayRef, BinaryArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    const BLOB: usize = 64 * 1024;
    let rows = approx_bytes.div_ceil(BLOB).max(1);
    let data = noise(rows * BLOB, seed);
    let blobs: Vec<&[u8]> = data.chunks(BLOB).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("blob", DataType::Binary, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(BinaryArray::from_vec(blobs)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).expect("batch");
    let props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let mut out = Vec::with_capacity(data.len() + 4096);
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

/// The committed manifest of a dataset, if any.
pub async fn committed(ds: &Dataset) -> Option<Manifest> {
    shardsync::manifest::load(ds)
        .await
        .expect("load manifest")
        .map(|s| s.manifest)
}

/// The invariant a reader relies on: every entry of the dataset's committed manifest is present
/// with exactly those bytes (checked by reading and hashing them here). Returns the manifest.
pub async fn assert_manifest_holds(ds: &Dataset, what: &str) -> Option<Manifest> {
    let m = committed(ds).await?;
    for e in &m.shards {
        let bytes = try_get(ds, &e.path).await.unwrap_or_else(|| {
            panic!(
                "{what}: the committed manifest names {} but the store lacks it",
                e.path
            )
        });
        assert_eq!(bytes.len() as u64, e.size, "{what}: {} size", e.path);
        assert_eq!(
            sha256(&bytes),
            e.sha256,
            "{what}: the committed manifest names {} with bytes the store does not hold",
            e.path
        );
    }
    Some(m)
}

/// The store key of `rel` under the dataset root as another tool (aws s3 cp, pyarrow, a file
/// manager) names it: the raw string, not percent-encoded. Deliberately not `Dataset::key`, so a
/// test that reads or writes through this cannot agree with shardsync by sharing its mistake.
pub fn raw_key(ds: &Dataset, rel: &str) -> Path {
    let root = ds.root.as_ref();
    let raw = if root.is_empty() {
        rel.to_string()
    } else {
        format!("{root}/{rel}")
    };
    Path::parse(&raw).unwrap_or_else(|e| panic!("{raw:?} is not a valid key: {e}"))
}

/// Write `bytes` at `rel` under the dataset root as another tool would (see [`raw_key`]).
pub async fn put_raw(ds: &Dataset, rel: &str, bytes: impl Into<Bytes>) {
    use object_store::ObjectStoreExt;
    ds.store
        .put(&raw_key(ds, rel), PutPayload::from(bytes.into()))
        .await
        .unwrap_or_else(|e| panic!("put {rel}: {e}"));
}

/// The bytes at `rel` under the dataset root (see [`raw_key`]), or `None` when there is none.
pub async fn try_get(ds: &Dataset, rel: &str) -> Option<Bytes> {
    use object_store::ObjectStoreExt;
    match ds.store.get(&raw_key(ds, rel)).await {
        Ok(r) => Some(r.bytes().await.expect("body")),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("get {rel}: {e}"),
    }
}

/// Paths of the objects under a dataset (excluding `_shardsync/`).
pub async fn paths(ds: &Dataset) -> Vec<String> {
    shardsync::listing::list_dataset(ds)
        .await
        .expect("list")
        .objects
        .into_iter()
        .map(|s| s.path)
        .collect()
}

/// What an [`InstrumentedStore`] saw and how it behaves.
#[derive(Debug, Default)]
pub struct Meter {
    /// `put <key>`, `delete <key>`, `multipart <key>`, `complete <key>`, `abort <key>`, in order.
    pub events: Mutex<Vec<String>>,
    /// Full-body GETs (not HEAD, not ranged) per key, shardsync's own files excluded.
    pub full_gets: Mutex<Vec<String>>,
    /// Ranged GETs (footer reads) per key.
    pub ranged_gets: Mutex<Vec<String>>,
    /// Bytes handed out by GET streams so far.
    pub bytes_read: AtomicU64,
    /// Of those, bytes of dataset objects (shardsync's own `_shardsync/` files excluded).
    pub shard_bytes_read: AtomicU64,
    /// Bytes of multipart parts whose upload finished.
    pub bytes_parts_done: AtomicU64,
    /// Bytes of multipart parts currently being uploaded, and the peak of that.
    pub parts_in_flight_bytes: AtomicU64,
    pub peak_parts_in_flight_bytes: AtomicU64,
    /// Peak of `bytes_read - bytes_parts_done`, sampled on every chunk read: what the copy
    /// engine holds between the source and the destination (single-object copies only).
    pub peak_buffered: AtomicU64,
    /// Full reads of a dataset manifest (found or not), and a wake-up for each.
    pub manifest_reads: AtomicU64,
    manifest_read: tokio::sync::Notify,
    /// Gated manifest writes reach the store one at a time.
    manifest_write: tokio::sync::Mutex<()>,
}

impl Meter {
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn event(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }

    fn sample_buffered(&self) {
        let held = self
            .bytes_read
            .load(Ordering::SeqCst)
            .saturating_sub(self.bytes_parts_done.load(Ordering::SeqCst));
        self.peak_buffered.fetch_max(held, Ordering::SeqCst);
    }
}

/// A wrapping store that records into a [`Meter`]; optionally refuses writes (a read-only
/// source), re-chunks GET bodies (as a network would deliver them) and slows multipart parts
/// (a far destination).
#[derive(Debug, Clone)]
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    pub meter: Arc<Meter>,
    read_only: bool,
    refuse_copies: bool,
    chunk: Option<usize>,
    part_delay: Duration,
    latency: Duration,
    manifest_gate: u64,
    rewrite: Option<Arc<OutOfBandRewrite>>,
}

/// An out-of-band writer that replaces an object right after a sync verified it: after the
/// first HEAD of it, or after the first listing that ends once it was written.
#[derive(Debug)]
struct OutOfBandRewrite {
    key: Path,
    bytes: Bytes,
    delay: Duration,
    /// Rewrite right after our PUT of it, before any verification.
    after_put: bool,
    written: std::sync::atomic::AtomicBool,
    done: std::sync::atomic::AtomicBool,
}

impl OutOfBandRewrite {
    /// The other writer records its bytes' SHA-256 in the metadata as shardsync does (where the
    /// store keeps metadata), so a HEAD shows a hash, just not ours.
    async fn rewrite_once(&self, inner: &dyn ObjectStore) {
        if !self.done.swap(true, Ordering::SeqCst) {
            tokio::time::sleep(self.delay).await;
            let mut attributes = object_store::Attributes::new();
            attributes.insert(
                object_store::Attribute::Metadata("sha256".into()),
                sha256(&self.bytes).into(),
            );
            let with_hash = PutOptions {
                attributes,
                ..Default::default()
            };
            let payload = PutPayload::from(self.bytes.clone());
            if inner
                .put_opts(&self.key, payload.clone(), with_hash)
                .await
                .is_err()
            {
                inner
                    .put_opts(&self.key, payload, PutOptions::default())
                    .await
                    .expect("out-of-band rewrite");
            }
        }
    }
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        InstrumentedStore {
            inner,
            meter: Arc::default(),
            read_only: false,
            refuse_copies: false,
            chunk: None,
            part_delay: Duration::ZERO,
            latency: Duration::ZERO,
            manifest_gate: 0,
            rewrite: None,
        }
    }

    /// Once `key` has been verified (its first HEAD answered, or the first listing that ends
    /// after it was written through this wrapper), wait `delay` and overwrite the object with
    /// `bytes`, behind the caller's back: another writer landing between a sync's verification
    /// of a shard and its commit. The HEAD or listing answered describes the old object.
    pub fn rewrite_after_verify(mut self, key: Path, bytes: impl Into<Bytes>, delay: Duration) -> Self {
        self.rewrite = Some(Arc::new(OutOfBandRewrite {
            key,
            bytes: bytes.into(),
            delay,
            after_put: false,
            written: Default::default(),
            done: Default::default(),
        }));
        self
    }

    /// Overwrite `key` with `bytes` right after the first PUT of it through this wrapper has
    /// been answered: another writer landing between a sync's PUT and its verification.
    pub fn rewrite_after_put(mut self, key: Path, bytes: impl Into<Bytes>) -> Self {
        self.rewrite = Some(Arc::new(OutOfBandRewrite {
            key,
            bytes: bytes.into(),
            delay: Duration::ZERO,
            after_put: true,
            written: Default::default(),
            done: Default::default(),
        }));
        self
    }

    /// Record into `meter` (shared with another wrapper: source and destination together).
    pub fn with_meter(mut self, meter: Arc<Meter>) -> Self {
        self.meter = meter;
        self
    }

    /// A store without server-side copies (as some S3-compatible servers are).
    pub fn refuse_copies(mut self) -> Self {
        self.refuse_copies = true;
        self
    }

    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub fn rechunk(mut self, bytes: usize) -> Self {
        self.chunk = Some(bytes);
        self
    }

    pub fn part_delay(mut self, d: Duration) -> Self {
        self.part_delay = d;
        self
    }

    /// Wait `d` before every read, write and delete (a store across a network: in-memory
    /// stores otherwise answer without ever yielding, so two tasks could not interleave).
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// Hold every manifest write until the manifest has been read `reads` times: with one read
    /// per sync, N syncs started together all see the destination as it was before any of them
    /// commits (a real overlap, however the scheduler runs them). Gives up after 20 s.
    pub fn gate_manifest_writes(mut self, reads: u64) -> Self {
        self.manifest_gate = reads;
        self
    }

    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// `ds` with its store replaced by `self` (same root, URL and backend kind); `self` should
    /// have been made over `ds.store`.
    pub fn wrap(self, ds: &Dataset) -> (Dataset, Arc<Meter>) {
        let meter = self.meter.clone();
        let mut wrapped = Dataset::from_store(Arc::new(self), ds.root.clone(), ds.url.clone(), ds.backend);
        // The same dataset, seen through the meter: where it lives is unchanged.
        wrapped.scope = ds.scope.clone();
        (wrapped, meter)
    }

    fn refuse(&self, location: &Path) -> object_store::Error {
        object_store::Error::PermissionDenied {
            path: location.to_string(),
            source: "read-only store (test)".into(),
        }
    }
}

fn is_manifest(location: &Path) -> bool {
    location.as_ref().ends_with("_shardsync/manifest.json")
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.read_only {
            return Err(self.refuse(location));
        }
        self.wait().await;
        if is_manifest(location) && self.manifest_gate > 0 {
            let gate = async {
                while self.meter.manifest_reads.load(Ordering::SeqCst) < self.manifest_gate {
                    let woken = self.meter.manifest_read.notified();
                    if self.meter.manifest_reads.load(Ordering::SeqCst) >= self.manifest_gate {
                        break;
                    }
                    woken.await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(20), gate).await;
            // Released together, the writes would reach the server in the same instant, and
            // s3s-fs checks If-None-Match / If-Match before it renames the new object into
            // place without a lock: two conditional PUTs at once can both succeed there (AWS S3
            // decides atomically). One at a time, each is checked against the other's result.
            let _one_at_a_time = self.meter.manifest_write.lock().await;
            let r = self.inner.put_opts(location, payload, opts).await;
            if r.is_ok() {
                self.meter.event(format!("put {location}"));
            }
            return r;
        }
        let r = self.inner.put_opts(location, payload, opts).await;
        if r.is_ok() {
            self.meter.event(format!("put {location}"));
            if let Some(w) = self.rewrite.as_ref().filter(|w| w.key == *location) {
                if w.after_put {
                    w.rewrite_once(self.inner.as_ref()).await;
                } else {
                    w.written.store(true, Ordering::SeqCst);
                }
            }
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if self.read_only {
            return Err(self.refuse(location));
        }
        self.wait().await;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        self.meter.event(format!("multipart {location}"));
        Ok(Box::new(MeteredUpload {
            upload,
            location: location.clone(),
            meter: self.meter.clone(),
            delay: self.part_delay.max(self.latency),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let (head, ranged) = (options.head, options.range.is_some());
        self.wait().await;
        let res = self.inner.get_opts(location, options).await;
        if !head && is_manifest(location) {
            self.meter.manifest_reads.fetch_add(1, Ordering::SeqCst);
            self.meter.manifest_read.notify_waiters();
        }
        let res = res?;
        if let Some(w) = self
            .rewrite
            .as_ref()
            .filter(|w| head && !w.after_put && w.key == *location)
        {
            w.rewrite_once(self.inner.as_ref()).await;
        }
        if ranged && !head {
            self.meter.ranged_gets.lock().unwrap().push(location.to_string());
        }
        if head {
            return Ok(res);
        }
        if !ranged && !location.as_ref().contains("_shardsync/") {
            self.meter.full_gets.lock().unwrap().push(location.to_string());
        }
        let (meta, range, attributes) = (res.meta.clone(), res.range.clone(), res.attributes.clone());
        let meter = self.meter.clone();
        let chunk = self.chunk;
        let of_dataset = !location.as_ref().contains("_shardsync/");
        let stream = res
            .into_stream()
            .flat_map(move |r| {
                let pieces: Vec<object_store::Result<Bytes>> = match (r, chunk) {
                    (Ok(mut b), Some(n)) => {
                        let mut v = Vec::new();
                        while !b.is_empty() {
                            v.push(Ok(b.split_to(n.min(b.len()))));
                        }
                        v
                    }
                    (r, _) => vec![r],
                };
                futures::stream::iter(pieces)
            })
            .inspect(move |r| {
                if let Ok(b) = r {
                    meter.bytes_read.fetch_add(b.len() as u64, Ordering::SeqCst);
                    if of_dataset {
                        meter.shard_bytes_read.fetch_add(b.len() as u64, Ordering::SeqCst);
                    }
                    meter.sample_buffered();
                }
            })
            .boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.meter.ranged_gets.lock().unwrap().push(location.to_string());
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if self.read_only {
            return locations
                .map(|p| {
                    p.and_then(|p| {
                        Err(object_store::Error::PermissionDenied {
                            path: p.to_string(),
                            source: "read-only store (test)".into(),
                        })
                    })
                })
                .boxed();
        }
        let meter = self.meter.clone();
        let latency = self.latency;
        let locations = locations
            .then(move |p| async move {
                tokio::time::sleep(latency).await;
                p
            })
            .boxed();
        self.inner
            .delete_stream(locations)
            .inspect(move |r| {
                if let Ok(p) = r {
                    meter.event(format!("delete {p}"));
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let listing = self.inner.list(prefix);
        match self
            .rewrite
            .clone()
            .filter(|w| !w.after_put && w.written.load(Ordering::SeqCst))
        {
            Some(w) => {
                let inner = self.inner.clone();
                let after = futures::stream::once(async move { w.rewrite_once(inner.as_ref()).await })
                    .filter_map(|()| async { None });
                listing.chain(after).boxed()
            }
            None => listing,
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        if self.read_only {
            return Err(self.refuse(to));
        }
        if self.refuse_copies {
            return Err(object_store::Error::NotImplemented {
                operation: "copy".into(),
                implementer: "test store".into(),
            });
        }
        self.meter.event(format!("copy {from} -> {to}"));
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct MeteredUpload {
    upload: Box<dyn MultipartUpload>,
    location: Path,
    meter: Arc<Meter>,
    delay: Duration,
}

#[async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let meter = self.meter.clone();
        let now = meter.parts_in_flight_bytes.fetch_add(len, Ordering::SeqCst) + len;
        meter.peak_parts_in_flight_bytes.fetch_max(now, Ordering::SeqCst);
        let put = self.upload.put_part(data);
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let r = put.await;
            meter.parts_in_flight_bytes.fetch_sub(len, Ordering::SeqCst);
            meter.bytes_parts_done.fetch_add(len, Ordering::SeqCst);
            r
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let r = self.upload.complete().await;
        if r.is_ok() {
            self.meter.event(format!("complete {}", self.location));
        }
        r
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.meter.event(format!("abort {}", self.location));
        self.upload.abort().await
    }
}

/// What a finished run of the binary left behind.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn command<I, S>(args: I) -> tokio::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardsync"));
    c.args(args)
        .env_remove("SHARDSYNC_JOBS")
        .env_remove("SHARDSYNC_LOG")
        // A store without keys asks the AWS chain; its last resort must not leave loopback.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Run the binary to completion (an in-process S3 server keeps serving meanwhile: this awaits);
/// a hang (e.g. on a FIFO) fails the test after 120 s.
pub async fn shardsync<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_command(command(args)).await
}

/// Run a prepared command (see [`command`]) to completion, with the same 120 s hang guard.
pub async fn run_command(mut c: tokio::process::Command) -> Run {
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), c.output())
        .await
        .expect("shardsync did not finish within 120 s")
        .expect("run shardsync");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every key under the dataset root, `_shardsync/` included.
pub async fn all_keys(ds: &Dataset) -> Vec<String> {
    use futures::TryStreamExt;
    let prefix = (!ds.root.as_ref().is_empty()).then_some(&ds.root);
    let mut keys: Vec<String> = ds
        .store
        .list(prefix)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

/// A sync that copies what it can: its outcome whether it finished (`Ok`) or left shards
/// behind (`Error::Incomplete`); any other error fails the test.
pub async fn sync_outcome(
    src: &Dataset,
    dst: &Dataset,
    opts: &shardsync::sync::SyncOptions,
) -> shardsync::sync::SyncOutcome {
    shardsync::sync::sync(src, dst, opts)
        .await
        .or_else(shardsync::Error::into_outcome)
        .unwrap_or_else(|e| panic!("sync {} -> {}: {e}", src.url, dst.url))
}

/// A sync that must end incomplete (shards failed or not copied): the library says so with
/// `Error::Incomplete`, whose outcome this returns.
pub async fn sync_incomplete(
    src: &Dataset,
    dst: &Dataset,
    opts: &shardsync::sync::SyncOptions,
) -> shardsync::sync::SyncOutcome {
    match shardsync::sync::sync(src, dst, opts).await {
        Err(shardsync::Error::Incomplete { outcome }) => *outcome,
        Ok(o) => panic!(
            "sync {} -> {} finished although it should not: {:?}",
            src.url, dst.url, o.report
        ),
        Err(e) => panic!("sync {} -> {}: {e}", src.url, dst.url),
    }
}

/// The destination holds exactly the source's objects (paths and bytes) and its committed
/// manifest names them with the source's hashes.
pub async fn assert_identical(src: &Dataset, dst: &Dataset, what: &str) {
    let (s, d) = (
        crate::backends::snapshot(src).await,
        crate::backends::snapshot(dst).await,
    );
    let names = |v: &[(String, bytes::Bytes)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&s), names(&d), "{what}: destination paths");
    assert!(s == d, "{what}: destination bytes differ from the source");
    let m = assert_manifest_holds(dst, what)
        .await
        .expect("destination manifest");
    let mut listed = Vec::new();
    for e in &m.shards {
        listed.push((e.path.clone(), sha256(&crate::backends::get(src, &e.path).await)));
    }
    let claimed: Vec<_> = m
        .shards
        .iter()
        .map(|e| (e.path.clone(), e.sha256.clone()))
        .collect();
    assert_eq!(claimed, listed, "{what}: destination manifest vs source bytes");
    assert_eq!(m.shards.len(), s.len(), "{what}: manifest entries");
}
