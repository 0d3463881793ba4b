//! The `shardsync` binary as scripts and CI drive it, on local folders and the in-process S3
//! server: exit codes, the `--report` file, a SIGKILL mid-sync and its resume, and `watch`.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use shardsync::demo::shard_bytes;
use shardsync::Dataset;
use tokio::io::AsyncReadExt;

use crate::backends::{put, snapshot, write_demo, Backend, Env, BUCKET};
use crate::harness::{
    assert_manifest_holds, blob_parquet, command, committed, put_raw, shardsync, try_get, Run,
};

/// `sync`-style arguments for `src` and `dst` on `env`, with the store options of both sides.
fn pair(env: &Env, cmd: &[&str], src: &str, dst: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    a.push(env.url(src));
    a.push(env.url(dst));
    a.extend(env.cli_options("--src-opt"));
    a.extend(env.cli_options("--dst-opt"));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

backend_tests!(exit_codes_are_0_done_1_work_or_drift_2_error_naming_the_cause: local, s3);
async fn exit_codes_are_0_done_1_work_or_drift_2_error_naming_the_cause(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 4, 100, 1).await;

    let mut build = vec!["manifest".to_string(), "build".into(), env.url("src")];
    build.extend(env.cli_options("--opt"));
    let r = shardsync(&build).await;
    assert_eq!(r.code, Some(0), "{what}: manifest build: {r:?}");
    assert!(r.stdout.contains("hashed 5"), "{what}: {}", r.stdout);

    let r = shardsync(pair(&env, &["diff"], "src", "dst", &[])).await;
    assert_eq!(r.code, Some(1), "{what}: diff with differences: {r:?}");
    assert!(r.stdout.contains("5 new"), "{what}: {}", r.stdout);
    let r = shardsync(pair(&env, &["diff"], "src", "dst", &["--format", "json"])).await;
    assert_eq!(r.code, Some(1), "{what}: {r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("diff JSON");
    assert_eq!(v["counts"]["new"], 5, "{what}: {v}");

    let r = shardsync(pair(&env, &["sync"], "src", "dst", &["--dry-run"])).await;
    assert_eq!(r.code, Some(1), "{what}: dry run with work: {r:?}");
    assert!(snapshot(&dst).await.is_empty(), "{what}: the dry run copied");
    assert!(committed(&dst).await.is_none(), "{what}: the dry run committed");

    let r = shardsync(pair(&env, &["sync"], "src", "dst", &[])).await;
    assert_eq!(r.code, Some(0), "{what}: sync: {r:?}");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await, "{what}");
    let after: [(&[&str], &[&str]); 3] = [(&["diff"], &[]), (&["sync"], &["--dry-run"]), (&["check"], &[])];
    for (cmd, extra) in after {
        let r = shardsync(pair(&env, cmd, "src", "dst", extra)).await;
        assert_eq!(r.code, Some(0), "{what}: {cmd:?} {extra:?} after the sync: {r:?}");
    }

    // Errors: exit 2, and stderr says what is wrong with what.
    let dst_url = env.url("dst");
    let r = shardsync(["sync", "ftp://host/data", dst_url.as_str()]).await;
    assert_eq!(r.code, Some(2), "{what}: {r:?}");
    assert!(r.stderr.contains("\"ftp\""), "{what}: {}", r.stderr);

    let r = shardsync(pair(
        &env,
        &["sync"],
        "src",
        "dst",
        &["--src-opt", "no_such_option=1"],
    ))
    .await;
    assert_eq!(r.code, Some(2), "{what}: {r:?}");
    assert!(r.stderr.contains("no_such_option"), "{what}: {}", r.stderr);

    let r = shardsync(pair(&env, &["sync"], "src", "dst", &["--no-such-flag"])).await;
    assert_eq!(r.code, Some(2), "{what}: {r:?}");
    assert!(r.stderr.contains("--no-such-flag"), "{what}: {}", r.stderr);

    let missing = env.tmp.path().join("no-such-folder");
    let r = shardsync(["sync".as_ref(), missing.as_os_str(), OsStr::new(&dst_url)]).await;
    assert_eq!(r.code, Some(2), "{what}: {r:?}");
    assert!(r.stderr.contains("no-such-folder"), "{what}: {}", r.stderr);

    // A shard that fails (not Parquet, under --strict-parquet): named, the others still
    // land, exit 2.
    let bad = env.open("bad");
    write_demo(&bad, 2, 100, 2).await;
    put(&bad, "train/notes.parquet", &b"not parquet at all"[..]).await;
    let r = shardsync(pair(&env, &["sync"], "bad", "bad-dst", &["--strict-parquet"])).await;
    assert_eq!(r.code, Some(2), "{what}: {r:?}");
    assert!(r.stderr.contains("train/notes.parquet"), "{what}: {}", r.stderr);
    let bad_dst = env.open("bad-dst");
    assert!(
        try_get(&bad_dst, "train/part-00001.parquet").await.is_some(),
        "{what}"
    );
    assert!(try_get(&bad_dst, "train/notes.parquet").await.is_none(), "{what}");
}

