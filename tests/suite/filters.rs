//! Filters and limits (issue 16, items 3 and 4): `--include`/`--exclude` and size limits as a
//! view of both sides, recorded in the manifest; `--max-transfer`; `--bwlimit`; the bytes a
//! plan moves and their estimated egress cost.

use shardsync::check::{check, verify_store, CheckOptions};
use shardsync::filter::{Filter, FilterSpec};
use shardsync::safety::DeleteLimit;
use shardsync::sync::{sync, SyncOptions};

use crate::backends::{put, snapshot, Backend, Env};
use crate::harness::{command, committed, noise, run_command, shardsync, sync_incomplete};

fn spec(include: &[&str], exclude: &[&str]) -> FilterSpec {
    FilterSpec {
        include: include.iter().map(|s| s.to_string()).collect(),
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        ..FilterSpec::default()
    }
}

fn paths(listing: &[(String, bytes::Bytes)]) -> Vec<&str> {
    listing.iter().map(|(p, _)| p.as_str()).collect()
}

backend_tests!(a_filtered_sync_copies_its_view_and_delete_spares_what_lies_outside: local, s3);
async fn a_filtered_sync_copies_its_view_and_delete_spares_what_lies_outside(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    for (i, p) in [
        "index.json",
        "scratch/tmp.parquet",
        "train/a.parquet",
        "train/b.parquet",
        "valid/deep/c.parquet",
    ]
    .iter()
    .enumerate()
    {
        put(&src, p, noise(2000 + i, i as u64)).await;
    }
    // Outside the view: the user's own file. Inside it: a stale shard --delete removes.
    put(&dst, "keep/mine.txt", &b"mine"[..]).await;
    put(&dst, "train/old.parquet", noise(500, 9)).await;

    let view = spec(&["*.parquet"], &["scratch/**"]);
    // The delete limit counts the view's objects: one stale shard of one is all of them.
    let opts = SyncOptions::default()
        .with_delete(true)
        .with_max_delete(Some(DeleteLimit::Count(1)))
        .with_filter(Filter::new(view.clone()).unwrap());
    let out = sync(&src, &dst, &opts).await.unwrap();
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_eq!(out.report.shards_copied, 3, "{what}");
    assert_eq!(out.report.shards_deleted, 1, "{what}");
    assert_eq!(out.report.filter.as_ref(), Some(&view), "{what}");
    assert_eq!(
        paths(&snapshot(&dst).await),
        vec![
            "keep/mine.txt",
            "train/a.parquet",
            "train/b.parquet",
            "valid/deep/c.parquet"
        ],
        "{what}"
    );
    let m = committed(&dst).await.expect("manifest");
    let claimed: Vec<&str> = m.shards.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        claimed,
        vec!["train/a.parquet", "train/b.parquet", "valid/deep/c.parquet"],
        "{what}"
    );
    assert_eq!(
        m.filter.as_ref(),
        Some(&view),
        "{what}: the manifest names its filter"
    );
    // A filtered sync saw part of the source: it writes no source manifest.
    assert!(committed(&src).await.is_none(), "{what}");

    // Again: nothing to do.
    let again = sync(&src, &dst, &opts).await.unwrap();
    assert_eq!(again.report.shards_copied, 0, "{what}");
    assert!(again.report.consistent, "{what}");

    // `check` with the same filter compares like with like; without it, it says why it differs.
    let same_view = CheckOptions {
        filter: Filter::new(view.clone()).unwrap(),
        ..CheckOptions::default()
    };
    let r = check(&src, &dst, &same_view).await.unwrap();
    assert!(r.consistent, "{what}: {:?}", r.findings);
    assert!(r.warnings.is_empty(), "{what}: {:?}", r.warnings);
    let r = check(&src, &dst, &CheckOptions::default()).await.unwrap();
    assert!(!r.consistent, "{what}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("filtered by --include '*.parquet' --exclude 'scratch/**'")),
        "{what}: {:?}",
        r.warnings
    );
    // The store against its own manifest: the manifest's view, so the user's file is no extra.
    let v = verify_store(&dst, &CheckOptions::default()).await.unwrap();
    assert!(v.consistent, "{what}: {:?}", v.findings);
}

