//! Diff: compare a source against a destination and say, per path, what state it is in.
//!
//! This module only compares — one merge pass over two sorted lists — and decides nothing
//! about copying. Equality is size + SHA-256. A destination object's hash is known only when
//! the destination manifest's entry still matches the listing (same size, mtime, ETag); an
//! object that was rewritten out of band, or landed by a sync that was killed before its
//! commit, is `Unproven` until [`crate::verify`] proves or disproves it.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Serialize;

use crate::listing::ObjectStat;
use crate::manifest::{build::entry_matches_stat, Manifest, ShardEntry};

/// A source object: its listing, and its manifest entry when the bytes' hash is known.
#[derive(Debug, Clone)]
pub struct SourceObject {
    /// The object as the source lists it.
    pub stat: ObjectStat,
    /// `None` when the object changed since the source manifest was built (or there is none):
    /// the hash will be taken while the bytes are copied.
    pub entry: Option<ShardEntry>,
}

/// The state of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
    /// The name used in reports (`new`, `changed`).
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
    /// The path relative to the dataset root.
    pub path: String,
    /// What the sync must do with it.
    pub state: State,
    /// The source's side, if it has the path.
    pub src: Option<SourceObject>,
    /// The destination object as listed.
    pub dst: Option<ObjectStat>,
    /// The destination's hash-bearing entry, when it is trusted (or once proven).
    pub dst_entry: Option<ShardEntry>,
    /// Another destination path already holding this item's bytes (same size and SHA-256,
    /// proven by the destination manifest): the sync makes this copy inside the destination
    /// (a server-side copy) instead of sending the bytes again. See [`Plan::find_origins`].
    pub origin: Option<Origin>,
}

/// Where a copy made inside the destination takes its bytes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The destination path holding the bytes.
    pub path: String,
    /// Whether that path leaves the dataset (a rename or move: it is an extra, removed with
    /// `delete`) or stays in it (the same bytes under a second path).
    pub renamed: bool,
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
    /// Every path of either side, sorted.
    pub items: Vec<PlanItem>,
    /// What the planned copies move between the stores (set by the plan stage).
    pub transfer: TransferEstimate,
    /// The filter that chose the view both sides were compared in, when there was one.
    pub filter: Option<crate::filter::FilterSpec>,
}

/// What a plan moves from the source's store to the destination's, and what that is estimated
/// to cost when an egress price is known.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TransferEstimate {
    /// Objects the copies read from the source.
    pub objects_to_transfer: u64,
    /// Bytes that cross from the source's store to the destination's.
    pub bytes_to_transfer: u64,
    /// The price of a GiB of egress used for the estimate, in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_price_usd_per_gib: Option<f64>,
    /// `bytes_to_transfer` in GiB times the price, in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_cost_usd: Option<f64>,
}

/// Dollars as people read them: cents, or four decimals below one cent.
pub fn usd(amount: f64) -> String {
    if amount == 0.0 || amount >= 0.01 {
        format!("${amount:.2}")
    } else {
        format!("${amount:.4}")
    }
}

impl TransferEstimate {
    /// The estimate for `objects` objects of `bytes` in all, at `usd_per_gib` if known.
    pub fn new(objects: u64, bytes: u64, usd_per_gib: Option<f64>) -> TransferEstimate {
        TransferEstimate {
            objects_to_transfer: objects,
            bytes_to_transfer: bytes,
            egress_price_usd_per_gib: usd_per_gib,
            estimated_cost_usd: usd_per_gib.map(|p| bytes as f64 / (1u64 << 30) as f64 * p),
        }
    }

    /// One line for people: `1.50 GiB in 12 object(s), estimated $0.14 at $0.09/GiB`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} in {} object(s)",
            crate::display::human_bytes(self.bytes_to_transfer),
            self.objects_to_transfer
        );
        if let (Some(cost), Some(price)) = (self.estimated_cost_usd, self.egress_price_usd_per_gib) {
            s.push_str(&format!(", estimated {} at ${price}/GiB", usd(cost)));
        }
        s
    }
}

