//! AWS credentials the way the aws CLI and boto3 find them, for S3 stores given no static keys.
//!
//! Why this exists: object_store's S3 builder reads only `AWS_*` variables and, failing those,
//! asks the instance metadata endpoint (169.254.169.254). It reads no `~/.aws/config` or
//! `~/.aws/credentials`, so `AWS_PROFILE=east`, a `[default]` profile, `credential_process`, SSO
//! and `role_arn`/`source_profile` profiles did not work. Here `aws-config`'s resolvers stand in
//! front of the store as its [`CredentialProvider`] (as delta-rs does), so credentials come from
//! the same chain and are refreshed when they expire.
//!
//! What this module owns: the per-store `profile=NAME` option (taken out before object_store
//! sees the options), the profile's `region` and `endpoint_url` as settings, and the provider.
//! Precedence: an explicit option beats a profile named with `profile=`, which beats the `AWS_*`
//! environment; a profile picked by `AWS_PROFILE` or the implicit `[default]` yields to the
//! `AWS_*` variables, as it does for the aws CLI. Static keys (options or `AWS_ACCESS_KEY_ID`)
//! and object_store's own credential options keep object_store's behaviour.
//!
//! Nothing touches the network when a store is opened: the profile files are read (local files)
//! and the credential chain is built and asked on the first request. A missing profile is an
//! error at open; a failing `credential_process` (or SSO, assume-role, …) is an
//! [`Error::AwsCredentials`] at the first request. Neither message carries a secret.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::{Profile, ProfileFileCredentialsProvider, ProfileSet};
use aws_config::provider_config::ProviderConfig;
use aws_config::Region;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::env_config::file::EnvConfigFiles as ProfileFiles;
use aws_types::os_shim_internal::{Env, Fs};
use object_store::aws::{AmazonS3ConfigKey, AwsCredential, AwsCredentialProvider};
use object_store::CredentialProvider;

use crate::error::{Error, Result};
use crate::store_options::{check_value, Origin, Setting};

/// The store option that names a profile (`profile=east`), and its long spelling.
const PROFILE_KEYS: [&str; 2] = ["profile", "aws_profile"];

/// Credentials this close to their expiry are fetched again.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Take `profile=NAME` out of one store's options: object_store knows no such key. The last
/// one given wins, as for every other option.
pub(crate) fn take_profile(options: &[(String, String)]) -> (Option<String>, Vec<(String, String)>) {
    let mut profile = None;
    let mut rest = Vec::with_capacity(options.len());
    for (k, v) in options {
        if PROFILE_KEYS.contains(&k.as_str()) {
            profile = Some(v.clone());
        } else {
            rest.push((k.clone(), v.clone()));
        }
    }
    (profile, rest)
}

/// Decide where an S3 store's credentials come from. `None`: object_store's own (static keys,
/// `skip_signature`, or one of its credential options given explicitly). Otherwise the profile's
/// region and endpoint are added to `settings` where they rank, and the provider to give the
/// builder is returned.
pub(crate) fn provider_for(
    url: &str,
    profile_option: Option<String>,
    settings: &mut Vec<Setting<AmazonS3ConfigKey>>,
) -> Result<Option<AwsCredentialProvider>> {
    if object_store_resolves(profile_option.as_deref(), settings)? {
        return Ok(None);
    }
    let (name, profile) = selected_profile(url, profile_option.clone())?;
    if let Some(profile) = &profile {
        add_profile_settings(&name, profile, profile_option.is_some(), settings)?;
    }
    use AmazonS3ConfigKey as K;
    let region = [K::Region, K::DefaultRegion]
        .iter()
        .find_map(|k| settings.iter().rev().find(|s| s.key == *k))
        .map(|s| s.value.clone())
        .unwrap_or_else(|| "us-east-1".into());
    Ok(Some(Arc::new(ChainProvider {
        url: url.to_string(),
        profile: name,
        only_profile: profile_option.is_some(),
        region,
        state: tokio::sync::Mutex::new(State::default()),
    })))
}

fn is_static_key(k: &AmazonS3ConfigKey) -> bool {
    use AmazonS3ConfigKey as K;
    matches!(k, K::AccessKeyId | K::SecretAccessKey | K::Token)
}

fn is_explicit(s: &Setting<AmazonS3ConfigKey>) -> bool {
    s.origin == Origin::Option
}

