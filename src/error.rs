//! The library's error type: one variant per situation, each naming the object it concerns.
//!
//! The binary maps every variant to exit code 2; the message is what a user reads, so it says
//! which shard and why, and never carries a credential (store URLs are redacted before they get
//! here, and object_store's own errors do not include keys).

use std::path::PathBuf;

/// Errors from shardsync's library. Each variant says what went wrong and where (the store
/// URL, the object's path); its fields are named for what they hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields: each variant's doc and message say what they hold
pub enum Error {
    /// The config file of named remotes is unreadable or malformed; names the file and line.
    #[error("config file {file}{line}: {reason}")]
    InvalidConfig {
        file: String,
        line: String,
        reason: String,
    },

    /// A remote's `secret_env` names an environment variable that is not set.
    #[error("remote {remote:?}: {key} comes from the environment variable {var}, which is not set")]
    RemoteSecretUnset {
        remote: String,
        key: String,
        var: String,
    },

    /// An `--include`/`--exclude` pattern is not a glob.
    #[error("invalid filter pattern {pattern:?}: {reason}")]
    InvalidFilter { pattern: String, reason: String },

    /// The URL could not be parsed or names a scheme we do not support.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A `KEY=VALUE` store option was malformed or unknown to the backend.
    #[error("invalid store option {key:?} for {scheme}: {reason}")]
    InvalidOption {
        scheme: String,
        key: String,
        reason: String,
    },

    /// A store operation failed; `path` is the object, relative to the dataset root (or the
    /// dataset's URL). The message is one line, led by the side and URL of a dataset opened
    /// with [`Dataset::with_side`](crate::Dataset::with_side) (see [`Error::store_label`]): an
    /// HTTP error is its status and the server's error code, a transport error its innermost
    /// cause and the server's address. The whole of object_store's message (the server's
    /// answer included) is the error's source.
    #[error("{}", describe_store(crate::store_errors::label_of(source).as_deref(), path, op, source))]
    Store {
        path: String,
        op: &'static str,
        #[source]
        source: object_store::Error,
    },

    /// An S3 store's AWS credentials could not be had: its profile is missing, or the profile's
    /// `credential_process` (SSO, assume-role, …) failed. Names the store and the profile.
    #[error("{url}: AWS profile {profile:?}: {reason}")]
    AwsCredentials {
        url: String,
        profile: String,
        reason: String,
    },

    /// The manifest is not something we can trust: bad JSON, unknown format, hostile entry.
    #[error("invalid manifest {location}: {reason}")]
    InvalidManifest { location: String, reason: String },

    /// A shard path in a manifest or listing is unsafe or malformed.
    #[error("invalid shard path {path:?}: {reason}")]
    InvalidShardPath { path: String, reason: String },

    /// Strict listing: the listing found keys that are not carried; the first few are named.
    #[error("{location}: {count} key(s) cannot be carried (strict listing makes this an error): {keys}")]
    UnsupportedKeys {
        location: String,
        count: usize,
        keys: String,
    },

    /// The bytes read do not hash to what the plan expected. Nothing was landed.
    #[error("{path}: SHA-256 mismatch: expected {expected}, got {actual} (not landed)")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    /// The object's size differs from the one planned.
    #[error("{path}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },

    /// The source object changed after it was listed; its new bytes are not the planned ones.
    #[error("{path}: source object changed during the sync (not landed; re-run to pick up the new version)")]
    SourceChanged { path: String },

    /// Another writer replaced a destination object between our PUT and its verification.
    #[error("{path}: destination changed during sync: the object was replaced by another writer right after it was written (not claimed; the next sync copies it again)")]
    DestinationReplaced { path: String },

    /// A `.parquet` object whose footer cannot be read (fatal only with `--strict-parquet`;
    /// otherwise the reason is recorded as the entry's `parquet_error`).
    #[error("{path}: Parquet footer not readable: {reason}")]
    InvalidParquet { path: String, reason: String },

    /// The destination manifest changed between the start of the sync and its commit.
    #[error("destination changed during sync: {location} was modified by another writer; nothing was committed, re-run the sync")]
    ManifestConflict { location: String },

    /// Another sync holds the destination's lease; this one wrote nothing.
    #[error("destination changed during sync: another sync is writing to it ({holder}; {location}); nothing was written by this one, re-run when it finishes")]
    DestinationLocked { location: String, holder: String },

