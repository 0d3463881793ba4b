//! Azure Blob Storage through the binary, on Azurite (the rest of the suite runs on it as one
//! of `Backend::all()`): a sync from a local folder to `az://container/prefix` configured only
//! with `--dst-opt`, and the options object_store would silently ignore.

use crate::backends::{snapshot, write_demo, Backend, Env};
use crate::harness::{assert_manifest_holds, shardsync};

#[tokio::test]
async fn the_binary_syncs_a_local_folder_to_azurite_with_dst_options() {
    let local = Env::new(Backend::Local).await;
    let az = Env::new(Backend::Azurite).await;
    let src = local.open("src");
    write_demo(&src, 3, 100, 7).await;
    let dst_url = az.url("datasets/v1");
    assert!(dst_url.starts_with("az://az-"), "{dst_url}");

    let mut args = vec!["sync".to_string(), local.url("src"), dst_url.clone()];
    args.extend(az.cli_options("--dst-opt"));
    let r = shardsync(&args).await;
    assert_eq!(r.code, Some(0), "sync to Azurite: {r:?}");

    let dst = az.open("datasets/v1");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await);
    let m = assert_manifest_holds(&dst, "Azurite")
        .await
        .expect("a committed manifest");
    assert_eq!(m.shards.len(), 4);

    args[0] = "check".into();
    let r = shardsync(&args).await;
    assert_eq!(r.code, Some(0), "check after the sync: {r:?}");
    let mut verify = vec!["verify".to_string(), dst_url];
    verify.extend(az.cli_options("--opt"));
    let r = shardsync(&verify).await;
    assert_eq!(r.code, Some(0), "verify on Azurite: {r:?}");
}

#[tokio::test]
async fn an_endpoint_that_use_emulator_would_ignore_is_refused() {
    let az = Env::new(Backend::Azurite).await;
    let mut args = vec!["verify".to_string(), az.url("x")];
    args.extend(az.cli_options("--opt"));
    args.extend(["--opt".to_string(), "use_emulator=true".to_string()]);
    let r = shardsync(&args).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let line = r.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("endpoint\" for az")
            && line.contains("use_emulator")
            && line.contains("AZURITE_BLOB_STORAGE_URL"),
        "{line}"
    );
    assert!(!line.contains(crate::common::azurite::ACCOUNT_KEY), "{line}");
}
