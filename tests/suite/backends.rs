//! The store factory the whole suite runs against: one test body, every backend.
//!
//! A scenario is written once as `async fn name(backend: Backend)`; `backend_tests!(name)` makes
//! one `#[tokio::test]` per backend of it, `name::memory`, `name::local`, `name::s3` (the
//! in-process s3s-fs server), `name::moto` and `name::azurite`, so a failure names its backend and
//! `cargo test --test suite -- ::s3` runs one backend. `Env::new`
//! prepares a fresh namespace on one of them; `env.url(name)` / `env.options()` give what a
//! user would type on the command line, and `env.open(name)` the library's `Dataset`.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use shardsync::{Dataset, OpenOptions};

use crate::common::s3::{self, S3Server};

/// One `#[tokio::test]` per backend for the scenario `async fn $scenario(backend: Backend)`, in a
/// module named after it: `backend_tests!(name)` for every backend, `backend_tests!(name: local,
/// s3)` for some (`memory`, `local`, `s3`, `moto`, `azurite`). Arguments for `#[tokio::test(..)]`
/// follow a `;`: `backend_tests!(name: s3; flavor = "multi_thread", worker_threads = 2)`.
macro_rules! backend_tests {
    (@backend memory) => { $crate::backends::Backend::Memory };
    (@backend local) => { $crate::backends::Backend::Local };
    (@backend s3) => { $crate::backends::Backend::S3 };
    (@backend moto) => { $crate::backends::Backend::Moto };
    (@backend azurite) => { $crate::backends::Backend::Azurite };
    (@test $scenario:ident [] $backend:ident) => {
        #[tokio::test]
        async fn $backend() {
            super::$scenario(backend_tests!(@backend $backend)).await
        }
    };
    (@test $scenario:ident [$($tokio:tt)+] $backend:ident) => {
        #[tokio::test($($tokio)+)]
        async fn $backend() {
            super::$scenario(backend_tests!(@backend $backend)).await
        }
    };
    ($scenario:ident $(; $($tokio:tt)+)?) => {
        backend_tests!($scenario: memory, local, s3, moto, azurite $(; $($tokio)+)?);
    };
    (@module $scenario:ident $tokio:tt $($backend:ident)+) => {
        mod $scenario {
            $(backend_tests!(@test $scenario $tokio $backend);)+
        }
    };
    ($scenario:ident : $($backend:ident),+ $(,)? $(; $($tokio:tt)+)?) => {
        backend_tests!(@module $scenario [$($($tokio)+)?] $($backend)+);
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Local,
    /// The in-process s3s-fs server.
    S3,
    /// moto's server (a Python process shared by the tests; a bucket per test).
    Moto,
    /// Azurite, Azure Blob Storage's emulator (a Node process shared by the tests; a container
    /// per test), reached through its endpoint with the account key, as a real account is.
    Azurite,
}

impl Backend {
    pub fn all() -> [Backend; 5] {
        [
            Backend::Memory,
            Backend::Local,
            Backend::S3,
            Backend::Moto,
            Backend::Azurite,
        ]
    }

    /// Whether datasets live on an S3 server (s3s-fs or moto).
    pub fn is_s3(self) -> bool {
        matches!(self, Backend::S3 | Backend::Moto)
    }
}

/// A fresh place to put datasets on one backend.
pub struct Env {
    pub backend: Backend,
    pub server: Option<S3Server>,
    pub tmp: tempfile::TempDir,
    /// Unique per Env, so memory:// namespaces never collide between tests.
    ns: String,
}

pub const BUCKET: &str = "data";

impl Env {
    pub async fn new(backend: Backend) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ns = format!("t{:016x}", rand::random::<u64>());
        let server = if backend == Backend::S3 {
            let s = s3::start().await;
            s.create_bucket(BUCKET);
            Some(s)
        } else {
            None
        };
        let env = Env {
            backend,
            server,
            tmp,
            ns,
        };
        let bucket = env.bucket();
        let create: Option<fn(&str)> = match backend {
            Backend::Moto => Some(crate::common::moto::create_bucket),
            Backend::Azurite => Some(crate::common::azurite::create_container),
            _ => None,
        };
        if let Some(create) = create {
            tokio::task::spawn_blocking(move || create(&bucket))
                .await
                .expect("create the test's bucket");
        }
        env
    }

    /// The URL of dataset `name` (a prefix in the bucket, a sub-folder, a memory prefix).
    pub fn url(&self, name: &str) -> String {
        match self.backend {
            Backend::Memory => format!("memory://{}/{name}", self.ns),
            Backend::Local => self.tmp.path().join(name).display().to_string(),
            Backend::S3 => format!("s3://{BUCKET}/{name}"),
            Backend::Moto => format!("s3://{}/{name}", self.bucket()),
            Backend::Azurite => format!("az://{}/{name}", self.bucket()),
        }
    }

    /// `KEY=VALUE` store options for this backend (empty for memory and local folders).
    pub fn options(&self) -> Vec<(String, String)> {
        match self.backend {
            Backend::Moto => return crate::common::moto::store_options(),
            Backend::Azurite => return crate::common::azurite::store_options(),
            _ => {}
        }
        self.server
            .as_ref()
            .map(|s| s.store_options())
            .unwrap_or_default()
    }

    /// This test's bucket on the shared moto server, or its container on the shared Azurite
    /// (lowercase letters, digits and '-', as container names must be).
    pub fn bucket(&self) -> String {
        match self.backend {
            Backend::Azurite => format!("az-{}", self.ns),
            Backend::S3 => BUCKET.to_string(),
            _ => format!("moto-{}", self.ns),
        }
    }

    /// Options as command-line arguments with the given flag (`--opt`, `--src-opt`, `--dst-opt`).
    pub fn cli_options(&self, flag: &str) -> Vec<String> {
        self.options()
            .into_iter()
            .flat_map(|(k, v)| [flag.to_string(), format!("{k}={v}")])
            .collect()
    }

    /// Open dataset `name` (local folders are created).
    pub fn open(&self, name: &str) -> Dataset {
        Dataset::open(
            &self.url(name),
            &OpenOptions {
                options: self.options(),
                create_local: true,
            },
        )
        .expect("open dataset")
    }
}

