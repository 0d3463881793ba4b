//! Control-plane requests survive what shard copies already survive (issue 12 item 6): the
//! probe, the lease, the commit, the listing and the manifest GET, each sent through a
//! [`MisbehavingRelay`] that loses an answer, cuts a body or restarts the server on exactly
//! that request, in a full `sync()` against the in-process S3 server and moto.
//!
//! Where object_store retries a fault by itself (a GET body cut midway, a refused connect),
//! the rule fires more often than object_store's own budget (`store::retry_config`: 6 retries,
//! 7 requests), so only shardsync's control-plane retry can see the sync through. A reset
//! answer to a conditional PUT is never retried by object_store (the PUT is not idempotent),
//! so one is enough there. Every test asserts its rule fired.

use std::net::SocketAddr;
use std::time::Duration;

use shardsync::check::{check, CheckOptions};
use shardsync::commit::CommitProtection;
use shardsync::demo::{shard_bytes, shard_name};
use shardsync::sync::{sync, SyncOptions, SyncOutcome};
use shardsync::{Dataset, OpenOptions};

use crate::backends::{put, write_demo, Backend, Env};
use crate::harness::{all_keys, assert_manifest_holds, shardsync};
use crate::misbehaving_relay::{Action, MisbehavingRelay, Rule};

/// More faults in a row than object_store's own retries absorb (7 requests per operation).
const BEYOND_OBJECT_STORE: usize = 8;
const ROWS: usize = 200;
const SEED: u64 = 12;

/// A source written straight to the server, and a destination on the same server reached
/// through the relay (and straight, to look at it afterwards).
struct Rig {
    backend: Backend,
    relay: MisbehavingRelay,
    src: Dataset,
    dst: Dataset,
    dst_direct: Dataset,
    /// The destination's store options, with the relay as its endpoint.
    dst_options: Vec<(String, String)>,
    env: Env,
}

async fn rig(backend: Backend, shards: usize) -> Rig {
    let env = Env::new(backend).await;
    let options = env.options();
    let endpoint = options
        .iter()
        .find(|(k, _)| k == "endpoint")
        .map(|(_, v)| v.clone())
        .expect("an S3 endpoint option");
    let upstream: SocketAddr = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("endpoint is http://IP:PORT");
    let relay = MisbehavingRelay::start(upstream).await;
    let relayed: Vec<(String, String)> = options
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "endpoint" { relay.endpoint() } else { v };
            (k, v)
        })
        .collect();
    let src = env.open("src");
    write_demo(&src, shards, ROWS, SEED).await;
    let dst = Dataset::open(
        &env.url("dst"),
        &OpenOptions {
            options: relayed.clone(),
            create_local: true,
        },
    )
    .expect("open the destination through the relay");
    let dst_direct = env.open("dst");
    Rig {
        backend,
        relay,
        src,
        dst,
        dst_direct,
        dst_options: relayed,
        env,
    }
}