backend_tests!(size_limits_leave_out_objects_by_size_on_both_sides: local, s3);
async fn size_limits_leave_out_objects_by_size_on_both_sides(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    put(&src, "small.bin", noise(1024, 1)).await;
    put(&src, "medium.bin", noise(10 * 1024, 2)).await;
    put(&src, "large.bin", noise(100 * 1024, 3)).await;
    // A destination object too large for the view is not an extra, even with --delete.
    put(&dst, "huge.bin", noise(200 * 1024, 4)).await;
    let filter = Filter::new(FilterSpec {
        min_size: Some(5 * 1024),
        max_size: Some(50 * 1024),
        ..FilterSpec::default()
    })
    .unwrap();
    let opts = SyncOptions::default().with_delete(true).with_filter(filter);
    let out = sync(&src, &dst, &opts).await.unwrap();
    assert!(out.report.consistent, "{what}: {:?}", out.report);
    assert_eq!(
        paths(&snapshot(&dst).await),
        vec!["huge.bin", "medium.bin"],
        "{what}"
    );
}

backend_tests!(max_transfer_stops_new_copies_and_commits_only_what_landed: local, s3);
async fn max_transfer_stops_new_copies_and_commits_only_what_landed(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    for i in 0..6 {
        put(&src, &format!("shard-{i}.bin"), noise(64 * 1024, i)).await;
    }
    // Copies start in plan order while those started hold less than the limit: 0, 64 and
    // 128 KiB are under 150 KiB, 192 KiB is not.
    let opts = SyncOptions::default().with_max_transfer(Some(150 * 1024));
    let out = sync_incomplete(&src, &dst, &opts).await;
    let r = &out.report;
    assert!(r.max_transfer_reached && !r.interrupted, "{what}: {r:?}");
    assert_eq!(
        (r.shards_copied, r.shards_not_started, r.shards_failed),
        (3, 3, 0),
        "{what}"
    );
    assert!(!r.consistent, "{what}");
    assert!(
        r.warnings.iter().any(|w| w.contains("--max-transfer")),
        "{what}: {:?}",
        r.warnings
    );
    let m = committed(&dst).await.expect("what landed is committed");
    let claimed: Vec<&str> = m.shards.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        claimed,
        vec!["shard-0.bin", "shard-1.bin", "shard-2.bin"],
        "{what}"
    );
    assert_eq!(paths(&snapshot(&dst).await), claimed, "{what}");

    // The next run, without the limit, copies the rest.
    let rest = sync(&src, &dst, &SyncOptions::default()).await.unwrap();
    assert_eq!(rest.report.shards_copied, 3, "{what}");
    assert!(rest.report.consistent, "{what}");
}

backend_tests!(bwlimit_draws_every_copied_byte_through_one_shared_bucket: local, s3);
async fn bwlimit_draws_every_copied_byte_through_one_shared_bucket(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    const SHARD: u64 = 256 * 1024;
    for i in 0..3 {
        put(&src, &format!("shard-{i}.bin"), noise(SHARD as usize, i)).await;
    }
    // One shard above the multipart threshold: the part uploads read through the bucket too.
    put(&src, "large.bin", noise(2 * SHARD as usize, 7)).await;
    let total = 5 * SHARD;
    let (rate, burst) = (2 << 20, SHARD);
    let opts = SyncOptions::default()
        .with_multipart_threshold(SHARD as usize)
        .with_bwlimit(Some((rate, burst)));
    let limit = opts.transfer.bandwidth.clone().expect("a limit");
    let out = sync(&src, &dst, &opts).await.unwrap();
    assert!(out.report.consistent, "{what}");
    assert_eq!(out.report.bytes_copied, total, "{what}");
    // Every source byte the copies read passed the one bucket the options share…
    assert_eq!(limit.bytes_granted(), total, "{what}");
    // …which made them wait for what the burst did not cover, and never longer.
    let owed = std::time::Duration::from_secs_f64((total - burst) as f64 / rate as f64);
    let waited = limit.throttled();
    assert!(
        waited > std::time::Duration::ZERO && waited <= owed,
        "{what}: {waited:?} of {owed:?}"
    );
}

/// A local source and destination folder with three shards of known sizes.
async fn three_shards(env: &Env) -> u64 {
    let src = env.open("src");
    let sizes = [100_000u64, 200_000, 300_000];
    for (i, n) in sizes.iter().enumerate() {
        put(&src, &format!("train/p{i}.parquet"), noise(*n as usize, i as u64)).await;
    }
    put(&src, "notes/readme.txt", &b"not data"[..]).await;
    sizes.iter().sum()
}