/// Whether object_store's own credential handling applies (static keys, `skip_signature`, or one
/// of its credential options given explicitly). With `profile=`, the environment's static keys
/// are dropped instead: a profile named for this store beats them, as `--profile` does.
fn object_store_resolves(
    profile_option: Option<&str>,
    settings: &mut Vec<Setting<AmazonS3ConfigKey>>,
) -> Result<bool> {
    use AmazonS3ConfigKey as K;
    if let Some(name) = profile_option {
        if name.trim().is_empty() {
            return Err(invalid_profile("empty value"));
        }
        if settings.iter().any(|s| is_explicit(s) && is_static_key(&s.key)) {
            return Err(invalid_profile(
                "given together with access_key_id/secret_access_key: name one or the other",
            ));
        }
        settings.retain(|s| !is_static_key(&s.key));
        return Ok(false);
    }
    let own = |k: &K| {
        matches!(
            k,
            K::ContainerCredentialsRelativeUri
                | K::ContainerCredentialsFullUri
                | K::WebIdentityTokenFile
                | K::RoleArn
                | K::MetadataEndpoint
        )
    };
    let skip_signature = settings
        .iter()
        .any(|s| s.key == K::SkipSignature && s.value.eq_ignore_ascii_case("true"));
    Ok(skip_signature
        || settings
            .iter()
            .any(|s| matches!(s.key, K::AccessKeyId | K::SecretAccessKey) || (is_explicit(s) && own(&s.key))))
}

/// The profile this store uses, by name, and its section when the files have one. A profile
/// named by `profile=` or `AWS_PROFILE` must exist; the implicit `[default]` need not.
fn selected_profile(url: &str, profile_option: Option<String>) -> Result<(String, Option<Profile>)> {
    let named_by_env = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let profiles = load_profiles(profile_option.clone()).map_err(|reason| Error::AwsCredentials {
        url: url.to_string(),
        profile: profile_option
            .clone()
            .or_else(|| named_by_env.clone())
            .unwrap_or_else(|| "default".into()),
        reason,
    })?;
    let name = profiles.selected_profile().to_string();
    let profile = profiles.get_profile(&name).cloned();
    if profile.is_none() && (profile_option.is_some() || named_by_env.is_some()) {
        return Err(Error::AwsCredentials {
            url: url.to_string(),
            profile: name,
            reason: "no such profile in the AWS config or credentials file (~/.aws/config, \
                     ~/.aws/credentials, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)"
                .into(),
        });
    }
    Ok((name, profile))
}

/// Add the profile's `region` and `endpoint_url` where they rank: below explicit options, and
/// below the `AWS_*` environment unless `profile=` named the profile for this store.
fn add_profile_settings(
    name: &str,
    profile: &Profile,
    outranks_env: bool,
    settings: &mut Vec<Setting<AmazonS3ConfigKey>>,
) -> Result<()> {
    use AmazonS3ConfigKey as K;
    let mut add = |key: K, group: &[K], value: &str| -> Result<()> {
        let taken = |s: &Setting<K>| group.contains(&s.key) && (is_explicit(s) || !outranks_env);
        if settings.iter().any(taken) {
            return Ok(());
        }
        settings.retain(|s| !group.contains(&s.key));
        let setting = Setting {
            key,
            value: value.to_string(),
            origin: Origin::Profile(name.to_string()),
        };
        check_value("s3", &setting)?;
        settings.push(setting);
        Ok(())
    };
    if let Some(region) = profile.get("region") {
        add(K::Region, &[K::Region, K::DefaultRegion], region)?;
    }
    if let Some(endpoint) = profile.get("endpoint_url") {
        add(K::Endpoint, &[K::Endpoint, K::S3Endpoint], endpoint)?;
        // The profile names a plain-HTTP endpoint on purpose (the aws CLI uses it as is).
        let allow_http = K::Client(object_store::ClientConfigKey::AllowHttp);
        if endpoint.starts_with("http://") && !settings.iter().any(|s| s.key == allow_http) {
            settings.push(Setting {
                key: allow_http,
                value: "true".into(),
                origin: Origin::Profile(name.to_string()),
            });
        }
    }
    Ok(())
}

fn invalid_profile(reason: &str) -> Error {
    Error::InvalidOption {
        scheme: "s3".into(),
        key: "profile".into(),
        reason: reason.into(),
    }
}

