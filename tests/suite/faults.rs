//! A fault-injecting `ObjectStore` for the robustness tests, in the style of object_store's
//! `src/throttle.rs`: it wraps any store, delegates every method, and on the data path —
//! `get_opts`, `put_opts`, `put_multipart_opts` and the parts of a multipart upload — injects
//! the failures its [`Schedule`] asks for: requests answered with an error (what a 500 or a
//! 503 SlowDown becomes after object_store's own retries), GET bodies cut after a number of
//! bytes (a connection reset mid-body), slow answers, and a hook run before a GET (to pause a
//! sync at a known point, or to rewrite the object under it).
//!
//! Faults apply only to keys that contain one of [`Schedule::matching`] and never to
//! `_shardsync/` (manifests, probes): the tests aim at shard traffic, which shardsync itself
//! retries; a HEAD (a `get_opts` with `head: true`) is never faulted.
//!
//! Every injected fault is counted, so a test can assert its faults really happened.

#![allow(dead_code)]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// What to inject. Counters count down as faults are injected.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Key substrings that faults apply to (e.g. `".parquet"`). Empty: no key is faulted.
    pub matching: Vec<String>,
    /// Fail this many matching GETs before any byte, as a server error would.
    pub fail_gets: usize,
    /// Cut this many matching GET bodies after `cut_after` bytes.
    pub cut_bodies: usize,
    pub cut_after: usize,
    /// Fail this many matching single-request PUTs.
    pub fail_puts: usize,
    /// Fail this many parts of matching multipart uploads.
    pub fail_parts: usize,
    /// Delay every matching GET by this much (a slow server).
    pub get_delay: Duration,
    /// Keys containing any of these fail every GET: a fault that does not go away.
    pub always_fail_gets: Vec<String>,
    /// The store fills up: after this many matching writes (PUTs and multipart parts) succeed,
    /// every further one fails with the I/O error a full disk gives (`StorageFull`).
    pub full_after_writes: Option<usize>,
}

/// Runs before a matching GET is sent to the inner store; gets the key.
pub type Hook = Arc<dyn Fn(Path) -> BoxFuture<'static, ()> + Send + Sync>;

struct Shared {
    schedule: Mutex<Schedule>,
    injected: AtomicUsize,
}

impl Shared {
    fn matches(&self, location: &Path) -> bool {
        let key = location.as_ref();
        if key.starts_with("_shardsync/") || key.contains("/_shardsync/") {
            return false;
        }
        let s = self.schedule.lock().unwrap();
        s.matching.iter().any(|m| key.contains(m.as_str()))
    }

    /// Take one unit of the counter chosen by `pick`, if any is left.
    fn take(&self, pick: impl FnOnce(&mut Schedule) -> &mut usize) -> bool {
        let mut s = self.schedule.lock().unwrap();
        let n = pick(&mut s);
        if *n == 0 {
            return false;
        }
        *n -= 1;
        true
    }

    /// Whether the store is full (see [`Schedule::full_after_writes`]); counts a write if not.
    fn full(&self) -> bool {
        let mut s = self.schedule.lock().unwrap();
        match &mut s.full_after_writes {
            None => false,
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
        }
    }

    fn storage_full(&self, location: &Path) -> object_store::Error {
        self.injected.fetch_add(1, Ordering::SeqCst);
        let io = std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("No space left on device (os error 28), writing {location}"),
        );
        object_store::Error::Generic {
            store: "FaultStore",
            source: Box::new(io),
        }
    }

    fn fault(&self, what: &str, location: &Path) -> object_store::Error {
        self.injected.fetch_add(1, Ordering::SeqCst);
        object_store::Error::Generic {
            store: "FaultStore",
            source: format!("injected fault: {what} for {location} (503 SlowDown)").into(),
        }
    }
}

