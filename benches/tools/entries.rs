//! Synthetic manifest entries shared by `benches/manifest.rs` and `bench-manifest-rss`.

use chrono::{TimeZone, Utc};
use shardsync::diff::SourceObject;
use shardsync::listing::ObjectStat;
use shardsync::manifest::ShardEntry;

/// One realistic entry: a Parquet shard with every optional field filled.
pub fn entry(i: usize) -> ShardEntry {
    // A cheap, well-spread 64-hex-digit "hash" (not real SHA-256: building 1M real ones would
    // dominate setup and changes nothing the manifest code does).
    let a = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let b = a.rotate_left(17) ^ 0xD6E8_FEB8_6659_FD93;
    let sha256 = format!("{a:016x}{b:016x}{:016x}{:016x}", a ^ b, b.wrapping_add(a));
    ShardEntry {
        path: format!("train/shard-{:03}/part-{i:07}.parquet", i % 1000),
        size: 16 * 1024 * 1024 + (i as u64 % 4096),
        sha256,
        mtime: Some(Utc.timestamp_opt(1_750_000_000 + i as i64, 0).unwrap()),
        etag: Some(format!("\"{:032x}\"", a as u128 * 31 + b as u128)),
        rows: Some(30_000 + (i as u64 % 100)),
        row_groups: Some(30),
        schema: Some("sha256:0123456789abcdef".into()),
        parquet_error: None,
    }
}

/// `n` entries sorted by path.
pub fn entries(n: usize) -> Vec<ShardEntry> {
    let mut v: Vec<ShardEntry> = (0..n).map(entry).collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// The store's stat of an entry (same size, mtime and ETag).
pub fn stat_of(e: &ShardEntry) -> ObjectStat {
    ObjectStat {
        path: e.path.clone(),
        size: e.size,
        mtime: e.mtime.unwrap(),
        etag: e.etag.clone(),
    }
}

/// Diff inputs for a no-op-like sync with `changed_every`-th objects changed at the source:
/// source objects (with trusted entries) and the destination's listing.
pub fn diff_inputs(entries: &[ShardEntry], changed_every: usize) -> (Vec<SourceObject>, Vec<ObjectStat>) {
    let src = entries
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let mut e = e.clone();
            if changed_every > 0 && n % changed_every == 0 {
                e.size += 1; // a rewritten shard: different size
            }
            SourceObject {
                stat: stat_of(&e),
                entry: Some(e),
            }
        })
        .collect();
    let dst = entries.iter().map(stat_of).collect();
    (src, dst)
}
