//! Store resolution: a dataset URL plus `KEY=VALUE` options become a [`Dataset`] — an
//! `Arc<dyn ObjectStore>` and the prefix inside it that is the dataset root.
//!
//! This is the only place that knows about backends. Everything downstream takes a `Dataset`
//! and works on paths relative to its root. Options are object_store config keys; the standard
//! `AWS_*` / `GOOGLE_*` / `AZURE_*` environment variables fill in whatever the options leave out;
//! S3 stores without static keys get their credentials from `aws_credentials` (profiles).
//! The display form of a URL (`Dataset::url`) never includes credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{Error, Result};
pub use crate::store_options::parse_options_from;
// TODO(after the test-macro merge): tests still name these here; the layout module owns them.
#[doc(hidden)]
pub use crate::layout::{MANIFEST_KEY, META_DIR};
use crate::store_options::{bad_value, builder_reason, resolve, Origin, Setting};
use crate::store_url::{parse_url, ParsedUrl};

/// Which backend a dataset lives on; decides capabilities we cannot probe cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Backend {
    /// In memory (tests).
    Memory,
    /// A local folder.
    Local,
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// What a dataset's store can do, as data on the [`Dataset`]: the engine asks these, never the
/// backend kind. Set once when the dataset is opened, from what each backend is known to do;
/// what differs between servers of one kind (whether conditional writes are enforced, whether
/// request checksums are validated) is probed per sync instead and shows in its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Objects keep user metadata (each shard's SHA-256 is stored there).
    pub user_metadata: bool,
    /// An existing object can be replaced conditionally on its version (`PutMode::Update`);
    /// without it the commit compares versions itself under the folder's atomic rename.
    pub conditional_update: bool,
    /// A GET can be made conditional on the listed ETag (`If-Match`).
    pub conditional_get: bool,
    /// How conditional writes are protected when that is known without asking the server
    /// (`None`: probe it).
    pub known_protection: Option<crate::commit::CommitProtection>,
}

impl Capabilities {
    /// What a backend of this kind is known to do.
    pub fn of(backend: Backend) -> Capabilities {
        use crate::commit::CommitProtection;
        let local = backend == Backend::Local;
        Capabilities {
            user_metadata: !local,
            conditional_update: !local,
            conditional_get: backend != Backend::Memory,
            known_protection: match backend {
                Backend::Local => Some(CommitProtection::Emulated),
                Backend::Memory => Some(CommitProtection::Enforced),
                _ => None,
            },
        }
    }
}

/// Capabilities only a request to the server can tell, found once per [`Dataset`].
#[derive(Debug, Default)]
pub(crate) struct Probed {
    /// Whether the server refuses a PUT whose SHA-256 request checksum does not match.
    pub(crate) validates_checksums: tokio::sync::OnceCell<bool>,
    /// Whether shard PUTs go through [`Dataset::crc_puts`] (the server refuses a wrong CRC64NVME).
    pub(crate) validates_crc64nvme: tokio::sync::OnceCell<bool>,
    /// The compact manifest body each head version read or written here names, so the commit
    /// that replaces a head can delete its body.
    pub(crate) bodies:
        std::sync::Mutex<std::collections::HashMap<String, crate::manifest::compact::StoredBody>>,
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
    /// What the store can do (see [`Capabilities`]).
    pub capabilities: Capabilities,
    /// Where the dataset lives, to refuse syncs between nested datasets (`None`: unknown).
    pub scope: Option<crate::safety::Scope>,
    /// Manifests of at least this many entries are stored compact: a small JSON head and a
    /// Parquet body ([`crate::manifest::compact`]). Smaller ones stay one readable JSON
    /// document. Defaults to [`crate::manifest::COMPACT_FROM_DEFAULT`], or the environment's
    /// `SHARDSYNC_COMPACT_MANIFEST_FROM`; `0` stores every manifest compact.
    pub compact_manifest_from: usize,
    /// A twin of `store` whose PUTs carry a deliberately wrong SHA-256 request checksum, to ask
    /// the server whether it validates checksums (`None`: not an S3 server we need to ask).
    pub(crate) checksum_probe: Option<Arc<dyn ObjectStore>>,
    /// What the probes found about the store, each asked once per dataset (clones share it).
    pub(crate) probed: Arc<Probed>,
    /// The same store as `store` for local folders: what their listings left out (symlinks,
    /// special files, staging leftovers) is read from it.
    pub(crate) local: Option<crate::local::LocalFolder>,
    /// Raw S3 requests object_store does not make (S3 datasets opened from a URL only).
    pub(crate) s3_control: Option<Arc<crate::s3_control::S3Control>>,
    /// The store again with CRC64NVME request checksums over unsigned payloads, for shard PUTs
    /// where the server checks them (S3 without a user-chosen checksum only).
    pub(crate) crc_puts: Option<Arc<crate::verify::CrcPuts>>,
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
    /// `KEY=VALUE` pairs: object_store config keys for the URL's backend; for S3 also
    /// `profile=NAME`, the AWS profile to take credentials, region and endpoint from.
    pub options: Vec<(String, String)>,
    /// Accept a missing local directory as an empty dataset (destinations) instead of failing
    /// (sources). Nothing is created until something is written.
    pub create_local: bool,
}

