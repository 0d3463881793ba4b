//! Local folders as users leave them: symlinks in the destination and in the source, FIFOs,
//! sockets, dangling links, and the staging files a killed write leaves behind. Each test runs
//! the real binary on real folders and checks the exit code, the message, and what both sides
//! (and anything a symlink points to) hold afterwards.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shardsync::check::{verify_store, CheckOptions};
use shardsync::Dataset;

use crate::backends::{put, Backend, Env};
use crate::harness::{blob_parquet, command, sha256, shardsync, MIB};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report JSON")
}

fn warnings(v: &serde_json::Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

/// Every regular file under `dir` (relative path, SHA-256), symlinks not followed, sorted.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, sha256(&std::fs::read(e.path()).unwrap())));
            }
        }
    }
    out.sort();
    out
}

/// The files of the dataset under `dir`: all but `_shardsync/`.
fn data_files(dir: &Path) -> Vec<(String, String)> {
    files(dir)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("_shardsync/"))
        .collect()
}

/// A folder holding two small Parquet shards and a sidecar.
fn write_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("train")).unwrap();
    std::fs::write(dir.join("train/part-00000.parquet"), blob_parquet(100_000, 1, 1)).unwrap();
    std::fs::write(dir.join("train/part-00001.parquet"), blob_parquet(100_000, 1, 2)).unwrap();
    std::fs::write(dir.join("dataset_info.json"), b"{\"name\": \"t\"}").unwrap();
}

/// Data outside every dataset that a symlink points to, and what it holds.
fn write_outside(dir: &Path) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(dir.join("precious.parquet"), blob_parquet(50_000, 1, 9)).unwrap();
    std::fs::write(dir.join("nested/notes.txt"), b"not shardsync's").unwrap();
    files(dir)
}

