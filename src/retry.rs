//! Retrying what is not the user's fault, and only that: one classification of failures and
//! one retry loop, shared by shard copies and the control plane (probe, lease, commit, listing,
//! manifest reads).
//!
//! object_store already retries each HTTP request (see `store::retry_config`): 5xx, 429, 408,
//! refused connections, a connection closed before the response (for every method, so a
//! conditional PUT whose answer was lost is sent again and may then meet its own write), and a
//! GET body cut midway (resumed with a ranged GET pinned to the ETag). It does not retry a reset
//! or a timeout on a PUT, a listing body cut midway, or a server that stays away longer than its
//! budget; those land here, where a whole operation is run again with backoff and jitter.
//!
//! Failures are [`Failure::Transient`] (network, 5xx, throttling), [`Failure::Permanent`] (the
//! destination refuses what we ask: disk full, a name too long, a path component that is a
//! file, a read-only filesystem, denied access, a 4xx other than 408/429), or
//! [`Failure::Answer`] (the store answered a question: not found, precondition failed). Only
//! transient ones are retried; a permanent one is returned at once, so it is printed once.

use std::future::Future;
use std::time::Duration;

use object_store::BackoffConfig;

use crate::error::{Error, Result};

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Trying again may succeed: network trouble, a server error, throttling.
    Transient,
    /// Trying again cannot succeed: the request itself is refused.
    Permanent,
    /// Not a failure of the request: an answer (absent, changed, exists) or our own check.
    Answer,
}

/// `std::io::Error` kinds that no retry can fix.
const PERMANENT_IO: [std::io::ErrorKind; 10] = [
    std::io::ErrorKind::StorageFull,
    std::io::ErrorKind::QuotaExceeded,
    std::io::ErrorKind::FileTooLarge,
    std::io::ErrorKind::InvalidFilename,
    std::io::ErrorKind::IsADirectory,
    std::io::ErrorKind::NotADirectory,
    std::io::ErrorKind::ReadOnlyFilesystem,
    std::io::ErrorKind::PermissionDenied,
    std::io::ErrorKind::DirectoryNotEmpty,
    // A folder wanted where a file stands (`mkdir -p a/b` with `a` a file): EEXIST.
    std::io::ErrorKind::AlreadyExists,
];

/// `std::io::Error` kinds that say the whole store refuses writes, not one object.
const STORE_WIDE_IO: [std::io::ErrorKind; 3] = [
    std::io::ErrorKind::StorageFull,
    std::io::ErrorKind::QuotaExceeded,
    std::io::ErrorKind::ReadOnlyFilesystem,
];

/// The I/O error that says the store as a whole cannot take writes ("No space left on
/// device"), if that is what `e` comes down to.
pub(crate) fn store_wide_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if STORE_WIDE_IO.contains(&io.kind()) {
                return Some(io);
            }
        }
        cause = c.source();
    }
    None
}

/// Classify one of our errors (see the module doc).
pub fn classify(e: &Error) -> Failure {
    match e {
        Error::Store { source, .. } => classify_store(source),
        Error::AwsCredentials { .. } => Failure::Permanent,
        _ => Failure::Answer,
    }
}

/// Classify an object_store error by its variant and, for the generic ones, by the causes in
/// its source chain: an I/O error kind, or the HTTP status object_store's message quotes.
pub fn classify_store(e: &object_store::Error) -> Failure {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Failure::Permanent,
        E::Generic { .. } | E::JoinError { .. } => classify_chain(e),
        _ => Failure::Answer,
    }
}

fn classify_chain(e: &(dyn std::error::Error + 'static)) -> Failure {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if PERMANENT_IO.contains(&io.kind()) {
                return Failure::Permanent;
            }
        }
        if c.downcast_ref::<object_store::client::HttpError>().is_some() {
            return Failure::Transient; // transport: connect, reset, timeout, cut body
        }
        if let Some(status) = quoted_status(&c.to_string()) {
            let client_error = (400..500).contains(&status) && status != 408 && status != 429;
            return if client_error {
                Failure::Permanent
            } else {
                Failure::Transient
            };
        }
        cause = c.source();
    }
    Failure::Transient
}

/// The status in object_store's "Server returned non-2xx status code: 400 Bad Request: …".
/// Its error type carrying the status is private to the crate, so the message is read.
fn quoted_status(msg: &str) -> Option<u16> {
    const MARK: &str = "Server returned non-2xx status code: ";
    let rest = &msg[msg.find(MARK)? + MARK.len()..];
    rest.get(..3)?.parse().ok()
}