impl Dataset {
    /// Resolve a URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///abs`, a plain path,
    /// `memory://name/prefix`) and options into a dataset.
    pub fn open(url: &str, opts: &OpenOptions) -> Result<Dataset> {
        let ParsedUrl { url: parsed, display } = parse_url(url)?;
        let no_options = |what: &str| match opts.options.first() {
            Some((k, _)) => Err(Error::InvalidOption {
                scheme: parsed.scheme().to_string(),
                key: k.to_string(),
                reason: format!("{what} take no options"),
            }),
            None => Ok(()),
        };
        let opened = match parsed.scheme() {
            "s3" | "s3a" => open_s3(&parsed, &display, opts)?,
            "gs" => open_gcs(&parsed, &display, opts)?,
            "az" | "azure" | "abfs" | "abfss" => open_azure(&parsed, &display, opts)?,
            "file" => {
                no_options("local folders")?;
                return open_local(&parsed, display, opts);
            }
            "memory" => {
                no_options("memory stores")?;
                let name = parsed.host_str().unwrap_or("").to_string();
                Opened::plain(memory_store(&name), Backend::Memory, format!("memory {name}"))
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
        let scope = Some(crate::safety::Scope::new(opened.namespace, root.as_ref()));
        let backend = opened.backend;
        Ok(Dataset {
            store: opened.store,
            root,
            url: display,
            backend,
            capabilities: Capabilities::of(backend),
            scope,
            checksum_probe: opened.checksum_probe,
            probed: Arc::default(),
            compact_manifest_from: crate::manifest::compact::compact_from_env(),
            local: None,
            s3_control: opened.s3_control,
            crc_puts: opened.crc_puts,
        })
    }

    /// Which dataset this is, as a destination manifest records its source
    /// ([`crate::manifest::CopiedFrom`]): the store namespace (backend, endpoint, bucket) and
    /// root where known, else the URL it was opened under; a local folder also names its host,
    /// since `/data/x` on two machines are two datasets. Never holds a credential.
    pub fn identity(&self) -> String {
        let id = match &self.scope {
            Some(s) => format!("{} /{}", s.namespace, s.segments.join("/")),
            None => format!("url {}", self.url),
        };
        match self.backend {
            Backend::Local => format!("{id} on {}", crate::lock::hostname()),
            _ => id,
        }
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
            capabilities: Capabilities::of(backend),
            scope: None,
            checksum_probe: None,
            probed: Arc::default(),
            compact_manifest_from: crate::manifest::compact::compact_from_env(),
            local: None,
            s3_control: None,
            crc_puts: None,
        }
    }

    /// Follow symlinks when listing this dataset (a local folder; other backends have none).
    /// Off by default: a source's symlinks are skipped with a warning naming each. Writes and
    /// deletes never go through a symlink either way.
    pub fn with_follow_symlinks(mut self, follow: bool) -> Result<Dataset> {
        if let Some(folder) = &self.local {
            let folder = folder
                .with_follow_symlinks(follow)
                .map_err(|e| Error::InvalidUrl {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
            self.store = Arc::new(folder.clone());
            self.local = Some(folder);
        }
        Ok(self)
    }

    /// Name this dataset's side in its store errors: they then read "`{side} {url}`: read
    /// manifest failed: …" (`side` e.g. "source", "destination" or "dataset"). Call it last:
    /// [`Dataset::with_follow_symlinks`] replaces the store.
    pub fn with_side(mut self, side: &str) -> Dataset {
        let label = format!("{side} {}", self.url);
        self.store = crate::store_errors::Labelled::wrap(self.store, &label);
        self.checksum_probe = self
            .checksum_probe
            .map(|p| crate::store_errors::Labelled::wrap(p, &label));
        self.crc_puts = self.crc_puts.map(|c| {
            Arc::new(crate::verify::CrcPuts {
                store: crate::store_errors::Labelled::wrap(c.store.clone(), &label),
                probe: crate::store_errors::Labelled::wrap(c.probe.clone(), &label),
            })
        });
        self
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

/// The client options `s3_builder` gives the store (the `Client` keys in the same order,
/// around the same defaults), for the raw S3 client.
fn s3_client_options(settings: &[&Setting<AmazonS3ConfigKey>]) -> ClientOptions {
    let client_key = |o: ClientOptions, k: AmazonS3ConfigKey, v: &str| match k {
        AmazonS3ConfigKey::Client(c) => o.with_config(c, v),
        _ => o,
    };
    let o = apply(ClientOptions::new(), settings, false, client_key);
    let o = with_default_timeouts(o, |o, k, v| o.with_config(k, v));
    apply(o, settings, true, client_key)
}
/// A store opened from a URL, before its root is known.
struct Opened {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    /// Where datasets in it live (see [`crate::safety::Scope`]).
    namespace: String,
    checksum_probe: Option<Arc<dyn ObjectStore>>,
    s3_control: Option<Arc<crate::s3_control::S3Control>>,
    crc_puts: Option<Arc<crate::verify::CrcPuts>>,
}

impl Opened {
    fn plain(store: Arc<dyn ObjectStore>, backend: Backend, namespace: String) -> Opened {
        Opened {
            store,
            backend,
            namespace,
            checksum_probe: None,
            s3_control: None,
            crc_puts: None,
        }
    }
}

/// An S3 store: options over the environment, the AWS credential chain when no static keys
/// are given, the checksum-probe twin for servers other than AWS, and the raw-request client.
fn open_s3(parsed: &url::Url, display: &str, opts: &OpenOptions) -> Result<Opened> {
    let (profile, options) = crate::aws_credentials::take_profile(&opts.options);
    let mut settings = resolve("s3", "AWS_", &[], &options, s3_group, S3_UNKNOWN)?;
    // No static keys: the aws CLI's chain (profiles, credential_process, SSO, …).
    let credentials = crate::aws_credentials::provider_for(display, profile, &mut settings)?;
    let s3_builder = |subset: &[&Setting<AmazonS3ConfigKey>], client, checksum: bool| {
        let mut b = AmazonS3Builder::new().with_client_options(client);
        if let Some(c) = &credentials {
            b = b.with_credentials(c.clone());
        }
        let mut b = apply(b, subset, false, |b, k, v| b.with_config(k, v))
            .with_url(parsed.as_str())
            .with_retry(retry_config());
        if checksum {
            b = b.with_config(AmazonS3ConfigKey::Checksum, "sha256");
        }
        b = with_default_timeouts(b, |b, k, v| b.with_config(AmazonS3ConfigKey::Client(k), v));
        apply(b, subset, true, |b, k, v| {
            if checksum || k != AmazonS3ConfigKey::Checksum {
                b.with_config(k, v)
            } else {
                b
            }
        })
    };
    let all: Vec<&Setting<AmazonS3ConfigKey>> = settings.iter().collect();
    let b = s3_builder(&all, Default::default(), true);
    let endpoint = b
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint));
    // AWS S3 validates request checksums (its documentation); other servers are asked.
    let checksum_probe = if endpoint.is_some() {
        s3_builder(&all, crate::verify::wrong_checksum_client(), false)
            .build()
            .ok()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
    } else {
        None
    };
    let namespace = format!(
        "s3 {} {}",
        endpoint.unwrap_or_default(),
        b.get_config_value(&AmazonS3ConfigKey::Bucket).unwrap_or_default()
    );
    let store = build_naming_culprit("s3", display, &settings, |subset| {
        s3_builder(subset, Default::default(), true).build()
    })?;
    let crc_puts = crc_puts_for(&settings, |client| s3_builder(&all, client, false));
    let s3_control = crate::s3_control::S3Control::for_store(
        &b,
        parsed.host_str().unwrap_or_default(),
        &s3_client_options(&all),
        &store,
    )
    .map(Arc::new);
    Ok(Opened {
        store: Arc::new(store),
        backend: Backend::S3,
        namespace,
        checksum_probe,
        s3_control,
        crc_puts,
    })
}

/// The CRC64NVME twin of an S3 store and its probe (see [`crate::verify::CrcPuts`]), unless
/// the user chose a request checksum or payload signing themselves.
fn crc_puts_for(
    settings: &[Setting<AmazonS3ConfigKey>],
    builder: impl Fn(object_store::ClientOptions) -> AmazonS3Builder,
) -> Option<Arc<crate::verify::CrcPuts>> {
    let chosen = settings.iter().any(|s| {
        matches!(
            s.key,
            AmazonS3ConfigKey::Checksum | AmazonS3ConfigKey::UnsignedPayload
        )
    });
    if chosen {
        return None;
    }
    let twin = |client, checksum: Option<&str>| {
        let b = builder(client).with_config(AmazonS3ConfigKey::UnsignedPayload, "true");
        let b = match checksum {
            Some(c) => b.with_config(AmazonS3ConfigKey::Checksum, c),
            None => b,
        };
        b.build().ok().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
    };
    let store = twin(Default::default(), Some("crc64nvme"))?;
    let probe = twin(crate::verify::wrong_crc64nvme_client(), None)?;
    Some(Arc::new(crate::verify::CrcPuts { store, probe }))
}

/// A GCS store.
fn open_gcs(parsed: &url::Url, display: &str, opts: &OpenOptions) -> Result<Opened> {
    let extra = [("SERVICE_ACCOUNT", GoogleConfigKey::ServiceAccount)];
    let settings = resolve("gs", "GOOGLE_", &extra, &opts.options, gcs_group, GCS_UNKNOWN)?;
    let gs_builder = |subset: &[&Setting<GoogleConfigKey>]| {
        let b = apply(GoogleCloudStorageBuilder::new(), subset, false, |b, k, v| {
            b.with_config(k, v)
        })
        .with_url(parsed.as_str())
        .with_retry(retry_config());
        apply(b, subset, true, |b, k, v| b.with_config(k, v))
    };
    let b = gs_builder(&settings.iter().collect::<Vec<_>>());
    let namespace = format!(
        "gs {}",
        b.get_config_value(&GoogleConfigKey::Bucket).unwrap_or_default()
    );
    let store = build_naming_culprit("gs", display, &settings, |subset| gs_builder(subset).build())?;
    Ok(Opened::plain(Arc::new(store), Backend::Gcs, namespace))
}

/// An Azure Blob store.
fn open_azure(parsed: &url::Url, display: &str, opts: &OpenOptions) -> Result<Opened> {
    let extra = [("MSI_ENDPOINT", AzureConfigKey::MsiEndpoint)];
    let settings = resolve("az", "AZURE_", &extra, &opts.options, azure_group, AZURE_UNKNOWN)?;
    refuse_ignored_azure_endpoint(&settings)?;
    let az_builder = |subset: &[&Setting<AzureConfigKey>]| {
        let b = apply(MicrosoftAzureBuilder::new(), subset, false, |b, k, v| {
            b.with_config(k, v)
        })
        .with_url(parsed.as_str())
        .with_retry(retry_config());
        apply(b, subset, true, |b, k, v| b.with_config(k, v))
    };
    let b = az_builder(&settings.iter().collect::<Vec<_>>());
    let namespace = format!(
        "az {} {} {}",
        b.get_config_value(&AzureConfigKey::Endpoint).unwrap_or_default(),
        b.get_config_value(&AzureConfigKey::AccountName)
            .unwrap_or_default(),
        b.get_config_value(&AzureConfigKey::ContainerName)
            .unwrap_or_default()
    );
    let store = build_naming_culprit("az", display, &settings, |subset| az_builder(subset).build())?;
    Ok(Opened::plain(Arc::new(store), Backend::Azure, namespace))
}

/// object_store's Azure builder with `use_emulator=true` takes the emulator's address only from
/// `AZURITE_BLOB_STORAGE_URL` and drops an `endpoint`: refuse the pair instead of syncing with
/// another server than the one named.
fn refuse_ignored_azure_endpoint(settings: &[Setting<AzureConfigKey>]) -> Result<()> {
    let of = |key| settings.iter().rev().find(|s| s.key == key);
    let emulator = of(AzureConfigKey::UseEmulator).is_some_and(|s| {
        // object_store's own reading of a boolean.
        matches!(
            s.value.to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes" | "y"
        )
    });
    match of(AzureConfigKey::Endpoint) {
        Some(endpoint) if emulator => Err(bad_value(
            "az",
            endpoint,
            "use_emulator=true would ignore it (the emulator's address then comes from \
             AZURITE_BLOB_STORAGE_URL only); to reach an emulator at this endpoint drop \
             use_emulator and give endpoint=http://HOST:PORT/devstoreaccount1, \
             account_name=devstoreaccount1, access_key=KEY and allow_http=true",
        )),
        _ => Ok(()),
    }
}

/// A local folder. A missing destination folder is an empty dataset, created by the first
/// write (so `diff` and `--dry-run` leave no trace); a missing source is a typo.
fn open_local(parsed: &url::Url, display: String, opts: &OpenOptions) -> Result<Dataset> {
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
    let folder = crate::local::LocalFolder::new(&base, false).map_err(|e| Error::InvalidUrl {
        url: display.clone(),
        reason: e.to_string(),
    })?;
    let store: Arc<dyn ObjectStore> = Arc::new(folder.clone());
    let root = Path::parse(missing.join("/")).map_err(|e| Error::InvalidUrl {
        url: display.clone(),
        reason: e.to_string(),
    })?;
    let scope = local_scope(&base, &root);
    Ok(Dataset {
        store,
        root,
        url: display,
        backend: Backend::Local,
        capabilities: Capabilities::of(Backend::Local),
        scope,
        checksum_probe: None,
        probed: Arc::default(),
        compact_manifest_from: crate::manifest::compact::compact_from_env(),
        local: Some(folder),
        s3_control: None,
        crc_puts: None,
    })
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

/// Parse `KEY=VALUE` option strings (see [`parse_options_from`], which names the flag).
pub fn parse_options(raw: &[String]) -> Result<Vec<(String, String)>> {
    parse_options_from("store option", raw)
}

const S3_UNKNOWN: &str = "not an S3 option (see object_store's AmazonS3ConfigKey)";
const GCS_UNKNOWN: &str = "not a GCS option (see object_store's GoogleConfigKey)";
const AZURE_UNKNOWN: &str = "not an Azure option (see object_store's AzureConfigKey)";

/// Keys that configure the same thing: an explicit one displaces the environment's others.
fn s3_group(k: &AmazonS3ConfigKey) -> Option<u8> {
    use AmazonS3ConfigKey as K;
    match k {
        K::Endpoint | K::S3Endpoint => Some(1),
        K::Region | K::DefaultRegion => Some(2),
        K::AccessKeyId | K::SecretAccessKey | K::Token => Some(3),
        _ => None,
    }
}

fn gcs_group(k: &GoogleConfigKey) -> Option<u8> {
    use GoogleConfigKey as K;
    matches!(
        k,
        K::ServiceAccount | K::ServiceAccountKey | K::ApplicationCredentials
    )
    .then_some(1)
}

fn azure_group(k: &AzureConfigKey) -> Option<u8> {
    use AzureConfigKey as K;
    match k {
        K::AccessKey | K::SasKey | K::Token | K::ClientId | K::ClientSecret => Some(1),
        K::Endpoint | K::UseEmulator | K::UseFabricEndpoint => Some(2),
        _ => None,
    }
}

/// Apply the environment's settings (`explicit == false`) or the options' to a builder.
fn apply<B, K: Copy>(b: B, settings: &[&Setting<K>], explicit: bool, set: impl Fn(B, K, &str) -> B) -> B {
    settings
        .iter()
        .filter(|s| (s.origin == Origin::Option) == explicit)
        .fold(b, |b, s| set(b, s.key, &s.value))
}

/// Build with every setting; when that fails, find the one setting without which it builds and
/// name it (object_store's errors name the value, not the option).
fn build_naming_culprit<K: AsRef<str>, S>(
    scheme: &str,
    display: &str,
    settings: &[Setting<K>],
    build: impl Fn(&[&Setting<K>]) -> object_store::Result<S>,
) -> Result<S> {
    let all: Vec<&Setting<K>> = settings.iter().collect();
    let e = match build(&all) {
        Ok(store) => return Ok(store),
        Err(e) => e,
    };
    let reason = builder_reason(&e);
    for skip in 0..settings.len() {
        let without: Vec<&Setting<K>> = (0..settings.len())
            .filter(|&i| i != skip)
            .map(|i| &settings[i])
            .collect();
        if build(&without).is_ok() {
            return Err(bad_value(scheme, &settings[skip], &reason));
        }
    }
    Err(Error::InvalidUrl {
        url: display.to_string(),
        reason: crate::error::redact_secrets(&reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_s3(url: &str, options: &[(&str, &str)]) -> Result<Dataset> {
        let options = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Dataset::open(
            url,
            &OpenOptions {
                options,
                create_local: false,
            },
        )
    }

    #[test]
    fn the_root_is_the_prefix_as_typed() {
        let d = open_s3("s3://bucket/runs/exp#3/100%25", &[("region", "us-east-1")]).unwrap();
        assert_eq!(d.root.as_ref(), "runs/exp#3/100%25");
        assert_eq!(d.url, "s3://bucket/runs/exp#3/100%25");
        assert_eq!(d.key("a#b.parquet").as_ref(), "runs/exp#3/100%25/a#b.parquet");
    }

    #[test]
    fn malformed_option_values_name_the_option_and_hide_secrets() {
        for (k, v) in [
            ("allow_http", "maybe"),
            ("endpoint", "localhost:9000"),
            ("timeout", "soon"),
            ("checksum_algorithm", "md5"),
        ] {
            let e = open_s3("s3://bucket/x", &[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
        let e = open_s3("s3://AKIAXXXX:s3cr3t@bucket/prefix", &[])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t") && !e.contains("AKIAXXXX"), "{e}");
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