#[tokio::test]
async fn diff_and_dry_run_against_a_destination_folder_not_created_yet_plan_everything_as_new() {
    let env = Env::new(Backend::Local).await;
    write_demo(&env.open("src"), 3, 100, 3).await;
    let dst = env.tmp.path().join("region-b");
    let r = shardsync(pair(&env, &["diff"], "src", "region-b", &[])).await;
    assert_eq!(r.code, Some(1), "diff: {r:?}");
    assert!(r.stdout.contains("4 new"), "{}", r.stdout);
    let r = shardsync(pair(&env, &["sync"], "src", "region-b", &["--dry-run"])).await;
    assert_eq!(r.code, Some(1), "dry run: {r:?}");
    assert!(!dst.exists(), "the dry run created {}", dst.display());
}

backend_tests!(report_file_holds_consistency_counts_bytes_and_time: local, s3);
async fn report_file_holds_consistency_counts_bytes_and_time(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let src = env.open("src");
    write_demo(&src, 4, 100, 4).await;
    let total: u64 = snapshot(&src).await.iter().map(|(_, b)| b.len() as u64).sum();
    let report = env.tmp.path().join("report.json");
    let report_arg = report.display().to_string();

    for (round, copied, bytes) in [(1, 5, total), (2, 0, 0)] {
        let r = shardsync(pair(&env, &["sync"], "src", "dst", &["--report", &report_arg])).await;
        assert_eq!(r.code, Some(0), "{what} round {round}: {r:?}");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("report JSON");
        assert_eq!(v["consistent"], true, "{what} round {round}: {v}");
        assert_eq!(v["shards_total"], 5, "{what} round {round}: {v}");
        assert_eq!(v["shards_copied"], copied, "{what} round {round}: {v}");
        assert_eq!(v["bytes_copied"], bytes, "{what} round {round}: {v}");
        let elapsed = v["elapsed_seconds"].as_f64().expect("elapsed_seconds");
        assert!((0.0..120.0).contains(&elapsed), "{what}: {elapsed}");
    }
}

/// How many of `expected` are at the destination with exactly these bytes, read straight from
/// the folder that holds them (a local destination, or the s3s-fs bucket directory: both land
/// objects by renaming a complete temporary file, so a file there is whole).
pub(crate) fn landed(dir: &std::path::Path, expected: &[(String, Vec<u8>)]) -> usize {
    expected
        .iter()
        .filter(|(p, bytes)| {
            let f = dir.join(p);
            std::fs::metadata(&f).is_ok_and(|m| m.len() == bytes.len() as u64)
                && std::fs::read(&f).is_ok_and(|b| b == *bytes)
        })
        .count()
}

