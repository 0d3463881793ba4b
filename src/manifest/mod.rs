//! The manifest: the document that names a dataset version.
//!
//! Stored as one JSON document (`_shardsync/manifest.json`, format v1) for datasets below
//! [`Dataset::compact_manifest_from`] entries, where a person can read it; above, as a small
//! JSON head in the same place and a Parquet body beside it ([`compact`]). Either reads back as
//! the same [`Manifest`]; v1 documents written by any version still read.
//!
//! It lists every object under the dataset root (except `_shardsync/`) with its size and
//! SHA-256; Parquet shards also carry rows, row groups and a schema fingerprint. `mtime` and
//! `etag` are the store's stat at hashing time — a cache key for "must I re-hash this object",
//! never a statement about equality. `digest` is the SHA-256 of the sorted `path\tsize\tsha256\n`
//! lines: one string a training run can log to say which data it saw.
//!
//! Everything read from outside (a manifest file, a listing) is validated here before any
//! other code sees it: hostile paths, bad hashes, absurd sizes and duplicates are refused by name.

pub mod build;
pub mod compact;

pub use build::{build_manifest, BuildOptions, BuildOutcome};
pub use compact::{COMPACT_FROM_DEFAULT, FORMAT_COMPACT};

use chrono::{DateTime, Utc};
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::layout::MANIFEST_KEY;
use crate::store::Dataset;

/// The format tag of manifest v1.
pub const FORMAT: &str = "shardsync.manifest/v1";
/// S3's largest object; anything above it in a manifest is not a real object.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// A manifest larger than this is refused before it is read (about 3M entries).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest accepted shard path, in bytes (S3's key limit).
pub const MAX_PATH_BYTES: usize = 1024;

/// One object of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    /// Path relative to the dataset root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// The store's last-modified time when the object was hashed (cache key only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<DateTime<Utc>>,
    /// The store's ETag when the object was hashed (cache key only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Parquet row count (absent for non-Parquet objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Parquet row-group count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_groups: Option<u64>,
    /// Fingerprint of the Arrow schema (`sha256:` + 16 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Why a `.parquet` object has no rows, row groups or schema: its footer did not decode
    /// (encrypted, truncated, corrupt, not Parquet). The bytes are synced and verified all the
    /// same; `--strict-parquet` makes such a shard fatal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parquet_error: Option<String>,
}

impl ShardEntry {
    /// True when the content (size and hash) is the same; stat fields are ignored.
    pub fn same_content(&self, other: &ShardEntry) -> bool {
        self.size == other.size && self.sha256 == other.sha256
    }

    /// Whether this entry is a Parquet shard (as opposed to a sidecar file).
    pub fn is_parquet(&self) -> bool {
        is_parquet_path(&self.path)
    }

    /// Record what a footer read found: its facts, or (as `parquet_error`) why there are none.
    pub fn set_footer(&mut self, footer: std::result::Result<crate::hash::ParquetFacts, String>) {
        match footer {
            Ok(f) => {
                self.rows = Some(f.rows);
                self.row_groups = Some(f.row_groups);
                self.schema = Some(f.schema);
                self.parquet_error = None;
            }
            Err(reason) => {
                self.rows = None;
                self.row_groups = None;
                self.schema = None;
                self.parquet_error = Some(reason);
            }
        }
    }
}

/// Dataset totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Parquet shards.
    pub shards: u64,
    /// All objects (shards and sidecar files).
    pub files: u64,
    /// Bytes over all objects.
    pub bytes: u64,
    /// Rows over all Parquet shards.
    pub rows: u64,
}

/// A dataset version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The dataset's URL (credentials removed) when the manifest was built.
    pub dataset: String,
    /// When this manifest was built.
    pub created_at: DateTime<Utc>,
    /// `shardsync <version>`.
    pub generator: String,
    /// SHA-256 over the sorted `(path, size, sha256)` triples.
    pub digest: String,
    /// Files, bytes and rows in all.
    pub totals: Totals,
    /// Entries sorted by path.
    pub shards: Vec<ShardEntry>,
    /// On a destination: the source stat each entry was copied (or proven) from, so the next
    /// sync recognises unchanged source objects from a listing alone, even when the source's
    /// own manifest is gone (a producer's `sync --delete` removes `_shardsync/`). A cache key
    /// like `mtime`/`etag`, never a statement about content; absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<CopiedFrom>,
    /// The filter of the sync that wrote this manifest (`--include`, `--exclude`, size
    /// limits): the manifest describes that view of the dataset only. Absent when unfiltered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::filter::FilterSpec>,
}

