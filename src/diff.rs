//! Diff: compare a source against a destination and say, per path, what state it is in.
//!
//! This module only compares — one merge pass over two sorted lists — and decides nothing
//! about copying. Equality is size + SHA-256. A destination object's hash is known only when
//! the destination manifest's entry still matches the listing (same size, mtime, ETag); an
//! object that was rewritten out of band, or landed by a sync that was killed before its
//! commit, is `Unproven` until [`crate::verify`] proves or disproves it.

use std::cmp::Ordering;

use serde::Serialize;

use crate::listing::ObjectStat;
use crate::manifest::{build::entry_matches_stat, Manifest, ShardEntry};

/// A source object: its listing, and its manifest entry when the bytes' hash is known.
#[derive(Debug, Clone)]
pub struct SourceObject {
    pub stat: ObjectStat,
    /// `None` when the object changed since the source manifest was built (or there is none):
    /// the hash will be taken while the bytes are copied.
    pub entry: Option<ShardEntry>,
}

/// The state of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Only in the source.
    New,
    /// In both, with different content.
    Changed,
    /// The destination manifest lists it but the destination store does not have it.
    Missing,
    /// Only in the destination.
    Extra,
    /// Same size and SHA-256 on both sides.
    Same,
    /// Same size, destination hash not yet known.
    Unproven,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Changed => "changed",
            State::Missing => "missing",
            State::Extra => "extra",
            State::Same => "same",
            State::Unproven => "unproven",
        }
    }

    /// Whether an incremental sync copies a path in this state.
    pub fn needs_copy(self) -> bool {
        matches!(self, State::New | State::Changed | State::Missing)
    }
}

/// One path of the plan.
#[derive(Debug, Clone)]
pub struct PlanItem {
    pub path: String,
    pub state: State,
    pub src: Option<SourceObject>,
    /// The destination object as listed.
    pub dst: Option<ObjectStat>,
    /// The destination's hash-bearing entry, when it is trusted (or once proven).
    pub dst_entry: Option<ShardEntry>,
}

impl PlanItem {
    /// The destination manifest trusted these bytes to be the source's, but they are not.
    pub fn is_corrupt(&self) -> bool {
        let src = self.src.as_ref().and_then(|s| s.entry.as_ref());
        self.state == State::Changed
            && matches!((src, &self.dst_entry), (Some(s), Some(d)) if s.same_content(d))
    }
}

/// The comparison of a source and a destination, sorted by path.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub items: Vec<PlanItem>,
}

/// Counts per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanCounts {
    pub new: usize,
    pub changed: usize,
    pub missing: usize,
    pub extra: usize,
    pub same: usize,
    pub unproven: usize,
}

impl Plan {
    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts::default();
        for i in &self.items {
            match i.state {
                State::New => c.new += 1,
                State::Changed => c.changed += 1,
                State::Missing => c.missing += 1,
                State::Extra => c.extra += 1,
                State::Same => c.same += 1,
                State::Unproven => c.unproven += 1,
            }
        }
        c
    }

    /// Items in a state.
    pub fn in_state(&self, state: State) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(move |i| i.state == state)
    }

    /// True when nothing differs (no copy, no extra).
    pub fn is_clean(&self) -> bool {
        self.items.iter().all(|i| i.state == State::Same)
    }
}

