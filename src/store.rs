//! Store resolution: a dataset URL plus `KEY=VALUE` options become a [`Dataset`] — an
//! `Arc<dyn ObjectStore>` and the prefix inside it that is the dataset root.
//!
//! This is the only place that knows about backends. Everything downstream takes a `Dataset`
//! and works on paths relative to its root. Options are object_store config keys; the standard
//! `AWS_*` / `GOOGLE_*` / `AZURE_*` environment variables fill in whatever the options leave out.
//! The display form of a URL (`Dataset::url`) never includes credentials.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::error::{Error, Result};

/// Where shardsync keeps its own files inside a dataset. Nothing under it is a shard.
pub const META_DIR: &str = "_shardsync";
/// The manifest's key relative to the dataset root.
pub const MANIFEST_KEY: &str = "_shardsync/manifest.json";

/// Which backend a dataset lives on; decides capabilities we cannot probe cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Memory,
    Local,
    S3,
    Gcs,
    Azure,
}

impl Backend {
    /// Whether the backend stores user metadata (we keep each shard's SHA-256 there).
    pub fn supports_metadata(self) -> bool {
        !matches!(self, Backend::Local)
    }

    /// Whether `PutMode::Update` (compare-and-swap on the manifest) is implemented.
    pub fn supports_conditional_update(self) -> bool {
        !matches!(self, Backend::Local)
    }
}

/// A dataset root in an object store.
#[derive(Clone)]
pub struct Dataset {
    /// The store the dataset lives in.
    pub store: Arc<dyn ObjectStore>,
    /// The dataset root inside the store (may be empty).
    pub root: Path,
    /// The URL as given, with any credential removed: safe to print.
    pub url: String,
    /// The backend kind.
    pub backend: Backend,
    /// Where the dataset lives, to refuse syncs between nested datasets (`None`: unknown).
    pub scope: Option<crate::safety::Scope>,
    /// A twin of `store` whose PUTs carry a deliberately wrong SHA-256 request checksum, to ask
    /// the server whether it validates checksums (`None`: not an S3 server we need to ask).
    pub(crate) checksum_probe: Option<Arc<dyn ObjectStore>>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately not the store's Debug: some backends' Debug includes credentials.
        f.debug_struct("Dataset")
            .field("url", &self.url)
            .field("backend", &self.backend)
            .finish()
    }
}

/// Options for opening a dataset.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// `KEY=VALUE` pairs: object_store config keys for the URL's backend.
    pub options: Vec<(String, String)>,
    /// Accept a missing local directory as an empty dataset (destinations) instead of failing
    /// (sources). Nothing is created until something is written.
    pub create_local: bool,
}

