//! Dataset generator for `benches/compare.sh` (built as the example `bench-gen`).
//!
//! ```text
//! bench-gen parquet --dir DIR --shards N --shard-size BYTES [--version V]
//! bench-gen rewrite --dir DIR --shards N --shard-size BYTES --every 10 --version V
//! bench-gen tiny    --dir DIR --count N [--size BYTES]
//! ```
//!
//! `parquet` writes `DIR/train/part-NNNNN.parquet` with the demo's schema and data
//! (`shardsync::demo::shard_bytes`), the row count chosen so each shard is about
//! `--shard-size` bytes, plus a `dataset_info.json` sidecar. `rewrite` rewrites every
//! `--every`-th shard with data version `V` (same rows, new bytes) and prints the paths it
//! rewrote, one a line, relative to DIR. `tiny` writes `DIR/shard-NNNNNN.bin` small random files.
//! Work is spread over all cores.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{Parser, Subcommand};
use rand::{RngCore, SeedableRng};
use shardsync::demo::{shard_bytes, shard_name};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a Parquet dataset.
    Parquet {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        shards: usize,
        #[arg(long, value_parser = shardsync::display::parse_size)]
        shard_size: u64,
        #[arg(long, default_value_t = 0)]
        version: u64,
    },
    /// Rewrite every N-th shard with a new data version.
    Rewrite {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        shards: usize,
        #[arg(long, value_parser = shardsync::display::parse_size)]
        shard_size: u64,
        #[arg(long, default_value_t = 10)]
        every: usize,
        #[arg(long)]
        version: u64,
    },
    /// Write many small non-Parquet files.
    Tiny {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
}

const SEED: u64 = 0x5eed_5eed;

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Parquet {
            dir,
            shards,
            shard_size,
            version,
        } => {
            let rows = rows_for(shard_size)?;
            let all: Vec<usize> = (0..shards).collect();
            let bytes = write_shards(&dir, &all, rows, version)?;
            let info = serde_json::json!({
                "name": "shardsync-bench",
                "shards": shards,
                "rows_per_shard": rows,
                "schema": ["doc_id: int64", "source: utf8", "token_ids: list<int32>", "n_tokens: int32"],
            });
            std::fs::write(dir.join("dataset_info.json"), serde_json::to_vec_pretty(&info)?)?;
            eprintln!(
                "wrote {shards} shards x {rows} rows, {:.1} MiB ({:.0} KiB/shard) to {}",
                bytes as f64 / 1048576.0,
                bytes as f64 / 1024.0 / shards.max(1) as f64,
                dir.display()
            );
        }
        Cmd::Rewrite {
            dir,
            shards,
            shard_size,
            every,
            version,
        } => {
            let rows = rows_for(shard_size)?;
            let which: Vec<usize> = (0..shards).filter(|s| s % every.max(1) == 0).collect();
            write_shards(&dir, &which, rows, version)?;
            for s in which {
                println!("{}", shard_name(s));
            }
        }
        Cmd::Tiny { dir, count, size } => {
            std::fs::create_dir_all(&dir)?;
            let next = AtomicUsize::new(0);
            std::thread::scope(|sc| {
                for _ in 0..workers() {
                    sc.spawn(|| -> std::io::Result<()> {
                        let mut buf = vec![0u8; size];
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= count {
                                return Ok(());
                            }
                            rand::rngs::StdRng::seed_from_u64(SEED ^ i as u64).fill_bytes(&mut buf);
                            std::fs::write(dir.join(format!("shard-{i:06}.bin")), &buf)?;
                        }
                    });
                }
            });
            eprintln!("wrote {count} files x {size} bytes to {}", dir.display());
        }
    }
    Ok(())
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Rows per shard for a target shard size, from a calibration shard.
fn rows_for(target: u64) -> anyhow::Result<usize> {
    const PROBE: usize = 2048;
    let probe = shard_bytes(0, PROBE, SEED)?.len() as f64;
    let rows = ((target as f64 / probe) * PROBE as f64).round().max(1.0) as usize;
    if rows >= 4 * PROBE {
        return Ok(rows); // large shards: per-row cost is flat, the estimate is within 1-2%
    }
    // Small shards carry proportionally more fixed cost (footer, dictionaries): refine once.
    let got = shard_bytes(0, rows, SEED)?.len() as f64;
    Ok(((target as f64 / got) * rows as f64).round().max(1.0) as usize)
}

/// Write the given shards (data version `version`) in parallel; returns the bytes written.
fn write_shards(dir: &Path, which: &[usize], rows: usize, version: u64) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir.join("train"))?;
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let seed = SEED.wrapping_add(version.wrapping_mul(1_000_003));
    std::thread::scope(|sc| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..workers())
            .map(|_| {
                sc.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&s) = which.get(i) else { return Ok(()) };
                        let bytes = shard_bytes(s, rows, seed)?;
                        total.fetch_add(bytes.len(), Ordering::Relaxed);
                        // Write beside and rename, so a reader never sees a half-written shard.
                        let p = dir.join(shard_name(s));
                        let tmp = p.with_extension("parquet.tmp");
                        std::fs::write(&tmp, &bytes)?;
                        std::fs::rename(&tmp, &p)?;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("generator thread panicked")?;
        }
        Ok(())
    })?;
    Ok(total.load(Ordering::Relaxed) as u64)
}