impl Rig {
    /// A sync through the relay that must succeed. (A first sync copies the shards and
    /// `dataset_info.json`.)
    async fn sync(&self, what: &str) -> SyncOutcome {
        let opts = SyncOptions::default();
        let run = sync(&self.src, &self.dst, &opts);
        match tokio::time::timeout(Duration::from_secs(180), run).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => panic!(
                "{:?} {what}: sync failed: {e}\nrequests through the relay:\n{}",
                self.backend,
                self.relay.log()
            ),
            Err(_) => panic!("{:?} {what}: sync did not finish within 180 s", self.backend),
        }
    }

    /// Arguments for the binary: `cmd SRC DST` with the source's options and the relayed
    /// destination's, then `extra`.
    fn cli(&self, cmd: &str, extra: &[&str]) -> Vec<String> {
        let mut a = vec![cmd.to_string(), self.env.url("src"), self.env.url("dst")];
        a.extend(self.env.cli_options("--src-opt"));
        for (k, v) in &self.dst_options {
            a.extend(["--dst-opt".to_string(), format!("{k}={v}")]);
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Add shard `i` to the source.
    async fn add_shard(&self, i: usize) {
        put(
            &self.src,
            &shard_name(i),
            shard_bytes(i, ROWS, SEED).expect("shard"),
        )
        .await;
    }

    /// The report says the sync did what it should, the destination holds what its manifest
    /// claims, no lease or probe is left behind, and `check` agrees the two sides are equal.
    async fn assert_synced(&self, outcome: &SyncOutcome, copied: u64, what: &str) {
        let b = self.backend;
        let r = &outcome.report;
        assert!(r.error.is_none(), "{b:?} {what}: {:?}", r.error);
        assert!(r.consistent, "{b:?} {what}: report not consistent: {r:?}");
        assert!(r.committed, "{b:?} {what}: nothing committed");
        assert_eq!(r.shards_failed, 0, "{b:?} {what}");
        assert_eq!(r.shards_copied, copied, "{b:?} {what}: shards copied");
        assert_eq!(
            r.commit_protection,
            Some(CommitProtection::Enforced),
            "{b:?} {what}"
        );
        assert_eq!(r.src_digest, r.dst_digest, "{b:?} {what}: digests");
        let m = assert_manifest_holds(&self.dst_direct, what)
            .await
            .expect("a committed manifest");
        assert_eq!(Some(&m.digest), r.dst_digest.as_ref(), "{b:?} {what}");
        assert_eq!(
            outcome.committed.as_ref().map(|c| &c.digest),
            Some(&m.digest),
            "{b:?} {what}: the manifest the sync says it committed is the stored one"
        );
        let keys = all_keys(&self.dst_direct).await;
        let leftovers: Vec<&String> = keys
            .iter()
            .filter(|k| k.contains("_shardsync/") && !k.ends_with("_shardsync/manifest.json"))
            .filter(|k| !k.contains("_shardsync/manifests/"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{b:?} {what}: lease or probe left behind: {leftovers:?}"
        );
        // A compact manifest's body; never a second one.
        let bodies: Vec<&String> = keys
            .iter()
            .filter(|k| k.contains("_shardsync/manifests/"))
            .collect();
        assert!(
            bodies.len() <= 1,
            "{b:?} {what}: manifest bodies left behind: {bodies:?}"
        );
        let checked = check(&self.src, &self.dst_direct, &CheckOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{b:?} {what}: check: {e}"));
        assert!(
            checked.consistent,
            "{b:?} {what}: check after the sync: {checked:?}"
        );
    }
}

backend_tests!(a_lost_answer_to_the_lease_put_is_read_back_as_our_own_lease: s3, moto);
async fn a_lost_answer_to_the_lease_put_is_read_back_as_our_own_lease(backend: Backend) {
    let rig = rig(backend, 3).await;
    let lost = rig
        .relay
        .arm(Rule::new("PUT", "dst/_shardsync/lock.json", Action::LoseAnswer));
    let outcome = rig.sync("first sync").await;
    assert_eq!(lost.fired(), 1, "{backend:?}: {}", rig.relay.log());
    rig.assert_synced(&outcome, 4, "first sync").await;
}

backend_tests!(a_lost_answer_to_the_probe_puts_still_finds_the_protection_enforced: s3, moto);
async fn a_lost_answer_to_the_probe_puts_still_finds_the_protection_enforced(backend: Backend) {
    let rig = rig(backend, 2).await;
    // Both writes of the probe: the create, and the second create the store must refuse.
    let lost = rig.relay.arm(
        Rule::new("PUT", "dst/_shardsync/probe-", Action::LoseAnswer)
            .unless("probe-checksum")
            .times(2),
    );
    let outcome = rig.sync("first sync").await;
    assert_eq!(lost.fired(), 2, "{backend:?}: {}", rig.relay.log());
    rig.assert_synced(&outcome, 3, "first sync").await;
}

backend_tests!(a_lost_answer_to_the_manifest_commit_is_read_back_not_reported_as_a_conflict: s3, moto);
async fn a_lost_answer_to_the_manifest_commit_is_read_back_not_reported_as_a_conflict(backend: Backend) {
    let rig = rig(backend, 3).await;
    // The first commit is a create (If-None-Match: *).
    let created = rig.relay.arm(Rule::new(
        "PUT",
        "dst/_shardsync/manifest.json",
        Action::LoseAnswer,
    ));
    let outcome = rig.sync("first sync").await;
    assert_eq!(created.fired(), 1, "{backend:?}: {}", rig.relay.log());
    rig.assert_synced(&outcome, 4, "first sync").await;
    // The next is a compare-and-swap (If-Match) on the version just written.
    rig.add_shard(3).await;
    let swapped = rig.relay.arm(Rule::new(
        "PUT",
        "dst/_shardsync/manifest.json",
        Action::LoseAnswer,
    ));
    let outcome = rig.sync("incremental sync").await;
    assert_eq!(swapped.fired(), 1, "{backend:?}: {}", rig.relay.log());
    rig.assert_synced(&outcome, 1, "incremental sync").await;
}

backend_tests!(a_truncated_manifest_body_on_a_rerun_is_read_again_and_the_sync_stays_incremental: s3, moto);
async fn a_truncated_manifest_body_on_a_rerun_is_read_again_and_the_sync_stays_incremental(backend: Backend) {
    let rig = rig(backend, 3).await;
    let outcome = rig.sync("first sync").await;
    rig.assert_synced(&outcome, 4, "first sync").await;
    // Once (object_store resumes the body with a ranged GET), then more often than
    // object_store resumes (shardsync reads the manifest again).
    for (i, times) in [1, BEYOND_OBJECT_STORE].into_iter().enumerate() {
        rig.add_shard(3 + i).await;
        let cut = rig
            .relay
            .arm(Rule::new("GET", "dst/_shardsync/manifest.json", Action::CutBody).times(times));
        let what = format!("re-run with {times} cut manifest bodies");
        let outcome = rig.sync(&what).await;
        assert_eq!(cut.fired(), times, "{backend:?} {what}: {}", rig.relay.log());
        // Only the new shard is copied: the manifest was read, not taken as absent.
        rig.assert_synced(&outcome, 1, &what).await;
    }
}

backend_tests!(a_truncated_listing_body_is_listed_again: s3, moto);
async fn a_truncated_listing_body_is_listed_again(backend: Backend) {
    let rig = rig(backend, 3).await;
    // object_store does not retry a listing whose body is cut; the first two listings of
    // the destination (before the plan, and the one that proves the copies) are cut.
    let cut = rig
        .relay
        .arm(Rule::new("GET", "list-type=2", Action::CutBody).times(2));
    let outcome = rig.sync("first sync").await;
    assert_eq!(cut.fired(), 2, "{backend:?}: {}", rig.relay.log());
    rig.assert_synced(&outcome, 4, "first sync").await;
    rig.add_shard(3).await;
    let cut = rig
        .relay
        .arm(Rule::new("GET", "list-type=2", Action::CutBody).times(2));
    let outcome = rig.sync("incremental sync").await;
    assert_eq!(cut.fired(), 2, "{backend:?}: {}", rig.relay.log());
    rig.assert_synced(&outcome, 1, "incremental sync").await;
}

backend_tests!(a_server_restart_of_two_seconds_during_the_commit_is_outlasted: s3, moto);
async fn a_server_restart_of_two_seconds_during_the_commit_is_outlasted(backend: Backend) {
    let rig = rig(backend, 3).await;
    let restart = rig.relay.arm(Rule::new(
        "PUT",
        "dst/_shardsync/manifest.json",
        Action::Restart(Duration::from_secs(2)),
    ));
    let outcome = rig.sync("first sync").await;
    let log = rig.relay.log();
    assert_eq!(restart.fired(), 1, "{backend:?}: {log}");
    // The commit that went down with the server was made again once it was back.
    let back = log.find("(server back").expect("the server came back");
    assert!(
        log[back..]
            .lines()
            .any(|l| l.starts_with("PUT ") && l.ends_with("dst/_shardsync/manifest.json -> 200")),
        "{backend:?}: {log}"
    );
    rig.assert_synced(&outcome, 4, "first sync").await;
}

#[tokio::test]
async fn the_binary_survives_every_control_plane_fault_in_one_run_and_its_rerun() {
    let rig = rig(Backend::S3, 3).await;
    let first = [
        rig.relay
            .arm(Rule::new("PUT", "dst/_shardsync/lock.json", Action::LoseAnswer)),
        rig.relay.arm(Rule::new("GET", "list-type=2", Action::CutBody)),
        rig.relay
            .arm(Rule::new("PUT", "dst/_shardsync/probe-", Action::LoseAnswer).unless("probe-checksum")),
        rig.relay.arm(Rule::new(
            "PUT",
            "dst/_shardsync/manifest.json",
            Action::LoseAnswer,
        )),
    ];
    let run = shardsync(rig.cli("sync", &["--json"])).await;
    assert_eq!(run.code, Some(0), "{run:?}\n{}", rig.relay.log());
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON report");
    assert_eq!(report["consistent"], true, "{report}");
    assert_eq!(report["committed"], true, "{report}");
    assert_eq!(report["shards_copied"], 4, "{report}");
    assert_eq!(report["commit_protection"], "enforced", "{report}");
    for rule in &first {
        assert_eq!(rule.fired(), 1, "{:?}: {}", rule.rule, rig.relay.log());
    }

    rig.add_shard(3).await;
    let rerun = [
        rig.relay.arm(
            Rule::new("GET", "dst/_shardsync/manifest.json", Action::CutBody).times(BEYOND_OBJECT_STORE),
        ),
        rig.relay.arm(Rule::new(
            "PUT",
            "dst/_shardsync/manifest.json",
            Action::Restart(Duration::from_secs(2)),
        )),
    ];
    let run = shardsync(rig.cli("sync", &["--json"])).await;
    assert_eq!(run.code, Some(0), "{run:?}\n{}", rig.relay.log());
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON report");
    assert_eq!(report["consistent"], true, "{report}");
    assert_eq!(report["shards_copied"], 1, "{report}");
    assert_eq!(rerun[0].fired(), BEYOND_OBJECT_STORE, "{}", rig.relay.log());
    assert_eq!(rerun[1].fired(), 1, "{}", rig.relay.log());

    let run = shardsync(rig.cli("check", &[])).await;
    assert_eq!(run.code, Some(0), "check after both runs: {run:?}");
    assert_manifest_holds(&rig.dst_direct, "after both runs")
        .await
        .expect("a committed manifest");
}

backend_tests!(lost_answers_to_the_checksum_probe_do_not_decide_whether_the_server_validates_checksums: s3, moto);
async fn lost_answers_to_the_checksum_probe_do_not_decide_whether_the_server_validates_checksums(
    backend: Backend,
) {
    let rig = rig(backend, 3).await;
    // The probe PUT is unconditional, so object_store sends it again by itself; lose more
    // answers than it sends.
    let lost = rig.relay.arm(
        Rule::new("PUT", "dst/_shardsync/probe-checksum-", Action::LoseAnswer).times(BEYOND_OBJECT_STORE),
    );
    let outcome = rig.sync("first sync").await;
    assert_eq!(
        lost.fired(),
        BEYOND_OBJECT_STORE,
        "{backend:?}: {}",
        rig.relay.log()
    );
    rig.assert_synced(&outcome, 4, "first sync").await;
    let r = &outcome.report;
    let warned = r
        .warnings
        .iter()
        .any(|w| w.contains("request checksum did not match"));
    match backend {
        // s3s-fs refuses a PUT whose SHA-256 request checksum is wrong.
        Backend::S3 => {
            assert!(
                !warned,
                "{backend:?}: no answer taken for 'accepts': {:?}",
                r.warnings
            );
            assert_eq!(r.proofs.rehash, 0, "{backend:?}: {:?}", r.proofs);
        }
        // moto accepts it: its ETags prove nothing, so every copy must be read back.
        _ => {
            assert!(
                warned,
                "{backend:?}: no answer taken for 'validates': {:?}",
                r.warnings
            );
            assert_eq!(r.proofs.rehash, 4, "{backend:?}: {:?}", r.proofs);
        }
    }
}
