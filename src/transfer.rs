//! The copy engine: stream one object from source to destination, hashing as it flows, and
//! land it only if its bytes are the ones planned.
//!
//! Objects up to the multipart threshold are gathered into one buffer and sent in one PUT
//! after the hash checks out — a mismatch means the PUT is never issued. Larger objects go
//! through a multipart upload whose parts are sent while the stream is still being read; the
//! upload is completed only after the hash checks out, and aborted otherwise. Memory per
//! object is bounded by the threshold or `(parts_in_flight + 1) × part_size`, whatever the
//! object's size, and all copies together by the [`MemoryBudget`].
//!
//! The threshold is separate from the part size because a multipart upload costs three or more
//! requests where a PUT costs one, and some servers (s3s-fs, MinIO on a single disk) copy every
//! byte again to assemble the parts: a 16 MiB shard is much cheaper as one PUT than as two parts.
//!
//! Transient failures (network, 5xx, throttling, a body cut mid-stream) are retried for the
//! whole object with backoff, after object_store's own per-request retries; permanent ones
//! (disk full, a name too long, a 4xx) are not (see `retry`).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, PutResult, WriteMultipart,
};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::events::Events;
use crate::hash::{Hashed, StreamHasher};
use crate::store::Dataset;

/// The user-metadata key under which the shard's SHA-256 is stored on the destination object.
pub const SHA256_METADATA_KEY: &str = "sha256";

/// Default for [`TransferOptions::memory`]: 256 MiB of buffered shard bytes.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 * 1024 * 1024;

/// Default for [`TransferOptions::part_size`].
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Default for [`TransferOptions::multipart_threshold`].
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// Default for [`TransferOptions::stripe_size`].
pub const DEFAULT_STRIPE_SIZE: usize = 4 * 1024 * 1024;

/// Default for [`TransferOptions::stripes`].
pub const DEFAULT_STRIPES: usize = 8;

/// Default for [`TransferOptions::parts_in_flight`].
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 8;

/// Knobs of the copy engine.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Multipart part size.
    pub part_size: usize,
    /// Objects up to this size go in one PUT (buffered whole); larger ones go multipart.
    pub multipart_threshold: usize,
    /// Parts of one object uploaded at once.
    pub parts_in_flight: usize,
    /// Objects larger than this are read as ranged GETs of this size, several at once: one TCP
    /// connection of a long link carries only its window per round trip, so one large shard
    /// over one connection is as slow as the link's round trip makes it.
    pub stripe_size: usize,
    /// Ranged GETs of one object in flight at once (1: one plain GET per object).
    pub stripes: usize,
    /// Attempts per object for transient failures.
    pub attempts: u32,
    /// First backoff between attempts; later ones grow (up to 3x, with jitter) to at most 30 s.
    pub backoff: Duration,
    /// Bytes all copies together may hold in memory; a copy reserves what it can buffer
    /// (its size, or `(parts_in_flight + 1) × part_size`) before it starts reading.
    pub memory: Arc<MemoryBudget>,
    /// When cancelled, copies stop reading: nothing unverified is written, a multipart upload
    /// in flight is aborted, and the copy ends with [`Error::Interrupted`].
    pub cancel: CancellationToken,
    /// The total rate all copies together may read the source at (`--bwlimit`); `None`: no
    /// limit. Shared: clones of these options draw on the same bucket.
    pub bandwidth: Option<Arc<crate::bandwidth::BandwidthLimit>>,
}

/// A shared budget of buffered bytes, so memory stays bounded whatever `-j` is.
#[derive(Debug)]
pub struct MemoryBudget {
    bytes: usize,
    sem: Semaphore,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one part's worth is always granted to a single copy).
    pub fn new(bytes: usize) -> Arc<MemoryBudget> {
        let bytes = bytes.clamp(1 << 20, u32::MAX as usize);
        Arc::new(MemoryBudget {
            bytes,
            sem: Semaphore::new(bytes),
        })
    }

    /// The budget's size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) async fn reserve(&self, want: usize) -> SemaphorePermit<'_> {
        let n = want.clamp(1, self.bytes) as u32;
        self.sem
            .acquire_many(n)
            .await
            .expect("budget semaphore is never closed")
    }
}

