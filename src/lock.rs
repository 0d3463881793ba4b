//! A lease on the destination for the duration of a sync's writes.
//!
//! The conditional commit keeps two syncs from both committing, but not from both writing
//! shards: without a lease, the loser's late PUTs could land after the winner committed and
//! contradict the winner's manifest. So a sync that is about to write first creates
//! `_shardsync/lock.json` with `If-None-Match: *`, then re-checks that the destination manifest
//! is still the one it planned against, and only then writes. The lease names its holder and
//! is renewed every [`LEASE`]/3; a holder that died (lease expired, or on this host a pid that
//! no longer runs — e.g. a SIGKILLed sync) is taken over with a compare-and-swap, so a resume
//! does not wait. On servers that ignore conditions (see `commit`) the lease is best effort.
//!
//! Taking the lease also clears what an earlier holder left behind on S3: incomplete multipart
//! uploads under the dataset root, initiated before the lease was taken, are aborted
//! ([`crate::s3_control::abort_left_over_uploads`]) and the count is one of [`SyncLock::warnings`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::layout::LOCK_KEY;
use crate::retry::{retry, RetryPolicy};
use crate::store::Dataset;

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseBody {
    owner: String,
    host: String,
    pid: u32,
    acquired_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl LeaseBody {
    fn describe(&self) -> String {
        format!(
            "host {} pid {} since {}, lease until {}",
            self.host,
            self.pid,
            self.acquired_at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.expires_at.format("%H:%M:%SZ")
        )
    }

    /// Expired, held by a process of this host that no longer runs, or held by this process
    /// under an owner it no longer runs (a sync that failed before it could remove its lease).
    fn is_stale(&self) -> bool {
        let here = self.host == hostname();
        self.expires_at < Utc::now()
            || (here && !pid_alive(self.pid))
            || (here && self.pid == std::process::id() && !live_owners().contains(&self.owner))
    }
}

/// A held lease; renewed in the background until [`SyncLock::release`], or until dropped (a
/// dropped `sync()` future): then renewal stops and the lease is removed in the background.
pub struct SyncLock {
    owner: String,
    dst: Dataset,
    key: Path,
    version: Arc<Mutex<UpdateVersion>>,
    lost: Arc<AtomicBool>,
    renew: tokio::task::JoinHandle<()>,
    released: bool,
    warnings: Vec<String>,
}

impl std::fmt::Debug for SyncLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncLock").field("dst", &self.dst.url).finish()
    }
}

/// Owners of the leases this process holds right now.
fn live_owners() -> std::sync::MutexGuard<'static, HashSet<String>> {
    static LIVE: OnceLock<std::sync::Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // unknown: wait for the lease to expire
    }
}

fn body(owner: &str, acquired_at: DateTime<Utc>) -> LeaseBody {
    LeaseBody {
        owner: owner.to_string(),
        host: hostname(),
        pid: std::process::id(),
        acquired_at,
        expires_at: Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default(),
    }
}

fn payload(b: &LeaseBody) -> PutPayload {
    PutPayload::from(serde_json::to_vec_pretty(b).expect("lease serializes"))
}