    /// Some shards failed; the others completed. Each failure is in the list.
    #[error("{} shard(s) failed: {}", failures.len(), summarize(failures))]
    ShardsFailed { failures: Vec<(String, String)> },

    /// Local I/O (report files, demo data).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The sync's options contradict each other (for example a part size the memory budget
    /// cannot hold).
    #[error("invalid sync options: {reason}")]
    InvalidSyncOptions { reason: String },

    /// The operation was cancelled (Ctrl-C) before it wrote anything.
    #[error("interrupted before anything was written")]
    Interrupted,

    /// A sync ran but does not leave the source's whole dataset: shards failed, or it was
    /// interrupted. What was verified is committed (the manifest claims nothing else); the
    /// report says what was and was not done.
    #[error("{}", incomplete(&outcome.report))]
    Incomplete { outcome: Box<crate::sync::SyncOutcome> },

    /// The sync finished, but the destination does not hold exactly the source's dataset (extras
    /// left without `delete`, or strays a local folder holds).
    #[error("{}: drift remains: the destination does not hold exactly the source's dataset ({} finding(s), extras included)", outcome.report.dst.as_deref().unwrap_or("destination"), outcome.report.findings.len())]
    Drift { outcome: Box<crate::sync::SyncOutcome> },

    /// The source lists no objects: almost always a mistyped prefix. Syncing it would make the
    /// destination empty too.
    #[error("source {url} holds no objects{} — wrong prefix?", if *has_manifest { " (its manifest names objects the store does not hold)" } else { "" })]
    EmptySource { url: String, has_manifest: bool },

    /// The source lists objects, but the filter (`--include`, `--exclude`, size limits) lets
    /// none of them in: a mistyped pattern, most likely.
    #[error(
        "source {url}: the filter ({filter}) matches none of its {listed} object(s) — mistyped pattern?"
    )]
    FilterMatchesNothing {
        url: String,
        listed: usize,
        filter: String,
    },

    /// Removing extras would delete more of the destination than the limit allows.
    #[error(
        "refusing to delete {count} of the {total} objects at {url} (limit: {limit}); nothing was written"
    )]
    TooManyDeletes {
        url: String,
        count: usize,
        total: usize,
        limit: String,
    },

    /// Source and destination are the same place, or one lies inside the other.
    #[error("source {src} and destination {dst} overlap: {reason}; nothing was written")]
    Overlap {
        src: String,
        dst: String,
        reason: &'static str,
    },

    /// After the commit, the destination did not hold what the committed manifest names: another
    /// writer changed it meanwhile (possible on servers that ignore conditional writes).
    #[error("destination changed during sync: {location}: {detail}; re-run the sync")]
    ChangedUnderCommit { location: String, detail: String },

    /// A partitioned run names a plan the destination does not hold (never made, or already
    /// committed and removed).
    #[error("no plan at {location}: make one with `shardsync plan` (a committed plan is removed)")]
    PlanNotFound { location: String },

    /// A plan file is unreadable, or the run does not fit it (another partition count, an ID
    /// taken by another plan).
    #[error("plan {location}: {reason}")]
    InvalidPlan { location: String, reason: String },

    /// The destination manifest changed after the plan was made: another sync committed, so
    /// the plan's work may contradict it. Nothing was written by this run.
    #[error("plan {plan}: the destination manifest {location} changed since the plan was made (another sync committed); nothing was written, make a new plan")]
    PlanStale { plan: String, location: String },

    /// `commit` found partitions without a receipt; nothing was committed.
    #[error("plan {plan}: {} of {partitions} partition(s) have no receipt: {}; run them (`sync --plan {plan} --partition I/{partitions}`), then commit; nothing was committed", missing.len(), missing.iter().map(|i| format!("{i}/{partitions}")).collect::<Vec<_>>().join(", "))]
    ReceiptsMissing {
        plan: String,
        partitions: usize,
        missing: Vec<usize>,
    },
}

