//! The library's findings name the situation; the binary adds the flag that acts on it.
//! A `check` with an extra object and an unproven one: the report's details name no flag, and
//! stderr carries one `hint:` line per kind, naming the flag.

use crate::harness::shardsync;

fn write(dir: &std::path::Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

#[tokio::test]
async fn check_findings_name_no_flag_and_the_binary_adds_the_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    write(&src, "train/a.bin", b"alpha");
    write(&src, "train/b.bin", b"bravo");
    let (s, d) = (src.display().to_string(), dst.display().to_string());
    let r = shardsync(["sync", &s, &d]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    // An extra object at the destination, and a shard rewritten behind the manifest's back.
    write(&dst, "train/extra.bin", b"left over");
    write(&src, "train/b.bin", b"BRAVO");

    let r = shardsync(["check", &s, &d, "--format", "json"]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("report JSON");
    let findings = v["findings"].as_array().expect("findings");
    assert!(findings.iter().any(|f| f["kind"] == "extra"), "{findings:?}");
    for f in findings {
        let detail = f["detail"].as_str().unwrap();
        assert!(!detail.contains("--"), "a library finding names a flag: {detail}");
    }
    assert!(
        !r.stderr.contains("hint:"),
        "JSON output gets no hints: {}",
        r.stderr
    );

    let r = shardsync(["check", &s, &d]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "hint: `shardsync sync SRC DST --delete` removes the 1 object(s) found only in the destination"
        ),
        "{}",
        r.stderr
    );
}