/// Counts per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanCounts {
    /// Paths only the source has.
    pub new: usize,
    /// Paths whose bytes differ.
    pub changed: usize,
    /// Paths the destination manifest names but its store lacks.
    pub missing: usize,
    /// Paths only the destination has.
    pub extra: usize,
    /// Paths identical on both sides.
    pub same: usize,
    /// Paths whose destination bytes are not yet proven either way.
    pub unproven: usize,
    /// Of the copies, those made inside the destination from a path that leaves the dataset
    /// (renamed or moved at the source): no byte crosses between the stores.
    pub renamed: usize,
    /// Of the copies, those made inside the destination from a path the dataset keeps.
    pub copied_in_place: usize,
}

impl PlanCounts {
    /// Count one more path in `state`.
    pub fn add(&mut self, state: State) {
        match state {
            State::New => self.new += 1,
            State::Changed => self.changed += 1,
            State::Missing => self.missing += 1,
            State::Extra => self.extra += 1,
            State::Same => self.same += 1,
            State::Unproven => self.unproven += 1,
        }
    }
}

impl Plan {
    /// The plan as the JSON document `diff --format json` prints (and the Python `Plan` mirrors):
    /// both URLs, the counts per state, the bytes to transfer (and their estimated cost, when
    /// an egress price was given), the filter when there was one, and each path's state and
    /// sizes.
    pub fn to_json_value(&self, src: &str, dst: &str) -> serde_json::Value {
        let items: Vec<_> = self
            .items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "path": i.path,
                    "state": i.state,
                    "src_size": i.src.as_ref().map(|s| s.stat.size),
                    "dst_size": i.dst.as_ref().map(|d| d.size),
                    "copy_from": i.origin.as_ref().map(|o| &o.path),
                })
            })
            .collect();
        let mut doc = serde_json::json!({
            "src": src,
            "dst": dst,
            "counts": self.counts(),
            "bytes_to_transfer": self.transfer.bytes_to_transfer,
            "objects_to_transfer": self.transfer.objects_to_transfer,
            "items": items,
        });
        if let Some(cost) = self.transfer.estimated_cost_usd {
            doc["egress_price_usd_per_gib"] = self.transfer.egress_price_usd_per_gib.into();
            doc["estimated_cost_usd"] = cost.into();
        }
        if let Some(f) = &self.filter {
            doc["filter"] = serde_json::to_value(f).unwrap_or_default();
        }
        doc
    }

    /// The source's manifest entries, in path order, when every one is known (hashed).
    pub fn source_entries(&self) -> Option<Vec<ShardEntry>> {
        self.items
            .iter()
            .filter_map(|i| i.src.as_ref())
            .map(|s| s.entry.clone())
            .collect()
    }

    /// How many items are in each state.
    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts::default();
        for i in &self.items {
            c.add(i.state);
            match &i.origin {
                Some(o) if o.renamed => c.renamed += 1,
                Some(_) => c.copied_in_place += 1,
                None => {}
            }
        }
        c
    }

    /// Items in a state.
    pub fn in_state(&self, state: State) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(move |i| i.state == state)
    }

    /// Mark each item to copy whose bytes the destination already holds under another path
    /// (a proven entry with the same size and SHA-256, in a path that is `same` or `extra`):
    /// its copy is made inside the destination. Paths that the sync rewrites are not origins,
    /// since their bytes change under the copy. Items whose source hash is unknown keep none.
    pub fn find_origins(&mut self) {
        let mut held: HashMap<(u64, &str), (&str, bool)> = HashMap::new();
        for i in &self.items {
            if let (Some(e), Some(d), State::Same | State::Extra) = (&i.dst_entry, &i.dst, i.state) {
                if e.size == d.size {
                    held.entry((e.size, e.sha256.as_str()))
                        .or_insert((i.path.as_str(), i.state == State::Extra));
                }
            }
        }
        let origins: Vec<Option<Origin>> = self
            .items
            .iter()
            .map(|i| {
                let e = i.src.as_ref()?.entry.as_ref().filter(|_| i.state.needs_copy())?;
                let &(path, renamed) = held.get(&(e.size, e.sha256.as_str()))?;
                Some(Origin {
                    path: path.to_string(),
                    renamed,
                })
            })
            .collect();
        for (i, o) in self.items.iter_mut().zip(origins) {
            i.origin = o;
        }
    }

    /// True when nothing differs (no copy, no extra).
    pub fn is_clean(&self) -> bool {
        self.items.iter().all(|i| i.state == State::Same)
    }
}

