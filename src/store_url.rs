//! Dataset URLs as the user typed them: `scheme://bucket/prefix`, a `file:///abs/path` or a
//! plain local path, split without any URL decoding so the dataset root is exactly what was
//! typed.
//!
//! The part after the bucket is the key prefix byte for byte, as `aws s3`, s5cmd and rclone
//! read it: `#` and `%` are key characters, never a fragment or a percent-escape. A `?` is
//! refused (shardsync URLs take no query; a query is usually a versionId or a SAS token, and
//! quietly making it part of the prefix would move the root), and so is user info
//! (`s3://key:secret@bucket`): credentials go in options or the environment. Neither is ever
//! echoed back. The result is an equivalent `url::Url` whose path is percent-encoded, so that
//! `Path::from_url_path` and `Url::to_file_path` give the typed prefix back exactly.

use crate::display::escape_controls;
use crate::error::{Error, Result};

/// Schemes whose authority is a bucket (or container) name.
const BUCKET_SCHEMES: [&str; 7] = ["s3", "s3a", "gs", "az", "azure", "abfs", "abfss"];

/// A parsed dataset URL: the equivalent `url::Url` and the form that is safe to print.
pub(crate) struct ParsedUrl {
    pub url: url::Url,
    /// `scheme://bucket/prefix` as typed (no credentials; control characters escaped).
    pub display: String,
}

/// Parse a dataset URL or a plain local path.
pub(crate) fn parse_url(s: &str) -> Result<ParsedUrl> {
    if s.trim().is_empty() {
        return Err(invalid(
            "",
            "empty (give a store URL such as s3://bucket/prefix, or a local path)",
        ));
    }
    match s.split_once("://") {
        Some((scheme, rest)) => parse_scheme_url(s, scheme, rest),
        None => local_path(s, s),
    }
}

