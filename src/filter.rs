//! Filters: which objects of a dataset a command looks at (`--include`, `--exclude`,
//! `--min-size`, `--max-size`), with rclone's meaning.
//!
//! A filter defines a *view* of a dataset and is applied to both sides alike: a path outside it
//! is neither copied, nor deleted by `--delete`, nor reported as drift. Patterns match the path
//! relative to the dataset root (globset, `*` stays within one folder, `**` crosses folders). A
//! pattern that starts with `/` is anchored at the root; any other pattern matches at the end
//! of the path, at any depth (`*.parquet` matches `a/b/x.parquet`, `b/*.json` matches
//! `a/b/x.json`). A pattern ending in `/` matches everything under such a folder. An excluded
//! path is out whatever the includes say; when any include is given, only paths that match one
//! are in. The size limits are inclusive.
//!
//! A filtered sync records its [`FilterSpec`] in the destination manifest and the report, so
//! `check` can tell when it is asked to compare a different view.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a filter is, as written by the user: recorded in manifests and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    /// `--include` patterns: when any is given, only matching paths are in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// `--exclude` patterns: a matching path is out, whatever the includes say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Objects smaller than this many bytes are out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// Objects larger than this many bytes are out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
}

impl FilterSpec {
    /// True when the spec lets every object in.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.min_size.is_none()
            && self.max_size.is_none()
    }
}

impl std::fmt::Display for FilterSpec {
    /// As flags: `--include '*.parquet' --exclude 'tmp/**' --max-size 1048576`, or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.include.iter().map(|p| format!("--include '{p}'")));
        parts.extend(self.exclude.iter().map(|p| format!("--exclude '{p}'")));
        parts.extend(self.min_size.map(|n| format!("--min-size {n}")));
        parts.extend(self.max_size.map(|n| format!("--max-size {n}")));
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&crate::display::escape_controls(&parts.join(" ")))
        }
    }
}

/// A compiled [`FilterSpec`]. The default lets everything in.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    spec: FilterSpec,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    /// Compile `spec`; a pattern that is not a glob is [`Error::InvalidFilter`].
    pub fn new(spec: FilterSpec) -> Result<Filter> {
        Ok(Filter {
            include: compile(&spec.include)?,
            exclude: compile(&spec.exclude)?,
            spec,
        })
    }

    /// What this filter is, as the user wrote it.
    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// True when this filter lets every object in.
    pub fn is_empty(&self) -> bool {
        self.spec.is_empty()
    }

    /// Whether the object at `path` (relative to the dataset root) of `size` bytes is in view.
    pub fn matches(&self, path: &str, size: u64) -> bool {
        if self.spec.min_size.is_some_and(|min| size < min)
            || self.spec.max_size.is_some_and(|max| size > max)
        {
            return false;
        }
        if self.exclude.as_ref().is_some_and(|g| g.is_match(path)) {
            return false;
        }
        self.include.as_ref().is_none_or(|g| g.is_match(path))
    }
}

/// The patterns as one set, each translated to rclone's anchoring (see the module doc).
fn compile(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let anchored = match p.strip_prefix('/') {
            Some(rest) => rest.to_string(),
            None => format!("**/{p}"),
        };
        let glob = match anchored.strip_suffix('/') {
            Some(folder) => format!("{folder}/**"),
            None => anchored,
        };
        let g = GlobBuilder::new(&glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::InvalidFilter {
                pattern: p.clone(),
                reason: e.kind().to_string(),
            })?;
        set.add(g);
    }
    set.build().map(Some).map_err(|e| Error::InvalidFilter {
        pattern: patterns.join(" "),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> Filter {
        Filter::new(FilterSpec {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..FilterSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn patterns_match_like_rclone() {
        let f = filter(&["*.parquet"], &[]);
        assert!(f.matches("a.parquet", 1));
        assert!(f.matches("train/part-0.parquet", 1));
        assert!(!f.matches("index.json", 1));
        let anchored = filter(&["/*.json"], &[]);
        assert!(anchored.matches("index.json", 1));
        assert!(!anchored.matches("sub/index.json", 1));
        let folder = filter(&[], &["tmp/"]);
        assert!(!folder.matches("tmp/x.parquet", 1));
        assert!(!folder.matches("a/tmp/b/x.parquet", 1));
        assert!(folder.matches("tmpx/x.parquet", 1));
        let deep = filter(&["/train/**"], &[]);
        assert!(deep.matches("train/a/b.parquet", 1));
        assert!(!deep.matches("valid/train/b.parquet", 1));
    }

    #[test]
    fn exclude_wins_and_sizes_are_inclusive() {
        let f = Filter::new(FilterSpec {
            include: vec!["*.parquet".into()],
            exclude: vec!["scratch/**".into()],
            min_size: Some(10),
            max_size: Some(20),
        })
        .unwrap();
        assert!(f.matches("a.parquet", 10));
        assert!(f.matches("a.parquet", 20));
        assert!(!f.matches("a.parquet", 9));
        assert!(!f.matches("a.parquet", 21));
        assert!(!f.matches("scratch/a.parquet", 15));
        assert!(Filter::default().matches("anything", 0));
        assert_eq!(
            f.spec().to_string(),
            "--include '*.parquet' --exclude 'scratch/**' --min-size 10 --max-size 20"
        );
    }

    #[test]
    fn a_broken_pattern_is_an_error_naming_it() {
        let e = Filter::new(FilterSpec {
            include: vec!["a[".into()],
            ..FilterSpec::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("a["), "{e}");
    }
}