/// Where a destination's entries came from: the source dataset and its objects' stats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedFrom {
    /// The source dataset's identity (its store namespace and root), not a URL to open.
    pub source: String,
    /// The source stat of each entry, sorted by path.
    pub stats: Vec<SourceStat>,
}

/// One source object's stat when its bytes were hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStat {
    /// Path relative to the dataset root.
    pub path: String,
    /// The source's last-modified time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<DateTime<Utc>>,
    /// The source's ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl CopiedFrom {
    /// The entry `path` had at the source, when the source is `source` and its stat then was
    /// `stat`'s: the destination entry with the source's stat. `None` otherwise.
    pub fn source_entry(
        &self,
        source: &str,
        dst_entry: &ShardEntry,
        stat: &crate::listing::ObjectStat,
    ) -> Option<ShardEntry> {
        if self.source != source {
            return None;
        }
        let i = self.stats.binary_search_by(|s| s.path.cmp(&stat.path)).ok()?;
        let mut e = dst_entry.clone();
        e.mtime = self.stats[i].mtime;
        e.etag = self.stats[i].etag.clone();
        build::entry_matches_stat(&e, stat).then_some(e)
    }
}

impl Manifest {
    /// Build a manifest from entries: sorts them, computes totals and digest.
    pub fn new(dataset: impl Into<String>, mut shards: Vec<ShardEntry>) -> Result<Manifest> {
        shards.sort_by(|a, b| a.path.cmp(&b.path));
        check_entries(&shards, "new manifest")?;
        let mut m = Manifest {
            format: FORMAT.to_string(),
            dataset: dataset.into(),
            created_at: Utc::now(),
            generator: format!("shardsync {}", env!("CARGO_PKG_VERSION")),
            digest: String::new(),
            totals: Totals::default(),
            shards,
            copied_from: None,
            filter: None,
        };
        m.recompute();
        Ok(m)
    }

    /// Recompute totals and digest from the entries.
    fn recompute(&mut self) {
        self.digest = digest_of(&self.shards);
        self.totals = totals_of(&self.shards);
    }

    /// Look up an entry by path (entries are sorted).
    pub fn get(&self, path: &str) -> Option<&ShardEntry> {
        self.shards
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.shards[i])
    }

    /// Entries whose Parquet footer did not decode (they carry a `parquet_error`).
    pub fn parquet_errors(&self) -> impl Iterator<Item = &ShardEntry> {
        self.shards.iter().filter(|e| e.parquet_error.is_some())
    }

    /// Parse and validate a manifest document. `location` names it in errors.
    pub fn from_json(bytes: &[u8], location: &str) -> Result<Manifest> {
        let invalid = |reason: String| Error::InvalidManifest {
            location: location.to_string(),
            reason,
        };
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(invalid(format!("larger than {MAX_MANIFEST_BYTES} bytes")));
        }
        // One parse on the happy path. When it fails, a probe of the format tag alone says
        // whether this is another format (or not JSON at all) before blaming a field.
        let mut m: Manifest = match serde_json::from_slice(bytes) {
            Ok(m) => m,
            Err(e) => {
                #[derive(Deserialize)]
                struct Probe {
                    format: Option<serde_json::Value>,
                }
                let probe: Probe =
                    serde_json::from_slice(bytes).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
                return Err(invalid(match probe.format {
                    Some(serde_json::Value::String(f)) if f == FORMAT => explain_parse_error(bytes, e),
                    Some(f) => unknown_format(&f),
                    None => "missing \"format\"".into(),
                }));
            }
        };
        if m.format != FORMAT {
            let tag = serde_json::Value::String(std::mem::take(&mut m.format));
            return Err(invalid(unknown_format(&tag)));
        }
        check_entries(&m.shards, location)?;
        let digest = digest_of(&m.shards);
        if !m.digest.is_empty() && m.digest != digest {
            return Err(invalid(format!(
                "digest {} does not match its entries ({digest}); the manifest was edited or truncated",
                m.digest
            )));
        }
        m.digest = digest;
        m.totals = totals_of(&m.shards);
        Ok(m)
    }

    /// Serialize (pretty JSON, entries sorted).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// [`Manifest::to_json`] as a request body, serialized off the async worker threads: a
    /// large manifest takes long enough to stall every other task on the worker.
    pub(crate) fn to_payload(&self) -> PutPayload {
        PutPayload::from(off_async(|| self.to_json()))
    }
}