/// Read the AWS config and credentials files (local files only; `AWS_PROFILE`,
/// `AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE` and `HOME` as aws-config reads them).
fn load_profiles(profile: Option<String>) -> std::result::Result<ProfileSet, String> {
    let (fs, env, files) = (Fs::real(), Env::real(), ProfileFiles::default());
    let load = aws_config::profile::load(&fs, &env, &files, profile.map(Into::into));
    // aws-config reads the files with blocking std::fs calls inside this future, so it completes
    // on its first poll; no async runtime is needed (and `open` stays synchronous).
    futures::executor::block_on(load).map_err(|e| one_line(&e))
}

/// An error and its causes on one line, redacted, bounded in length.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_msg = c.to_string();
        if !msg.contains(&c_msg) {
            msg.push_str(": ");
            msg.push_str(&c_msg);
        }
        cause = c.source();
    }
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut msg = crate::error::redact_secrets(&msg);
    if msg.chars().count() > 400 {
        msg = msg.chars().take(400).collect::<String>() + "…";
    }
    msg
}

/// object_store's view of aws-config's credential chain for one store.
struct ChainProvider {
    /// The store's URL as displayed, and the profile, for error messages.
    url: String,
    profile: String,
    /// `profile=` named the profile: take credentials from it alone, not the whole chain.
    only_profile: bool,
    /// For assume-role and SSO requests.
    region: String,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    source: Option<SharedCredentialsProvider>,
    cached: Option<(Arc<AwsCredential>, Option<SystemTime>)>,
}

impl std::fmt::Debug for ChainProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainProvider")
            .field("url", &self.url)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl ChainProvider {
    async fn source(&self) -> SharedCredentialsProvider {
        let conf = ProviderConfig::default().with_region(Some(Region::new(self.region.clone())));
        if self.only_profile {
            SharedCredentialsProvider::new(
                ProfileFileCredentialsProvider::builder()
                    .configure(&conf)
                    .profile_name(&self.profile)
                    .build(),
            )
        } else {
            SharedCredentialsProvider::new(
                DefaultCredentialsChain::builder()
                    .configure(conf)
                    .profile_name(&self.profile)
                    .region(Region::new(self.region.clone()))
                    .build()
                    .await,
            )
        }
    }
}

#[async_trait]
impl CredentialProvider for ChainProvider {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        // One caller at a time: concurrent first requests run one credential_process, not many.
        let mut state = self.state.lock().await;
        if let Some((credential, expiry)) = &state.cached {
            if expiry.is_none_or(|e| e > SystemTime::now() + REFRESH_MARGIN) {
                return Ok(credential.clone());
            }
        }
        let source = match &state.source {
            Some(s) => s.clone(),
            None => {
                let s = self.source().await;
                state.source = Some(s.clone());
                s
            }
        };
        let credentials =
            source
                .provide_credentials()
                .await
                .map_err(|e| object_store::Error::Unauthenticated {
                    path: self.url.clone(),
                    source: Box::new(Error::AwsCredentials {
                        url: self.url.clone(),
                        profile: self.profile.clone(),
                        reason: match e {
                            // The chain's message lists every provider at length; say it briefly.
                            CredentialsError::CredentialsNotLoaded(_) if !self.only_profile => {
                                "no credentials found (tried AWS_ACCESS_KEY_ID, the profile, web \
                             identity, container and instance credentials)"
                                    .into()
                            }
                            e => one_line(&e),
                        },
                    }),
                })?;
        let credential = Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_string(),
            secret_key: credentials.secret_access_key().to_string(),
            token: credentials.session_token().map(str::to_string),
        });
        state.cached = Some((credential.clone(), credentials.expiry()));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_options_are_taken_out() {
        let opts = vec![
            ("region".to_string(), "eu-west-1".to_string()),
            ("profile".to_string(), "east".to_string()),
        ];
        let (p, rest) = take_profile(&opts);
        assert_eq!(p.as_deref(), Some("east"));
        assert_eq!(rest, vec![("region".to_string(), "eu-west-1".to_string())]);
    }

    #[test]
    fn a_profile_with_explicit_keys_is_refused() {
        let mut settings = vec![Setting {
            key: AmazonS3ConfigKey::AccessKeyId,
            value: "AKIAEXPLICIT".into(),
            origin: Origin::Option,
        }];
        let e = provider_for("s3://b/x", Some("east".into()), &mut settings)
            .unwrap_err()
            .to_string();
        assert!(e.contains("profile") && !e.contains("AKIAEXPLICIT"), "{e}");
    }
}
