//! Failures that are the user's are not retried and are said once; a sync that fails as a whole
//! still writes its report and its JSON line (issue 12 item 6).

use crate::harness::{noise, shardsync};

#[tokio::test]
async fn a_permanent_write_error_is_not_retried_and_is_printed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(src.join("train")).unwrap();
    std::fs::write(src.join("train/a.bin"), noise(5000, 1)).unwrap();
    std::fs::write(src.join("info.json"), b"{}").unwrap();
    // At the destination `train` is a regular file: writing `train/a.bin` cannot succeed.
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(dst.join("train"), b"not a folder").unwrap();
    let run = shardsync(["sync", src.to_str().unwrap(), dst.to_str().unwrap(), "-v"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("train/a.bin"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("retrying"),
        "a permanent error was retried: {}",
        run.stderr
    );
    let mentions = run
        .stderr
        .lines()
        .filter(|l| l.contains("train/a.bin") && l.contains("fail"))
        .count();
    assert!(
        mentions <= 2,
        "said more than once (per-shard line + summary): {}",
        run.stderr
    );
    assert_eq!(std::fs::read(dst.join("train")).unwrap(), b"not a folder");
}

#[tokio::test]
async fn a_sync_that_fails_as_a_whole_still_writes_its_report_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), noise(100, 2)).unwrap();
    // A live holder's lease: this test process, on this host, for another minute.
    std::fs::create_dir_all(dst.join("_shardsync")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let now = chrono::Utc::now();
    let lease = serde_json::json!({
        "owner": "0123456789abcdef",
        "host": host.trim(),
        "pid": std::process::id(),
        "acquired_at": now,
        "expires_at": now + chrono::Duration::seconds(60),
    });
    std::fs::write(dst.join("_shardsync/lock.json"), lease.to_string()).unwrap();
    let report = tmp.path().join("r.json");
    let run = shardsync([
        "sync",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--json",
        "--report",
        report.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let line: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON document");
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    for r in [&line, &written] {
        assert_eq!(r["consistent"], false, "{r}");
        let err = r["error"].as_str().expect("the report names the error");
        assert!(err.contains("lock") || err.contains("locked"), "{err}");
    }
    assert!(
        !dst.join("a.bin").exists(),
        "nothing written under another's lease"
    );
}
