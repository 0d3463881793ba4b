//! Named remotes, rclone's habit: `east:tokenized/v7` instead of a URL and a row of options.
//!
//! Why: a sync between two clusters' stores otherwise needs each store's endpoint, region and
//! keys on every command line, and secrets on a command line end up in shell history and `ps`.
//! A config file (`$SHARDSYNC_CONFIG`, else `$XDG_CONFIG_HOME/shardsync/config.toml`, else
//! `~/.config/shardsync/config.toml`) names each store once:
//!
//! ```toml
//! [remotes.east]
//! url = "s3://bucket/prefix"
//! profile = "east"
//! options = { region = "us-east-1", endpoint = "http://127.0.0.1:9000" }
//! secret_env = { secret_access_key = "EAST_SECRET", access_key_id = "EAST_KEY" }
//! ```
//!
//! Secrets are never in the file: `secret_env` names the environment variable each is read
//! from, and an unset variable is an error naming the remote and the variable.
//!
//! **When an argument is a remote:** `NAME:PATH` (or `NAME:`) where `NAME` matches
//! `[A-Za-z0-9_-]+`, is not a URL scheme shardsync knows (`s3`, `file`, …), the text after
//! the colon does not start with `//`, and `NAME` is defined in the config file. Anything else is
//! a URL or a local path, as without a config file (so `C:\data` or `./east:x` are paths, unless
//! a remote is literally named `C`). An undefined name is never an error here.
//! `NAME:` is the remote's root; `NAME:sub/path` appends `sub/path` to its URL's prefix (a
//! local-folder remote joins it as a sub-folder).
//!
//! **Precedence, the same for every option:** an explicit `--opt`/`--src-opt`/`--dst-opt` >
//! the remote's `options`, `profile` and `secret_env` > the environment (`AWS_*`, …). A remote's
//! settings are handed to the store as options, so they displace the environment's the way an
//! explicit option does (see `store_options`); an explicit option of the same key displaces
//! the remote's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// URL schemes that are never remote names.
const SCHEMES: &[&str] = &[
    "s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "file", "memory", "http", "https",
];

/// The config file: its remotes by name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The remotes, by name.
    #[serde(default)]
    pub remotes: BTreeMap<String, Remote>,
}

/// One named store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// The store URL or local path of the remote's root.
    pub url: String,
    /// The AWS profile (the `profile=` option).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Store options (`KEY = "VALUE"`), not secrets.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Secret options by the name of the environment variable that holds each.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    /// The price of a GiB leaving this store, in US dollars: a sync or diff from it estimates
    /// its cost at this price unless `--egress-price` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_price: Option<f64>,
}

/// The config file's path: `$SHARDSYNC_CONFIG`, `$XDG_CONFIG_HOME/shardsync/config.toml`,
/// `~/.config/shardsync/config.toml` (`None`: no HOME either).
pub fn config_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("SHARDSYNC_CONFIG") {
        return Some(p);
    }
    let base = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config")))?;
    Some(base.join("shardsync").join("config.toml"))
}

impl Config {
    /// Parse a config file's text; `file` names it in errors (with the line).
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let bad = |line: Option<usize>, reason: String| Error::InvalidConfig {
            file: file.display().to_string(),
            line: line.map(|l| format!(", line {l}")).unwrap_or_default(),
            reason,
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            bad(line, e.message().trim().replace('\n', " "))
        })?;
        for name in config.remotes.keys() {
            if !is_name(name) || SCHEMES.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(bad(
                    None,
                    format!("remote name {name:?} is not letters, digits, '-', '_' (or is a URL scheme)"),
                ));
            }
        }
        Ok(config)
    }

    /// Read the config file at [`config_path`]; a missing file is an empty config.
    pub fn load() -> Result<Config> {
        let Some(path) = config_path() else {
            return Ok(Config::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Error::InvalidConfig {
                file: path.display().to_string(),
                line: String::new(),
                reason: e.to_string(),
            }),
        }
    }

    /// Resolve a command-line dataset argument and its explicit options: a remote's
    /// `NAME:PATH` becomes its URL and the remote's options under the explicit ones (see the
    /// module doc for the rule); any other argument is returned as it is.
    pub fn resolve(
        &self,
        arg: &str,
        explicit: &[(String, String)],
    ) -> Result<(String, Vec<(String, String)>)> {
        let Some((name, remote, rest)) = self.lookup(arg) else {
            return Ok((arg.to_string(), explicit.to_vec()));
        };
        let mut from_remote: Vec<(String, String)> = remote
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(p) = &remote.profile {
            from_remote.push(("profile".into(), p.clone()));
        }
        for (key, var) in &remote.secret_env {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => from_remote.push((key.clone(), v)),
                _ => {
                    return Err(Error::RemoteSecretUnset {
                        remote: name.to_string(),
                        key: key.clone(),
                        var: var.clone(),
                    })
                }
            }
        }
        from_remote.retain(|(k, _)| !explicit.iter().any(|(e, _)| e == k));
        from_remote.extend(explicit.iter().cloned());
        Ok((join(&remote.url, rest), from_remote))
    }

    /// The egress price of the remote a dataset argument names, if it names one that has it.
    pub fn egress_price(&self, arg: &str) -> Option<f64> {
        self.lookup(arg)?.1.egress_price
    }

    fn lookup<'a>(&'a self, arg: &'a str) -> Option<(&'a str, &'a Remote, &'a str)> {
        let (name, rest) = arg.split_once(':')?;
        if !is_name(name) || rest.starts_with("//") || SCHEMES.contains(&name.to_ascii_lowercase().as_str()) {
            return None;
        }
        self.remotes.get(name).map(|r| (name, r, rest))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The remote's URL with `rest` appended to its prefix.
fn join(url: &str, rest: &str) -> String {
    let rest = rest.trim_matches('/');
    if rest.is_empty() {
        return url.to_string();
    }
    let base = url.trim_end_matches('/');
    if base.is_empty() {
        return format!("/{rest}");
    }
    format!("{base}/{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[remotes.east]\nurl = \"s3://b/p/\"\n[remotes.C]\nurl = \"/data/x\"\n",
            Path::new("c.toml"),
        )
        .unwrap()
    }

    #[test]
    fn names_paths_and_urls() {
        let c = config();
        assert_eq!(c.resolve("east:", &[]).unwrap().0, "s3://b/p/");
        assert_eq!(c.resolve("east:a/b", &[]).unwrap().0, "s3://b/p/a/b");
        assert_eq!(c.resolve("C:sub", &[]).unwrap().0, "/data/x/sub");
        assert_eq!(c.egress_price("east:a"), None);
        let priced = Config::parse(
            "[remotes.east]\nurl = \"s3://b\"\negress_price = 0.09\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(priced.egress_price("east:a/b"), Some(0.09));
        assert_eq!(priced.egress_price("s3://b"), None);
        for plain in ["west:x", "s3://east/x", "file:///x", "./east:x", "D:\\x"] {
            assert_eq!(c.resolve(plain, &[]).unwrap().0, plain);
        }
    }

    #[test]
    fn malformed_config_names_file_and_line() {
        let e = Config::parse("[remotes.east]\nurl = \n", Path::new("/x/c.toml")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("/x/c.toml") && s.contains("line 2"), "{s}");
    }
}
