//! Partitioned runs as a scheduler drives them: `plan`, N worker processes of
//! `sync --plan ID --partition I/N`, `commit`; a worker re-run after a partial run, a commit
//! with a partition missing, and a plan the destination moved under.

use object_store::ObjectStoreExt;
use shardsync::Dataset;

use crate::backends::{put, snapshot, write_demo, Backend, Env, BUCKET};
use crate::cli::{landed, sigkill, wait_for_landed};
use crate::harness::{blob_parquet, command, committed, run_command, shardsync, Run};

/// Arguments `cmd SRC DST extra…` with both sides' store options.
fn pair(env: &Env, cmd: &[&str], extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    a.push(env.url("src"));
    a.push(env.url("dst"));
    a.extend(env.cli_options("--src-opt"));
    a.extend(env.cli_options("--dst-opt"));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A dataset of 48 objects of varied sizes (4 KB to 180 KB) beside the demo's Parquet shards
/// and sidecar.
/// Returns its total bytes.
async fn varied_dataset(src: &Dataset) -> u64 {
    for i in 0..48u64 {
        let size = 4096 + ((i * 37) % 23) * 8000;
        let bytes: Vec<u8> = (0..size).map(|k| ((k * 31 + i * 7) % 251) as u8).collect();
        put(src, &format!("data/obj-{i:03}.bin"), bytes).await;
    }
    write_demo(src, 4, 200, 3).await;
    let listing = shardsync::listing::list_dataset(src)
        .await
        .expect("list the source");
    listing.objects.iter().map(|o| o.size).sum()
}

/// Run `plan … --partitions n --id id`; the ID is stdout's last line.
async fn plan(env: &Env, n: usize, id: &str) -> Run {
    let r = shardsync(pair(
        env,
        &["plan"],
        &["--partitions", &n.to_string(), "--id", id],
    ))
    .await;
    assert_eq!(r.code, Some(0), "plan: {r:?}");
    assert_eq!(r.stdout.lines().last(), Some(id), "plan prints its ID: {r:?}");
    r
}

/// One worker process; `index_env` gives the index the way a scheduler does instead of the flag.
fn worker(env: &Env, id: &str, spec: &str, index_env: Option<(&str, &str)>) -> tokio::process::Command {
    worker_j(env, id, spec, index_env, "4")
}

fn worker_j(
    env: &Env,
    id: &str,
    spec: &str,
    index_env: Option<(&str, &str)>,
    jobs: &str,
) -> tokio::process::Command {
    let mut args = vec!["sync", "--plan", id, "--json", "-j", jobs];
    if !spec.is_empty() {
        args.extend(["--partition", spec]);
    }
    let mut c = command(pair(env, &args[..1], &args[1..]));
    c.env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID");
    if let Some((k, v)) = index_env {
        c.env(k, v);
    }
    c
}

fn report_of(r: &Run) -> serde_json::Value {
    assert_eq!(r.code, Some(0), "worker: {r:?}");
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("worker JSON ({e}): {r:?}"))
}

async fn plan_files(dst: &Dataset) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let prefix = dst.key("_shardsync/plans");
    dst.store
        .list(Some(&prefix))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap_or_default()
}

