//! Compact manifests at scale (example `bench-manifest-scale`): stored size, load time, and the
//! streaming diff of two stored manifests, each step in a fresh process with its peak RSS.
//!
//! ```text
//! cargo build --release --example bench-manifest-scale
//! S=target/release/examples/bench-manifest-scale
//! $S write 1000000 /tmp/m1m      # head.json + body.parquet, and changed.parquet (10 % rewritten)
//! $S load /tmp/m1m               # head + body -> Manifest (validated, digest checked)
//! $S diff /tmp/m1m               # body.parquet (destination) vs changed.parquet (source), streamed
//! ```
//!
//! Every step prints its wall time and the process's peak RSS (`VmHWM`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use shardsync::diff::{diff_changes, SourceObject};
use shardsync::manifest::compact::{self, BodyReader, BodyRef};
use shardsync::manifest::Manifest;

#[allow(dead_code)] // the diff inputs of the other benches
#[path = "entries.rs"]
mod entries;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .expect("usage: see the module doc")
    };
    match arg(0) {
        "write" => write(arg(1).parse().expect("N"), Path::new(arg(2))),
        "load" => load(Path::new(arg(1))),
        "diff" => diff(Path::new(arg(1))),
        s => panic!("unknown step {s}"),
    }
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
}

fn write(n: usize, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let m = Manifest::new("s3://bench/dataset", entries::entries(n)).unwrap();
    let t = Instant::now();
    let body = compact::encode_body(&m).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let body_ref = BodyRef {
        key: "_shardsync/manifests/body.parquet".into(),
        bytes: body.len() as u64,
        entries: n as u64,
    };
    std::fs::write(dir.join("body.parquet"), &body).unwrap();
    std::fs::write(dir.join("head.json"), compact::encode_head(&m, &body_ref)).unwrap();
    println!(
        "{n} entries: body {:.1} MB ({:.1} bytes/entry), encoded in {secs:.2} s",
        body.len() as f64 / 1e6,
        body.len() as f64 / n as f64
    );
    if n <= 2_000_000 {
        println!(
            "the same as a v1 JSON document: {:.1} MB",
            m.to_json().len() as f64 / 1e6
        );
    }
    drop(body);
    // The source side of the diff: every 10th shard rewritten (a new size and hash).
    let mut changed = m.shards;
    for (i, e) in changed.iter_mut().enumerate() {
        if i % 10 == 0 {
            e.size += 1;
            e.sha256 = format!("{:064x}", i);
        }
    }
    let changed = Manifest::new("s3://bench/dataset", changed).unwrap();
    std::fs::write(
        dir.join("changed.parquet"),
        compact::encode_body(&changed).unwrap(),
    )
    .unwrap();
}

fn load(dir: &Path) {
    let t = Instant::now();
    let head_bytes = std::fs::read(dir.join("head.json")).unwrap();
    let head = compact::decode_head(&head_bytes, "head.json").unwrap();
    let body = bytes::Bytes::from(std::fs::read(dir.join("body.parquet")).unwrap());
    let body = compact::decode_body(body, "body.parquet").unwrap();
    let m = Manifest::from_compact(head, body, "body.parquet").unwrap();
    println!(
        "load: {:.3} s, {} entries (validated, digest checked)",
        t.elapsed().as_secs_f64(),
        m.shards.len()
    );
}

fn reader(path: PathBuf) -> impl Iterator<Item = shardsync::ShardEntry> {
    let f = std::fs::File::open(&path).unwrap();
    BodyReader::new(f, &path.display().to_string())
        .unwrap()
        .map(|e| e.expect("body entry"))
}

fn diff(dir: &Path) {
    let t = Instant::now();
    // Source: the changed manifest, with listings that match (every entry trusted).
    let src = reader(dir.join("changed.parquet")).map(|e| SourceObject {
        stat: entries::stat_of(&e),
        entry: Some(e),
    });
    let dst_entries = reader(dir.join("body.parquet")).map(Cow::Owned);
    let dst_listing = reader(dir.join("body.parquet")).map(|e| entries::stat_of(&e));
    let changes = diff_changes(src, dst_entries, dst_listing);
    println!(
        "streaming diff: {:.3} s, {:?}",
        t.elapsed().as_secs_f64(),
        changes.counts
    );
}

/// The process's peak resident set, from /proc/self/status.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