#[tokio::test]
async fn destination_symlinks_survive_sync_delete_and_what_they_point_to_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst, outside) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("elsewhere"),
    );
    write_source(&src);
    let before = write_outside(&outside);
    std::fs::create_dir_all(&dst).unwrap();
    symlink(&outside, dst.join("extra")).unwrap();
    symlink(outside.join("precious.parquet"), dst.join("linked.parquet")).unwrap();
    let rep = tmp.path().join("report.json");

    // The sync copies the dataset, deletes nothing through or of the links, and exits 1: a
    // loader globbing the folder would read what they point to, as `check` would say.
    let r = shardsync(["sync", &s(&src), &s(&dst), "--delete", "--report", &s(&rep)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    let v = report(&rep);
    assert_eq!(v["consistent"], false, "{v}");
    assert_eq!(v["shards_failed"], 0, "{v}");
    assert_eq!(v["shards_deleted"], 0, "a symlink is not an extra to delete: {v}");
    for name in ["extra", "linked.parquet"] {
        assert!(
            v["findings"].as_array().unwrap().iter().any(|f| f["path"] == name
                && f["kind"] == "extra"
                && f["detail"]
                    .as_str()
                    .unwrap()
                    .contains("never writes or deletes through it")),
            "report names {name}: {v}"
        );
        assert!(
            r.stderr.contains(&format!("{}/{name} is a symlink", s(&dst))),
            "stderr names {name}: {}",
            r.stderr
        );
        assert!(r.stdout.contains(&format!("{name} is a symlink")), "{}", r.stdout);
    }
    // The links are still there, and nothing they lead to was written, emptied or deleted.
    assert!(std::fs::symlink_metadata(dst.join("extra"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::symlink_metadata(dst.join("linked.parquet"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(files(&outside), before);
    assert_eq!(data_files(&dst), data_files(&src));

    // check says so too: a reader globbing the folder would follow them.
    let r = shardsync(["check", &s(&src), &s(&dst)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("extra is a symlink"), "{}", r.stdout);
    assert!(r.stdout.contains("linked.parquet is a symlink"), "{}", r.stdout);
    assert_eq!(files(&outside), before);
}

#[tokio::test]
async fn a_destination_path_through_a_symlink_is_refused_and_nothing_is_written_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, outside) = (tmp.path().join("src"), tmp.path().join("elsewhere"));
    write_source(&src);
    let before = write_outside(&outside);

    // A symlinked directory on the path of source shards.
    let dst = tmp.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    symlink(&outside, dst.join("train")).unwrap();
    let r = shardsync(["sync", &s(&src), &s(&dst)]).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("train/part-00000.parquet")
            && r.stderr.contains("train is a symlink")
            && r.stderr.contains("never writes or deletes through a symlink"),
        "{}",
        r.stderr
    );
    assert_eq!(files(&outside), before, "nothing written through dst/train");
    assert!(std::fs::symlink_metadata(dst.join("train"))
        .unwrap()
        .file_type()
        .is_symlink());

    // A symlinked `_shardsync/`: no lease, no manifest is written through it.
    let dst = tmp.path().join("dst2");
    std::fs::create_dir_all(&dst).unwrap();
    symlink(&outside, dst.join("_shardsync")).unwrap();
    let r = shardsync(["sync", &s(&src), &s(&dst)]).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("_shardsync is a symlink"), "{}", r.stderr);
    assert_eq!(files(&outside), before, "nothing written through dst2/_shardsync");
    assert!(
        files(&dst).is_empty(),
        "no shard lands without a lease: {:?}",
        files(&dst).iter().map(|f| &f.0).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn source_symlinks_are_skipped_with_a_warning_and_follow_symlinks_copies_what_they_point_to() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, outside) = (tmp.path().join("src"), tmp.path().join("elsewhere"));
    write_source(&src);
    write_outside(&outside);
    symlink(
        outside.join("precious.parquet"),
        src.join("train/part-00002.parquet"),
    )
    .unwrap();
    symlink(&outside, src.join("more")).unwrap();
    symlink(&src, src.join("train/loop")).unwrap(); // leads back to an ancestor
    let rep = tmp.path().join("report.json");

    // Default: skipped, each named, in the report and on stderr; the sync still succeeds.
    let dst = tmp.path().join("dst");
    let r = shardsync([
        "sync",
        &s(&src),
        &s(&dst),
        "--no-source-write",
        "--report",
        &s(&rep),
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let w = warnings(&report(&rep));
    for name in ["train/part-00002.parquet", "more", "train/loop"] {
        assert!(
            w.iter()
                .any(|w| w.starts_with(&format!("source {name} is a symlink"))
                    && w.contains("following symlinks")),
            "{name}: {w:?}"
        );
        assert!(
            r.stderr.contains(&format!("{}/{name} is a symlink", s(&src))),
            "{}",
            r.stderr
        );
    }
    let copied: Vec<String> = data_files(&dst).into_iter().map(|f| f.0).collect();
    assert_eq!(
        copied,
        [
            "dataset_info.json",
            "train/part-00000.parquet",
            "train/part-00001.parquet"
        ]
    );

    // --follow-symlinks: the links' targets arrive as regular files under the links' names.
    let dst2 = tmp.path().join("dst2");
    let r = shardsync([
        "sync",
        &s(&src),
        &s(&dst2),
        "--no-source-write",
        "--follow-symlinks",
        "--report",
        &s(&rep),
    ])
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let v = report(&rep);
    assert_eq!(v["consistent"], true, "{v}");
    assert!(
        warnings(&v)
            .iter()
            .any(|w| w.starts_with("source train/loop is a symlink loop")),
        "{v}"
    );
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(
        read(&dst2.join("train/part-00002.parquet")),
        read(&outside.join("precious.parquet"))
    );
    assert_eq!(
        read(&dst2.join("more/precious.parquet")),
        read(&outside.join("precious.parquet"))
    );
    assert_eq!(read(&dst2.join("more/nested/notes.txt")), b"not shardsync's");
    assert!(std::fs::symlink_metadata(dst2.join("more")).unwrap().is_dir());

    // check and diff take the flag too: with it the copy is consistent, without it the
    // followed objects are extras.
    let r = shardsync(["check", &s(&src), &s(&dst2), "--follow-symlinks"]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = shardsync(["check", &s(&src), &s(&dst2)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("more/precious.parquet"), "{}", r.stdout);
    let r = shardsync(["diff", &s(&src), &s(&dst2), "--follow-symlinks"]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = shardsync(["manifest", "build", &s(&src), "--follow-symlinks", "--json"]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let built: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(built["totals"]["files"], 6, "{built}");
}

#[tokio::test]
async fn fifo_socket_and_dangling_link_in_the_source_are_reported_and_the_sync_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    write_source(&src);
    let made = std::process::Command::new("mkfifo")
        .arg(src.join("train/pipe.parquet"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let _socket = std::os::unix::net::UnixListener::bind(src.join("agent.sock")).unwrap();
    symlink(
        tmp.path().join("gone.parquet"),
        src.join("train/dangling.parquet"),
    )
    .unwrap();
    let rep = tmp.path().join("report.json");

    // Opening the FIFO would block forever; the run finishing is part of what is tested.
    let r = shardsync(["sync", &s(&src), &s(&dst), "--report", &s(&rep)]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let w = warnings(&report(&rep));
    for (name, what) in [
        ("train/pipe.parquet", "is a FIFO"),
        ("agent.sock", "is a socket"),
        ("train/dangling.parquet", "is a dangling symlink"),
    ] {
        assert!(
            w.iter().any(|w| w.starts_with(&format!("source {name} {what}"))),
            "{name}: {w:?}"
        );
        assert!(
            r.stderr.contains(&format!("{}/{name} {what}", s(&src))),
            "{}",
            r.stderr
        );
    }
    let copied: Vec<String> = data_files(&dst).into_iter().map(|f| f.0).collect();
    assert_eq!(
        copied,
        [
            "dataset_info.json",
            "train/part-00000.parquet",
            "train/part-00001.parquet"
        ]
    );
    let r = shardsync(["check", &s(&src), &s(&dst)]).await;
    assert_eq!(
        r.code,
        Some(0),
        "the source's skipped entries are warnings, not drift: {r:?}"
    );
    assert!(
        r.stdout.contains("warning: source train/pipe.parquet is a FIFO"),
        "{}",
        r.stdout
    );
}

/// The staging files under `dir` (any depth), by name.
fn staging_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e
                .file_name()
                .to_string_lossy()
                .starts_with(shardsync::local::STAGING_PREFIX)
            {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn a_killed_write_leaves_a_staging_file_no_glob_matches_that_check_and_verify_report_and_the_next_sync_removes(
) {
    let env = Env::new(Backend::S3).await;
    let src = env.open("src");
    put(&src, "train/part-00000.parquet", blob_parquet(200_000, 1, 1)).await;
    put(&src, "dataset_info.json", &b"{}"[..]).await;
    let dst = env.tmp.path().join("dst");
    let sync_args = |extra: &[&str]| {
        let mut a = vec!["sync".to_string(), env.url("src"), s(&dst)];
        a.extend(env.cli_options("--src-opt"));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let r = shardsync(sync_args(&[])).await;
    assert_eq!(r.code, Some(0), "first sync: {r:?}");

    // A large shard, written part by part into a staging file; SIGKILL while it is.
    let big = blob_parquet(64 * MIB, 16, 7);
    put(&src, "train/part-00001.parquet", big.clone()).await;
    let mut child = command(sync_args(&[
        "-j",
        "1",
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
    ]))
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let staged = loop {
        // The shard's own staging file (the lease and manifest are staged under _shardsync/).
        if let Some(f) = staging_files(&dst.join("train")).pop() {
            break f;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("shardsync exited ({status}) before its staging file was seen: the shard is too small to interrupt");
        }
        assert!(Instant::now() < deadline, "no staging file within 60 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    child.start_kill().unwrap();
    assert_eq!(child.wait().await.unwrap().code(), None, "killed, not finished");

    // Left behind: a partial file that no reader takes for a shard.
    assert!(staged.exists(), "{staged:?}");
    let name = staged.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with('.') && !name.ends_with(".parquet"), "{name}");
    assert_eq!(
        staged.parent().unwrap(),
        dst.join("train"),
        "staged beside its target"
    );
    assert!(
        !dst.join("train/part-00001.parquet").exists(),
        "nothing under the final key"
    );

    // Before the next sync, check and verify name it.
    let rel = format!("train/{name}");
    let mut check = vec!["check".to_string(), env.url("src"), s(&dst)];
    check.extend(env.cli_options("--src-opt"));
    let r = shardsync(&check).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stdout.contains(&rel)
            && r.stdout
                .contains("partial file left by an interrupted shardsync write"),
        "{}",
        r.stdout
    );
    let r = shardsync(["verify", &s(&dst), "--format", "json"]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == rel.as_str() && f["kind"] == "extra"),
        "{v}"
    );

    // The next sync removes it, says so, and the destination is whole.
    let rep = env.tmp.path().join("report.json");
    let r = shardsync(sync_args(&["--report", &s(&rep)])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let w = warnings(&report(&rep));
    assert!(
        w.iter()
            .any(|w| w.contains("removed 1 partial file(s)") && w.contains(&rel)),
        "{w:?}"
    );
    assert!(!staged.exists(), "staging file removed");
    assert!(staging_files(&dst).is_empty());
    assert_eq!(std::fs::read(dst.join("train/part-00001.parquet")).unwrap(), big);
    let r = shardsync(&check).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = shardsync(["verify", &s(&dst)]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[tokio::test]
async fn staging_files_of_live_processes_and_of_object_store_are_reported_but_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    write_source(&src);
    let r = shardsync(["sync", &s(&src), &s(&dst)]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    // object_store's own `name#N` (an older shardsync's leftover, or another tool's write in
    // progress), and a staging file of a process that still runs (this test).
    std::fs::write(dst.join("train/part-00000.parquet#1"), b"PAR1 half").unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let live = format!(
        "{}{}-{}-abcdefgh",
        shardsync::local::STAGING_PREFIX,
        host.trim()
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "_"),
        std::process::id()
    );
    std::fs::write(dst.join("train").join(&live), b"in flight").unwrap();

    let ds = Dataset::open(&s(&dst), &Default::default()).unwrap();
    let v = verify_store(&ds, &CheckOptions::default()).await.unwrap();
    assert!(!v.consistent);
    let named: Vec<&str> = v.findings.iter().map(|f| f.path.as_str()).collect();
    assert!(named.contains(&"train/part-00000.parquet#1"), "{named:?}");
    assert!(named.contains(&format!("train/{live}").as_str()), "{named:?}");

    // The sync leaves both, and exits 1 naming them: drift remains while they are there.
    let r = shardsync(["sync", &s(&src), &s(&dst)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        dst.join("train/part-00000.parquet#1").exists(),
        "not ours to remove"
    );
    assert!(dst.join("train").join(&live).exists(), "its process still runs");
    assert!(r.stdout.contains("not ours to remove"), "{}", r.stdout);
}
