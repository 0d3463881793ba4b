//! Raw S3 requests that object_store 0.14 does not make: listing and aborting incomplete
//! multipart uploads, and a ListObjectsV2 that also sees keys object_store cannot represent
//! (`a//b`, `.`/`..` segments).
//!
//! [`S3Control`] is built by `Dataset::open` from the same configuration as the dataset's
//! `AmazonS3` store: the same bucket URL (path or virtual-hosted style), region, client options
//! (TLS roots, proxy, timeouts, `allow_http`) through object_store's own `ReqwestConnector`, and
//! the store's own refreshing credential provider, signed by object_store's `AwsAuthorizer`. So
//! it reaches the server the store reaches, as the same principal. It neither reads nor writes
//! object bytes: the store does that.
//!
//! What is done with it lives here too, since each is a few lines: [`abort_left_over_uploads`]
//! (called once a sync holds the destination's lease) and [`S3Control::list_objects`] (the
//! listing's fallback, see `crate::listing`).

use std::time::Duration;

use bytes::{Buf, Bytes};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use http::Method;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpConnector, HttpError, HttpRequestBody, ReqwestConnector};
use object_store::ClientOptions;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::store::Dataset;

/// RFC 3986 unreserved characters stay, everything else is escaped (as object_store and the
/// SigV4 canonical form do).
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`STRICT`], keeping `/` for a key in a URL path.
const STRICT_PATH: &AsciiSet = &STRICT.remove(b'/');
/// Attempts per request: transport errors, 5xx and 429 are retried with backoff.
const ATTEMPTS: u32 = 4;
/// Aborts in flight at once.
const ABORT_CONCURRENCY: usize = 16;

/// A raw S3 request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The server answered with an error status (its `Code` and `Message` when it sent them).
    #[error("{op}: HTTP {status} {code}: {message}")]
    Status {
        op: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, timeout, TLS.
    #[error("{op}: {source}")]
    Transport {
        op: &'static str,
        #[source]
        source: HttpError,
    },
    /// An answer we cannot read.
    #[error("{op}: unreadable answer: {reason}")]
    Answer { op: &'static str, reason: String },
    /// The request could not be built or signed (credentials included).
    #[error("{op}: {reason}")]
    Request { op: &'static str, reason: String },
}

impl ControlError {
    /// The server does not implement the request (s3s-fs has no ListMultipartUploads).
    pub fn is_not_implemented(&self) -> bool {
        matches!(self, ControlError::Status { status, code, .. }
            if *status == 501 || code == "NotImplemented" || (*status == 405 && code.is_empty()))
    }
}

impl From<ControlError> for object_store::Error {
    fn from(e: ControlError) -> Self {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        }
    }
}

/// An object as a raw ListObjectsV2 lists it: the key in full (decoded), and the fields
/// object_store's own listing reads, parsed the same way (the ETag as sent, quotes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    pub e_tag: Option<String>,
}

/// An incomplete multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// A signed raw S3 client for one bucket (see the module doc).
#[derive(Clone)]
pub struct S3Control {
    http: HttpClient,
    /// The bucket's URL without a trailing `/`; a key's URL is `{bucket_url}/{key}`.
    bucket_url: String,
    region: String,
    /// `None`: `skip_signature`, requests go unsigned as the store's do.
    credentials: Option<AwsCredentialProvider>,
    sign_payload: bool,
    request_payer: bool,
}

impl std::fmt::Debug for S3Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Control")
            .field("bucket_url", &self.bucket_url)
            .finish()
    }
}