/// Compare source objects with the destination manifest and listing. All three inputs must be
/// sorted by path (listings and manifests from this crate are).
pub fn diff(src: &[SourceObject], dst_manifest: Option<&Manifest>, dst_listing: &[ObjectStat]) -> Plan {
    let empty: &[ShardEntry] = &[];
    let dst_entries = dst_manifest.map_or(empty, |m| m.shards.as_slice());
    let mut cursor = 0usize; // into dst_entries; lookups come in sorted order
    let mut dst_entry_for = |path: &str| -> Option<&ShardEntry> {
        while cursor < dst_entries.len() && dst_entries[cursor].path.as_str() < path {
            cursor += 1;
        }
        dst_entries.get(cursor).filter(|e| e.path == path)
    };

    let mut items = Vec::with_capacity(src.len().max(dst_listing.len()));
    let (mut i, mut j) = (0, 0);
    loop {
        let ord = match (src.get(i), dst_listing.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(d)) => s.stat.path.cmp(&d.path),
        };
        match ord {
            Ordering::Less => {
                let s = &src[i];
                let in_manifest = dst_entry_for(&s.stat.path).is_some();
                items.push(PlanItem {
                    path: s.stat.path.clone(),
                    state: if in_manifest { State::Missing } else { State::New },
                    src: Some(s.clone()),
                    dst: None,
                    dst_entry: None,
                });
                i += 1;
            }
            Ordering::Greater => {
                let d = &dst_listing[j];
                let trusted = dst_entry_for(&d.path)
                    .filter(|e| entry_matches_stat(e, d))
                    .cloned();
                items.push(PlanItem {
                    path: d.path.clone(),
                    state: State::Extra,
                    src: None,
                    dst: Some(d.clone()),
                    dst_entry: trusted,
                });
                j += 1;
            }
            Ordering::Equal => {
                let (s, d) = (&src[i], &dst_listing[j]);
                let trusted = dst_entry_for(&d.path)
                    .filter(|e| entry_matches_stat(e, d))
                    .cloned();
                let state = compare(s, d, trusted.as_ref());
                items.push(PlanItem {
                    path: d.path.clone(),
                    state,
                    src: Some(s.clone()),
                    dst: Some(d.clone()),
                    dst_entry: trusted,
                });
                i += 1;
                j += 1;
            }
        }
    }
    Plan { items }
}

fn compare(src: &SourceObject, dst: &ObjectStat, dst_entry: Option<&ShardEntry>) -> State {
    if src.stat.size != dst.size {
        return State::Changed;
    }
    match (&src.entry, dst_entry) {
        (Some(s), Some(d)) if s.same_content(d) => State::Same,
        (Some(_), Some(_)) => State::Changed,
        _ => State::Unproven,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn stat(path: &str, size: u64, etag: &str) -> ObjectStat {
        ObjectStat {
            path: path.into(),
            size,
            mtime: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            etag: Some(etag.into()),
        }
    }
    fn entry(s: &ObjectStat, hash: char) -> ShardEntry {
        ShardEntry {
            path: s.path.clone(),
            size: s.size,
            sha256: hash.to_string().repeat(64),
            mtime: Some(s.mtime),
            etag: s.etag.clone(),
            rows: None,
            row_groups: None,
            schema: None,
        }
    }

    #[test]
    fn every_state_is_found_in_one_pass() {
        let src_stats = [
            stat("changed", 10, "s1"),
            stat("missing", 10, "s2"),
            stat("new", 10, "s3"),
            stat("resized", 10, "s4"),
            stat("rewritten", 10, "s5"),
            stat("same", 10, "s6"),
        ];
        let src: Vec<_> = src_stats
            .iter()
            .map(|s| SourceObject {
                stat: s.clone(),
                entry: Some(entry(s, 'a')),
            })
            .collect();
        let dst_list = vec![
            stat("changed", 10, "d1"),
            stat("extra", 5, "d2"),
            stat("resized", 11, "d4"),
            stat("rewritten", 10, "d5-new"),
            stat("same", 10, "d6"),
        ];
        let mut dst_entries = vec![
            entry(&stat("changed", 10, "d1"), 'b'),
            entry(&stat("missing", 10, "d2"), 'a'),
            entry(&stat("rewritten", 10, "d5-old"), 'a'),
            entry(&stat("same", 10, "d6"), 'a'),
        ];
        dst_entries.sort_by(|a, b| a.path.cmp(&b.path));
        let m = Manifest::new("dst", dst_entries).unwrap();
        let plan = diff(&src, Some(&m), &dst_list);
        let got: Vec<_> = plan.items.iter().map(|i| (i.path.as_str(), i.state)).collect();
        assert_eq!(
            got,
            vec![
                ("changed", State::Changed),
                ("extra", State::Extra),
                ("missing", State::Missing),
                ("new", State::New),
                ("resized", State::Changed),
                ("rewritten", State::Unproven),
                ("same", State::Same),
            ]
        );
        assert!(!plan.is_clean());
    }
}
