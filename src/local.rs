//! Local folders, kept safe: the [`ObjectStore`] shardsync puts in front of object_store's
//! `LocalFileSystem` for every `file://` dataset.
//!
//! `LocalFileSystem` follows symlinks when it lists and writes through them, hides its own
//! `key#N` staging files from every listing, and leaves them behind when the process is killed.
//! [`LocalFolder`] owns the three things that differ:
//!
//! - **Listing** is our own walk. Symlinks are not followed (unless the dataset was opened with
//!   [`Dataset::with_follow_symlinks`], which sources may be); symlinks, dangling links, FIFOs,
//!   sockets, devices and staging leftovers are not objects but [`Notice`]s, each warned about
//!   once on stderr and added to the run's report. Nothing is ever opened to find out what it is,
//!   so a FIFO cannot block a sync.
//! - **Writes and deletes** refuse a key whose path inside the folder crosses a symlink (a
//!   symlinked directory, a symlinked `_shardsync/`, or a symlink at the key itself): nothing is
//!   written or deleted through a link, and no link is deleted or replaced either.
//! - **Staging**: bytes go to a `.shardsync-tmp-<host>-<pid>-<random>` file in the target's
//!   directory and are renamed into place (`tempfile`'s `persist`). The name starts with a dot
//!   and never ends in a data suffix, so no reader's `*.parquet` glob matches it; a killed
//!   process leaves it visible to `check` and `verify`, and the next sync on this host removes
//!   those whose process is gone ([`settle_sync_report`]).
//!
//! Reads (`get`, `head`) are object_store's.

use std::collections::{BTreeMap, HashSet};
use std::fs::Metadata;
use std::io::{ErrorKind, Write};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

use crate::report::{Finding, FindingKind, Report};
use crate::store::Dataset;

/// What every staging file shardsync writes in a local folder starts with.
pub const STAGING_PREFIX: &str = ".shardsync-tmp-";

/// Something in a local folder that is not an object of the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skipped {
    /// A symlink, not followed. `target` as `readlink` gives it.
    Symlink {
        /// Where the link points.
        target: String,
    },
    /// A symlink whose target does not exist.
    Dangling {
        /// Where the link points.
        target: String,
    },
    /// A FIFO, socket or device: never opened.
    Special {
        /// `fifo`, `socket` or `device`.
        kind: &'static str,
    },
    /// A directory symlink that leads back to one of its own ancestors (when following).
    Loop,
    /// A staging file shardsync wrote and did not finish (its process was killed).
    Staging {
        /// The host the writing sync ran on.
        host: String,
        /// Its process id.
        pid: u32,
    },
    /// A `name#N` staging file of object_store's `LocalFileSystem` (older shardsync versions,
    /// or another tool): not ours to remove.
    ForeignStaging,
}

/// One thing in a local folder that the listing left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The path inside the folder (relative to the dataset root once it reaches a report).
    pub path: String,
    /// Why it was skipped.
    pub what: Skipped,
}

impl Notice {
    /// What a person reads: what it is, what shardsync did with it, and what to do.
    pub fn message(&self) -> String {
        let p = &self.path;
        match &self.what {
            Skipped::Symlink { target } => format!(
                "{p} is a symlink (-> {target}): not followed, not part of the dataset; shardsync \
                 never writes or deletes through it, nor deletes it (following symlinks reads \
                 through a source's symlinks)"
            ),
            Skipped::Dangling { target } => {
                format!("{p} is a dangling symlink (-> {target}, which does not exist): skipped")
            }
            Skipped::Special { kind } => format!("{p} is a {kind}, not a file: skipped, never opened"),
            Skipped::Loop => format!("{p} is a symlink loop (leads to its own ancestor): skipped"),
            Skipped::Staging { host, pid } => format!(
                "{p} is a partial file left by an interrupted shardsync write (host {host}, pid {pid}); \
                 not part of the dataset; the next sync of this folder on that host removes it"
            ),
            Skipped::ForeignStaging => format!(
                "{p} looks like an unfinished object_store write (name#N; an interrupted sync by an \
                 older shardsync, or another tool): not part of the dataset and invisible to \
                 object_store readers; not ours to remove, delete it by hand"
            ),
        }
    }