impl TransferOptions {
    /// The retry policy of one copy: [`TransferOptions::attempts`] and its backoff.
    pub fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            attempts: self.attempts,
            backoff: object_store::BackoffConfig {
                init_backoff: self.backoff,
                max_backoff: Duration::from_secs(30).max(self.backoff),
                base: 3.0,
            },
        }
    }

    /// Bytes one multipart copy may hold: the ranges read ahead (none with one stripe: a plain
    /// streamed GET), the part being filled, and the parts uploading.
    pub fn multipart_held(&self) -> usize {
        let read_ahead = if self.stripes > 1 {
            self.stripes * self.stripe_size
        } else {
            0
        };
        read_ahead + (self.parts_in_flight.max(1) + 1) * self.part_size
    }

    /// Bytes a copy of an object of `size` holds at most: the object itself when it goes in
    /// one PUT; otherwise [`TransferOptions::multipart_held`], but never more than the object,
    /// since every byte held (a range read ahead, a part filling or uploading) is a distinct
    /// byte of it.
    pub fn held_for(&self, size: u64) -> usize {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size <= self.single_put_limit() {
            size
        } else {
            self.multipart_held().min(size)
        }
    }

    /// These options with fewer stripes and parts in flight where the memory budget cannot hold
    /// them all for one copy. Settings whose smallest form (one plain GET, one part uploading and
    /// one filling) still exceeds the budget are refused: the budget is the bound on memory, so
    /// a part size must not get around it.
    pub fn fitted(&self) -> Result<TransferOptions> {
        let mut t = self.clone();
        t.stripes = t.stripes.max(1);
        t.parts_in_flight = t.parts_in_flight.max(1);
        let budget = self.memory.bytes();
        while t.multipart_held() > budget {
            if t.stripes > 1 && t.stripes >= t.parts_in_flight {
                t.stripes -= 1;
            } else if t.parts_in_flight > 1 {
                t.parts_in_flight -= 1;
            } else {
                let h = |n: usize| crate::display::human_bytes(n as u64);
                return Err(Error::InvalidSyncOptions {
                    reason: format!(
                        "a large shard holds at least two parts (one uploading, one filling): {} with \
                         parts of {}, more than the memory budget of {}; lower the part size or raise \
                         the budget",
                        h(t.multipart_held()),
                        h(t.part_size),
                        h(budget),
                    ),
                });
            }
        }
        Ok(t)
    }

    /// The largest object sent in one PUT: the threshold, but never more than the whole memory
    /// budget, since a one-PUT object is held whole.
    pub fn single_put_limit(&self) -> usize {
        self.multipart_threshold.min(self.memory.bytes())
    }
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            part_size: DEFAULT_PART_SIZE,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
            stripe_size: DEFAULT_STRIPE_SIZE,
            stripes: DEFAULT_STRIPES,
            attempts: 4,
            backoff: Duration::from_millis(200),
            memory: MemoryBudget::new(DEFAULT_MEMORY_BUDGET),
            cancel: CancellationToken::new(),
            bandwidth: None,
        }
    }
}

/// One object to copy.
#[derive(Debug, Clone)]
pub struct CopyJob {
    /// Path relative to both dataset roots.
    pub path: String,
    /// The size the plan expects.
    pub size: u64,
    /// The SHA-256 the plan expects; `None` when the source object is hashed during the copy.
    pub expected_sha256: Option<String>,
    /// The source ETag seen when listing: the read is pinned to it so a rewrite fails loudly.
    pub src_etag: Option<String>,
    /// The destination's proven hash for this path: when the streamed bytes hash to it, the
    /// destination already holds them and nothing is written. Honoured for one-PUT objects.
    pub unless_sha256: Option<String>,
}

/// What a successful copy proved.
#[derive(Debug)]
pub struct Copied {
    /// SHA-256 and size of the bytes read from the source.
    pub hashed: Hashed,
    /// Attempts made (1 when nothing was retried).
    pub attempts: u32,
    /// Whether anything was written (see [`CopyJob::unless_sha256`]).
    pub written: bool,
    /// The ETag the destination answered the PUT (or the multipart completion) with.
    pub e_tag: Option<String>,
}

/// Copy one object, retrying transient failures (a permanent one fails at once).
pub async fn copy_object(
    src: &Dataset,
    dst: &Dataset,
    job: &CopyJob,
    opts: &TransferOptions,
    progress: &Events,
) -> Result<Copied> {
    let opts = &opts.fitted()?;
    let mut attempts = 0;
    let (hashed, put) = crate::retry::retry(&opts.retry_policy(), &job.path, |n| {
        attempts = n;
        async move {
            let mut moved = 0u64;
            let r = copy_once(src, dst, job, opts, progress, &mut moved).await;
            if r.is_err() {
                progress.sub_bytes(moved);
            }
            r
        }
    })
    .await?;
    Ok(Copied {
        hashed,
        attempts,
        written: put.is_some(),
        e_tag: put.and_then(|p| p.e_tag),
    })
}