fn summarize(failures: &[(String, String)]) -> String {
    let mut s = failures
        .iter()
        .take(5)
        .map(|(p, e)| format!("{p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > 5 {
        s.push_str(&format!("; and {} more", failures.len() - 5));
    }
    s
}

/// "`{store}`: {op} failed (`{path}`): {cause}", the path left out where it is the store's URL.
fn describe_store(store: Option<&str>, path: &str, op: &str, e: &object_store::Error) -> String {
    let cause = short_store_error(e);
    match store {
        Some(store) if store == path || store.ends_with(&format!(" {path}")) => {
            format!("{store}: {op} failed: {cause}")
        }
        Some(store) => format!("{store}: {op} failed ({path}): {cause}"),
        None => format!("{path}: {op} failed: {cause}"),
    }
}

/// A store error in a few words: for an HTTP error answer its status and the server's error
/// code or message, for a request that got no answer its innermost cause and the server's
/// address; otherwise object_store's message plus its innermost cause when the message does
/// not already say it. Redacted either way.
fn short_store_error(e: &object_store::Error) -> String {
    let msg = e.to_string();
    let root = root_cause(e);
    let short = match (http_answer(&msg), request_origin(&msg)) {
        (Some(answer), _) => answer,
        (None, Some(origin)) => format!("{root} ({origin})"),
        (None, None) if msg.contains(&root) => msg,
        (None, None) => format!("{msg} ({root})"),
    };
    redact_secrets(&short)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut root = e;
    while let Some(next) = root.source() {
        root = next;
    }
    root.to_string()
}

/// "403 Forbidden: SignatureDoesNotMatch" from object_store's "… Server returned non-2xx
/// status code: 403 Forbidden: <?xml …><Code>SignatureDoesNotMatch</Code>…".
fn http_answer(msg: &str) -> Option<String> {
    const MARK: &str = "Server returned non-2xx status code: ";
    let rest = &msg[msg.find(MARK)? + MARK.len()..];
    let (status, body) = rest.split_once(": ").unwrap_or((rest, ""));
    let between = |open: &str, close: &str| {
        let from = body.find(open)? + open.len();
        let len = body[from..].find(close)?;
        Some(body[from..from + len].trim().to_string())
    };
    let code = between("<Code>", "</Code>")
        .or_else(|| between("\"message\":\"", "\""))
        .or_else(|| (!body.trim().is_empty() && !body.contains('<')).then(|| body.trim().to_string()))
        .filter(|c| !c.is_empty() && c.len() <= 200);
    Some(match code {
        Some(code) => format!("{status}: {code}"),
        None => status.trim().to_string(),
    })
}

/// The scheme, host and port of the request in object_store's "Error performing GET
/// https://host/key?query in 1.2s …" (never its path or query).
fn request_origin(msg: &str) -> Option<String> {
    const MARK: &str = "Error performing ";
    let rest = &msg[msg.find(MARK)? + MARK.len()..];
    rest.split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .find_map(|w| url::Url::parse(w).ok())
        .map(|u| u.origin().ascii_serialization())
}

/// XML elements of error answers that echo the request's credentials: AWS's
/// `SignatureDoesNotMatch` carries the access key id, and the canonical request it quotes
/// includes signed headers such as `x-amz-security-token` (a session token); Azure's
/// `AuthenticationFailed` quotes the request's SharedKey signature and what it signed.
const SECRET_ELEMENTS: [&str; 7] = [
    "AWSAccessKeyId",
    "StringToSign",
    "StringToSignBytes",
    "CanonicalRequest",
    "CanonicalRequestBytes",
    "SignatureProvided",
    "AuthenticationErrorDetail",
];

/// Query parameters of pre-signed and SAS URLs that carry credentials.
const SECRET_PARAMS: [&str; 7] = [
    "X-Amz-Credential=",
    "X-Amz-Signature=",
    "X-Amz-Security-Token=",
    "X-Goog-Credential=",
    "X-Goog-Signature=",
    "sig=",
    "AWSAccessKeyId=",
];

/// Remove credential-bearing parts of a message that quotes a server's answer or a URL:
/// the contents of `SECRET_ELEMENTS` and the values of `SECRET_PARAMS` become `***`.
pub fn redact_secrets(s: &str) -> String {
    let mut out = s.to_string();
    for tag in SECRET_ELEMENTS {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut from = 0;
        while let Some(i) = out[from..].find(&open).map(|i| from + i + open.len()) {
            let end = out[i..].find(&close).map_or(out.len(), |j| i + j);
            out.replace_range(i..end, "***");
            from = i + 3;
        }
    }
    for param in SECRET_PARAMS {
        let mut from = 0;
        while let Some(i) = out[from..].find(param).map(|i| from + i + param.len()) {
            let end = out[i..]
                .find(|c: char| c == '&' || c == '"' || c == '<' || c.is_whitespace())
                .map_or(out.len(), |j| i + j);
            out.replace_range(i..end, "***");
            from = i + 3;
        }
    }
    out
}

impl Error {
    pub(crate) fn store(path: impl Into<String>, op: &'static str, source: object_store::Error) -> Self {
        // Credentials that could not be had fail every request alike: say that, not the path.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
        while let Some(c) = cause {
            if let Some(Error::AwsCredentials { url, profile, reason }) = c.downcast_ref::<Error>() {
                return Error::AwsCredentials {
                    url: url.clone(),
                    profile: profile.clone(),
                    reason: reason.clone(),
                };
            }
            cause = c.source();
        }
        Error::Store {
            path: path.into(),
            op,
            source,
        }
    }

    /// The side and URL of the dataset a store error came from ("source s3://b/p"), when it
    /// was opened with [`Dataset::with_side`](crate::Dataset::with_side).
    pub fn store_label(&self) -> Option<String> {
        match self {
            Error::Store { source, .. } => crate::store_errors::label_of(source).map(|l| l.to_string()),
            _ => None,
        }
    }

    /// True when retrying the same operation may succeed (network, 5xx, throttling); see
    /// `retry::classify`.
    pub fn is_transient(&self) -> bool {
        crate::retry::classify(self) == crate::retry::Failure::Transient
    }

    /// True when no retry can fix it (disk full, name too long, a path component that is a
    /// file, access denied, a 4xx other than 408/429).
    pub fn is_permanent(&self) -> bool {
        crate::retry::classify(self) == crate::retry::Failure::Permanent
    }

    /// True when the destination as a whole refuses writes (disk full, quota exceeded, a
    /// read-only file system): every further write would fail the same way.
    pub fn is_destination_wide(&self) -> bool {
        self.destination_wide_cause().is_some()
    }

    /// The cause of a destination-wide refusal (see [`Error::is_destination_wide`]), as the
    /// operating system or server says it, without the object's name.
    pub fn destination_wide_cause(&self) -> Option<String> {
        match self {
            Error::Store { source, .. } => crate::retry::store_wide_cause(source).map(|io| io.to_string()),
            _ => None,
        }
    }
}

fn incomplete(r: &crate::report::Report) -> String {
    let dst = r.dst.as_deref().unwrap_or("destination");
    let mut parts = Vec::new();
    if r.shards_failed > 0 {
        parts.push(format!("{} shard(s) failed", r.shards_failed));
    }
    if r.shards_not_started > 0 {
        parts.push(format!(
            "{} not copied ({})",
            r.shards_not_started,
            r.not_copied_reason()
        ));
    }
    format!(
        "{dst}: sync incomplete: {}; its manifest claims only the {} shard(s) verified",
        parts.join(", "),
        r.shards_total
            .saturating_sub(r.shards_failed + r.shards_not_started)
    )
}

impl Error {
    /// The report of a sync that ran but did not finish ([`Error::Incomplete`],
    /// [`Error::Drift`]).
    pub fn report(&self) -> Option<&crate::report::Report> {
        self.outcome().map(|o| &o.report)
    }

    /// The outcome (report, plan, committed manifest) of a sync that ran but did not finish.
    pub fn outcome(&self) -> Option<&crate::sync::SyncOutcome> {
        match self {
            Error::Incomplete { outcome } | Error::Drift { outcome } => Some(outcome),
            _ => None,
        }
    }

    /// The outcome of a sync that ran but did not finish, taken out of the error.
    pub fn into_outcome(self) -> Result<crate::sync::SyncOutcome, Error> {
        match self {
            Error::Incomplete { outcome } | Error::Drift { outcome } => Ok(*outcome),
            e => Err(e),
        }
    }
}

/// A result whose error is shardsync's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_name_the_root_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = Error::store(
            "train/a.parquet",
            "read",
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(Wrapper(io)),
            },
        );
        let msg = e.to_string();
        assert!(msg.starts_with("train/a.parquet: read failed: "), "{msg}");
        assert!(msg.ends_with("(Connection refused)"), "{msg}");
        assert_eq!(msg.matches("Connection refused").count(), 1, "{msg}");
    }

    #[test]
    fn http_answers_are_status_and_code_and_name_the_labelled_store() {
        let e = |body: &str| {
            object_store::Error::Generic {
            store: "S3",
            source: format!(
                "Error performing GET http://127.0.0.1:9/b/k?x=1 in 2ms - Server returned non-2xx status code: {body}"
            )
            .into(),
        }
        };
        let xml = "403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>\
            <AWSAccessKeyId>AKIAEXAMPLEKEY123</AWSAccessKeyId></Error>";
        assert_eq!(short_store_error(&e(xml)), "403 Forbidden: SignatureDoesNotMatch");
        let json = "400 Bad Request: {\"error\":{\"code\":400,\"message\":\"invalid uploadType\"}}";
        assert_eq!(short_store_error(&e(json)), "400 Bad Request: invalid uploadType");
        assert_eq!(short_store_error(&e("404 Not Found: ")), "404 Not Found");
        assert_eq!(
            describe_store(Some("source s3://b/p"), "_shardsync/manifest.json", "read manifest", &e(xml)),
            "source s3://b/p: read manifest failed (_shardsync/manifest.json): 403 Forbidden: SignatureDoesNotMatch"
        );
        assert_eq!(
            describe_store(Some("source s3://b/p"), "s3://b/p", "list", &e("404 Not Found: ")),
            "source s3://b/p: list failed: 404 Not Found"
        );
        let refused = object_store::Error::Generic {
            store: "S3",
            source: Box::new(Wrapper(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused",
            ))),
        };
        let msg = format!("Error performing list request: Error performing GET http://127.0.0.1:9/b?list-type=2 in 1ms - {refused}");
        let refused = object_store::Error::Generic {
            store: "S3",
            source: Box::new(Chained(msg, refused)),
        };
        assert_eq!(
            short_store_error(&refused),
            "Connection refused (http://127.0.0.1:9)"
        );
    }

    /// An error with a message of its own and a source.
    #[derive(Debug)]
    struct Chained(String, object_store::Error);
    impl std::fmt::Display for Chained {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Chained {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn aws_signature_errors_lose_the_credentials_they_echo() {
        // The shape of AWS's answer to a request signed with a wrong secret.
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
            <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated \
            does not match</Message><AWSAccessKeyId>AKIAEXAMPLEKEY123</AWSAccessKeyId>\
            <StringToSign>AWS4-HMAC-SHA256\n20261125T000000Z\nabc</StringToSign>\
            <SignatureProvided>deadbeef</SignatureProvided><CanonicalRequest>GET\n/data\n\
            x-amz-security-token:FQoGZXIvYXdzSESSIONTOKEN\n</CanonicalRequest></Error>";
        let e = Error::store(
            "_shardsync/manifest.json",
            "read manifest",
            object_store::Error::Generic {
                store: "S3",
                source: body.into(),
            },
        );
        let msg = e.to_string();
        for secret in [
            "AKIAEXAMPLEKEY123",
            "FQoGZXIvYXdzSESSIONTOKEN",
            "deadbeef",
            "AWS4-HMAC",
        ] {
            assert!(!msg.contains(secret), "{secret} in {msg}");
        }
        assert!(
            msg.contains("SignatureDoesNotMatch") && msg.contains("403"),
            "{msg}"
        );
        let azure = "<Error><Code>AuthenticationFailed</Code><AuthenticationErrorDetail>The MAC \
            signature found in the HTTP request 'c2lnbmF0dXJl' is not the same as any computed \
            signature.</AuthenticationErrorDetail></Error>";
        let r = redact_secrets(azure);
        assert!(
            !r.contains("c2lnbmF0dXJl") && r.contains("AuthenticationFailed"),
            "{r}"
        );
        let url =
            "GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAX%2F2026&X-Amz-Signature=abc123 failed";
        let r = redact_secrets(url);
        assert!(!r.contains("AKIAX") && !r.contains("abc123"), "{r}");
        assert!(
            r.contains("X-Amz-Credential=***&X-Amz-Signature=*** failed"),
            "{r}"
        );
    }
}
