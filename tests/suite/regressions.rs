//! Concrete cases found by fuzzing (the proptests in `robustness.rs`) and by the robustness
//! tests, kept as plain tests so they are checked on every run whatever the fuzzer draws.
//! Each names what went wrong before the fix.

use shardsync::manifest::{self, Manifest};
use shardsync::{Dataset, OpenOptions};

/// A manifest document of entries `(path, size, sha256, rows)`, digest left out.
fn doc(entries: &[(&str, serde_json::Value, &str, Option<u64>)]) -> Vec<u8> {
    let shards: Vec<serde_json::Value> = entries
        .iter()
        .map(|(p, size, sha, rows)| {
            let mut e = serde_json::json!({"path": p, "size": size, "sha256": sha});
            if let Some(r) = rows {
                e["rows"] = (*r).into();
            }
            e
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "format": manifest::FORMAT,
        "dataset": "memory://regressions",
        "created_at": "2026-11-25T00:00:00Z",
        "generator": "test",
        "digest": "",
        "totals": {"shards": 0, "files": 0, "bytes": 0, "rows": 0},
        "shards": shards,
    }))
    .unwrap()
}

const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Found by `manifest_parser_accepts_only_safe_consistent_documents`: row counts come from
/// the document unchecked, and summing two of `u64::MAX` overflowed (a panic in debug builds,
/// a wrapped total in release).
#[test]
fn row_counts_that_overflow_the_total_do_not_panic() {
    let d = doc(&[
        ("a.parquet", 1.into(), SHA, Some(u64::MAX)),
        ("b.parquet", 1.into(), SHA, Some(u64::MAX)),
    ]);
    let m = Manifest::from_json(&d, "t").expect("valid entries");
    assert_eq!(m.totals.rows, u64::MAX, "saturates");
    assert_eq!(m.totals.files, 2);
}

/// Found by `hostile_manifests_are_refused_naming_the_entry`: a size serde cannot read as u64
/// (negative, fractional, beyond u64) was refused with only a line and column, not the entry.
#[test]
fn unreadable_sizes_name_their_entry() {
    for size in [
        serde_json::json!(-1),
        serde_json::json!(0.5),
        serde_json::from_str("18446744073709551616").unwrap(),
        serde_json::json!("10"),
    ] {
        let d = doc(&[
            ("a.parquet", 1.into(), SHA, None),
            ("deep/b.parquet", size.clone(), SHA, None),
        ]);
        let msg = Manifest::from_json(&d, "t").unwrap_err().to_string();
        assert!(msg.contains("entry 1 \"deep/b.parquet\""), "{size}: {msg}");
    }
}

/// Found with the fault layer and a same-size rewrite: names that `Path::from` percent-encodes
/// (`#`, `%`, `[`, `~`, non-ASCII) were written under their encoded form, so the copy of
/// `a#b.json` was listed as `a%23b.json` and every later sync saw it as new plus extra.
#[test]
fn keys_are_the_listed_names() {
    let ds = Dataset::open("memory://regressions/root", &OpenOptions::default()).unwrap();
    for rel in ["a#b.json", "per%cent", "x[1]", "t~^", "ünï/ç.parquet", "%2E%2E"] {
        manifest::validate_path(rel).expect(rel);
        assert_eq!(ds.relative(&ds.key(rel)).as_deref(), Some(rel));
    }
}

/// Control characters outside ASCII (C1, e.g. U+0085 NEXT LINE) are as unsafe in a key as
/// ASCII ones: some tools treat them as line breaks in listings and logs.
#[test]
fn c1_control_characters_are_refused() {
    for p in ["a\u{85}b", "a\u{9b}b", "a\u{7f}b", "a\rb"] {
        assert!(manifest::validate_path(p).is_err(), "{p:?}");
    }
}

/// A hostile path is refused with its entry number and the manifest it came from, so a user
/// can find it in a document of millions of entries.
#[test]
fn hostile_path_names_entry_and_manifest() {
    let d = doc(&[("../escape.parquet", 1.into(), SHA, None)]);
    let msg = Manifest::from_json(&d, "s3://b/ds/_shardsync/manifest.json")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("\"../escape.parquet\""), "{msg}");
    assert!(
        msg.contains("entry 0 of s3://b/ds/_shardsync/manifest.json"),
        "{msg}"
    );
}

/// A mistyped value is quoted by serde in full: a 1 MB string where a size belongs made a
/// 1 MB error message.
#[test]
fn huge_mistyped_values_give_a_bounded_message() {
    let d = doc(&[("a.parquet", "9".repeat(1 << 20).into(), SHA, None)]);
    let msg = Manifest::from_json(&d, "t").unwrap_err().to_string();
    assert!(msg.contains("entry 0 \"a.parquet\""), "{}", &msg[..200]);
    assert!(msg.len() < 1000, "{} bytes", msg.len());
}