/// How often and how patiently an operation is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Backoff between attempts: decorrelated jitter between `init_backoff` and `base` times
    /// the previous wait, capped at `max_backoff` (object_store's own algorithm).
    pub backoff: BackoffConfig,
}

impl RetryPolicy {
    /// For requests that decide the sync (probe, lease, commit, listing, manifest reads): on
    /// top of object_store's per-request retries, enough attempts to outlast a server restart
    /// of several seconds.
    pub fn control_plane() -> RetryPolicy {
        RetryPolicy {
            attempts: 6,
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(250),
                max_backoff: Duration::from_secs(8),
                base: 3.0,
            },
        }
    }
}

/// Waits of [`RetryPolicy::backoff`], one after another.
struct Backoff {
    config: BackoffConfig,
    next: f64,
}

impl Backoff {
    fn new(config: &BackoffConfig) -> Backoff {
        Backoff {
            config: config.clone(),
            next: config.init_backoff.as_secs_f64(),
        }
    }

    fn next(&mut self) -> Duration {
        let init = self.config.init_backoff.as_secs_f64();
        let high = (self.next * self.config.base).max(init + f64::EPSILON);
        let drawn = init + rand::random::<f64>() * (high - init);
        let wait = std::mem::replace(&mut self.next, drawn.min(self.config.max_backoff.as_secs_f64()));
        Duration::from_secs_f64(wait)
    }
}

/// Run `op` until it succeeds, fails with anything but a transient failure, or has used the
/// policy's attempts. `op` is given the attempt number (1, 2, …); `what` names the operation in
/// the warning printed before each retry.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(&policy.backoff);
    let mut attempt = 0;
    loop {
        attempt += 1;
        tracing::debug!("{what}: request (attempt {attempt})");
        match op(attempt).await {
            Err(e) if classify(&e) == Failure::Transient && attempt < policy.attempts.max(1) => {
                let wait = backoff.next();
                tracing::warn!(
                    "{what}: transient failure (attempt {attempt} of {}), retrying in {:.1}s: {e}",
                    policy.attempts,
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: Box<dyn std::error::Error + Send + Sync>) -> Error {
        Error::store("a", "write", object_store::Error::Generic { store: "S3", source })
    }

    #[test]
    fn io_kinds_that_no_retry_fixes_are_permanent() {
        for kind in PERMANENT_IO {
            let e = generic(Box::new(std::io::Error::new(kind, "x")));
            assert_eq!(classify(&e), Failure::Permanent, "{kind:?}");
        }
        let reset = generic(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "x",
        )));
        assert_eq!(classify(&reset), Failure::Transient);
    }

    #[test]
    fn client_errors_are_permanent_but_throttling_and_server_errors_are_not() {
        let status = |s: &str| {
            generic(
                format!("Error performing PUT in 1ms - Server returned non-2xx status code: {s}: body")
                    .into(),
            )
        };
        assert_eq!(classify(&status("400 Bad Request")), Failure::Permanent);
        assert_eq!(classify(&status("413 Payload Too Large")), Failure::Permanent);
        assert_eq!(classify(&status("429 Too Many Requests")), Failure::Transient);
        assert_eq!(classify(&status("408 Request Timeout")), Failure::Transient);
        assert_eq!(classify(&status("503 Service Unavailable")), Failure::Transient);
        let denied = Error::store(
            "a",
            "write",
            object_store::Error::PermissionDenied {
                path: "a".into(),
                source: "403".into(),
            },
        );
        assert_eq!(classify(&denied), Failure::Permanent);
        let absent = Error::store(
            "a",
            "read",
            object_store::Error::NotFound {
                path: "a".into(),
                source: "404".into(),
            },
        );
        assert_eq!(classify(&absent), Failure::Answer);
    }

    #[tokio::test]
    async fn only_transient_failures_are_tried_again() {
        let policy = RetryPolicy {
            attempts: 4,
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
                base: 2.0,
            },
        };
        let mut calls = 0;
        let r: Result<()> = retry(&policy, "t", |_| {
            calls += 1;
            async { Err(generic("connection reset".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 4);
        let mut calls = 0;
        let r: Result<()> = retry(&policy, "t", |_| {
            calls += 1;
            async {
                Err(generic(Box::new(std::io::Error::from(
                    std::io::ErrorKind::StorageFull,
                ))))
            }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn backoff_stays_within_its_bounds() {
        let mut b = Backoff::new(&BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 3.0,
        });
        assert_eq!(b.next(), Duration::from_millis(100));
        for _ in 0..50 {
            let w = b.next();
            assert!(
                w >= Duration::from_millis(100) && w <= Duration::from_secs(1),
                "{w:?}"
            );
        }
    }
}
