//! What a sync refuses to do, decided before it writes anything.
//!
//! A sync that copies the wrong thing can be re-run; one that deletes the wrong thing cannot.
//! So three mistakes users make are stopped at planning time, with nothing written anywhere:
//!
//! - **an empty source** — a mistyped prefix lists nothing, and syncing "nothing" with
//!   `--delete` would empty the destination (and write a manifest into the typo);
//! - **overlapping datasets** — a source inside its destination would have its own shards
//!   deleted as extras, a destination inside its source would nest a new copy every run;
//! - **mass deletion** — `--delete` removing more than a limit of the destination's objects
//!   (half of them unless told otherwise) is far more often a wrong source than an intent.

use crate::error::{Error, Result};
use crate::store::Dataset;

/// How many destination objects a `--delete` may remove.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeleteLimit {
    /// At most this many objects.
    Count(u64),
    /// At most this share of the destination's objects, in percent (0–100).
    Percent(f64),
}

impl DeleteLimit {
    /// The limit when none is given: half of the destination.
    pub const DEFAULT: DeleteLimit = DeleteLimit::Percent(50.0);

    /// Whether deleting `count` of `total` objects stays within the limit.
    pub fn allows(self, count: usize, total: usize) -> bool {
        match self {
            DeleteLimit::Count(n) => count as u64 <= n,
            DeleteLimit::Percent(p) => count as f64 <= total as f64 * p / 100.0,
        }
    }
}

impl std::fmt::Display for DeleteLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteLimit::Count(n) => write!(f, "{n} objects"),
            DeleteLimit::Percent(p) => write!(f, "{p}% of the destination"),
        }
    }
}

impl std::str::FromStr for DeleteLimit {
    type Err = String;

    /// `100` (objects) or `25%` (of the destination's objects).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage like 25%"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("{s:?} is not between 0% and 100%"));
            }
            return Ok(DeleteLimit::Percent(p));
        }
        s.parse()
            .map(DeleteLimit::Count)
            .map_err(|_| format!("{s:?} is not a count like 100 or a percentage like 25%"))
    }
}

/// Refuse a deletion of `count` extras out of the destination's `total` objects beyond `limit`.
pub fn check_deletions(dst: &Dataset, count: usize, total: usize, limit: DeleteLimit) -> Result<()> {
    if limit.allows(count, total) {
        return Ok(());
    }
    Err(Error::TooManyDeletes {
        url: dst.url.clone(),
        count,
        total,
        limit: limit.to_string(),
    })
}

/// Where a dataset lives, for telling whether two datasets can see each other's objects: the
/// storage namespace (backend, endpoint, bucket or container, or the local filesystem) and the
/// dataset's root inside it as `/`-separated segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The store a dataset lives in (a bucket on an endpoint, a file system).
    pub namespace: String,
    /// The dataset root's path segments within it.
    pub segments: Vec<String>,
}

impl Scope {
    /// The scope of a dataset rooted at `root` in `namespace`.
    pub fn new(namespace: impl Into<String>, root: &str) -> Scope {
        Scope {
            namespace: namespace.into(),
            segments: root
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    fn contains(&self, other: &Scope) -> bool {
        other.segments.starts_with(&self.segments)
    }
}

/// Refuse a sync between datasets that are the same or nested in one another.
pub fn check_overlap(src: &Dataset, dst: &Dataset) -> Result<()> {
    let (Some(s), Some(d)) = (&src.scope, &dst.scope) else {
        return Ok(()); // wrapped stores (`Dataset::from_store`): the caller knows their layout
    };
    if s.namespace != d.namespace {
        return Ok(());
    }
    let reason = if s.segments == d.segments {
        "they are the same dataset"
    } else if d.contains(s) {
        "the source lies inside the destination (its shards would count as the destination's extras)"
    } else if s.contains(d) {
        "the destination lies inside the source (every sync would copy the dataset into itself)"
    } else {
        return Ok(());
    };
    Err(Error::Overlap {
        src: src.url.clone(),
        dst: dst.url.clone(),
        reason,
    })
}

/// Refuse a source that lists no objects, unless the caller allows it.
pub fn check_source_not_empty(src: &Dataset, listed: usize, has_manifest: bool, allow: bool) -> Result<()> {
    if listed > 0 || allow {
        return Ok(());
    }
    Err(Error::EmptySource {
        url: src.url.clone(),
        has_manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_limits_parse_and_apply() {
        assert_eq!("10".parse::<DeleteLimit>(), Ok(DeleteLimit::Count(10)));
        assert_eq!("25%".parse::<DeleteLimit>(), Ok(DeleteLimit::Percent(25.0)));
        assert!("150%".parse::<DeleteLimit>().is_err());
        assert!("-1".parse::<DeleteLimit>().is_err());
        assert!("lots".parse::<DeleteLimit>().is_err());
        assert!(DeleteLimit::DEFAULT.allows(5, 10));
        assert!(!DeleteLimit::DEFAULT.allows(6, 10));
        assert!(!DeleteLimit::DEFAULT.allows(1, 0));
        assert!(DeleteLimit::Count(0).allows(0, 0));
        assert!(!DeleteLimit::Count(3).allows(4, 1000));
    }

    #[test]
    fn scopes_nest_on_segment_boundaries() {
        let a = Scope::new("s3 b", "data/set");
        assert!(a.contains(&Scope::new("s3 b", "data/set/inner")));
        assert!(!a.contains(&Scope::new("s3 b", "data/settle")));
        assert!(Scope::new("s3 b", "").contains(&a));
    }
}
