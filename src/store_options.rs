//! Store options: `KEY=VALUE` strings from the command line and the `AWS_*` / `GOOGLE_*` /
//! `AZURE_*` environment, checked one by one before a builder sees them, and merged so that an
//! explicit option always wins.
//!
//! Why not hand everything to object_store's builders: some values panic them rather than
//! fail (`endpoint=localhost:9000`, an empty endpoint: the request signer unwraps the URL), the
//! errors of the others name the value but not the option, and `from_env` lets
//! `AWS_ENDPOINT_URL_S3` override an explicit `endpoint=` (the builder prefers `s3_endpoint`
//! whatever set it). So each value is validated on its own and named in the error, and an
//! explicit option displaces every environment variable of its group (all endpoint keys, all
//! region keys, the static credential triple), not only the one with its exact name.
//! Values are never echoed when they may be secret.

use std::str::FromStr;

use crate::error::{Error, Result};

/// Where a setting came from, for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Option,
    Env(String),
    /// A value of the named AWS profile (see `aws_credentials`).
    Profile(String),
}

/// One resolved setting for a builder.
#[derive(Debug, Clone)]
pub(crate) struct Setting<K> {
    pub key: K,
    pub value: String,
    pub origin: Origin,
}

/// Parse `KEY=VALUE` option strings given with `flag`. A string without `=` is refused without
/// being shown: it is most likely a value (a secret) whose `KEY=` was forgotten.
pub fn parse_options_from(flag: &str, raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let err = |key: String, reason: &str| Error::InvalidOption {
                scheme: "any store".into(),
                key,
                reason: reason.to_string(),
            };
            let nth = || format!("{flag} #{}", i + 1);
            let Some((k, v)) = s.split_once('=') else {
                return Err(err(
                    nth(),
                    "expected KEY=VALUE (the text is not shown: it may be a secret)",
                ));
            };
            let k = k.trim();
            if k.is_empty() {
                return Err(err(nth(), "the key before '=' is empty"));
            }
            if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(
                    nth(),
                    "a key is letters, digits and '_' (the text is not shown)",
                ));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Whether a key's value may be a credential (never shown, not even in a parse error).