impl Dataset {
    /// Resolve a URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///abs`, a plain path,
    /// `memory://name/prefix`) and options into a dataset.
    pub fn open(url: &str, opts: &OpenOptions) -> Result<Dataset> {
        let parsed = parse_url(url)?;
        let display = redact_url(&parsed);
        let scheme = parsed.scheme().to_string();
        let bad_opt = |key: &str, reason: &str| Error::InvalidOption {
            scheme: scheme.clone(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        let mut checksum_probe = None;
        let (store, backend, namespace): (Arc<dyn ObjectStore>, Backend, String) = match scheme.as_str() {
            "s3" | "s3a" => {
                let s3_builder = |client: object_store::ClientOptions, checksum: bool| {
                    let mut b = AmazonS3Builder::from_env()
                        .with_url(parsed.as_str())
                        .with_retry(retry_config())
                        .with_client_options(client);
                    if checksum {
                        b = b.with_config(AmazonS3ConfigKey::Checksum, "sha256");
                    }
                    b = with_default_timeouts(b, |b, k, v| {
                        b.with_config(AmazonS3ConfigKey::Client(k), v)
                    });
                    for (k, v) in &opts.options {
                        let key = AmazonS3ConfigKey::from_str(k)
                            .map_err(|_| bad_opt(k, "not an S3 option (see object_store's AmazonS3ConfigKey)"))?;
                        if checksum || key != AmazonS3ConfigKey::Checksum {
                            b = b.with_config(key, v);
                        }
                    }
                    Ok::<_, Error>(b)
                };
                let b = s3_builder(Default::default(), true)?;
                // AWS S3 validates request checksums (its documentation); other servers are asked.
                let custom_endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint).is_some();
                checksum_probe = if custom_endpoint {
                    s3_builder(crate::verify::wrong_checksum_client(), false)?
                        .build()
                        .ok()
                        .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                } else {
                    None
                };
                let namespace = format!(
                    "s3 {} {}",
                    b.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_default(),
                    b.get_config_value(&AmazonS3ConfigKey::Bucket).unwrap_or_default()
                );
                let store = b.build().map_err(|e| Error::InvalidUrl {
                    url: display.clone(),
                    reason: e.to_string(),
                })?;
                (Arc::new(store), Backend::S3, namespace)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_url(parsed.as_str())
                    .with_retry(retry_config());
                for (k, v) in &opts.options {
                    let key = GoogleConfigKey::from_str(k)
                        .map_err(|_| bad_opt(k, "not a GCS option (see object_store's GoogleConfigKey)"))?;
                    b = b.with_config(key, v);
                }
                let namespace = format!(
                    "gs {}",
                    b.get_config_value(&GoogleConfigKey::Bucket).unwrap_or_default()
                );
                let store = b.build().map_err(|e| Error::InvalidUrl {
                    url: display.clone(),
                    reason: e.to_string(),
                })?;
                (Arc::new(store), Backend::Gcs, namespace)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_url(parsed.as_str())
                    .with_retry(retry_config());
                for (k, v) in &opts.options {
                    let key = AzureConfigKey::from_str(k)
                        .map_err(|_| bad_opt(k, "not an Azure option (see object_store's AzureConfigKey)"))?;
                    b = b.with_config(key, v);
                }
                let namespace = format!(
                    "az {} {} {}",
                    b.get_config_value(&AzureConfigKey::Endpoint).unwrap_or_default(),
                    b.get_config_value(&AzureConfigKey::AccountName).unwrap_or_default(),
                    b.get_config_value(&AzureConfigKey::ContainerName).unwrap_or_default()
                );
                let store = b.build().map_err(|e| Error::InvalidUrl {
                    url: display.clone(),
                    reason: e.to_string(),
                })?;
                (Arc::new(store), Backend::Azure, namespace)
            }
            "file" => {
                if let Some((k, _)) = opts.options.first() {
                    return Err(bad_opt(k, "local folders take no options"));
                }
                let dir = parsed.to_file_path().map_err(|_| Error::InvalidUrl {
                    url: display.clone(),
                    reason: "not an absolute local path".into(),
                })?;
                // A missing destination folder is an empty dataset, created by the first write
                // (so `diff` and `--dry-run` leave no trace). A missing source is a typo.
                let mut base = dir.clone();
                let mut missing: Vec<String> = Vec::new();
                while !base.exists() {
                    if !opts.create_local {
                        return Err(Error::InvalidUrl {
                            url: display,
                            reason: "no such directory".into(),
                        });
                    }
                    let Some(name) = base.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                        break;
                    };
                    missing.push(name);
                    base.pop();
                }
                missing.reverse();
                let store = LocalFileSystem::new_with_prefix(&base)
                    .map_err(|e| Error::InvalidUrl {
                        url: display.clone(),
                        reason: e.to_string(),
                    })?
                    .with_automatic_cleanup(true);
                let store: Arc<dyn ObjectStore> = Arc::new(store);
                let root = Path::parse(missing.join("/")).map_err(|e| Error::InvalidUrl {
                    url: display.clone(),
                    reason: e.to_string(),
                })?;
                let scope = local_scope(&base, &root);
                return Ok(Dataset {
                    store,
                    root,
                    url: display,
                    backend: Backend::Local,
                    scope,
                    checksum_probe: None,
                });
            }
            "memory" => {
                if let Some((k, _)) = opts.options.first() {
                    return Err(bad_opt(k, "memory stores take no options"));
                }
                let name = parsed.host_str().unwrap_or("").to_string();
                (memory_store(&name), Backend::Memory, format!("memory {name}"))
            }
            other => {
                return Err(Error::InvalidUrl {
                    url: display,
                    reason: format!(
                        "unsupported scheme {other:?} (use s3://, gs://, az://, file://, memory:// or a local path)"
                    ),
                })
            }
        };
        let root = Path::from_url_path(parsed.path()).map_err(|e| Error::InvalidUrl {
            url: display.clone(),
            reason: e.to_string(),
        })?;
        let scope = Some(crate::safety::Scope::new(namespace, root.as_ref()));
        Ok(Dataset {
            store,
            root,
            url: display,
            backend,
            scope,
            checksum_probe,
        })
    }

    /// Wrap an existing store (a Rust pipeline's own, or a test's fault-injecting wrapper).
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        root: Path,
        url: impl Into<String>,
        backend: Backend,
    ) -> Dataset {
        Dataset {
            store,
            root,
            url: url.into(),
            backend,
            scope: None,
            checksum_probe: None,
        }
    }

    /// The store key of a path relative to the dataset root.
    ///
    /// Keys are taken verbatim (`Path::parse`): `Path::from` would percent-encode non-ASCII and
    /// characters like `%` or `#`, so `ünï.parquet` would land under a different name.
    pub fn key(&self, rel: &str) -> Path {
        let full = if self.root.as_ref().is_empty() {
            rel.to_string()
        } else {
            format!("{}/{}", self.root.as_ref(), rel)
        };
        // Paths are validated before they get here; the fallback only keeps this infallible.
        Path::parse(&full).unwrap_or_else(|_| Path::from(full.as_str()))
    }

    /// The path relative to the dataset root of a store key, if it is under the root.
    pub fn relative(&self, key: &Path) -> Option<String> {
        let root = self.root.as_ref();
        let k = key.as_ref();
        if root.is_empty() {
            return Some(k.to_string());
        }
        k.strip_prefix(root)?.strip_prefix('/').map(str::to_string)
    }

    /// The key of this dataset's manifest.
    pub fn manifest_key(&self) -> Path {
        self.key(MANIFEST_KEY)
    }
}