/// Poll until `at_least` of `expected` have landed in `dir`; fails if the child exits first.
pub(crate) async fn wait_for_landed(
    child: &mut tokio::process::Child,
    dir: &std::path::Path,
    expected: &[(String, Vec<u8>)],
    at_least: usize,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = landed(dir, expected);
        if n >= at_least {
            return n;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("shardsync exited ({status}) before {at_least} shards landed: the dataset is too small to interrupt");
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} shards landed within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// SIGKILL `child` and check it died of it (not of finishing first).
pub(crate) async fn sigkill(child: &mut tokio::process::Child) {
    child.start_kill().expect("kill");
    let status = child.wait().await.unwrap();
    assert_eq!(
        status.code(),
        None,
        "shardsync finished before the SIGKILL ({status})"
    );
}

/// One version of a shard: path, bytes, SHA-256 (computed once, here).
type Version = (String, Vec<u8>, String);

/// The destination's committed manifest, checked against the bytes in its folder on disk: every
/// entry is there, and those bytes are the known version the entry claims (size and SHA-256).
async fn assert_committed_on_disk(
    dst: &Dataset,
    dir: &std::path::Path,
    versions: &[&[Version]],
    what: &str,
) -> Option<usize> {
    let m = committed(dst).await?;
    for e in &m.shards {
        let bytes = std::fs::read(dir.join(&e.path)).unwrap_or_else(|_| {
            panic!(
                "{what}: the committed manifest names {}, absent from the destination",
                e.path
            )
        });
        let version = versions
            .iter()
            .flat_map(|v| v.iter())
            .find(|(p, b, _)| *p == e.path && *b == bytes)
            .unwrap_or_else(|| panic!("{what}: {} holds bytes of no known version", e.path));
        assert_eq!(
            (e.size, e.sha256.as_str()),
            (version.1.len() as u64, version.2.as_str()),
            "{what}: the committed manifest claims {} holds other bytes than it does",
            e.path
        );
    }
    Some(m.shards.len())
}

#[tokio::test]
async fn killed_sync_resumes_without_recopying_and_never_commits_what_is_not_there() {
    const SHARDS: usize = 40;
    let version = |seed: u64| -> Vec<Version> {
        (0..SHARDS)
            .map(|i| {
                let b = blob_parquet(256 * 1024, 2, seed + i as u64);
                (
                    format!("train/part-{i:05}.parquet"),
                    b.clone(),
                    crate::harness::sha256(&b),
                )
            })
            .collect()
    };
    let env = Env::new(Backend::S3).await;
    // The source is a local folder, the destination the S3 server, checked in its bucket folder.
    let src_dir = tempfile::tempdir().unwrap();
    let src = Dataset::open(&src_dir.path().display().to_string(), &Default::default()).unwrap();
    let dst = env.open("dst");
    let dst_dir = env.server.as_ref().unwrap().root.join(BUCKET).join("dst");
    let v1 = version(0);
    // The second version replaces the first half of the shards, keeping their sizes.
    let v2: Vec<Version> = version(1000).into_iter().take(SHARDS / 2).collect();
    for ((p, new, _), (_, old, _)) in v2.iter().zip(&v1) {
        assert_eq!(new.len(), old.len(), "{p}");
    }
    let pairs = |v: &[Version]| -> Vec<(String, Vec<u8>)> {
        v.iter().map(|(p, b, _)| (p.clone(), b.clone())).collect()
    };
    for (p, b, _) in &v1 {
        put_raw(&src, p, b.clone()).await;
    }
    let mut args = vec![
        "sync".to_string(),
        src_dir.path().display().to_string(),
        env.url("dst"),
    ];
    args.extend(env.cli_options("--dst-opt"));
    args.extend(["-j".into(), "1".into(), "--quiet".into()]);
    let report = env.tmp.path().join("report.json");
    let mut resume = args.clone();
    resume.extend(["--report".into(), report.display().to_string()]);
    let read_report =
        || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap() };

    // 1. A first sync into an empty destination, killed after a few shards landed.
    let mut child = command(&args).spawn().unwrap();
    let seen = wait_for_landed(&mut child, &dst_dir, &pairs(&v1), 3).await;
    sigkill(&mut child).await;
    assert_committed_on_disk(&dst, &dst_dir, &[&v1], "after the first kill").await;
    let r = shardsync(&resume).await;
    assert_eq!(r.code, Some(0), "resume: {r:?}");
    let v = read_report();
    let copied = v["shards_copied"].as_u64().unwrap() as usize;
    // With -j 1, one PUT was in flight at the kill: it may have landed unacknowledged (s3s-fs
    // renames the bytes into place before it writes their metadata), so it may be copied again.
    assert!(
        copied <= SHARDS - seen + 1,
        "resume re-copied landed shards: {copied} copied, {seen} had landed"
    );
    assert!(copied > 0, "{v}");
    assert_eq!(v["consistent"], true, "{v}");
    assert_eq!(landed(&dst_dir, &pairs(&v1)), SHARDS);
    let named = assert_committed_on_disk(&dst, &dst_dir, &[&v1], "after the first resume").await;
    assert_eq!(named, Some(SHARDS));

    // 2. The new version, synced over the committed destination and killed mid-way: the
    // manifest committed meanwhile must not claim any shard being replaced.
    for (p, b, _) in &v2 {
        put_raw(&src, p, b.clone()).await;
    }
    let mut child = command(&args).spawn().unwrap();
    let seen = wait_for_landed(&mut child, &dst_dir, &pairs(&v2), 3).await;
    sigkill(&mut child).await;
    let named = assert_committed_on_disk(&dst, &dst_dir, &[&v1, &v2], "after the second kill").await;
    assert!(
        named.is_some_and(|n| n < SHARDS),
        "the manifest still claims every shard: {named:?}"
    );
    let r = shardsync(&resume).await;
    assert_eq!(r.code, Some(0), "resume: {r:?}");
    let v = read_report();
    let copied = v["shards_copied"].as_u64().unwrap() as usize;
    assert!(
        copied <= SHARDS / 2 - seen + 1,
        "resume re-copied landed shards: {copied} copied, {seen} had landed"
    );
    assert_eq!(v["consistent"], true, "{v}");
    let current: Vec<Version> = v2.iter().chain(&v1[SHARDS / 2..]).cloned().collect();
    assert_eq!(landed(&dst_dir, &pairs(&current)), SHARDS);
    let named = assert_committed_on_disk(&dst, &dst_dir, &[&current], "after the second resume").await;
    assert_eq!(named, Some(SHARDS));
    assert_eq!(
        crate::harness::paths(&dst).await.len(),
        SHARDS,
        "nothing else at the destination"
    );
}