fn invalid(shown: &str, reason: &str) -> Error {
    Error::InvalidUrl {
        url: shown.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_scheme_url(s: &str, scheme: &str, rest: &str) -> Result<ParsedUrl> {
    let scheme = scheme.to_ascii_lowercase();
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    // Shown in messages: never a query (SAS tokens), never user info.
    let rest = if scheme == "file" {
        rest
    } else {
        rest.split('?').next().unwrap_or("")
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let shown_authority = match authority.rsplit_once('@') {
        Some((_, host)) if scheme != "abfs" && scheme != "abfss" => format!("***@{host}"),
        _ => authority.to_string(),
    };
    let shown = format!("{scheme}://{shown_authority}/{path}");
    let shown = shown.trim_end_matches('/');
    let shown = escape_controls(shown).into_owned();
    if !valid_scheme {
        return Err(invalid(&shown, "not a URL scheme"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(&shown, "contains a control character"));
    }
    // A local path's '?' is a file-name character, and no token travels in one.
    if scheme == "file" {
        return file_url(&shown, authority, path);
    }
    if s.contains('?') {
        return Err(invalid(
            &format!("{shown}?…"),
            "a '?' starts a query, and dataset URLs take none: pass settings as store options \
             (KEY=VALUE), not in the URL (the query is not shown; a dataset root whose name \
             contains '?' is not supported)",
        ));
    }
    if scheme == "memory" {
        check_name(&shown, authority, false, true)?;
    } else if BUCKET_SCHEMES.contains(&scheme.as_str()) {
        let abfs = scheme.starts_with("abfs");
        // abfs(s)://container@account.dfs.core.windows.net names no credential; a ':' would.
        let credentials = authority.contains('@') && (!abfs || authority.contains(':'));
        if credentials {
            return Err(invalid(
                &shown,
                "credentials in the URL are not accepted (and are not shown): pass them as \
                 the store options access_key_id / secret_access_key or in the environment",
            ));
        }
        check_name(&shown, authority, abfs, false)?;
    } else {
        return Err(invalid(
            &shown,
            &format!(
                "unsupported scheme {scheme:?} (use s3://, gs://, az://, file://, memory:// or a local path)"
            ),
        ));
    }
    let prefix = path.trim_end_matches('/');
    check_prefix(&shown, prefix)?;
    let url = url::Url::parse(&format!("{scheme}://{authority}/{}", encode_path(prefix)))
        .map_err(|e| invalid(&shown, &e.to_string()))?;
    Ok(ParsedUrl { url, display: shown })
}

/// Bucket, container and memory-store names: the characters those names can have.
fn check_name(shown: &str, name: &str, abfs: bool, empty_ok: bool) -> Result<()> {
    if name.is_empty() && !empty_ok {
        return Err(invalid(shown, "no bucket name (the form is s3://BUCKET/prefix)"));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c) || (abfs && c == '@');
    if let Some(c) = name.chars().find(|&c| !ok(c)) {
        return Err(invalid(
            shown,
            &format!(
                "bucket name {:?} contains {c:?}, which bucket names cannot",
                escape_controls(name)
            ),
        ));
    }
    Ok(())
}

/// Key prefixes object_store can address: no empty, `.` or `..` segment.
fn check_prefix(shown: &str, prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.split('/').any(|seg| matches!(seg, "" | "." | "..")) {
        return Err(invalid(
            shown,
            "the prefix has an empty, '.' or '..' segment, which object_store cannot address",
        ));
    }
    Ok(())
}

/// `file:///abs/path` (or `file://localhost/abs/path`): the path as typed, not decoded.
fn file_url(shown: &str, host: &str, path: &str) -> Result<ParsedUrl> {
    if !host.is_empty() && host != "localhost" {
        return Err(invalid(
            shown,
            "file:// needs an absolute path (file:///abs/path); give a relative path without file://",
        ));
    }
    local_path(&format!("/{path}"), shown)
}

/// A local folder: resolved against the current directory, `.` and `..` resolved lexically.
fn local_path(p: &str, shown: &str) -> Result<ParsedUrl> {
    let shown = escape_controls(shown).into_owned();
    if p.chars().any(char::is_control) {
        return Err(invalid(&shown, "contains a control character"));
    }
    let p = std::path::Path::new(p);
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
    let url = url::Url::from_directory_path(&abs).map_err(|_| invalid(&shown, "not a usable local path"))?;
    let display = format!("file://{}", escape_controls(&abs.display().to_string()));
    Ok(ParsedUrl {
        url,
        display: display.trim_end_matches('/').to_string(),
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

/// Percent-encode everything but unreserved characters and `/`, so the URL's path decodes back
/// to exactly `prefix`.
fn encode_path(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for b in prefix.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::path::Path;

    fn prefix_of(s: &str) -> String {
        let p = parse_url(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        Path::from_url_path(p.url.path()).unwrap().as_ref().to_string()
    }

    #[test]
    fn hash_and_percent_are_key_characters() {
        assert_eq!(prefix_of("s3://b/a#b"), "a#b");
        assert_eq!(prefix_of("s3://b/runs/exp#3/100%25/"), "runs/exp#3/100%25");
        assert_eq!(prefix_of("gs://b/ünï cöde/x"), "ünï cöde/x");
        assert_eq!(prefix_of("az://c"), "");
        assert_eq!(parse_url("s3://b/a#b").unwrap().display, "s3://b/a#b");
    }

    #[test]
    fn local_paths_keep_hash_question_and_percent() {
        for typed in ["/tmp/a#b", "/tmp/q?x=1", "/tmp/100%25"] {
            let p = parse_url(typed).unwrap();
            assert_eq!(p.url.to_file_path().unwrap(), std::path::Path::new(typed));
            let f = parse_url(&format!("file://{typed}")).unwrap();
            assert_eq!(f.url.to_file_path().unwrap(), std::path::Path::new(typed));
        }
    }

    #[test]
    fn queries_credentials_and_odd_prefixes_are_refused_without_echo() {
        for (url, why) in [
            ("s3://b/p?X-Amz-Signature=SECRET", "query"),
            ("az://c/p?sv=1&sig=SECRET", "query"),
            ("s3://AKIA:SECRET@b/p", "credentials"),
            ("gs://SECRET@b/p", "credentials"),
            ("s3://", "no bucket"),
            ("s3:///x", "no bucket"),
            ("s3://b#x/y", "bucket name"),
            ("s3://b/a//c", "segment"),
            ("s3://b/a/../c", "segment"),
            ("ftp://x/y", "unsupported scheme"),
            ("file://relative/x", "absolute path"),
            ("", "empty"),
            ("s3://b/a\u{1b}[2Jb", "control character"),
            ("/tmp/a\u{7}b", "control character"),
        ] {
            let e = parse_url(url)
                .err()
                .unwrap_or_else(|| panic!("{url:?} accepted"))
                .to_string();
            assert!(e.contains(why), "{url}: {e}");
            assert!(
                !e.contains("SECRET") && !e.contains('\u{1b}') && !e.contains('\u{7}'),
                "{e}"
            );
        }
    }
}