impl S3Control {
    /// The client for the store `store` built from `builder` (which has every setting the
    /// store had; `client` are the client options it was given). `None` where the store's
    /// requests are not reproducible here (S3 Express sessions) or no client can be made.
    pub(crate) fn for_store(
        builder: &AmazonS3Builder,
        bucket: &str,
        client: &ClientOptions,
        store: &AmazonS3,
    ) -> Option<S3Control> {
        let flag = |k: AmazonS3ConfigKey| builder.get_config_value(&k).is_some_and(|v| v == "true");
        if flag(AmazonS3ConfigKey::S3Express) || bucket.is_empty() {
            return None;
        }
        let region = builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
        let bucket_url = bucket_url(
            endpoint.as_deref(),
            bucket,
            &region,
            flag(AmazonS3ConfigKey::VirtualHostedStyleRequest),
        );
        let http = match ReqwestConnector::default().connect(client) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!("no raw S3 client for {bucket}: {e}");
                return None;
            }
        };
        Some(S3Control {
            http,
            bucket_url,
            region,
            credentials: (!flag(AmazonS3ConfigKey::SkipSignature)).then(|| store.credentials().clone()),
            sign_payload: !flag(AmazonS3ConfigKey::UnsignedPayload),
            request_payer: flag(AmazonS3ConfigKey::RequestPayer),
        })
    }

    /// The URL of `key`, or of the bucket when `key` is empty, with `query` (`(name, value)`,
    /// a name alone when the value is `None`).
    fn url(&self, key: &str, query: &[(&str, Option<&str>)]) -> String {
        let mut url = self.bucket_url.clone();
        if !key.is_empty() {
            url.push('/');
            url.extend(utf8_percent_encode(key, STRICT_PATH));
        }
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(utf8_percent_encode(name, STRICT));
            if let Some(v) = value {
                url.push('=');
                url.extend(utf8_percent_encode(v, STRICT));
            }
        }
        url
    }

    /// Send one signed request with an empty body; the answer's body on success.
    async fn send(&self, op: &'static str, method: Method, url: &str) -> Result<Bytes, ControlError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let retry = attempt < ATTEMPTS;
            let req = self.signed(op, method.clone(), url).await?;
            let err = match self.http.execute(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.into_body().bytes().await;
                    match body {
                        Ok(body) if status.is_success() => return Ok(body),
                        Ok(body) => {
                            let e = status_error(op, status.as_u16(), &body);
                            if !(retry && (status.is_server_error() || status.as_u16() == 429))
                                || e.is_not_implemented()
                            {
                                return Err(e);
                            }
                            e
                        }
                        Err(source) => ControlError::Transport { op, source },
                    }
                }
                Err(source) => ControlError::Transport { op, source },
            };
            if !retry {
                return Err(err);
            }
            tracing::debug!("{err}; retrying");
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    async fn signed(
        &self,
        op: &'static str,
        method: Method,
        url: &str,
    ) -> Result<http::Request<HttpRequestBody>, ControlError> {
        let bad = |reason: String| ControlError::Request { op, reason };
        let mut req = http::Request::builder()
            .method(method)
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| bad(e.to_string()))?;
        if let Some(provider) = &self.credentials {
            let credential = provider
                .get_credential()
                .await
                .map_err(|e| bad(format!("credentials: {e}")))?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .with_sign_payload(self.sign_payload)
                .with_request_payer(self.request_payer)
                .try_authorize(&mut req, None)
                .map_err(|e| bad(format!("signing: {e}")))?;
        }
        Ok(req)
    }

    /// Every object whose key starts with `prefix` (ListObjectsV2, paginated, keys URL-encoded
    /// in the answer so that no key is lost to XML), in the server's order.
    pub async fn list_objects(&self, prefix: &str) -> Result<Vec<RawObject>, ControlError> {
        const OP: &str = "ListObjectsV2";
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", Some("2")), ("encoding-type", Some("url"))];
            if !prefix.is_empty() {
                query.push(("prefix", Some(prefix)));
            }
            if let Some(t) = &token {
                query.push(("continuation-token", Some(t.as_str())));
            }
            let body = self.send(OP, Method::GET, &self.url("", &query)).await?;
            let page: ListBucketResult = parse(OP, body)?;
            let encoded = page.encoding_type.as_deref() == Some("url");
            for c in page.contents {
                out.push(RawObject {
                    key: decode_key(OP, c.key, encoded)?,
                    size: c.size,
                    last_modified: c.last_modified,
                    e_tag: c.e_tag,
                });
            }
            // As object_store: the next page is asked for while the server hands a token.
            match page.next_continuation_token.filter(|t| !t.is_empty()) {
                Some(t) if token.as_ref() != Some(&t) => token = Some(t),
                Some(_) => {
                    return Err(ControlError::Answer {
                        op: OP,
                        reason: "the same continuation token twice".into(),
                    })
                }
                None => return Ok(out),
            }
        }
    }

    /// Every incomplete multipart upload whose key starts with `prefix` (paginated).
    pub async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, ControlError> {
        const OP: &str = "ListMultipartUploads";
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut query = vec![("uploads", None), ("encoding-type", Some("url"))];
            if !prefix.is_empty() {
                query.push(("prefix", Some(prefix)));
            }
            if let Some((key, id)) = &marker {
                query.push(("key-marker", Some(key.as_str())));
                query.push(("upload-id-marker", Some(id.as_str())));
            }
            let body = self.send(OP, Method::GET, &self.url("", &query)).await?;
            let page: ListMultipartUploadsResult = parse(OP, body)?;
            let encoded = page.encoding_type.as_deref() == Some("url");
            for u in page.upload {
                out.push(PendingUpload {
                    key: decode_key(OP, u.key, encoded)?,
                    upload_id: u.upload_id,
                    initiated: u.initiated,
                });
            }
            if !page.is_truncated {
                return Ok(out);
            }
            let next_key = page.next_key_marker.filter(|k| !k.is_empty());
            let next = match next_key {
                Some(k) => Some((
                    decode_key(OP, k, encoded)?,
                    page.next_upload_id_marker.unwrap_or_default(),
                )),
                None => None,
            };
            match next {
                Some(n) if marker.as_ref() != Some(&n) => marker = Some(n),
                _ => {
                    return Err(ControlError::Answer {
                        op: OP,
                        reason: "a truncated page without a new marker".into(),
                    })
                }
            }
        }
    }

    /// Abort one multipart upload; `false` when the server no longer knows it.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<bool, ControlError> {
        let url = self.url(key, &[("uploadId", Some(upload_id))]);
        match self.send("AbortMultipartUpload", Method::DELETE, &url).await {
            Ok(_) => Ok(true),
            Err(ControlError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The bucket's URL, as object_store's `AmazonS3Builder::build` makes it.
fn bucket_url(endpoint: Option<&str>, bucket: &str, region: &str, virtual_hosted: bool) -> String {
    let url = match (endpoint, virtual_hosted) {
        (Some(e), true) => e.to_string(),
        (Some(e), false) => format!("{}/{bucket}", e.trim_end_matches('/')),
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    };
    url.trim_end_matches('/').to_string()
}

/// Keys in an answer to `encoding-type=url` come URL-encoded (AWS writes a space as `+`), but
/// only when the answer says so: servers that ignore the parameter (moto, for uploads) send
/// them raw.
fn decode_key(op: &'static str, key: String, encoded: bool) -> Result<String, ControlError> {
    if !encoded {
        return Ok(key);
    }
    let plus = key.replace('+', " ");
    percent_decode_str(&plus)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| ControlError::Answer {
            op,
            reason: format!("key {key:?} does not decode to UTF-8"),
        })
}

fn parse<T: serde::de::DeserializeOwned>(op: &'static str, body: Bytes) -> Result<T, ControlError> {
    quick_xml::de::from_reader(body.reader()).map_err(|e| ControlError::Answer {
        op,
        reason: e.to_string(),
    })
}

fn status_error(op: &'static str, status: u16, body: &[u8]) -> ControlError {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct ErrorBody {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let e: ErrorBody = quick_xml::de::from_reader(body).unwrap_or_default();
    ControlError::Status {
        op,
        status,
        code: e.code,
        message: crate::display::escape_controls(&e.message).into_owned(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<ListContents>,
    #[serde(default)]
    next_continuation_token: Option<String>,
    #[serde(default)]
    encoding_type: Option<String>,
}

/// The fields and types of object_store's own `ListContents`, so that a raw listing yields
/// the `ObjectMeta` object_store would.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListContents {
    key: String,
    size: u64,
    last_modified: DateTime<Utc>,
    #[serde(rename = "ETag")]
    e_tag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default)]
    upload: Vec<UploadEntry>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default)]
    encoding_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadEntry {
    key: String,
    upload_id: String,
    initiated: DateTime<Utc>,
}