/// Send SIGINT (no libc/nix dependency: the `kill` utility).
fn sigint(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -INT {pid}");
}

#[tokio::test]
async fn watch_on_sigint_finishes_in_flight_shards_commits_and_exits_0() {
    const SHARDS: usize = 40;
    let env = Env::new(Backend::Local).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let shards: Vec<(String, Vec<u8>)> = (0..SHARDS)
        .map(|i| {
            (
                format!("train/part-{i:05}.parquet"),
                blob_parquet(256 * 1024, 2, 50 + i as u64),
            )
        })
        .collect();
    for (p, b) in &shards {
        put_raw(&src, p, b.clone()).await;
    }
    let mut child = command(pair(
        &env,
        &["watch"],
        "src",
        "dst",
        &["--interval", "200ms", "--json", "-j", "1"],
    ))
    .spawn()
    .unwrap();
    let dst_dir = env.tmp.path().join("dst");
    wait_for_landed(&mut child, &dst_dir, &shards, 3).await;
    sigint(&child);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("watch did not exit within 30 s of SIGINT")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "watch after SIGINT: {status}; stdout {stdout}"
    );

    // One cycle, interrupted: what landed is committed, nothing else is claimed.
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let copied = lines[0]["shards_copied"].as_u64().unwrap() as usize;
    assert!(copied < SHARDS, "the cycle was not interrupted: {stdout}");
    assert_eq!(lines[0]["consistent"], false, "{stdout}");
    let m = assert_manifest_holds(&dst, "after SIGINT")
        .await
        .expect("committed on SIGINT");
    assert_eq!(
        m.shards.len(),
        copied,
        "the manifest names the shards the cycle copied"
    );
    assert_eq!(landed(&dst_dir, &shards), copied);

    // The next sync copies only the rest.
    let r = shardsync(pair(&env, &["sync"], "src", "dst", &["--json"])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["shards_copied"].as_u64().unwrap() as usize,
        SHARDS - copied,
        "{v}"
    );
    assert_eq!(snapshot(&src).await, snapshot(&dst).await);
}