backend_tests!(four_worker_processes_each_copy_a_quarter_and_one_commit_makes_it_consistent: local, s3);
async fn four_worker_processes_each_copy_a_quarter_and_one_commit_makes_it_consistent(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let total = varied_dataset(&src).await;
    plan(&env, 4, "run-1").await;
    assert!(committed(&dst).await.is_none(), "plan committed a manifest");

    // A commit before any worker: exit 2, naming every partition without a receipt.
    let r = shardsync(pair(&env, &["commit"], &["--plan", "run-1"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("0/4, 1/4, 2/4, 3/4"), "{}", r.stderr);

    // Three workers at once, each told its index another way; the fourth not yet run.
    let runs = futures::future::join_all([
        run_command(worker(&env, "run-1", "0/4", None)),
        run_command(worker(
            &env,
            "run-1",
            "auto/4",
            Some(("JOB_COMPLETION_INDEX", "1")),
        )),
        run_command(worker(&env, "run-1", "", Some(("SLURM_ARRAY_TASK_ID", "2")))),
    ])
    .await;
    let mut copied: Vec<u64> = runs
        .iter()
        .map(|r| report_of(r)["bytes_copied"].as_u64().unwrap())
        .collect();
    assert!(committed(&dst).await.is_none(), "a worker committed the manifest");
    let r = shardsync(pair(&env, &["commit"], &["--plan", "run-1"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("1 of 4 partition(s) have no receipt: 3/4"),
        "{}",
        r.stderr
    );
    assert!(
        committed(&dst).await.is_none(),
        "a commit with a partition missing committed"
    );

    let last = run_command(worker(&env, "run-1", "3/4", None)).await;
    copied.push(report_of(&last)["bytes_copied"].as_u64().unwrap());
    assert_eq!(copied.iter().sum::<u64>(), total, "{copied:?}");
    for (i, c) in copied.iter().enumerate() {
        let share = *c as f64 / total as f64;
        assert!(
            (0.20..=0.30).contains(&share),
            "partition {i} copied {share:.3} of the bytes: {copied:?}"
        );
    }
    let r = shardsync(pair(&env, &["commit"], &["--plan", "run-1"])).await;
    assert_eq!(r.code, Some(0), "commit: {r:?}");
    let r = shardsync(pair(&env, &["check"], &[])).await;
    assert_eq!(r.code, Some(0), "check after the commit: {r:?}");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await);
    assert!(
        plan_files(&dst).await.is_empty(),
        "the committed plan was not removed"
    );
    // The committed plan is gone: a worker of it is refused.
    let r = run_command(worker(&env, "run-1", "0/4", None)).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("no plan at"), "{}", r.stderr);
}

backend_tests!(a_partially_run_partition_rerun_copies_only_the_rest: local, s3);
async fn a_partially_run_partition_rerun_copies_only_the_rest(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    varied_dataset(&src).await;
    plan(&env, 2, "p").await;
    let items: serde_json::Value = {
        let r = dst
            .store
            .get(&dst.key("_shardsync/plans/p/items/0.json"))
            .await
            .unwrap();
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
    };
    let items = items["items"].as_array().unwrap().clone();
    let share: u64 = items.iter().map(|i| i["size"].as_u64().unwrap()).sum();
    // What a worker killed mid-copy leaves: some of its items landed (by the same copy path,
    // a one-partition sync of those paths), and no receipt.
    let landed: Vec<&str> = items
        .iter()
        .take(5)
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    let landed_bytes: u64 = items.iter().take(5).map(|i| i["size"].as_u64().unwrap()).sum();
    for p in &landed {
        let bytes = src.store.get(&src.key(p)).await.unwrap().bytes().await.unwrap();
        put(&dst, p, bytes).await;
    }
    // And one item landed with other bytes of the same size (a torn or foreign object).
    let odd = items[6]["path"].as_str().unwrap();
    put(&dst, odd, vec![7u8; items[6]["size"].as_u64().unwrap() as usize]).await;

    let r = report_of(&run_command(worker(&env, "p", "0/2", None)).await);
    assert_eq!(r["bytes_copied"].as_u64().unwrap(), share - landed_bytes, "{r}");
    assert_eq!(r["shards_skipped"].as_u64().unwrap(), landed.len() as u64, "{r}");
    // Run again (a retried pod): everything is proven, nothing copied.
    let r = report_of(&run_command(worker(&env, "p", "0/2", None)).await);
    assert_eq!(r["bytes_copied"].as_u64().unwrap(), 0, "{r}");
    assert_eq!(r["shards_skipped"].as_u64().unwrap(), items.len() as u64, "{r}");

    report_of(&run_command(worker(&env, "p", "1/2", None)).await);
    let r = shardsync(pair(&env, &["commit"], &["--plan", "p"])).await;
    assert_eq!(r.code, Some(0), "commit: {r:?}");
    let r = shardsync(pair(&env, &["check"], &[])).await;
    assert_eq!(r.code, Some(0), "check: {r:?}");
}

backend_tests!(a_plan_is_refused_once_the_destination_moved: local, s3);
async fn a_plan_is_refused_once_the_destination_moved(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 6, 100, 1).await;
    plan(&env, 3, "old").await;
    // A partition count other than the plan's is refused.
    let r = run_command(worker(&env, "old", "0/2", None)).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("made for 3 partitions, not 2"), "{}", r.stderr);
    report_of(&run_command(worker(&env, "old", "0/3", None)).await);

    // Another sync commits meanwhile.
    put(&src, "extra/late.bin", vec![1u8; 1000]).await;
    let r = shardsync(pair(&env, &["sync"], &["--quiet"])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let before = committed(&dst).await.unwrap();

    let r = run_command(worker(&env, "old", "1/3", None)).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("changed since the plan was made"),
        "{}",
        r.stderr
    );
    let r = shardsync(pair(&env, &["commit"], &["--plan", "old"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(
        committed(&dst).await.unwrap().digest,
        before.digest,
        "the stale plan committed"
    );
    // A new plan under the same ID replaces the stale one; nothing is left to copy.
    plan(&env, 3, "old").await;
    for i in 0..3 {
        let r = report_of(&run_command(worker(&env, "old", &format!("{i}/3"), None)).await);
        assert_eq!(r["bytes_copied"].as_u64().unwrap(), 0, "{r}");
    }
    let r = shardsync(pair(&env, &["commit"], &["--plan", "old"])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = shardsync(pair(&env, &["check"], &[])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[tokio::test]
async fn a_worker_killed_mid_copy_writes_no_receipt_and_its_rerun_copies_only_the_rest() {
    let env = Env::new(Backend::S3).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    let shards: Vec<(String, Vec<u8>)> = (0..40u64)
        .map(|i| {
            (
                format!("train/part-{i:05}.parquet"),
                blob_parquet(256 * 1024, 2, i),
            )
        })
        .collect();
    for (p, b) in &shards {
        put(&src, p, b.clone()).await;
    }
    let total: u64 = shards.iter().map(|(_, b)| b.len() as u64).sum();
    plan(&env, 1, "k").await;
    let dst_dir = env.server.as_ref().unwrap().root.join(BUCKET).join("dst");
    let mut child = worker_j(&env, "k", "0/1", None, "1").spawn().unwrap();
    wait_for_landed(&mut child, &dst_dir, &shards, 3).await;
    sigkill(&mut child).await;
    let receipt = dst
        .store
        .head(&dst.key("_shardsync/plans/k/receipts/0.json"))
        .await;
    assert!(receipt.is_err(), "a killed worker wrote a receipt");
    assert!(committed(&dst).await.is_none(), "a killed worker committed");
    // Whole objects only (both s3s-fs and local folders rename complete files into place).
    let held: Vec<&(String, Vec<u8>)> = shards
        .iter()
        .filter(|s| landed(&dst_dir, std::slice::from_ref(*s)) == 1)
        .collect();
    let held_bytes: u64 = held.iter().map(|(_, b)| b.len() as u64).sum();
    assert!(
        held.len() >= 3 && held.len() < shards.len(),
        "{} landed",
        held.len()
    );

    let r = report_of(&run_command(worker(&env, "k", "0/1", None)).await);
    assert_eq!(r["shards_skipped"].as_u64().unwrap(), held.len() as u64, "{r}");
    assert_eq!(r["bytes_copied"].as_u64().unwrap(), total - held_bytes, "{r}");
    let r = shardsync(pair(&env, &["commit"], &["--plan", "k"])).await;
    assert_eq!(r.code, Some(0), "commit: {r:?}");
    let r = shardsync(pair(&env, &["check"], &[])).await;
    assert_eq!(r.code, Some(0), "check: {r:?}");
}

backend_tests!(a_source_changed_since_the_plan_fails_its_worker_and_lands_nothing_false: local, s3);
async fn a_source_changed_since_the_plan_fails_its_worker_and_lands_nothing_false(backend: Backend) {
    let env = Env::new(backend).await;
    let (src, dst) = (env.open("src"), env.open("dst"));
    write_demo(&src, 4, 100, 1).await;
    put(&src, "data/a.bin", vec![1u8; 5000]).await;
    plan(&env, 1, "s").await;
    // Rewritten after the plan, same size: the plan names the old bytes' SHA-256.
    put(&src, "data/a.bin", vec![2u8; 5000]).await;
    let r = run_command(worker(&env, "s", "0/1", None)).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("data/a.bin"), "{}", r.stderr);
    let receipt = dst
        .store
        .head(&dst.key("_shardsync/plans/s/receipts/0.json"))
        .await;
    assert!(receipt.is_err(), "a failed worker wrote a receipt");
    let landed = dst.store.get(&dst.key("data/a.bin")).await;
    if let Ok(l) = landed {
        assert_eq!(
            l.bytes().await.unwrap().to_vec(),
            vec![1u8; 5000],
            "bytes other than the planned ones landed"
        );
    }
    let r = shardsync(pair(&env, &["commit"], &["--plan", "s"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("0/1"), "{}", r.stderr);
}