/// A local dataset's place on the filesystem: its folder with symlinks resolved (so two
/// spellings of one folder compare equal), then the parts that do not exist yet.
fn local_scope(base: &std::path::Path, root: &Path) -> Option<crate::safety::Scope> {
    let real = std::fs::canonicalize(base).ok()?;
    let mut full = real.to_string_lossy().into_owned();
    if !root.as_ref().is_empty() {
        full.push('/');
        full.push_str(root.as_ref());
    }
    Some(crate::safety::Scope::new("file", &full))
}

/// Parse a URL or a plain local path into a URL.
fn parse_url(s: &str) -> Result<url::Url> {
    let looks_like_url = s.contains("://");
    if looks_like_url {
        return url::Url::parse(s).map_err(|e| Error::InvalidUrl {
            url: redact_str(s),
            reason: e.to_string(),
        });
    }
    let p = std::path::Path::new(s);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })?
            .join(p)
    };
    let abs = normalize(&abs);
    url::Url::from_directory_path(&abs).map_err(|_| Error::InvalidUrl {
        url: s.to_string(),
        reason: "not a usable local path".into(),
    })
}

/// Lexically resolve `.` and `..` so `./data/../x` names `x` without touching the disk.
fn normalize(p: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A URL with user info and query removed (they can carry credentials).
fn redact_url(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    let s = u.to_string();
    s.strip_suffix('/').map(str::to_string).unwrap_or(s)
}

/// Best-effort redaction of a string that failed to parse as a URL.
fn redact_str(s: &str) -> String {
    let no_query = s.split(['?', '#']).next().unwrap_or(s);
    match (no_query.find("://"), no_query.rfind('@')) {
        (Some(i), Some(j)) if j > i => format!("{}://***@{}", &no_query[..i], &no_query[j + 1..]),
        _ => no_query.to_string(),
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: Duration::from_secs(120),
    }
}

/// Bounded connect time so an unreachable endpoint fails in seconds, not minutes.
fn with_default_timeouts<B>(b: B, set: impl Fn(B, object_store::ClientConfigKey, &str) -> B) -> B {
    let b = set(b, object_store::ClientConfigKey::ConnectTimeout, "5s");
    set(b, object_store::ClientConfigKey::PoolMaxIdlePerHost, "64")
}

/// `memory://name` stores live for the process, so a library user (or a test) can open the
/// same in-memory dataset twice by name.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let map = STORES.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

/// Parse `KEY=VALUE` option strings.
pub fn parse_options(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| Error::InvalidOption {
                    scheme: "any".into(),
                    key: s.split('=').next().unwrap_or("").chars().take(64).collect(),
                    reason: "expected KEY=VALUE".into(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_and_query() {
        let u = url::Url::parse("s3://AKIAXXXX:s3cr3t@bucket/prefix?token=abc").unwrap();
        let r = redact_url(&u);
        assert!(
            !r.contains("s3cr3t") && !r.contains("AKIA") && !r.contains("abc"),
            "{r}"
        );
        assert_eq!(r, "s3://bucket/prefix");
        assert!(!redact_str("s3://k:secret@b/x?q=1").contains("secret"));
    }

    #[test]
    fn unknown_scheme_and_option_are_errors() {
        let e = Dataset::open("ftp://host/x", &OpenOptions::default()).unwrap_err();
        assert!(e.to_string().contains("unsupported scheme \"ftp\""), "{e}");
        let e = Dataset::open(
            "s3://bucket/x",
            &OpenOptions {
                options: vec![("no_such_key".into(), "1".into())],
                create_local: false,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("no_such_key"), "{e}");
    }

    #[test]
    fn keys_are_relative_to_root() {
        let d = Dataset::open("memory://t/data/set", &OpenOptions::default()).unwrap();
        assert_eq!(d.key("a/b.parquet").as_ref(), "data/set/a/b.parquet");
        assert_eq!(
            d.relative(&Path::from("data/set/a/b.parquet")).as_deref(),
            Some("a/b.parquet")
        );
        assert_eq!(d.relative(&Path::from("data/settle/x")), None);
        assert_eq!(
            d.key("dir one/ünï #1.parquet").as_ref(),
            "data/set/dir one/ünï #1.parquet"
        );
    }
}