/// Put `bytes` at `rel` under the dataset root.
pub async fn put(ds: &Dataset, rel: &str, bytes: impl Into<Bytes>) {
    ds.store
        .put(&ds.key(rel), PutPayload::from(bytes.into()))
        .await
        .unwrap_or_else(|e| panic!("put {rel}: {e}"));
}

/// Read `rel` under the dataset root.
pub async fn get(ds: &Dataset, rel: &str) -> Bytes {
    ds.store
        .get(&ds.key(rel))
        .await
        .unwrap_or_else(|e| panic!("get {rel}: {e}"))
        .bytes()
        .await
        .expect("body")
}

/// Delete `rel` under the dataset root.
pub async fn delete(ds: &Dataset, rel: &str) {
    ds.store.delete(&ds.key(rel)).await.expect("delete");
}

/// Write a demo dataset (`n` Parquet shards of `rows` rows + `dataset_info.json`) into `ds`.
/// Returns the shard paths.
pub async fn write_demo(ds: &Dataset, n: usize, rows: usize, seed: u64) -> Vec<String> {
    let mut paths = Vec::new();
    for i in 0..n {
        let bytes = shardsync::demo::shard_bytes(i, rows, seed).expect("shard bytes");
        let p = shardsync::demo::shard_name(i);
        put(ds, &p, bytes).await;
        paths.push(p);
    }
    put(ds, "dataset_info.json", &b"{\"name\": \"test\"}"[..]).await;
    paths
}

/// Every object (path, bytes) under the dataset root except `_shardsync/`, sorted.
pub async fn snapshot(ds: &Dataset) -> Vec<(String, Bytes)> {
    let listing = shardsync::listing::list_dataset(ds).await.expect("list").objects;
    let mut out = Vec::new();
    for s in listing {
        out.push((s.path.clone(), get(ds, &s.path).await));
    }
    out
}

/// The raw store of a dataset, for tests that go around shardsync.
pub fn raw(ds: &Dataset) -> (Arc<dyn ObjectStore>, Path) {
    (ds.store.clone(), ds.root.clone())
}
