//! A real S3 server inside the test process: s3s-fs over a fresh temp dir, SigV4 auth,
//! HTTP/1 and HTTP/2 on `127.0.0.1:<random port>`.
//!
//! ```ignore
//! mod common;
//! let srv = common::s3::start().await;
//! srv.create_bucket("src");
//! let store = srv.client("src");              // Arc<dyn ObjectStore>
//! let opts = srv.store_options();             // Vec<(String, String)> for AmazonS3Builder
//! ```
//!
//! Buckets are directories under `root`; objects are files under them (s3s-fs keeps its
//! ETag/checksum/user-metadata sidecars elsewhere in the root, so do not assume the bucket
//! directory holds only object files).
//!
//! Needs a running tokio runtime (any flavour) for `start` and `restart`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::ObjectStore;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// A running in-process S3 server. Dropping it stops the server and deletes its data.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// The s3s-fs root: every directory directly under it is a bucket.
    pub root: PathBuf,
    /// The bound address; stays the same across `stop`/`restart`.
    pub addr: SocketAddr,
    service: S3Service,
    task: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// Starts a server on a fresh temp dir and a free port on 127.0.0.1.
pub async fn start() -> S3Server {
    let dir = tempfile::tempdir().expect("create temp dir for s3s-fs root");
    let root = dir.path().to_path_buf();

    let access_key = format!("AKTEST{:014X}", rand::random::<u64>() >> 8);
    let secret_key = format!("sk{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());

    let fs = s3s_fs::FileSystem::new(&root).expect("s3s_fs::FileSystem::new");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key.clone(), secret_key.clone()));
    let service = builder.build();

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    let task = tokio::spawn(accept_loop(listener, service.clone()));

    S3Server {
        endpoint: format!("http://{addr}"),
        access_key,
        secret_key,
        root,
        addr,
        service,
        task: Some(task),
        _dir: dir,
    }
}

/// Accepts connections until aborted. Connection tasks live in a `JoinSet` owned by this
/// future, so aborting it also drops every open connection (like a server crash).
async fn accept_loop(listener: TcpListener, service: S3Service) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
        let (sock, _peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // e.g. EMFILE: back off a little instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn = http
            .serve_connection(TokioIo::new(sock), service.clone())
            .into_owned();
        conns.spawn(async move {
            let _ = conn.await;
        });
    }
}

impl S3Server {
    /// Creates a bucket (for s3s-fs, a directory under `root`). Idempotent.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).expect("create bucket directory");
    }

    /// `s3://BUCKET` or `s3://BUCKET/PREFIX` (prefix without leading slash).
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        }
    }

    /// object_store `AmazonS3ConfigKey` names and values that reach this server:
    /// endpoint, access_key_id, secret_access_key, region, allow_http, virtual_hosted_style_request.
    /// The bucket is not included.
    pub fn store_options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", self.endpoint.as_str()),
            ("access_key_id", self.access_key.as_str()),
            ("secret_access_key", self.secret_key.as_str()),
            ("region", "us-east-1"),
            ("allow_http", "true"),
            ("virtual_hosted_style_request", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A builder for `bucket` configured from `store_options()`, for tests that need to add
    /// more settings (checksum algorithm, retry config, ...) before `build()`.
    pub fn builder(&self, bucket: &str) -> AmazonS3Builder {
        self.store_options()
            .into_iter()
            .fold(AmazonS3Builder::new(), |b, (k, v)| {
                let key: AmazonS3ConfigKey = k.parse().expect("valid AmazonS3ConfigKey");
                b.with_config(key, v)
            })
            .with_bucket_name(bucket)
    }

    /// An object_store client for `bucket` (path-style, plain HTTP, default retries).
    pub fn client(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(self.builder(bucket).build().expect("build AmazonS3"))
    }

    /// Like `client`, plus extra config as (AmazonS3ConfigKey name, value) pairs,
    /// e.g. `[("aws_checksum_algorithm", "sha256")]`.
    pub fn client_with(&self, bucket: &str, extra: &[(&str, &str)]) -> Arc<dyn ObjectStore> {
        let b = extra.iter().fold(self.builder(bucket), |b, (k, v)| {
            let key: AmazonS3ConfigKey = k.parse().expect("valid AmazonS3ConfigKey");
            b.with_config(key, *v)
        });
        Arc::new(b.build().expect("build AmazonS3"))
    }

    /// What s3s-fs 0.14.1 recorded about an object besides its bytes: the JSON sidecar
    /// `ROOT/.bucket-<b64url(bucket)>.object-<b64url(key)>.internal.json`, e.g.
    /// `{"e_tag": "...", "checksum_sha256": "<base64>"}`. `None` if there is none.
    /// (An s3s-fs internal, pinned by the `=0.14.1` dev-dependency.)
    pub fn internal_info(&self, bucket: &str, key: &str) -> Option<serde_json::Value> {
        let name = format!(
            ".bucket-{}.object-{}.internal.json",
            base64(bucket.as_bytes(), URL_SAFE, false),
            base64(key.as_bytes(), URL_SAFE, false)
        );
        let text = std::fs::read_to_string(self.root.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The `x-amz-checksum-sha256` (standard base64) that s3s-fs validated and stored for
    /// an object, if the client sent one on PutObject. s3s-fs stores none for multipart
    /// uploads, whatever the client sent on UploadPart.
    pub fn stored_checksum_sha256(&self, bucket: &str, key: &str) -> Option<String> {
        self.internal_info(bucket, key)?
            .get("checksum_sha256")?
            .as_str()
            .map(str::to_string)
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Stops the server: closes the listening socket and drops every open connection.
    /// Data under `root` is kept. Idempotent.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Wait until the listener and the connections are really dropped.
            let _ = task.await;
        }
    }

    /// Starts serving again on the same address, with the same data and credentials.
    /// No-op if already running. Retries the bind for up to ~2 s.
    pub async fn restart(&mut self) {
        if self.task.is_some() {
            return;
        }
        let mut last_err = None;
        for _ in 0..100 {
            match bind_reuse(self.addr) {
                Ok(listener) => {
                    self.task = Some(tokio::spawn(accept_loop(listener, self.service.clone())));
                    return;
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
        panic!("restart: cannot bind {}: {:?}", self.addr, last_err);
    }
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 with the given alphabet (no base64 crate among the dependencies).
fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Standard padded base64, the encoding of `x-amz-checksum-sha256` values.
pub fn base64_std(bytes: &[u8]) -> String {
    base64(bytes, STANDARD, true)
}

fn bind_reuse(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(1024)
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
