//! Peak memory of one manifest/diff step at N entries (example `bench-manifest-rss`):
//!
//! ```text
//! /usr/bin/time -v target/release/examples/bench-manifest-rss entries  [N]        # baseline
//! /usr/bin/time -v target/release/examples/bench-manifest-rss to_json  [N] FILE   # build + save
//! /usr/bin/time -v target/release/examples/bench-manifest-rss from_json FILE      # load only
//! /usr/bin/time -v target/release/examples/bench-manifest-rss diff     [N]        # 2 sides + diff
//! ```
//!
//! Prints the step's wall time; compare `Maximum resident set size` with the `entries` baseline.

use std::time::Instant;

use shardsync::manifest::Manifest;

#[path = "entries.rs"]
mod entries;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let step = args.first().map_or("entries", String::as_str);
    let n = |i: usize| -> usize { args.get(i).map_or(1_000_000, |s| s.parse().expect("N")) };
    match step {
        "entries" => {
            let e = entries::entries(n(1));
            println!("entries: {}", std::hint::black_box(e).len());
        }
        "to_json" => {
            let e = entries::entries(n(1));
            let t = Instant::now();
            let m = Manifest::new("s3://bench/dataset", e).unwrap();
            let new = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let j = m.to_json();
            let save = t.elapsed().as_secs_f64();
            if let Some(f) = args.get(2) {
                std::fs::write(f, &j).unwrap();
            }
            println!("new: {new:.3} s, to_json: {save:.3} s, {} bytes", j.len());
        }
        "from_json" => {
            let j = std::fs::read(args.get(1).expect("FILE")).unwrap();
            let t = Instant::now();
            let m = Manifest::from_json(&j, "rss").unwrap();
            println!(
                "from_json: {:.3} s, {} entries",
                t.elapsed().as_secs_f64(),
                m.shards.len()
            );
        }
        "diff" => {
            let m = Manifest::new("s3://bench/dataset", entries::entries(n(1))).unwrap();
            let (src, dst) = entries::diff_inputs(&m.shards, 10);
            let t = Instant::now();
            let p = shardsync::diff::diff(src, Some(&m), dst);
            println!(
                "diff: {:.3} s, {} items",
                t.elapsed().as_secs_f64(),
                p.items.len()
            );
        }
        s => panic!("unknown step {s}"),
    }
}