/// Compare source objects with the destination manifest and listing. All three inputs must be
/// sorted by path (listings and manifests from this crate are).
///
/// The source objects and the listing are moved into the plan, not cloned: at a million paths,
/// cloning every stat and entry was most of the diff's time. Trusted manifest entries are cloned
/// (the caller keeps the manifest), and each item's `path` is a copy of its stat's path.
pub fn diff(src: Vec<SourceObject>, dst_manifest: Option<&Manifest>, dst_listing: Vec<ObjectStat>) -> Plan {
    let mut items = Vec::with_capacity(src.len().max(dst_listing.len()));
    let entries = dst_manifest.map_or(&[][..], |m| m.shards.as_slice());
    diff_each(src, entries.iter().map(Cow::Borrowed), dst_listing, |item| {
        items.push(item)
    });
    Plan {
        items,
        ..Plan::default()
    }
}

/// What differs between two sides, without the paths that are the same: see [`diff_changes`].
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Every path not in state [`State::Same`], sorted.
    pub items: Vec<PlanItem>,
    /// How many paths are in each state, `same` included.
    pub counts: PlanCounts,
}

/// [`diff`] over streams, keeping only what differs: memory grows with the changes, not with
/// the dataset, when the inputs are read as they are consumed (a compact manifest's body read
/// batch by batch, [`crate::manifest::compact::BodyReader`]). Each input sorted by path.
pub fn diff_changes<'a>(
    src: impl IntoIterator<Item = SourceObject>,
    dst_entries: impl IntoIterator<Item = Cow<'a, ShardEntry>>,
    dst_listing: impl IntoIterator<Item = ObjectStat>,
) -> Changes {
    let mut changes = Changes::default();
    diff_each(src, dst_entries, dst_listing, |item| {
        changes.counts.add(item.state);
        if item.state != State::Same {
            changes.items.push(item);
        }
    });
    changes
}

/// The one merge pass behind [`diff`] and [`diff_changes`]: source objects against the
/// destination's listing, each listed path looked up in the destination's entries as the pass
/// goes; every path's item goes to `emit`, in path order.
pub fn diff_each<'a>(
    src: impl IntoIterator<Item = SourceObject>,
    dst_entries: impl IntoIterator<Item = Cow<'a, ShardEntry>>,
    dst_listing: impl IntoIterator<Item = ObjectStat>,
    mut emit: impl FnMut(PlanItem),
) {
    let mut entries = EntryCursor {
        entries: dst_entries.into_iter().fuse(),
        next: None,
    };
    let (mut src, mut dst) = (src.into_iter(), dst_listing.into_iter());
    let (mut s_next, mut d_next) = (src.next(), dst.next());
    loop {
        match (s_next.take(), d_next.take()) {
            (None, None) => break,
            (Some(s), None) => {
                emit(src_only(s, &mut entries));
                s_next = src.next();
            }
            (None, Some(d)) => {
                emit(dst_only(d, &mut entries));
                d_next = dst.next();
            }
            (Some(s), Some(d)) => match s.stat.path.cmp(&d.path) {
                Ordering::Less => {
                    emit(src_only(s, &mut entries));
                    (s_next, d_next) = (src.next(), Some(d));
                }
                Ordering::Greater => {
                    emit(dst_only(d, &mut entries));
                    (s_next, d_next) = (Some(s), dst.next());
                }
                Ordering::Equal => {
                    let trusted = entries.trusted(&d);
                    emit(PlanItem {
                        path: d.path.clone(),
                        state: compare(&s, &d, trusted.as_ref()),
                        src: Some(s),
                        dst: Some(d),
                        dst_entry: trusted,
                        origin: None,
                    });
                    (s_next, d_next) = (src.next(), dst.next());
                }
            },
        }
    }
}