#[tokio::test]
async fn sync_dry_run_and_diff_print_the_bytes_to_move_and_their_egress_cost() {
    let env = Env::new(Backend::Local).await;
    let total = three_shards(&env).await;
    let (src, dst) = (env.url("src"), env.url("dst"));
    let cost = total as f64 / (1u64 << 30) as f64 * 0.09;
    let filtered = ["--include", "*.parquet", "--egress-price", "0.09"];

    let run = shardsync([&["sync", "--dry-run", &src, &dst][..], &filtered].concat()).await;
    assert_eq!(run.code, Some(1), "work to do: {run:?}");
    assert!(
        run.stdout.contains("to move between the stores")
            && run.stdout.contains("estimated egress cost $")
            && run.stdout.contains("filter   --include '*.parquet'"),
        "{}",
        run.stdout
    );
    let run = shardsync([&["sync", "--dry-run", "--json", &src, &dst][..], &filtered].concat()).await;
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON report");
    assert_eq!(report["bytes_to_transfer"], total, "{report}");
    let got = report["estimated_cost_usd"].as_f64().expect("a cost");
    assert!((got - cost).abs() < 1e-12, "{got} vs {cost}");

    let run = shardsync([&["diff", "--format", "json", &src, &dst][..], &filtered].concat()).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON plan");
    assert_eq!(plan["bytes_to_transfer"], total, "{plan}");
    assert_eq!(plan["objects_to_transfer"], 3, "{plan}");
    assert!(
        (plan["estimated_cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{plan}"
    );
    assert_eq!(plan["filter"]["include"][0], "*.parquet", "{plan}");
    assert_eq!(plan["items"].as_array().map(Vec::len), Some(3), "{plan}");

    // A remote's price in the config file stands in for the flag.
    let config = env.url("config.toml");
    std::fs::write(
        &config,
        format!("[remotes.prod]\nurl = {src:?}\negress_price = 0.5\n"),
    )
    .unwrap();
    let mut c = command(["diff", "--format", "json", "prod:", &dst]);
    c.env("SHARDSYNC_CONFIG", &config);
    let run = run_command(c).await;
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON plan");
    assert_eq!(plan["egress_price_usd_per_gib"], 0.5, "{plan}");
}

#[tokio::test]
async fn bad_filter_and_limit_values_exit_2_with_one_line_naming_them() {
    let env = Env::new(Backend::Local).await;
    three_shards(&env).await;
    let (src, dst) = (env.url("src"), env.url("dst"));
    for (flags, names) in [
        (&["--max-size", "1.5GiBx"][..], "1.5GiBx"),
        (&["--min-size", "-3"][..], "-3"),
        (&["--max-transfer", "lots"][..], "lots"),
        (&["--bwlimit", "50MiB/s"][..], "50MiB/s"),
        (&["--bwlimit", "0"][..], "--bwlimit"),
        (&["--egress-price", "cheap"][..], "cheap"),
        (&["--include", "train/[a"][..], "train/[a"),
        (&["--include", "nothing-matches-*"][..], "nothing-matches-*"),
    ] {
        let run = shardsync([&["sync", &src, &dst][..], flags].concat()).await;
        assert_eq!(run.code, Some(2), "{flags:?}: {run:?}");
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(first.contains(names), "{flags:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    assert!(
        !std::path::Path::new(&dst).join("_shardsync").exists(),
        "nothing written"
    );
}

#[tokio::test]
async fn check_with_the_syncs_filter_passes_and_without_it_names_the_filter() {
    let env = Env::new(Backend::Local).await;
    three_shards(&env).await;
    let (src, dst) = (env.url("src"), env.url("dst"));
    let run = shardsync(["sync", &src, &dst, "--exclude", "notes/"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = shardsync(["check", &src, &dst, "--exclude", "notes/"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = shardsync(["check", &src, &dst]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("written by a sync filtered by --exclude 'notes/'"),
        "{}",
        run.stdout
    );
    let run = shardsync(["check", &src, &dst, "--format", "json"]).await;
    assert!(
        run.stdout.contains("filtered by --exclude 'notes/'"),
        "{}",
        run.stdout
    );
}
