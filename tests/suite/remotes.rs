//! Issue 15.2: named remotes from a config file (`$SHARDSYNC_CONFIG`), against two in-process
//! S3 servers with their own random keys. The secrets reach the binary only through the
//! environment variables the remotes' `secret_env` names, never its command line.

use crate::backends::{snapshot, write_demo, Backend, Env, BUCKET};
use crate::harness::{command, committed, Run};

/// A remote section for `env` whose keys come from `<NAME>_KEY` / `<NAME>_SECRET`.
fn section(name: &str, env: &Env, prefix: &str) -> String {
    let s = env.server.as_ref().unwrap();
    let up = name.to_ascii_uppercase();
    format!(
        "[remotes.{name}]\nurl = \"s3://{BUCKET}/{prefix}\"\n\
         options = {{ region = \"us-east-1\", endpoint = \"{}\", allow_http = \"true\", virtual_hosted_style_request = \"false\" }}\n\
         secret_env = {{ access_key_id = \"{up}_KEY\", secret_access_key = \"{up}_SECRET\" }}\n",
        s.endpoint
    )
}

fn secret_vars(name: &str, env: &Env) -> Vec<(String, String)> {
    let s = env.server.as_ref().unwrap();
    let up = name.to_ascii_uppercase();
    vec![
        (format!("{up}_KEY"), s.access_key.clone()),
        (format!("{up}_SECRET"), s.secret_key.clone()),
    ]
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Setup { dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("config.toml")
    }

    async fn run(&self, args: &[&str], vars: &[(String, String)]) -> Run {
        let mut c = command(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("SHARDSYNC_CONFIG", self.path())
            .env("HOME", self.dir.path())
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-aws-creds"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9");
        for (k, v) in vars {
            c.env(k, v);
        }
        crate::harness::run_command(c).await
    }
}

async fn two_servers() -> (Env, Env, Setup, Vec<(String, String)>) {
    let east = Env::new(Backend::S3).await;
    let west = Env::new(Backend::S3).await;
    write_demo(&east.open("data/ds"), 3, 50, 15).await;
    let setup = Setup::new(&(section("east", &east, "data") + &section("west", &west, "mirror")));
    let mut vars = secret_vars("east", &east);
    vars.extend(secret_vars("west", &west));
    (east, west, setup, vars)
}

fn no_secret(r: &Run, vars: &[(String, String)]) {
    for (_, s) in vars {
        assert!(
            !r.stdout.contains(s.as_str()) && !r.stderr.contains(s.as_str()),
            "a secret in the output: {r:?}"
        );
    }
}

#[tokio::test]
async fn sync_and_check_between_two_named_remotes_with_no_secret_in_argv() {
    let (east, west, setup, vars) = two_servers().await;
    let argv = ["sync", "east:ds", "west:ds"];
    for (_, s) in &vars {
        assert!(!argv.iter().any(|a| a.contains(s.as_str())));
    }
    let r = setup.run(&argv, &vars).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    no_secret(&r, &vars);
    assert_eq!(
        snapshot(&east.open("data/ds")).await,
        snapshot(&west.open("mirror/ds")).await
    );
    assert!(committed(&west.open("mirror/ds")).await.is_some());
    let r = setup.run(&["check", "east:ds", "west:ds"], &vars).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = setup.run(&["verify", "west:ds"], &vars).await;
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[tokio::test]
async fn an_explicit_option_beats_the_remotes_option() {
    let (_east, west, _setup, vars) = two_servers().await;
    // west's remote points at a closed port; the explicit endpoint is the server's.
    let s = west.server.as_ref().unwrap();
    let bad = section("west", &west, "mirror").replace(&s.endpoint, "http://127.0.0.1:9");
    let setup = Setup::new(&(section("east", &_east, "data") + &bad));
    let endpoint = format!("endpoint={}", s.endpoint);
    let r = setup
        .run(&["sync", "east:ds", "west:ds", "--dst-opt", &endpoint], &vars)
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(committed(&west.open("mirror/ds")).await.is_some());
}

#[tokio::test]
async fn remotes_lists_names_and_options_with_secrets_masked() {
    let (_east, _west, setup, vars) = two_servers().await;
    let r = setup.run(&["remotes"], &vars).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    no_secret(&r, &vars);
    assert!(r.stdout.contains("east: s3://data/data"), "{r:?}");
    assert!(r.stdout.contains("*** (from $EAST_SECRET)"), "{r:?}");
    assert!(r.stdout.contains("region = us-east-1"), "{r:?}");
    let r = setup.run(&["remotes", "--json"], &vars).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    no_secret(&r, &vars);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[1]["name"], "west");
    assert_eq!(v[1]["secrets"]["secret_access_key"]["env"], "$WEST_SECRET");
}

#[tokio::test]
async fn an_unset_secret_variable_is_exit_2_naming_remote_and_variable() {
    let (_east, _west, setup, mut vars) = two_servers().await;
    vars.retain(|(k, _)| k != "WEST_SECRET");
    let r = setup.run(&["sync", "east:ds", "west:ds"], &vars).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("WEST_SECRET") && r.stderr.contains("\"west\""),
        "{r:?}"
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    no_secret(&r, &vars);
}

#[tokio::test]
async fn a_local_folder_remote_works() {
    let src = Env::new(Backend::Local).await;
    write_demo(&src.open("ds"), 2, 20, 5).await;
    let dst = tempfile::tempdir().unwrap();
    let setup = Setup::new(&format!(
        "[remotes.here]\nurl = {:?}\n[remotes.there]\nurl = {:?}\n",
        src.tmp.path().display().to_string(),
        dst.path().display().to_string()
    ));
    let r = setup.run(&["sync", "here:ds", "there:copy/ds"], &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(dst.path().join("copy/ds/_shardsync/manifest.json").exists());
    let r = setup.run(&["manifest", "build", "there:copy/ds"], &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[tokio::test]
async fn a_malformed_config_is_exit_2_naming_the_file_and_line() {
    let setup = Setup::new("[remotes.east]\nurl = \"s3://b\"\noptions = { region = }\n");
    let r = setup.run(&["verify", "east:ds"], &[]).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let file = setup.path().display().to_string();
    assert!(r.stderr.contains(&file) && r.stderr.contains("line 3"), "{r:?}");
}