    /// Whether the thing is an object a reader of the folder may take for data (a stray).
    fn is_stray(&self) -> bool {
        !matches!(self.what, Skipped::Loop)
    }
}

/// A local folder as an object store: see the module docs. Clones share one folder state.
#[derive(Clone)]
pub struct LocalFolder(Arc<Folder>);

struct Folder {
    inner: LocalFileSystem,
    /// The existing directory keys are relative to.
    base: PathBuf,
    follow_symlinks: bool,
    /// What the latest full walk left out, by path.
    notices: Mutex<BTreeMap<String, Notice>>,
    /// Paths already warned about on stderr (once per process, so `watch` does not repeat).
    warned: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for LocalFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFolder")
            .field("base", &self.0.base)
            .field("follow_symlinks", &self.0.follow_symlinks)
            .finish()
    }
}

impl std::fmt::Display for LocalFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalFolder({})", self.0.base.display())
    }
}

fn io_error(path: &FsPath, source: std::io::Error) -> object_store::Error {
    match source.kind() {
        ErrorKind::NotFound => object_store::Error::NotFound {
            path: path.display().to_string(),
            source: source.into(),
        },
        _ => object_store::Error::Generic {
            store: "LocalFolder",
            source: Box::new(PathIoError {
                path: path.to_path_buf(),
                source,
            }),
        },
    }
}

/// An I/O error and the file it concerns; the error stays in the source chain, so its kind
/// (disk full, not a directory, …) tells a permanent failure from a passing one.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
struct PathIoError {
    path: PathBuf,
    source: std::io::Error,
}

/// The error for a write or delete that would go through a symlink.
fn through_symlink(link: &FsPath, base: &FsPath) -> object_store::Error {
    let rel = link.strip_prefix(base).unwrap_or(link);
    let target = std::fs::read_link(link)
        .map(|t| t.display().to_string())
        .unwrap_or_else(|_| "?".into());
    object_store::Error::NotSupported {
        source: format!(
            "{} is a symlink (-> {target}); shardsync never writes or deletes through a symlink in a \
             local folder (replace it with a real directory or file, or remove it)",
            rel.display()
        )
        .into(),
    }
}

/// The ETag object_store's `LocalFileSystem` gives a file (inode, mtime in µs, size), so ours
/// and its `head` agree: the commit compares them.
fn etag(m: &Metadata) -> String {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{mtime:x}-{:x}\"", m.ino(), m.len())
}

fn object_meta(location: Path, m: &Metadata) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: m.modified().map(Into::into).unwrap_or_default(),
        size: m.len(),
        e_tag: Some(etag(m)),
        version: None,
    }
}