/// The destination manifest's entries, looked up by paths that come in sorted order: one
/// forward pass over the whole diff. Entries are cloned only when trusted (and then only if
/// borrowed).
struct EntryCursor<'a, I: Iterator<Item = Cow<'a, ShardEntry>>> {
    entries: I,
    next: Option<Cow<'a, ShardEntry>>,
}

impl<'a, I: Iterator<Item = Cow<'a, ShardEntry>>> EntryCursor<'a, I> {
    /// The entry at `path`, if there is one; entries before it are passed over for good.
    fn find(&mut self, path: &str) -> Option<&ShardEntry> {
        loop {
            match &self.next {
                Some(e) if e.path.as_str() >= path => break,
                _ => {}
            }
            self.next = Some(self.entries.next()?);
        }
        self.next.as_deref().filter(|e| e.path == path)
    }

    /// The entry for a listed object, when it still describes that object.
    fn trusted(&mut self, listed: &ObjectStat) -> Option<ShardEntry> {
        if !self
            .find(&listed.path)
            .is_some_and(|e| entry_matches_stat(e, listed))
        {
            return None;
        }
        self.next.take().map(Cow::into_owned)
    }
}

fn src_only<'a, I: Iterator<Item = Cow<'a, ShardEntry>>>(
    s: SourceObject,
    entries: &mut EntryCursor<'a, I>,
) -> PlanItem {
    let in_manifest = entries.find(&s.stat.path).is_some();
    PlanItem {
        path: s.stat.path.clone(),
        state: if in_manifest { State::Missing } else { State::New },
        src: Some(s),
        dst: None,
        dst_entry: None,
        origin: None,
    }
}

fn dst_only<'a, I: Iterator<Item = Cow<'a, ShardEntry>>>(
    d: ObjectStat,
    entries: &mut EntryCursor<'a, I>,
) -> PlanItem {
    PlanItem {
        path: d.path.clone(),
        state: State::Extra,
        src: None,
        dst_entry: entries.trusted(&d),
        dst: Some(d),
        origin: None,
    }
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
            parquet_error: None,
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
        let plan = diff(src, Some(&m), dst_list);
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

        // The streaming form finds the same states and keeps only what differs.
        let src: Vec<_> = src_stats
            .iter()
            .map(|s| SourceObject {
                stat: s.clone(),
                entry: Some(entry(s, 'a')),
            })
            .collect();
        let changes = diff_changes(
            src,
            m.shards.clone().into_iter().map(Cow::Owned),
            dst_list_again(),
        );
        let streamed: Vec<_> = changes.items.iter().map(|i| (i.path.as_str(), i.state)).collect();
        let differing: Vec<_> = got.iter().copied().filter(|(_, s)| *s != State::Same).collect();
        assert_eq!(streamed, differing);
        assert_eq!(changes.counts, plan.counts());
    }

    fn dst_list_again() -> Vec<ObjectStat> {
        vec![
            stat("changed", 10, "d1"),
            stat("extra", 5, "d2"),
            stat("resized", 11, "d4"),
            stat("rewritten", 10, "d5-new"),
            stat("same", 10, "d6"),
        ]
    }
}