/// Whether `key` lies under the dataset root `root` (whole segments: `train2/x` is not under
/// `train`). An empty root is the whole bucket.
fn under_root(root: &str, key: &str) -> bool {
    root.is_empty()
        || key
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty())
}

/// Abort the incomplete multipart uploads under the dataset root that were initiated before
/// `before` (when this sync took the lease): a killed sync's parts are otherwise billed
/// forever. Best effort, never an error: a server without ListMultipartUploads is noted in
/// the log, other failures are logged as warnings. Returns the warning for the report when
/// something was aborted.
pub async fn abort_left_over_uploads(ds: &Dataset, before: DateTime<Utc>) -> Option<String> {
    let control = ds.s3_control.as_deref()?;
    let root = ds.root.as_ref();
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    let uploads = match control.list_uploads(&prefix).await {
        Ok(u) => u,
        Err(e) if e.is_not_implemented() => {
            tracing::info!(
                "{}: the server does not list multipart uploads, so none left by an earlier sync can be cleaned up ({e})",
                ds.url
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "{}: could not list incomplete multipart uploads left by an earlier sync: {e}",
                ds.url
            );
            return None;
        }
    };
    let stale: Vec<PendingUpload> = uploads
        .into_iter()
        .filter(|u| under_root(root, &u.key) && u.initiated < before)
        .collect();
    if stale.is_empty() {
        return None;
    }
    // Futures collected first, not a lazy `map` over `&PendingUpload`: that closure would
    // make the sync future not provably `Send` (see `sync::sync`).
    let aborts: Vec<_> = stale
        .iter()
        .map(|u| control.abort_upload(&u.key, &u.upload_id))
        .collect();
    let results: Vec<Result<bool, ControlError>> = futures::stream::iter(aborts)
        .buffer_unordered(ABORT_CONCURRENCY)
        .collect()
        .await;
    let aborted = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let failed: Vec<&ControlError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if aborted == 0 && failed.is_empty() {
        return None; // all of them finished or were aborted by someone else meanwhile
    }
    let mut msg = format!(
        "{}: aborted {aborted} incomplete multipart upload(s) left by an earlier sync",
        ds.url
    );
    if let Some(first) = failed.first() {
        msg.push_str(&format!("; {} could not be aborted ({first})", failed.len()));
    }
    tracing::warn!("{msg}");
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;
    use object_store::signer::Signer;

    #[test]
    fn whole_segments_decide_what_is_under_the_root() {
        assert!(under_root("train", "train/a.parquet"));
        assert!(under_root("train", "train/_shardsync/x"));
        assert!(!under_root("train", "train2/a.parquet"));
        assert!(!under_root("train", "train"));
        assert!(!under_root("data/train", "data/train.bak/a"));
        assert!(under_root("", "anything"));
    }

    #[test]
    fn encoded_keys_are_decoded_only_when_the_answer_says_so() {
        let k = |s: &str, enc| decode_key("t", s.to_string(), enc).unwrap();
        assert_eq!(k("a%2F%2Fb+c%2B%25.bin", true), "a//b c+%.bin");
        assert_eq!(k("100%25 raw+.bin", false), "100%25 raw+.bin");
        assert_eq!(k("%C3%BCn%C3%AF", true), "ünï");
        assert!(decode_key("t", "%FF".into(), true).is_err());
    }

    /// The bucket URL must be object_store's, or the raw requests go elsewhere than the store's:
    /// compared with the store's own signed URL for a key, path and virtual-hosted style.
    #[tokio::test]
    async fn the_bucket_url_is_the_one_object_store_uses() {
        for (endpoint, virtual_hosted) in [
            (Some("http://127.0.0.1:9000"), "false"),
            (Some("http://127.0.0.1:9000/"), "false"),
            (Some("https://bkt.minio.internal"), "true"),
            (None, "false"),
            (None, "true"),
        ] {
            let mut b = AmazonS3Builder::new()
                .with_url("s3://bkt/pre")
                .with_config(AmazonS3ConfigKey::Region, "eu-west-3")
                .with_config(AmazonS3ConfigKey::AccessKeyId, "AK")
                .with_config(AmazonS3ConfigKey::SecretAccessKey, "SK")
                .with_config(AmazonS3ConfigKey::VirtualHostedStyleRequest, virtual_hosted)
                .with_config(
                    AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp),
                    "true",
                );
            if let Some(e) = endpoint {
                b = b.with_config(AmazonS3ConfigKey::Endpoint, e);
            }
            let store = b.clone().build().unwrap();
            let control = S3Control::for_store(&b, "bkt", &ClientOptions::new(), &store).unwrap();
            let signed = store
                .signed_url(Method::GET, &Path::from("pre/k.bin"), Duration::from_secs(60))
                .await
                .unwrap();
            let ours = control.url("pre/k.bin", &[]);
            assert_eq!(
                signed.as_str().split('?').next().unwrap(),
                ours,
                "{endpoint:?} virtual_hosted={virtual_hosted}"
            );
        }
    }

    #[test]
    fn answers_parse_as_object_store_reads_them() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>true</IsTruncated>