/// Run CPU-heavy work on borrowed data without stalling the async runtime: on a multi-thread
/// runtime the worker hands its other tasks away first (`block_in_place`); elsewhere (a
/// current-thread runtime, no runtime) it runs in place, where there is nothing to stall.
fn off_async<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// SHA-256 over `path\tsize\tsha256\n` lines of entries sorted by path, lowercase hex.
///
/// ```
/// use shardsync::manifest::{digest_of, Manifest};
/// let empty = Manifest::new("memory://docs", vec![]).unwrap();
/// // The digest of no entries is the SHA-256 of no bytes.
/// assert_eq!(empty.digest, digest_of(&[]));
/// assert!(empty.digest.starts_with("e3b0c442"));
/// ```
pub fn digest_of(sorted: &[ShardEntry]) -> String {
    let mut h = Sha256::new();
    let mut buf = [0u8; 20];
    for s in sorted {
        h.update(s.path.as_bytes());
        h.update(b"\t");
        h.update(decimal(s.size, &mut buf));
        h.update(b"\t");
        h.update(s.sha256.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Dataset totals over entries. Saturating: sizes are bounded one by one and row counts not at
/// all, and a hostile document's sums must not overflow (a panic in debug builds).
fn totals_of(shards: &[ShardEntry]) -> Totals {
    let mut t = Totals::default();
    for s in shards {
        t.files += 1;
        t.bytes = t.bytes.saturating_add(s.size);
        if s.is_parquet() {
            t.shards += 1;
        }
        t.rows = t.rows.saturating_add(s.rows.unwrap_or(0));
    }
    t
}

/// The refusal of a format tag other than [`FORMAT`], quoted as it appears in the document.
fn unknown_format(tag: &serde_json::Value) -> String {
    format!("unknown format {tag}, expected {FORMAT:?}")
}

/// `n` in decimal, written into `buf` (u64::MAX has 20 digits): no allocation per entry.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The typed parse of a manifest failed. When an entry is what failed, name it (serde's own
/// message gives only a line and column); otherwise return serde's message. Runs on the error
/// path only, so a valid manifest is parsed once. Bounded: serde quotes a mistyped string
/// value in full.
fn explain_parse_error(bytes: &[u8], err: serde_json::Error) -> String {
    let mut msg = explain_parse_error_unbounded(bytes, err);
    if msg.len() > 500 {
        msg = format!("{}…", truncate(&msg, 400));
    }
    msg
}

fn explain_parse_error_unbounded(bytes: &[u8], err: serde_json::Error) -> String {
    #[derive(Deserialize)]
    struct Loose {
        shards: Vec<serde_json::Value>,
    }
    if let Ok(loose) = serde_json::from_slice::<Loose>(bytes) {
        for (i, v) in loose.shards.iter().enumerate() {
            if let Err(e) = ShardEntry::deserialize(v) {
                let name = match v.get("path").and_then(|p| p.as_str()) {
                    Some(p) => format!(" {:?}", truncate(p, 200)),
                    None => String::new(),
                };
                return format!("entry {i}{name}: {e}");
            }
        }
    }
    err.to_string()
}

/// Validate entries: safe paths, hex hashes, sane sizes, sorted without duplicates.
fn check_entries(shards: &[ShardEntry], location: &str) -> Result<()> {
    for (i, s) in shards.iter().enumerate() {
        validate_path(&s.path).map_err(|e| match e {
            Error::InvalidShardPath { path, reason } => Error::InvalidShardPath {
                path,
                reason: format!("{reason} (entry {i} of {location})"),
            },
            other => other,
        })?;
        if !is_sha256_hex(&s.sha256) {
            return Err(Error::InvalidManifest {
                location: location.to_string(),
                reason: format!(
                    "{}: sha256 {:?} is not 64 lowercase hex digits",
                    s.path,
                    truncate(&s.sha256, 80)
                ),
            });
        }
        if s.size > MAX_OBJECT_SIZE {
            return Err(Error::InvalidManifest {
                location: location.to_string(),
                reason: format!(
                    "{}: size {} is larger than any object store allows",
                    s.path, s.size
                ),
            });
        }
        if i > 0 {
            let prev = &shards[i - 1].path;
            if prev == &s.path {
                return Err(Error::InvalidManifest {
                    location: location.to_string(),
                    reason: format!("duplicate path {:?}", s.path),
                });
            }
            if prev > &s.path {
                return Err(Error::InvalidManifest {
                    location: location.to_string(),
                    reason: format!("entries not sorted by path: {:?} after {:?}", s.path, prev),
                });
            }
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Refuse paths that could escape a destination root or collide with our own files.
///
/// ```
/// use shardsync::manifest::validate_path;
/// assert!(validate_path("train/part-00000.parquet").is_ok());
/// assert!(validate_path("../etc/passwd").is_err());
/// assert!(validate_path("/abs/shard.parquet").is_err());
/// assert!(validate_path("_shardsync/manifest.json").is_err());
/// ```
pub fn validate_path(path: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidShardPath {
            path: truncate(path, 200),
            reason: reason.to_string(),
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("longer than 1024 bytes");
    }
    if path.starts_with('/') {
        return bad("absolute");
    }
    if path.contains('\\') {
        return bad("contains a backslash");
    }
    if path.chars().any(|c| c.is_control()) {
        return bad("contains a control character");
    }
    for seg in path.split('/') {
        match seg {
            "" => return bad("empty path segment"),
            "." | ".." => return bad("contains a '.' or '..' segment"),
            _ => {}
        }
    }
    if is_meta_path(path) {
        return bad("inside shardsync's own _shardsync/ folder");
    }
    Ok(())
}

/// Whether a path names a Parquet file.
pub fn is_parquet_path(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|n| n.to_ascii_lowercase().ends_with(".parquet"))
}

/// A manifest as read from a store, with the version to commit against.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The manifest as stored.
    pub manifest: Manifest,
    /// The object's ETag/version when read: the precondition for the next commit.
    pub version: UpdateVersion,
}

/// Read a dataset's manifest; `Ok(None)` when it has none. A compact manifest's head is
/// followed to its body.
pub async fn load(ds: &Dataset) -> Result<Option<StoredManifest>> {
    let policy = crate::retry::RetryPolicy::control_plane();
    let mut gone = String::new();
    // A commit that replaced the head between our two reads deletes the body we were about to
    // read: read the head again (a body that stays missing is an error naming it).
    for _ in 0..3 {
        match crate::retry::retry(&policy, "read manifest", |_| load_once(ds)).await? {
            Loaded::Manifest(m) => return Ok(m.map(|m| *m)),
            Loaded::BodyGone(location) => gone = location,
        }
    }
    Err(Error::InvalidManifest {
        location: gone,
        reason: "missing: the manifest head names this body but the store does not hold it".into(),
    })
}

/// What one read of a manifest found.
enum Loaded {
    Manifest(Option<Box<StoredManifest>>),
    /// The head names a body the store does not hold (its URL).
    BodyGone(String),
}

async fn load_once(ds: &Dataset) -> Result<Loaded> {
    let key = ds.manifest_key();
    let location = ds.manifest_location();
    let res = match ds.store.get_opts(&key, GetOptions::default()).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(Loaded::Manifest(None)),
        Err(e) => return Err(Error::store(MANIFEST_KEY, "read manifest", e)),
    };
    if res.meta.size > MAX_MANIFEST_BYTES {
        return Err(Error::InvalidManifest {
            location,
            reason: format!(
                "{} bytes, larger than the {MAX_MANIFEST_BYTES}-byte bound",
                res.meta.size
            ),
        });
    }
    let version = UpdateVersion {
        e_tag: res.meta.e_tag.clone(),
        version: res.meta.version.clone(),
    };
    let bytes = res
        .bytes()
        .await
        .map_err(|e| Error::store(MANIFEST_KEY, "read manifest", e))?;
    if compact::is_head(&bytes) {
        let head = compact::decode_head(&bytes, &location)?;
        let known = compact::StoredBody {
            body: head.body.clone(),
            retracted: head.retracted.clone(),
        };
        let Some(manifest) = load_body(ds, head).await? else {
            return Ok(Loaded::BodyGone(format!("{}/{}", ds.url, known.body.key)));
        };
        remember_body(ds, &version, known);
        return Ok(Loaded::Manifest(Some(Box::new(StoredManifest {
            manifest,
            version,
        }))));
    }
    // A manifest of a million entries takes a second of CPU to parse and validate: not on an
    // async worker, where it would stall every copy in flight.
    let manifest = tokio::task::spawn_blocking(move || Manifest::from_json(&bytes, &location))
        .await
        .map_err(|e| Error::InvalidManifest {
            location: MANIFEST_KEY.into(),
            reason: format!("parsing stopped: {e}"),
        })??;
    Ok(Loaded::Manifest(Some(Box::new(StoredManifest {
        manifest,
        version,
    }))))
}

/// Read and validate a compact manifest's body; `Ok(None)` when the store does not hold it.
async fn load_body(ds: &Dataset, head: compact::Head) -> Result<Option<Manifest>> {
    let location = format!("{}/{}", ds.url, head.body.key);
    let res = match ds
        .store
        .get_opts(&ds.key(&head.body.key), GetOptions::default())
        .await
    {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::store(head.body.key.clone(), "read manifest body", e)),
    };
    if res.meta.size > compact::MAX_BODY_BYTES {
        return Err(Error::InvalidManifest {
            location,
            reason: format!(
                "{} bytes, larger than the {}-byte bound",
                res.meta.size,
                compact::MAX_BODY_BYTES
            ),
        });
    }
    let bytes = res
        .bytes()
        .await
        .map_err(|e| Error::store(head.body.key.clone(), "read manifest body", e))?;
    let manifest = tokio::task::spawn_blocking(move || {
        let body = compact::decode_body(bytes, &location)?;
        Manifest::from_compact(head, body, &location)
    })
    .await
    .map_err(|e| Error::InvalidManifest {
        location: MANIFEST_KEY.into(),
        reason: format!("parsing stopped: {e}"),
    })??;
    Ok(Some(manifest))
}

/// A manifest encoded for a dataset's store: the document `manifest.json` gets (a v1 manifest
/// or a compact head) and, for a compact manifest, the body to write first.
pub(crate) struct Encoded {
    /// What `_shardsync/manifest.json` gets.
    pub(crate) head: PutPayload,
    /// The body the head names (new, or already stored), and what the head retracts of it.
    pub(crate) body: Option<compact::StoredBody>,
    /// The body's bytes, when it is new and must be written first.
    pub(crate) new_body: Option<PutPayload>,
}

/// Encode `m` as `ds` stores it: compact from [`Dataset::compact_manifest_from`] entries on.
pub(crate) fn encode_for(ds: &Dataset, m: &Manifest) -> Result<Encoded> {
    if m.shards.len() < ds.compact_manifest_from {
        return Ok(Encoded {
            head: m.to_payload(),
            body: None,
            new_body: None,
        });
    }
    let body = off_async(|| compact::encode_body(m))?;
    let body_ref = compact::BodyRef {
        key: compact::new_body_key(&m.digest),
        bytes: body.len() as u64,
        entries: m.shards.len() as u64,
    };
    Ok(Encoded {
        head: PutPayload::from(compact::encode_head(m, &body_ref)),
        body: Some(compact::StoredBody {
            body: body_ref,
            retracted: Vec::new(),
        }),
        new_body: Some(PutPayload::from(body)),
    })
}

/// Encode `interim` (the stored manifest at `stored` less some entries) as a head over the
/// body already stored, when this dataset knows that body: only the paths it no longer claims
/// are written. `None` when the stored manifest is not a known compact one.
pub(crate) fn encode_retraction(
    ds: &Dataset,
    stored: &StoredManifest,
    interim: &Manifest,
) -> Option<Encoded> {
    let known = known_body(ds, &stored.version)?;
    // Everything the body holds that the interim does not claim, sorted.
    let mut retracted: Vec<String> = known.retracted.clone();
    retracted.extend(
        stored
            .manifest
            .shards
            .iter()
            .filter(|e| interim.get(&e.path).is_none())
            .map(|e| e.path.clone()),
    );
    retracted.sort();
    retracted.dedup();
    let head = compact::encode_retracting_head(interim, &known.body, &retracted);
    Some(Encoded {
        head: PutPayload::from(head),
        body: Some(compact::StoredBody {
            body: known.body,
            retracted,
        }),
        new_body: None,
    })
}

/// Write a compact manifest's new body, if it has one (a fresh key: nothing else writes it).
pub(crate) async fn put_body(ds: &Dataset, encoded: &Encoded) -> Result<()> {
    let (Some(known), Some(bytes)) = (&encoded.body, &encoded.new_body) else {
        return Ok(());
    };
    let key = &known.body.key;
    let policy = crate::retry::RetryPolicy::control_plane();
    crate::retry::retry(&policy, "write manifest body", |_| async {
        ds.store
            .put_opts(&ds.key(key), bytes.clone(), PutOptions::from(PutMode::Overwrite))
            .await
            .map(|_| ())
            .map_err(|e| Error::store(key.clone(), "write manifest body", e))
    })
    .await
}

fn version_id(v: &UpdateVersion) -> Option<String> {
    (v.e_tag.is_some() || v.version.is_some()).then(|| format!("{:?}|{:?}", v.e_tag, v.version))
}

/// Remember which body the head at `version` names (and which of its entries it retracts), so
/// the commit that replaces that head can delete the body, or retract more of it.
pub(crate) fn remember_body(ds: &Dataset, version: &UpdateVersion, body: compact::StoredBody) {
    if let (Some(id), Ok(mut map)) = (version_id(version), ds.probed.bodies.lock()) {
        map.insert(id, body);
    }
}

/// The body the head at `version` names, when this dataset read or wrote that head.
pub(crate) fn known_body(ds: &Dataset, version: &UpdateVersion) -> Option<compact::StoredBody> {
    let id = version_id(version)?;
    ds.probed.bodies.lock().ok()?.get(&id).cloned()
}

/// Delete a body no head names any more. Best effort: a leftover body costs only space.
pub(crate) async fn delete_body(ds: &Dataset, key: &str) {
    if compact::is_body_key(key) {
        if let Err(e) = ds.store.delete(&ds.key(key)).await {
            tracing::debug!("could not delete the old manifest body {key}: {e}");
        }
    }
}

/// Write a manifest unconditionally (atomic on every backend: a single PUT or a rename). A
/// compact body is written first; the body the replaced head named is then deleted.
pub async fn save(ds: &Dataset, m: &Manifest) -> Result<()> {
    let enc = encode_for(ds, m)?;
    let previous = match ds.store.head(&ds.manifest_key()).await {
        Ok(meta) => known_body(
            ds,
            &UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            },
        ),
        Err(_) => None,
    };
    put_body(ds, &enc).await?;
    let written = ds
        .store
        .put_opts(&ds.manifest_key(), enc.head, PutOptions::from(PutMode::Overwrite))
        .await
        .map_err(|e| Error::store(MANIFEST_KEY, "write manifest", e))?;
    let ours = enc.body.as_ref().map(|b| b.body.key.clone());
    if let Some(known) = enc.body {
        let version = UpdateVersion {
            e_tag: written.e_tag,
            version: written.version,
        };
        remember_body(ds, &version, known);
    }
    if let Some(old) = previous.filter(|old| Some(&old.body.key) != ours.as_ref()) {
        delete_body(ds, &old.body.key).await;
    }
    Ok(())
}

/// Write a manifest to a local file atomically (temp file + rename).
pub fn save_file(path: &std::path::Path, m: &Manifest) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("manifest"),
        std::process::id()
    ));
    std::fs::write(&tmp, m.to_json()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

pub use crate::layout::is_meta_path;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> ShardEntry {
        ShardEntry {
            path: path.into(),
            size: 3,
            sha256: "a".repeat(64),
            mtime: None,
            etag: None,
            rows: None,
            row_groups: None,
            schema: None,
            parquet_error: None,
        }
    }

    /// A remembered source stat stands for the destination's hash only for the same source,
    /// the same path and an unchanged stat.
    #[test]
    fn copied_from_recalls_only_an_unchanged_object_of_the_same_source() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let recall = CopiedFrom {
            source: "s3 e b /p".into(),
            stats: vec![SourceStat {
                path: "a".into(),
                mtime: Some(t(10)),
                etag: Some("\"e1\"".into()),
            }],
        };
        let stat = |path: &str, size: u64, mtime, etag: &str| crate::listing::ObjectStat {
            path: path.into(),
            size,
            mtime,
            etag: Some(etag.into()),
        };
        let (dst, now) = (entry("a"), stat("a", 3, t(10), "\"e1\""));
        let got = recall.source_entry("s3 e b /p", &dst, &now).expect("recalled");
        assert_eq!(
            (got.sha256, got.etag),
            (dst.sha256.clone(), Some("\"e1\"".into()))
        );
        assert!(recall.source_entry("s3 e other /p", &dst, &now).is_none());
        assert!(recall
            .source_entry("s3 e b /p", &dst, &stat("a", 3, t(10), "\"e2\""))
            .is_none());
        assert!(recall
            .source_entry("s3 e b /p", &dst, &stat("a", 3, t(11), "\"e1\""))
            .is_none());
        assert!(recall
            .source_entry("s3 e b /p", &dst, &stat("a", 4, t(10), "\"e1\""))
            .is_none());
        assert!(recall
            .source_entry("s3 e b /p", &entry("b"), &stat("b", 3, t(10), "\"e1\""))
            .is_none());
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "",
            "/abs",
            "a/../b",
            "..",
            "a//b",
            "a/",
            "a\\b",
            "_shardsync/manifest.json",
            "_shardsync",
            "./a",
            "a\0b",
        ] {
            assert!(validate_path(p).is_err(), "{p:?} accepted");
        }
        for p in [
            "a.parquet",
            "dir one/ünï.parquet",
            "_shardsyncx/a",
            "a/_shardsync/b",
            "...x",
        ] {
            assert!(validate_path(p).is_ok(), "{p:?} refused");
        }
    }

    #[test]
    fn roundtrip_and_digest_check() {
        let m = Manifest::new("memory://x", vec![entry("b"), entry("a")]).unwrap();
        assert_eq!(m.shards[0].path, "a");
        let back = Manifest::from_json(&m.to_json(), "t").unwrap();
        assert_eq!(back.digest, m.digest);
        let tampered = String::from_utf8(m.to_json())
            .unwrap()
            .replace("\"size\": 3", "\"size\": 4");
        let e = Manifest::from_json(tampered.as_bytes(), "t").unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn duplicates_unknown_format_and_bad_hash_are_named() {
        let m = Manifest::new("x", vec![entry("a")]).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        let e0 = v["shards"][0].clone();
        v["shards"] = serde_json::json!([e0.clone(), e0]);
        v["digest"] = "".into();
        let e = Manifest::from_json(v.to_string().as_bytes(), "t").unwrap_err();
        assert!(e.to_string().contains("duplicate path \"a\""), "{e}");
        v["format"] = "other/v9".into();
        let e = Manifest::from_json(v.to_string().as_bytes(), "t").unwrap_err();
        assert!(e.to_string().contains("unknown format"), "{e}");
        let e = Manifest::from_json(b"{not json", "t").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let mut bad = entry("a");
        bad.sha256 = "XYZ".into();
        assert!(Manifest::new("x", vec![bad]).is_err());
    }
}