async fn copy_once(
    src: &Dataset,
    dst: &Dataset,
    job: &CopyJob,
    opts: &TransferOptions,
    progress: &Events,
    moved: &mut u64,
) -> Result<(Hashed, Option<PutResult>)> {
    let single_put = job.size <= opts.single_put_limit() as u64;
    let buffered = opts.held_for(job.size);
    let _reserved = opts
        .cancel
        .run_until_cancelled(opts.memory.reserve(buffered))
        .await
        .ok_or(Error::Interrupted)?;
    let mut read = Reading::open(src, job, opts, moved, progress).await?;
    // CRC64NVME request checksums where the server checks them: one SHA-256 pass per byte.
    let (store, _) = crate::verify::put_store(dst).await?;
    if single_put {
        put_whole(dst, &store, job, opts, &mut read, buffered).await
    } else {
        put_in_parts(dst, &store, job, opts, &mut read).await
    }
}

/// A source object being read: every chunk is hashed and counted as it passes.
pub(crate) struct Reading<'a> {
    stream: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    hasher: StreamHasher,
    moved: &'a mut u64,
    progress: &'a Events,
    bandwidth: Option<&'a crate::bandwidth::BandwidthLimit>,
}

impl<'a> Reading<'a> {
    /// Open the source object of `job` (see [`open_source`]); `moved` counts the bytes read.
    pub(crate) async fn open(
        src: &Dataset,
        job: &CopyJob,
        opts: &'a TransferOptions,
        moved: &'a mut u64,
        progress: &'a Events,
    ) -> Result<Reading<'a>> {
        Ok(Reading {
            stream: open_source(src, job, opts).await?,
            hasher: StreamHasher::new(),
            moved,
            progress,
            bandwidth: opts.bandwidth.as_deref(),
        })
    }

    /// The hash of every byte read so far.
    pub(crate) fn finish_hash(&mut self) -> Hashed {
        std::mem::take(&mut self.hasher).finish()
    }

    /// The next chunk, hashed and counted; `None` at the end.
    pub(crate) async fn next(&mut self, path: &str, cancel: &CancellationToken) -> Result<Option<Bytes>> {
        let Some(chunk) = next_chunk(&mut self.stream, cancel).await? else {
            return Ok(None);
        };
        let chunk = chunk.map_err(|e| source_read_error(path, e))?;
        if let Some(limit) = self.bandwidth {
            // Taken once the chunk is here: a stream not polled meanwhile holds the rest back.
            cancel
                .run_until_cancelled(limit.take(chunk.len() as u64))
                .await
                .ok_or(Error::Interrupted)?;
        }
        self.hasher.update(&chunk);
        *self.moved += chunk.len() as u64;
        self.progress.add_bytes(chunk.len() as u64);
        Ok(Some(chunk))
    }
}

/// GET the source object, conditional on the listed ETag, and check the listed size.
async fn open_source(
    src: &Dataset,
    job: &CopyJob,
    opts: &TransferOptions,
) -> Result<futures::stream::BoxStream<'static, object_store::Result<Bytes>>> {
    if opts.stripes > 1 && job.size > opts.stripe_size as u64 {
        return Ok(striped_source(src, job, opts));
    }
    let path = job.path.as_str();
    let get_opts = GetOptions {
        if_match: job.src_etag.clone().filter(|_| src.capabilities.conditional_get),
        ..Default::default()
    };
    let res = opts
        .cancel
        .run_until_cancelled(src.store.get_opts(&src.key(path), get_opts))
        .await
        .ok_or(Error::Interrupted)?
        .map_err(|e| source_read_error(path, e))?;
    if res.meta.size != job.size {
        return Err(Error::SourceChanged {
            path: path.to_string(),
        });
    }
    Ok(res.into_stream())
}