/// Compare-and-swap the lease object from `expected` to `b`, retrying transient failures.
/// A refusal whose cause is our own earlier attempt (its answer lost, the request re-sent) is
/// recognised by reading the lease back: it holds `b`, so the swap happened.
async fn swap(
    dst: &Dataset,
    key: &Path,
    expected: &UpdateVersion,
    b: &LeaseBody,
) -> Result<UpdateVersion, ()> {
    let policy = RetryPolicy::control_plane();
    let swapped = retry(&policy, "renew lock", |_| async {
        let Some(mode) = crate::commit::replace_mode(dst, key, expected)
            .await
            .map_err(|e| Error::store(LOCK_KEY, "renew lock", e))?
        else {
            return Ok(None);
        };
        match dst.store.put_opts(key, payload(b), PutOptions::from(mode)).await {
            Ok(r) => Ok(Some(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Ok(read_lease(dst, key)
                .await?
                .filter(|(h, _)| h.as_ref() == Some(b))
                .map(|(_, v)| v)),
            Err(e) => Err(Error::store(LOCK_KEY, "renew lock", e)),
        }
    })
    .await;
    match swapped {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(()),
        Err(e) => {
            tracing::warn!("{e}");
            Err(())
        }
    }
}

/// The lease as stored (`None` for a body we cannot parse) and its version; `None` if absent.
async fn read_lease(dst: &Dataset, key: &Path) -> Result<Option<(Option<LeaseBody>, UpdateVersion)>> {
    let policy = RetryPolicy::control_plane();
    retry(&policy, "read lock", |_| async {
        let res = match dst.store.get_opts(key, GetOptions::default()).await {
            Ok(res) => res,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::store(LOCK_KEY, "read lock", e)),
        };
        let version = UpdateVersion {
            e_tag: res.meta.e_tag.clone(),
            version: res.meta.version.clone(),
        };
        let bytes = res
            .bytes()
            .await
            .map_err(|e| Error::store(LOCK_KEY, "read lock", e))?;
        Ok(Some((serde_json::from_slice(&bytes).ok(), version)))
    })
    .await
}

/// Take the destination's lease, or fail naming who holds it.
pub async fn acquire(dst: &Dataset) -> Result<SyncLock> {
    let key = dst.lock_key();
    let location = format!("{}/{}", dst.url, LOCK_KEY);
    let owner = format!("{:016x}", rand::random::<u64>());
    let now = Utc::now();
    let mine = body(&owner, now);
    let policy = RetryPolicy::control_plane();
    let created = retry(&policy, "take lock", |_| async {
        match dst
            .store
            .put_opts(&key, payload(&mine), PutOptions::from(PutMode::Create))
            .await
        {
            Ok(r) => Ok(Some(UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(Error::store(LOCK_KEY, "take lock", e)),
        }
    })
    .await?;
    let version = match created {
        Some(v) => v,
        None => take_over(dst, &key, &location, &mine).await?,
    };
    live_owners().insert(owner.clone());
    let version = Arc::new(Mutex::new(version));
    let lost = Arc::new(AtomicBool::new(false));
    let renew = {
        let owner = owner.clone();
        let (dst, key, version, lost) = (dst.clone(), key.clone(), version.clone(), lost.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let mut v = version.lock().await;
                match swap(&dst, &key, &v, &body(&owner, now)).await {
                    Ok(next) => *v = next,
                    Err(()) => {
                        lost.store(true, Ordering::SeqCst);
                        tracing::warn!("lost the lease on {}", dst.url);
                        return;
                    }
                }
            }
        })
    };
    let mut lock = SyncLock {
        owner,
        dst: dst.clone(),
        key,
        version,
        lost,
        renew,
        released: false,
        warnings: Vec::new(),
    };
    lock.warnings
        .extend(crate::s3_control::abort_left_over_uploads(dst, now).await);
    Ok(lock)
}

impl SyncLock {
    /// Whether another writer took the lease from us (we were stalled past its expiry).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// What taking the lease found and did that the report should say (aborted uploads).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Stop renewing and remove the lease (unless another sync owns it now).
    pub async fn release(mut self) {
        self.released = true;
        self.renew.abort();
        let _ = self.version.lock().await;
        live_owners().remove(&self.owner);
        if !self.is_lost() {
            let policy = RetryPolicy::control_plane();
            let _ = retry(&policy, "release lock", |_| async {
                match self.dst.store.delete(&self.key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(Error::store(LOCK_KEY, "release lock", e)),
                }
            })
            .await;
        }
    }
}

impl Drop for SyncLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.renew.abort();
        live_owners().remove(&self.owner);
        if self.is_lost() {
            return;
        }
        // Best effort: without a runtime (process exit) the lease is left; on this host a
        // later sync takes it over at once (its holder is gone), elsewhere when it expires.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, key) = (self.dst.store.clone(), self.key.clone());
            rt.spawn(async move {
                let _ = store.delete(&key).await;
            });
        }
    }
}

/// The lease exists: ours (our create landed but its answer was lost), a live holder's
/// (refused, naming it), or a stale one's (taken over with a compare-and-swap).
async fn take_over(dst: &Dataset, key: &Path, location: &str, mine: &LeaseBody) -> Result<UpdateVersion> {
    let Some((holder, current)) = read_lease(dst, key).await? else {
        return Err(Error::DestinationLocked {
            location: location.to_string(),
            holder: "another sync took it and released it meanwhile".into(),
        });
    };
    if holder.as_ref().is_some_and(|h| h.owner == mine.owner) {
        return Ok(current);
    }
    // An unreadable lease (torn by hand, foreign format) counts as stale.
    if let Some(h) = holder.as_ref().filter(|h| !h.is_stale()) {
        return Err(Error::DestinationLocked {
            location: location.to_string(),
            holder: h.describe(),
        });
    }
    let v = swap(dst, key, &current, mine)
        .await
        .map_err(|_| Error::DestinationLocked {
            location: location.to_string(),
            holder: "another sync took over a stale lease first".into(),
        })?;
    if let Some(h) = holder {
        tracing::warn!("took over a stale lease on {location} ({})", h.describe());
    }
    Ok(v)
}