/// The wrapper. Build with [`FaultStore::new`], then share it as an `Arc<dyn ObjectStore>`.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
    before_get: Mutex<Option<Hook>>,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>, schedule: Schedule) -> Arc<FaultStore> {
        Arc::new(FaultStore {
            inner,
            shared: Arc::new(Shared {
                schedule: Mutex::new(schedule),
                injected: AtomicUsize::new(0),
            }),
            before_get: Mutex::new(None),
        })
    }

    /// Run `hook` before every matching GET (it may wait, or touch the inner store).
    pub fn set_before_get(&self, hook: Hook) {
        *self.before_get.lock().unwrap() = Some(hook);
    }

    /// Change the schedule (e.g. end a persistent fault).
    pub fn schedule_mut(&self, f: impl FnOnce(&mut Schedule)) {
        f(&mut self.shared.schedule.lock().unwrap());
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultStore")
            .field("inner", &self.inner)
            .field("injected", &self.injected())
            .finish()
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for FaultStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if self.shared.matches(location) && self.shared.take(|s| &mut s.fail_puts) {
            return Err(self.shared.fault("PUT", location));
        }
        if self.shared.matches(location) && self.shared.full() {
            return Err(self.shared.storage_full(location));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        if !self.shared.matches(location) {
            return Ok(upload);
        }
        Ok(Box::new(FaultUpload {
            upload,
            location: location.clone(),
            shared: self.shared.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head || !self.shared.matches(location) {
            return self.inner.get_opts(location, options).await;
        }
        let hook = self.before_get.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook(location.clone()).await;
        }
        let (delay, always) = {
            let s = self.shared.schedule.lock().unwrap();
            let key = location.as_ref();
            (
                s.get_delay,
                s.always_fail_gets.iter().any(|p| key.contains(p.as_str())),
            )
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if always || self.shared.take(|s| &mut s.fail_gets) {
            return Err(self.shared.fault("GET", location));
        }
        let res = self.inner.get_opts(location, options).await?;
        let cut_after = self.shared.schedule.lock().unwrap().cut_after;
        if !self.shared.take(|s| &mut s.cut_bodies) {
            return Ok(res);
        }
        let GetResult {
            payload,
            meta,
            range,
            attributes,
            extensions,
        } = res;
        // `into_stream` reads a local file payload too; only the payload matters to it.
        let body = GetResult {
            payload,
            meta: meta.clone(),
            range: range.clone(),
            attributes: attributes.clone(),
            extensions: Default::default(),
        }
        .into_stream();
        Ok(GetResult {
            payload: GetResultPayload::Stream(cut(body, cut_after, location.clone(), self.shared.clone())),
            meta,
            range,
            attributes,
            extensions,
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// Pass `after` bytes of `body`, then end it with an error, as a reset connection does.
fn cut(
    body: BoxStream<'static, Result<Bytes>>,
    after: usize,
    location: Path,
    shared: Arc<Shared>,
) -> BoxStream<'static, Result<Bytes>> {
    enum State {
        Passing(BoxStream<'static, Result<Bytes>>, usize),
        Failing,
        Done,
    }
    futures::stream::unfold(State::Passing(body, after), move |state| {
        let (location, shared) = (location.clone(), shared.clone());
        async move {
            match state {
                State::Done => None,
                State::Failing => Some((Err(shared.fault("body cut", &location)), State::Done)),
                State::Passing(mut body, left) => match body.next().await {
                    None => None,
                    Some(Err(e)) => Some((Err(e), State::Done)),
                    Some(Ok(chunk)) if chunk.len() < left => {
                        Some((Ok(chunk.clone()), State::Passing(body, left - chunk.len())))
                    }
                    Some(Ok(_)) if left == 0 => Some((Err(shared.fault("body cut", &location)), State::Done)),
                    Some(Ok(chunk)) => Some((Ok(chunk.slice(..left)), State::Failing)),
                },
            }
        }
    })
    .boxed()
}

#[derive(Debug)]
struct FaultUpload {
    upload: Box<dyn MultipartUpload>,
    location: Path,
    shared: Arc<Shared>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if self.shared.take(|s| &mut s.fail_parts) {
            let err = self.shared.fault("upload part", &self.location);
            return Box::pin(async move { Err(err) });
        }
        if self.shared.full() {
            let err = self.shared.storage_full(&self.location);
            return Box::pin(async move { Err(err) });
        }
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.upload.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}

/// A TCP relay in front of a server (the in-process S3 server) for tests that drive the
/// binary, where no wrapper store can reach: it forwards both ways and, the first time the
/// bytes a client sends contain `pattern` (e.g. `GET /data/a/train/part-00000.parquet`),
/// holds that request until [`PausingRelay::release`] is notified.
pub struct PausingRelay {
    pub addr: std::net::SocketAddr,
    /// Notified once, when the pattern is first seen (the request is then on hold).
    pub reached: Arc<tokio::sync::Notify>,
    /// Notify to let the held request through.
    pub release: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl PausingRelay {
    pub async fn start(upstream: std::net::SocketAddr, pattern: &str) -> PausingRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let reached = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let gate = Arc::new(Gate {
            pattern: pattern.as_bytes().to_vec(),
            triggered: std::sync::atomic::AtomicBool::new(false),
            reached: reached.clone(),
            release: release.clone(),
        });
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                while conns.try_join_next().is_some() {}
                conns.spawn(relay_one(client, upstream, gate.clone()));
            }
        });
        PausingRelay {
            addr,
            reached,
            release,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for PausingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Gate {
    pattern: Vec<u8>,
    triggered: std::sync::atomic::AtomicBool,
    reached: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

async fn relay_one(client: tokio::net::TcpStream, upstream: std::net::SocketAddr, gate: Arc<Gate>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut window: Vec<u8> = Vec::new();
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !gate.triggered.load(Ordering::SeqCst) {
            // The pattern may straddle two reads: look at the tail of the last one too.
            let keep = window.len().min(gate.pattern.len());
            window.drain(..window.len() - keep);
            window.extend_from_slice(&buf[..n]);
            let seen = window
                .windows(gate.pattern.len())
                .any(|w| w == gate.pattern.as_slice());
            if seen && !gate.triggered.swap(true, Ordering::SeqCst) {
                gate.reached.notify_one();
                gate.release.notified().await;
            }
        }
        if sw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = sw.shutdown().await;
    let _ = down.await;
}