/// The object as ranged GETs of `stripe_size`, `stripes` of them in flight, yielded in order
/// (so the hash still runs over the bytes in order, once). Every range is pinned to the listed
/// ETag where the store allows it, and all ranges must come from one object (same size and
/// ETag): a source rewritten between two ranges fails as [`Error::SourceChanged`], never as a
/// blend of two versions. Memory: at most `stripes` ranges held, each `stripe_size`.
fn striped_source(
    src: &Dataset,
    job: &CopyJob,
    opts: &TransferOptions,
) -> futures::stream::BoxStream<'static, object_store::Result<Bytes>> {
    let (store, key) = (src.store.clone(), src.key(&job.path));
    let if_match = job.src_etag.clone().filter(|_| src.capabilities.conditional_get);
    let (size, stripe) = (job.size, opts.stripe_size as u64);
    let first_etag: Arc<std::sync::OnceLock<Option<String>>> = Arc::default();
    let ranges = (0..size.div_ceil(stripe)).map(move |i| i * stripe..((i + 1) * stripe).min(size));
    futures::stream::iter(ranges)
        .map(move |range| {
            let (store, key, first_etag) = (store.clone(), key.clone(), first_etag.clone());
            let get_opts = GetOptions {
                if_match: if_match.clone(),
                range: Some(range.clone().into()),
                ..Default::default()
            };
            async move {
                let res = store.get_opts(&key, get_opts).await?;
                let same_object = res.meta.size == size
                    && *first_etag.get_or_init(|| res.meta.e_tag.clone()) == res.meta.e_tag;
                if !same_object {
                    return Err(object_store::Error::Precondition {
                        path: key.to_string(),
                        source: "the object changed between two ranged reads".into(),
                    });
                }
                let bytes = res.bytes().await?;
                if bytes.len() as u64 != range.end - range.start {
                    return Err(object_store::Error::Generic {
                        store: "source",
                        source: format!("a ranged read of {range:?} returned {} bytes", bytes.len()).into(),
                    });
                }
                Ok(bytes)
            }
        })
        .buffered(opts.stripes)
        .boxed()
}

/// One PUT, issued only once every byte has been hashed and checked. The bytes go into one
/// buffer of exactly the reserved size (the object's), allocated once: what the budget
/// accounts for is what is held, and the PUT body is one contiguous slice.
async fn put_whole(
    dst: &Dataset,
    store: &Arc<dyn ObjectStore>,
    job: &CopyJob,
    opts: &TransferOptions,
    read: &mut Reading<'_>,
    buffered: usize,
) -> Result<(Hashed, Option<PutResult>)> {
    let path = job.path.as_str();
    let (hashed, body) = read_whole(job, opts, read, buffered).await?;
    if job.unless_sha256.as_ref() == Some(&hashed.sha256) {
        return Ok((hashed, None));
    }
    let put_opts = PutOptions {
        mode: PutMode::Overwrite,
        attributes: sha_attributes(dst, &hashed.sha256),
        ..Default::default()
    };
    let put = store
        .put_opts(&dst.key(path), body, put_opts)
        .await
        .map_err(|e| Error::store(path, "write", e))?;
    Ok((hashed, Some(put)))
}

/// Read a whole one-PUT object into one buffer of `buffered` bytes and check its size and
/// hash: nothing is sent before they check out.
pub(crate) async fn read_whole(
    job: &CopyJob,
    opts: &TransferOptions,
    read: &mut Reading<'_>,
    buffered: usize,
) -> Result<(Hashed, PutPayload)> {
    let path = job.path.as_str();
    let mut body = Body::new(buffered);
    while let Some(chunk) = read.next(path, &opts.cancel).await? {
        if body.len + chunk.len() > buffered {
            // Longer than listed: fail as the size check would, without growing the buffer.
            return Err(Error::SizeMismatch {
                path: path.to_string(),
                expected: job.size,
                actual: (body.len + chunk.len()) as u64,
            });
        }
        body.push(chunk);
    }
    let hashed = read.finish_hash();
    check(job, &hashed)?;
    Ok((hashed, body.into_payload()))
}

/// A one-PUT body as it arrives. Whole-object ranges (striped reads) are kept as they are, no
/// copy: they already are the body. Small chunks of a streamed GET are gathered into one buffer
/// of the reserved size, allocated once, so the PUT body is a few large slices, not thousands.
struct Body {
    parts: Vec<Bytes>,
    small: BytesMut,
    len: usize,
    capacity: usize,
}

impl Body {
    fn new(size: usize) -> Body {
        Body {
            parts: Vec::new(),
            small: BytesMut::new(),
            len: 0,
            capacity: size,
        }
    }

    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        if chunk.len() >= 1 << 20 {
            if !self.small.is_empty() {
                self.parts.push(self.small.split().freeze());
            }
            self.parts.push(chunk);
        } else {
            if self.small.capacity() == 0 {
                self.small.reserve(self.capacity - (self.len - chunk.len()));
            }
            self.small.extend_from_slice(&chunk);
        }
    }

    fn into_payload(mut self) -> PutPayload {
        if !self.small.is_empty() {
            self.parts.push(self.small.split().freeze());
        }
        self.parts.into_iter().collect()
    }
}