fn is_secret(name: &str) -> bool {
    [
        "secret",
        "token",
        "key",
        "password",
        "sas",
        "credential",
        "signature",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// Resolve the settings for one backend: the environment variables starting with `env_prefix`
/// that name a config key, minus those in the group of an explicit option, then the options.
/// `extra` are variables outside the prefix that the builder's `from_env` also reads. `group`
/// puts keys that configure the same thing together (e.g. every endpoint key).
pub(crate) fn resolve<K>(
    scheme: &str,
    env_prefix: &str,
    extra: &[(&str, K)],
    options: &[(String, String)],
    group: impl Fn(&K) -> Option<u8>,
    unknown: &str,
) -> Result<Vec<Setting<K>>>
where
    K: FromStr + AsRef<str> + Copy + PartialEq,
{
    let mut explicit = Vec::with_capacity(options.len());
    for (k, v) in options {
        let key = K::from_str(k).map_err(|_| Error::InvalidOption {
            scheme: scheme.into(),
            key: k.clone(),
            reason: unknown.into(),
        })?;
        explicit.push(Setting {
            key,
            value: v.clone(),
            origin: Origin::Option,
        });
    }
    let displaced = |k: &K| {
        explicit
            .iter()
            .any(|e| e.key == *k || (group(k).is_some() && group(&e.key) == group(k)))
    };
    let mut env: Vec<Setting<K>> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter_map(|(name, value)| {
            let key = match extra.iter().find(|(n, _)| *n == name) {
                Some((_, k)) => *k,
                None if name.starts_with(env_prefix) => K::from_str(&name.to_ascii_lowercase()).ok()?,
                None => return None,
            };
            Some(Setting {
                key,
                value,
                origin: Origin::Env(name),
            })
        })
        .filter(|s| !displaced(&s.key))
        .collect();
    // Deterministic whatever the environment's order (object_store keeps the last of a key).
    env.sort_by(|a, b| match (&a.origin, &b.origin) {
        (Origin::Env(x), Origin::Env(y)) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    });
    env.extend(explicit);
    for s in &env {
        check_value(scheme, s)?;
    }
    Ok(env)
}

/// The error for a setting whose value is unusable; names the option or variable, shows the
/// value only when it cannot be a secret.
pub(crate) fn bad_value<K: AsRef<str>>(scheme: &str, s: &Setting<K>, reason: &str) -> Error {
    let name = s.key.as_ref();
    let reason = if is_secret(name) && !s.value.is_empty() {
        reason.replace(&s.value, "***")
    } else {
        reason.to_string()
    };
    let reason = crate::error::redact_secrets(&reason);
    let key = match &s.origin {
        Origin::Option => name.to_string(),
        Origin::Env(var) => format!("{name}, from the environment variable {var}"),
        Origin::Profile(p) => format!("{name}, from the AWS profile {p:?}"),
    };
    Error::InvalidOption {
        scheme: scheme.into(),
        key,
        reason: crate::display::escape_controls(&reason).into_owned(),
    }
}

/// Checks object_store does not make before it uses a value (or makes by panicking).
pub(crate) fn check_value<K: AsRef<str>>(scheme: &str, s: &Setting<K>) -> Result<()> {
    let name = s.key.as_ref();
    let v = s.value.as_str();
    if v.trim().is_empty() {
        return Err(bad_value(scheme, s, "empty value"));
    }
    let is_url = name.contains("endpoint")
        || name.ends_with("_url")
        || name.ends_with("full_uri")
        || name == "azure_authority_host";
    if is_url {
        let ok = url::Url::parse(v)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if ok.is_none() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let shown = if is_secret(name) { "***" } else { v };
            return Err(bad_value(
                scheme,
                s,
                &format!(
                    "{:?} is not an http:// or https:// URL (e.g. https://minio.internal:9000)",
                    crate::display::escape_controls(shown)
                ),
            ));
        }
    }
    if name.ends_with("_region") && !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
        return Err(bad_value(
            scheme,
            s,
            &format!(
                "{:?} is not a region name (letters, digits, '-', '_')",
                crate::display::escape_controls(v)
            ),
        ));
    }
    Ok(())
}

/// object_store's builder errors say "Generic Config error: failed to parse ..."; keep the part
/// that tells the user something.
pub(crate) fn builder_reason(e: &object_store::Error) -> String {
    let s = e.to_string();
    s.strip_prefix("Generic Config error: ")
        .map(str::to_string)
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::aws::AmazonS3ConfigKey;

    fn opts(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_without_a_key_are_refused_without_echo() {
        for raw in ["AKIASECRETVALUE", "=SECRET", "se cret=SECRET"] {
            let e = parse_options_from("--dst-opt", &[raw.to_string()])
                .unwrap_err()
                .to_string();
            assert!(e.contains("--dst-opt #1"), "{e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
        let ok = parse_options_from("--opt", &["region=eu-west-1".into(), "token=a=b".into()]).unwrap();
        assert_eq!(ok[1], ("token".to_string(), "a=b".to_string()));
    }

    #[test]
    fn endpoints_and_regions_are_checked_and_named() {
        let s3_group = |_: &AmazonS3ConfigKey| None;
        for (k, v, want) in [
            ("endpoint", "localhost:9000", "endpoint"),
            ("endpoint", "", "empty value"),
            ("endpoint", "http://a b", "endpoint"),
            ("region", "us east", "region"),
            ("proxy_url", "notaurl", "proxy_url"),
        ] {
            let e = resolve(
                "s3",
                "SHARDSYNC_TEST_NO_SUCH_",
                &[],
                &opts(&[(k, v)]),
                s3_group,
                "unknown",
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{k}={v}: {e}");
        }
        let secret = Setting {
            key: AmazonS3ConfigKey::SecretAccessKey,
            value: "hunter2".into(),
            origin: Origin::Option,
        };
        let e = bad_value("s3", &secret, "failed to parse \"hunter2\"").to_string();
        assert!(
            !e.contains("hunter2") && e.contains("aws_secret_access_key"),
            "{e}"
        );
    }
}