/// The host name that goes into staging names (only characters safe in a file name).
fn staging_host() -> String {
    crate::lock::hostname()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// `(host, pid)` of a shardsync staging file name.
fn parse_staging(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix(STAGING_PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let _random = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    Some((parts.next()?.to_string(), pid))
}

/// object_store's staging names: `name#N`, N all digits (its listing hides exactly these).
fn is_foreign_staging(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(head, n)| !head.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn special_kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// One walk's result.
struct Walked {
    objects: Vec<ObjectMeta>,
    notices: Vec<Notice>,
}

impl LocalFolder {
    /// A folder rooted at `base` (an existing directory).
    pub fn new(base: &FsPath, follow_symlinks: bool) -> object_store::Result<LocalFolder> {
        let inner = LocalFileSystem::new_with_prefix(base)?.with_automatic_cleanup(true);
        Ok(LocalFolder(Arc::new(Folder {
            inner,
            base: base.to_path_buf(),
            follow_symlinks,
            notices: Mutex::default(),
            warned: Mutex::default(),
        })))
    }

    /// The same folder, following symlinks when listing or not.
    pub fn with_follow_symlinks(&self, follow: bool) -> object_store::Result<LocalFolder> {
        LocalFolder::new(&self.0.base, follow)
    }

    /// What the latest listing of the whole folder (or of a prefix) left out.
    pub fn notices(&self) -> Vec<Notice> {
        lock(&self.0.notices).values().cloned().collect()
    }

    /// Remove this host's staging files under `under` whose process no longer runs (as the
    /// latest listing found them); returns their paths.
    pub async fn sweep_staging(&self, under: &str) -> Vec<String> {
        let me = self.0.clone();
        let under = under.to_string();
        blocking(move || Ok(me.sweep_blocking(&under)))
            .await
            .unwrap_or_default()
    }
}

impl Folder {
    fn key_of(&self, path: &FsPath) -> Result<String, String> {
        let rel = path
            .strip_prefix(&self.base)
            .map_err(|_| path.display().to_string())?;
        let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
        parts
            .map(|p| p.join("/"))
            .ok_or_else(|| rel.display().to_string())
    }

    /// Refuse `location` when its path inside the folder crosses a symlink. Returns its
    /// filesystem path.
    fn guard(&self, location: &Path) -> object_store::Result<PathBuf> {
        let full = self.inner.path_to_filesystem(location)?;
        let rel = full.strip_prefix(&self.base).unwrap_or(&full).to_path_buf();
        let mut p = self.base.clone();
        for c in rel.components() {
            p.push(c);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => return Err(through_symlink(&p, &self.base)),
                Ok(_) => {}
                Err(_) => break, // nothing further exists: what we create is real directories
            }
        }
        Ok(full)
    }

    /// Walk under `dir` (blocking).
    fn walk(&self, dir: &FsPath) -> object_store::Result<Walked> {
        let mut out = Walked {
            objects: Vec::new(),
            notices: Vec::new(),
        };
        let walker = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .follow_links(self.follow_symlinks)
            .follow_root_links(true);
        for res in walker {
            let entry = match res {
                Ok(e) => e,
                Err(e) => {
                    self.walk_error(e, &mut out)?;
                    continue;
                }
            };
            let ft = entry.file_type();
            if ft.is_dir() {
                continue;
            }
            let key = self
                .key_of(entry.path())
                .map_err(|p| object_store::Error::Generic {
                    store: "LocalFolder",
                    source: format!("{p}: file name is not UTF-8; rename it to carry it").into(),
                })?;
            let notice = |what| Notice {
                path: key.clone(),
                what,
            };
            if ft.is_symlink() {
                let target = std::fs::read_link(entry.path())
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                out.notices.push(match std::fs::metadata(entry.path()) {
                    Ok(_) => notice(Skipped::Symlink { target }),
                    Err(_) => notice(Skipped::Dangling { target }),
                });
                continue;
            }
            if !ft.is_file() {
                out.notices.push(notice(Skipped::Special {
                    kind: special_kind(ft),
                }));
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            if let Some((host, pid)) = parse_staging(&name) {
                out.notices.push(notice(Skipped::Staging { host, pid }));
                continue;
            }
            if is_foreign_staging(&name) {
                out.notices.push(notice(Skipped::ForeignStaging));
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.io_error().is_some_and(|e| e.kind() == ErrorKind::NotFound) => continue,
                Err(e) => return Err(walk_failed(e)),
            };
            let location = Path::parse(&key).map_err(|source| object_store::Error::InvalidPath { source })?;
            out.objects.push(object_meta(location, &meta));
        }
        Ok(out)
    }

    /// A walk error: a loop or a dangling link (when following) is a notice; a path gone since
    /// it was seen is nothing; anything else (an unreadable directory) fails the listing.
    fn walk_error(&self, e: walkdir::Error, out: &mut Walked) -> object_store::Result<()> {
        let key = e.path().and_then(|p| self.key_of(p).ok());
        if e.loop_ancestor().is_some() {
            if let Some(path) = key {
                out.notices.push(Notice {
                    path,
                    what: Skipped::Loop,
                });
            }
            return Ok(());
        }
        if e.io_error().is_some_and(|io| io.kind() == ErrorKind::NotFound) {
            let p = e.path().map(FsPath::to_path_buf);
            let link = p.as_deref().and_then(|p| std::fs::read_link(p).ok());
            if let (Some(path), Some(target)) = (key, link) {
                out.notices.push(Notice {
                    path,
                    what: Skipped::Dangling {
                        target: target.display().to_string(),
                    },
                });
            }
            return Ok(());
        }
        Err(walk_failed(e))
    }

    /// Record a walk's notices, warning once on stderr about each new one.
    fn record(&self, under: &str, notices: Vec<Notice>) {
        {
            let mut warned = lock(&self.warned);
            for n in &notices {
                if warned.insert(n.path.clone()) {
                    let full = Notice {
                        path: self.base.join(&n.path).display().to_string(),
                        what: n.what.clone(),
                    };
                    tracing::warn!("{}", full.message());
                }
            }
        }
        let mut map = lock(&self.notices);
        map.retain(|k, _| !(under.is_empty() || k == under || k.starts_with(&format!("{under}/"))));
        map.extend(notices.into_iter().map(|n| (n.path.clone(), n)));
    }

    fn list_blocking(&self, prefix: Option<Path>) -> object_store::Result<Vec<ObjectMeta>> {
        let under = prefix
            .as_ref()
            .map(|p| p.as_ref().to_string())
            .unwrap_or_default();
        let dir = match &prefix {
            Some(p) if !under.is_empty() => self.inner.path_to_filesystem(p)?,
            _ => self.base.clone(),
        };
        if !dir.is_dir() {
            self.record(&under, Vec::new());
            return Ok(Vec::new());
        }
        let walked = self.walk(&dir)?;
        self.record(&under, walked.notices);
        Ok(walked.objects)
    }

    /// Remove staging files of this host whose process no longer runs; returns their paths.
    fn sweep_blocking(&self, under: &str) -> Vec<String> {
        let here = staging_host();
        let dead: Vec<Notice> = lock(&self.notices)
            .values()
            .filter(|n| under.is_empty() || n.path.starts_with(&format!("{under}/")))
            .filter(|n| {
                matches!(&n.what, Skipped::Staging { host, pid }
                    if *host == here && *pid != std::process::id() && !crate::lock::pid_alive(*pid))
            })
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for n in dead {
            let Ok(location) = Path::parse(&n.path) else {
                continue;
            };
            // The walk did not follow links, but re-check: the folder may have changed since.
            let Ok(file) = self.guard(&location) else { continue };
            match std::fs::remove_file(&file) {
                Ok(()) => removed.push(n.path.clone()),
                Err(e) if e.kind() == ErrorKind::NotFound => removed.push(n.path.clone()),
                Err(e) => tracing::warn!("could not remove {}: {e}", file.display()),
            }
            lock(&self.notices).remove(&n.path);
        }
        removed
    }
}

fn walk_failed(e: walkdir::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFolder",
        source: Box::new(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> object_store::Result<T> + Send + 'static,
) -> object_store::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| object_store::Error::JoinError { source: e })?
}

/// A staging file next to `target` (its directory created as real directories if missing).
fn staging_file(target: &FsPath) -> object_store::Result<tempfile::NamedTempFile> {
    let dir = target.parent().unwrap_or(FsPath::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let prefix = format!("{STAGING_PREFIX}{}-{}-", staging_host(), std::process::id());
    // 0o666 before the umask, as any file a process creates (tempfile's default is 0o600,
    // which would hide the shard from a training job running as another user).
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .rand_bytes(8)
        .tempfile_in(dir)
        .map_err(|e| io_error(dir, e))
}

/// Publish a written staging file under `target`: a rename, or (`create`) a rename that fails
/// if `target` exists. The file's stat gives the ETag the published object will have.
fn publish(
    tmp: tempfile::TempPath,
    file: &std::fs::File,
    target: &FsPath,
    create: bool,
) -> object_store::Result<PutResult> {
    let meta = file.metadata().map_err(|e| io_error(target, e))?;
    let res = if create {
        tmp.persist_noclobber(target)
    } else {
        tmp.persist(target)
    };
    match res {
        Ok(()) => Ok(PutResult {
            e_tag: Some(etag(&meta)),
            version: None,
            extensions: Default::default(),
        }),
        Err(e) if create && e.error.kind() == ErrorKind::AlreadyExists => {
            Err(object_store::Error::AlreadyExists {
                path: target.display().to_string(),
                source: e.error.into(),
            })
        }
        Err(e) => Err(io_error(target, e.error)),
    }
}

#[async_trait]
impl ObjectStore for LocalFolder {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let create = match opts.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "`put_opts` with mode `PutMode::Update`".into(),
                    implementer: self.to_string(),
                })
            }
        };
        if !opts.attributes.is_empty() {
            return Err(object_store::Error::NotImplemented {
                operation: "`put_opts` with `opts.attributes` specified".into(),
                implementer: self.to_string(),
            });
        }
        let target = self.0.guard(location)?;
        blocking(move || {
            let mut tmp = staging_file(&target)?;
            for chunk in payload.iter() {
                tmp.write_all(chunk).map_err(|e| io_error(tmp.path(), e))?;
            }
            let (file, path) = tmp.into_parts();
            publish(path, &file, &target, create)
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if !opts.attributes.is_empty() {
            return Err(object_store::Error::NotImplemented {
                operation: "`put_multipart_opts` with `opts.attributes` specified".into(),
                implementer: self.to_string(),
            });
        }
        let target = self.0.guard(location)?;
        let upload = blocking(move || {
            let (file, path) = staging_file(&target)?.into_parts();
            Ok(LocalUpload {
                file: Arc::new(file),
                staged: Some(path),
                target,
                offset: 0,
            })
        })
        .await?;
        Ok(Box::new(upload))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.0.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.0.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // Guard each location, then let object_store delete it (and prune emptied directories).
        let me = self.0.clone();
        let guarded = locations.map(move |l| l.and_then(|l| me.guard(&l).map(|_| l)));
        self.0.inner.delete_stream(guarded.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let me = self.0.clone();
        let prefix = prefix.cloned();
        futures::stream::once(blocking(move || me.list_blocking(prefix)))
            .map(|r| match r {
                Ok(v) => futures::stream::iter(v.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            })
            .flatten()
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let offset = offset.clone();
        self.list(prefix)
            .filter(move |r| futures::future::ready(r.as_ref().map_or(true, |m| m.location > offset)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        // Not used by shardsync; one level, and object_store's (it reads through symlinks).
        self.0.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.0.guard(from)?;
        self.0.guard(to)?;
        self.0.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.0.guard(from)?;
        self.0.guard(to)?;
        self.0.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload into a staging file: parts are written at their offsets (so they may
/// complete in any order), and completion renames the file into place. Dropped or aborted, the
/// staging file is removed.
#[derive(Debug)]
struct LocalUpload {
    file: Arc<std::fs::File>,
    staged: Option<tempfile::TempPath>,
    target: PathBuf,
    offset: u64,
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let offset = self.offset;
        self.offset += data.content_length() as u64;
        let file = self.file.clone();
        let target = self.target.clone();
        blocking(move || {
            let mut at = offset;
            for chunk in data.iter() {
                file.write_all_at(chunk, at).map_err(|e| io_error(&target, e))?;
                at += chunk.len() as u64;
            }
            Ok(())
        })
        .boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let staged = self.staged.take().ok_or_else(|| object_store::Error::Generic {
            store: "LocalFolder",
            source: "multipart upload already completed or aborted".into(),
        })?;
        let file = self.file.clone();
        let target = self.target.clone();
        blocking(move || publish(staged, &file, &target, false)).await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        if let Some(staged) = self.staged.take() {
            let target = self.target.clone();
            blocking(move || staged.close().map_err(|e| io_error(&target, e))).await?;
        }
        Ok(())
    }
}

/// What the latest listing of a local dataset left out, paths relative to the dataset root.
/// Empty for other backends.
pub fn notices(ds: &Dataset) -> Vec<Notice> {
    let Some(folder) = &ds.local else {
        return Vec::new();
    };
    folder
        .notices()
        .into_iter()
        .filter_map(|mut n| {
            n.path = ds.relative(&Path::parse(&n.path).ok()?)?;
            Some(n)
        })
        .collect()
}

fn finding(n: &Notice) -> Finding {
    Finding {
        path: n.path.clone(),
        kind: FindingKind::Extra,
        detail: n.message(),
    }
}

fn warning(side: &str, n: &Notice) -> String {
    format!("{side} {}", n.message())
}

/// After a sync: remove the destination's staging leftovers of dead processes on this host
/// (not on a dry run); what the source's listing left out becomes warnings, the destination's
/// strays findings that leave the sync inconsistent, as a `check` right after would say (a
/// loader globbing the folder would read them).
pub async fn settle_sync_report(report: &mut Report, src: &Dataset, dst: &Dataset, sweep: bool) {
    report
        .warnings
        .extend(notices(src).iter().map(|n| warning("source", n)));
    let mut removed = Vec::new();
    if sweep {
        if let Some(folder) = &dst.local {
            removed = folder.sweep_staging(dst.root.as_ref()).await;
        }
    }
    if !removed.is_empty() {
        let root = dst.root.as_ref();
        let shown: Vec<&str> = removed
            .iter()
            .map(|p| {
                p.strip_prefix(root)
                    .map_or(p.as_str(), |r| r.trim_start_matches('/'))
            })
            .collect();
        let w = format!(
            "removed {} partial file(s) left by an interrupted sync: {}",
            removed.len(),
            shown.join(", ")
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
    if add_destination(report, dst) > 0 {
        report.consistent = false;
        report
            .findings
            .sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    }
}

/// The destination's strays as findings, the rest as warnings; returns how many findings.
fn add_destination(report: &mut Report, dst: &Dataset) -> usize {
    let before = report.findings.len();
    for n in notices(dst) {
        if n.is_stray() {
            report.findings.push(finding(&n));
        } else {
            report.warnings.push(warning("destination", &n));
        }
    }
    report.findings.len() - before
}

/// `check`: the destination's strays are findings (a reader of the folder may take them for
/// data); what the source's listing left out is a warning.
pub fn add_to_check(report: &mut Report, src: &Dataset, dst: &Dataset) {
    report
        .warnings
        .extend(notices(src).iter().map(|n| warning("source", n)));
    add_destination(report, dst);
}

/// `verify`: strays beside the manifest's objects are findings.
pub fn add_to_verify(report: &mut Report, ds: &Dataset) {
    for n in notices(ds) {
        if n.is_stray() {
            report.findings.push(finding(&n));
        } else {
            report.warnings.push(n.message());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_recognised_and_never_look_like_data() {
        let name = format!("{STAGING_PREFIX}build-host.lan-4242-aB3dE5fG");
        assert_eq!(parse_staging(&name), Some(("build-host.lan".into(), 4242)));
        assert_eq!(parse_staging("part-00001.parquet"), None);
        assert!(is_foreign_staging("part-00001.parquet#1"));
        assert!(!is_foreign_staging("ünï #1.parquet"));
        assert!(!is_foreign_staging("#12"));
    }

    #[tokio::test]
    async fn etag_of_a_write_is_the_one_object_stores_head_gives() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = LocalFolder::new(dir.path(), false).unwrap();
        let key = Path::from("a/b.bin");
        let put = folder.put(&key, PutPayload::from_static(b"hello")).await.unwrap();
        let plain = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        assert_eq!(put.e_tag, plain.head(&key).await.unwrap().e_tag);
        let listed: Vec<ObjectMeta> = futures::TryStreamExt::try_collect(folder.list(None))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].e_tag, put.e_tag);
        assert_eq!(
            listed[0].last_modified,
            plain.head(&key).await.unwrap().last_modified
        );
    }
}
