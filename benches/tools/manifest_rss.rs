//! Peak memory of one manifest/diff step at N entries (example `bench-manifest-rss`):
//!
//! ```text
//! /usr/bin/time -v target/release/examples/bench-manifest-rss STEP [N]
//! ```
//!
//! STEP: `entries` (baseline: the entries alone), `new`, `to_json`, `from_json`, `diff`.
//! Prints the step's wall time; compare `Maximum resident set size` with the `entries` baseline.

use std::time::Instant;

use shardsync::manifest::Manifest;

#[path = "entries.rs"]
mod entries;

fn main() {
    let mut args = std::env::args().skip(1);
    let step = args.next().unwrap_or_else(|| "new".into());
    let n: usize = args.next().map_or(1_000_000, |s| s.parse().expect("N"));
    let e = entries::entries(n);
    let t = Instant::now();
    match step.as_str() {
        "entries" => {}
        "new" => {
            std::hint::black_box(Manifest::new("s3://bench/dataset", e).unwrap());
        }
        "to_json" => {
            let m = Manifest::new("s3://bench/dataset", e).unwrap();
            let t = Instant::now();
            let j = m.to_json();
            println!("to_json: {:.3} s, {} bytes", t.elapsed().as_secs_f64(), j.len());
            return;
        }
        "from_json" => {
            let j = Manifest::new("s3://bench/dataset", e).unwrap().to_json();
            let t = Instant::now();
            let m = Manifest::from_json(&j, "rss").unwrap();
            println!("from_json: {:.3} s, {} entries", t.elapsed().as_secs_f64(), m.shards.len());
            return;
        }
        "diff" => {
            let m = Manifest::new("s3://bench/dataset", e).unwrap();
            let (src, dst) = entries::diff_inputs(&m.shards, 10);
            let t = Instant::now();
            let p = shardsync::diff::diff(&src, Some(&m), &dst);
            println!("diff: {:.3} s, {} items", t.elapsed().as_secs_f64(), p.items.len());
            return;
        }
        s => panic!("unknown step {s}"),
    }
    println!("{step}: {:.3} s", t.elapsed().as_secs_f64());
}