<Contents><Key>train/a%2F%2Fb.parquet</Key><LastModified>2026-12-02T11:35:27.123Z</LastModified>
<ETag>&quot;49f68a5c8493ec2c0bf489821c21fc3b&quot;</ETag><Size>2</Size></Contents>
<EncodingType>url</EncodingType><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let page: ListBucketResult = parse("t", Bytes::from(xml)).unwrap();
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok"));
        assert_eq!(
            page.contents[0].e_tag.as_deref(),
            Some("\"49f68a5c8493ec2c0bf489821c21fc3b\"")
        );
        assert_eq!(page.contents[0].last_modified.timestamp_subsec_millis(), 123);
        let xml = r#"<ListMultipartUploadsResult><Bucket>b</Bucket><KeyMarker/><IsTruncated>false</IsTruncated>
<Upload><UploadId>id1</UploadId><Key>train/x.bin</Key><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>
<Upload><UploadId>id2</UploadId><Key>train2/y.bin</Key><Initiated>2010-11-10T20:48:34.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page: ListMultipartUploadsResult = parse("t", Bytes::from(xml)).unwrap();
        assert_eq!(page.upload.len(), 2);
        assert_eq!(page.upload[1].upload_id, "id2");
        let e = status_error(
            "t",
            501,
            b"<Error><Code>NotImplemented</Code><Message>nope</Message></Error>",
        );
        assert!(e.is_not_implemented(), "{e}");
    }
}