backend_tests!(watch_with_two_cycles_prints_one_json_line_per_cycle: local, s3);
async fn watch_with_two_cycles_prints_one_json_line_per_cycle(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    write_demo(&env.open("src"), 3, 100, 5).await;
    let r = shardsync(pair(
        &env,
        &["watch"],
        "src",
        "dst",
        &["--cycles", "2", "--json", "--interval", "200ms"],
    ))
    .await;
    assert_eq!(r.code, Some(0), "{what}: {r:?}");
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {l:?}: {e}")))
        .collect();
    assert_eq!(lines.len(), 2, "{what}: {}", r.stdout);
    for (i, (line, copied)) in lines.iter().zip([4, 0]).enumerate() {
        assert_eq!(line["cycle"], i + 1, "{what}: {line}");
        assert_eq!(line["shards_copied"], copied, "{what}: {line}");
        assert_eq!(line["consistent"], true, "{what}: {line}");
    }
    assert_eq!(lines[0]["dst_digest"], lines[1]["dst_digest"], "{what}");
    assert_eq!(
        snapshot(&env.open("src")).await,
        snapshot(&env.open("dst")).await,
        "{what}"
    );
}

backend_tests!(manifest_build_reports_hashed_and_reused_counts_and_writes_out_file: local, s3);
async fn manifest_build_reports_hashed_and_reused_counts_and_writes_out_file(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let src = env.open("src");
    write_demo(&src, 4, 100, 6).await;
    let out = env.tmp.path().join("manifest-copy.json");
    let mut args = vec![
        "manifest".to_string(),
        "build".into(),
        env.url("src"),
        "--json".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(env.cli_options("--opt"));
    let summary = |r: &Run| -> serde_json::Value {
        assert_eq!(r.code, Some(0), "{what}: {r:?}");
        serde_json::from_str(&r.stdout).unwrap()
    };
    let first = summary(&shardsync(&args).await);
    assert_eq!(
        (first["hashed"].as_u64(), first["reused"].as_u64()),
        (Some(5), Some(0)),
        "{what}: {first}"
    );
    assert_eq!(first["totals"]["rows"], 400, "{what}: {first}");
    let stored = committed(&src).await.expect("manifest stored in the dataset");
    assert_eq!(first["digest"], stored.digest.as_str(), "{what}");
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file["digest"], stored.digest.as_str(), "{what}: --out file");

    put(&src, "train/part-00003.parquet", shard_bytes(3, 100, 66).unwrap()).await;
    let second = summary(&shardsync(&args).await);
    assert_eq!(
        (second["hashed"].as_u64(), second["reused"].as_u64()),
        (Some(1), Some(4)),
        "{what}: {second}"
    );
    assert_ne!(second["digest"], first["digest"], "{what}");
}

#[tokio::test]
async fn sync_to_a_nested_s3_prefix_lands_under_that_prefix_on_the_server() {
    let env = Env::new(Backend::S3).await;
    let src = env.open("nested/src");
    write_demo(&src, 2, 100, 7).await;
    let r = shardsync(pair(&env, &["sync"], "nested/src", "deep/er/dst", &[])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let root = env.server.as_ref().unwrap().root.join(BUCKET).join("deep/er/dst");
    assert!(
        root.join("train/part-00001.parquet").is_file(),
        "{}",
        root.display()
    );
    assert!(root.join("_shardsync/manifest.json").is_file());
}