/// Multipart: parts flow while reading; completion waits for the hash, and an upload that
/// fails or does not match is aborted. The expected hash goes into the metadata up front when
/// known; otherwise nothing is claimed there.
async fn put_in_parts(
    dst: &Dataset,
    store: &Arc<dyn ObjectStore>,
    job: &CopyJob,
    opts: &TransferOptions,
    read: &mut Reading<'_>,
) -> Result<(Hashed, Option<PutResult>)> {
    let path = job.path.as_str();
    let attributes = match &job.expected_sha256 {
        Some(sha) => sha_attributes(dst, sha),
        None => Attributes::new(),
    };
    let upload = store
        .put_multipart_opts(
            &dst.key(path),
            PutMultipartOptions {
                attributes,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| Error::store(path, "start multipart upload", e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, opts.part_size);
    let streamed = stream_parts(&mut writer, job, opts, read).await;
    let hashed = read.finish_hash();
    // The parts still uploading are waited for here, where Ctrl-C can still abort the upload:
    // `finish` cannot be interrupted without leaving it behind.
    let settled = match streamed.and_then(|()| check(job, &hashed)) {
        Ok(()) => tokio::select! {
            r = writer.wait_for_capacity(0) => r.map_err(|e| Error::store(path, "upload part", e)),
            _ = opts.cancel.cancelled() => Err(Error::Interrupted),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = settled {
        let _ = writer.abort().await;
        return Err(e);
    }
    let put = writer
        .finish()
        .await
        .map_err(|e| Error::store(path, "complete multipart upload", e))?;
    Ok((hashed, Some(put)))
}

/// Feed the source into the upload. A store may hand over a chunk of many parts (the in-memory
/// one gives the whole object): it goes in a part at a time, so one `put` starts at most one
/// upload and no more than `parts_in_flight` parts are ever uploading.
async fn stream_parts(
    writer: &mut WriteMultipart,
    job: &CopyJob,
    opts: &TransferOptions,
    read: &mut Reading<'_>,
) -> Result<()> {
    let path = job.path.as_str();
    while let Some(mut chunk) = read.next(path, &opts.cancel).await? {
        while !chunk.is_empty() {
            let piece = chunk.split_to(chunk.len().min(opts.part_size));
            wait_for_room(writer, opts, path).await?;
            writer.put(piece);
        }
    }
    Ok(())
}

/// Wait until `writer` may take one more part (no more than `parts_in_flight` uploading):
/// [`Error::Interrupted`] on a cancel, the upload's failure as a store error.
pub(crate) async fn wait_for_room(
    writer: &mut WriteMultipart,
    opts: &TransferOptions,
    path: &str,
) -> Result<()> {
    tokio::select! {
        r = writer.wait_for_capacity(opts.parts_in_flight.max(1)) => {
            r.map_err(|e| Error::store(path, "upload part", e))
        }
        _ = opts.cancel.cancelled() => Err(Error::Interrupted),
    }
}

/// The next chunk of a source stream, or [`Error::Interrupted`] as soon as `cancel` fires.
pub(crate) async fn next_chunk<S: futures::Stream + Unpin>(
    stream: &mut S,
    cancel: &CancellationToken,
) -> Result<Option<S::Item>> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::Interrupted),
        c = stream.next() => Ok(c),
    }
}

/// The streamed bytes must be the planned size and hash.
pub(crate) fn check(job: &CopyJob, hashed: &Hashed) -> Result<()> {
    if hashed.size != job.size {
        return Err(Error::SizeMismatch {
            path: job.path.clone(),
            expected: job.size,
            actual: hashed.size,
        });
    }
    if let Some(expected) = &job.expected_sha256 {
        if &hashed.sha256 != expected {
            return Err(Error::HashMismatch {
                path: job.path.clone(),
                expected: expected.clone(),
                actual: hashed.sha256.clone(),
            });
        }
    }
    Ok(())
}

fn source_read_error(path: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::Precondition { .. } => Error::SourceChanged {
            path: path.to_string(),
        },
        e => Error::store(path, "read", e),
    }
}

/// The destination metadata that records the shard's hash, where the backend keeps metadata.
pub fn sha_attributes(dst: &Dataset, sha256: &str) -> Attributes {
    let mut a = Attributes::new();
    if dst.capabilities.user_metadata {
        a.insert(
            Attribute::Metadata(SHA256_METADATA_KEY.into()),
            AttributeValue::from(sha256.to_string()),
        );
    }
    a
}
