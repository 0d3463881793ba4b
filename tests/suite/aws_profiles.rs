//! Issue 15.1: AWS credentials as the aws CLI and boto3 find them — profiles in
//! `~/.aws/credentials` and `~/.aws/config`, `[default]`, `AWS_PROFILE`, a per-store
//! `profile=NAME`, and `credential_process` — against two in-process S3 servers, each with its
//! own random keys, which the binary is never given on its command line.
//!
//! Every run gets a throwaway HOME with its own AWS files, no `AWS_*` variable of the test
//! process, and both metadata endpoints disabled or pointed at a closed local port, so nothing
//! ever asks 169.254.169.254 (not even a binary built without profile support).

use std::path::{Path, PathBuf};

use crate::backends::{snapshot, write_demo, Backend, Env};
use crate::harness::{command, committed, Run};

/// A throwaway HOME holding `.aws/config` and `.aws/credentials`.
struct AwsHome {
    dir: tempfile::TempDir,
}

impl AwsHome {
    fn new(config: &str, credentials: &str) -> AwsHome {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/config"), config).unwrap();
        std::fs::write(dir.path().join(".aws/credentials"), credentials).unwrap();
        AwsHome { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An executable script in HOME that prints `stdout` and exits with `code`.
    fn script(&self, name: &str, stdout: &str, stderr: &str, code: i32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path().join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\nprintf '%s' '{stdout}'\nprintf '%s\\n' '{stderr}' >&2\nexit {code}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Run the binary with this HOME and only the AWS variables given.
    async fn run(&self, args: &[String], aws_env: &[(&str, &str)]) -> Run {
        let mut c = command(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("HOME", self.path())
            .env("AWS_CONFIG_FILE", self.path().join(".aws/config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path().join(".aws/credentials"),
            )
            // aws-config's instance metadata client: off.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // object_store's (which ignores the variable above): a closed local port.
            .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9");
        for (k, v) in aws_env {
            c.env(k, v);
        }
        crate::harness::run_command(c).await
    }
}

/// `[profile NAME]` in the config file: the server's endpoint and a region.
fn config_section(header: &str, env: &Env, region: &str) -> String {
    let srv = env.server.as_ref().expect("an S3 env");
    format!(
        "[{header}]\nregion = {region}\nendpoint_url = {}\n\n",
        srv.endpoint
    )
}

/// `[NAME]` in the credentials file: the server's keys.
fn credentials_section(name: &str, env: &Env) -> String {
    let srv = env.server.as_ref().expect("an S3 env");
    format!(
        "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n",
        srv.access_key, srv.secret_key
    )
}

fn secrets(envs: &[&Env]) -> Vec<String> {
    envs.iter()
        .flat_map(|e| {
            let s = e.server.as_ref().unwrap();
            [s.access_key.clone(), s.secret_key.clone()]
        })
        .collect()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A source with demo shards on `env` (written with the server's keys, in-process).
async fn demo_source(env: &Env, name: &str) {
    write_demo(&env.open(name), 3, 50, 15).await;
}

#[tokio::test]
async fn per_store_profiles_carry_a_sync_between_two_servers_with_no_secret_in_argv() {
    let east = Env::new(Backend::S3).await;
    let west = Env::new(Backend::S3).await;
    demo_source(&east, "src").await;
    let home = AwsHome::new(
        &(config_section("profile east", &east, "us-east-1")
            + &config_section("profile west", &west, "us-west-2")),
        &(credentials_section("east", &east) + &credentials_section("west", &west)),
    );
    let argv = args(&[
        "sync",
        &east.url("src"),
        &west.url("dst"),
        "--src-opt",
        "profile=east",
        "--dst-opt",
        "profile=west",
    ]);
    let secrets = secrets(&[&east, &west]);
    for s in &secrets {
        assert!(!argv.iter().any(|a| a.contains(s.as_str())), "a secret in argv");
    }
    let r = home.run(&argv, &[]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    for s in &secrets {
        assert!(
            !r.stdout.contains(s.as_str()) && !r.stderr.contains(s.as_str()),
            "{r:?}"
        );
    }
    assert_eq!(
        snapshot(&east.open("src")).await,
        snapshot(&west.open("dst")).await,
        "the destination holds the source's objects"
    );
    assert!(
        committed(&west.open("dst")).await.is_some(),
        "manifest committed on west"
    );

    // A profile named for a store beats keys in the environment (as `--profile` does).
    let r = home
        .run(
            &argv,
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG"),
                ("AWS_SECRET_ACCESS_KEY", "wrong-secret"),
            ],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[tokio::test]
async fn aws_profile_selects_a_profile_when_there_is_no_default() {
    let east = Env::new(Backend::S3).await;
    let west = Env::new(Backend::S3).await;
    demo_source(&east, "src").await;
    let home = AwsHome::new(
        &(config_section("profile east", &east, "us-east-1")
            + &config_section("profile west", &west, "us-west-2")),
        &(credentials_section("east", &east) + &credentials_section("west", &west)),
    );
    let r = home
        .run(
            &args(&["manifest", "build", &east.url("src"), "--json"]),
            &[("AWS_PROFILE", "east")],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let manifest = committed(&east.open("src")).await.expect("manifest committed");
    assert!(manifest.shards.len() >= 3, "the 3 demo shards: {manifest:?}");
    let r = home
        .run(&args(&["verify", &east.url("src")]), &[("AWS_PROFILE", "east")])
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
}

#[tokio::test]
async fn the_default_profile_is_used_when_no_profile_is_named() {
    let env = Env::new(Backend::S3).await;
    demo_source(&env, "src").await;
    let other = Env::new(Backend::S3).await;
    // `[default]` in the config file is spelled without `profile`; another profile is beside it.
    let home = AwsHome::new(
        &(config_section("default", &env, "eu-west-1")
            + &config_section("profile other", &other, "us-east-1")),
        &(credentials_section("default", &env) + &credentials_section("other", &other)),
    );
    let r = home
        .run(&args(&["manifest", "build", &env.url("src")]), &[])
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(committed(&env.open("src")).await.is_some(), "manifest committed");
}

#[tokio::test]
async fn an_unknown_profile_exits_2_with_one_line_naming_the_profile_and_the_store() {
    let east = Env::new(Backend::S3).await;
    let west = Env::new(Backend::S3).await;
    demo_source(&east, "src").await;
    let home = AwsHome::new(
        &config_section("profile east", &east, "us-east-1"),
        &credentials_section("east", &east),
    );
    let src = east.url("src");
    let dst = west.url("dst");
    let secrets = secrets(&[&east]);
    let check = |r: &Run, profile: &str, url: &str| {
        assert_eq!(r.code, Some(2), "{r:?}");
        let err = r.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(profile) && err.contains(url), "{err}");
        for s in &secrets {
            assert!(!err.contains(s.as_str()), "{err}");
        }
    };
    let r = home
        .run(
            &args(&[
                "sync",
                &src,
                &dst,
                "--src-opt",
                "profile=east",
                "--dst-opt",
                "profile=nosuch",
            ]),
            &[],
        )
        .await;
    check(&r, "\"nosuch\"", &dst);
    let r = home
        .run(&args(&["verify", &src]), &[("AWS_PROFILE", "missing-too")])
        .await;
    check(&r, "\"missing-too\"", &src);
}

#[tokio::test]
async fn a_credential_process_profile_supplies_the_keys_and_its_failure_is_one_line() {
    let env = Env::new(Backend::S3).await;
    demo_source(&env, "src").await;
    let srv = env.server.as_ref().unwrap();
    let home = AwsHome::new("", "");
    let good = home.script(
        "creds.sh",
        &format!(
            r#"{{"Version":1,"AccessKeyId":"{}","SecretAccessKey":"{}"}}"#,
            srv.access_key, srv.secret_key
        ),
        "",
        0,
    );
    let bad = home.script("denied.sh", "", "token expired, run sso login", 3);
    let endpoint = &srv.endpoint;
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[profile proc]\nregion = us-east-1\nendpoint_url = {endpoint}\ncredential_process = {}\n\n\
             [profile broken]\nregion = us-east-1\nendpoint_url = {endpoint}\ncredential_process = {}\n",
            good.display(),
            bad.display()
        ),
    )
    .unwrap();
    let src = env.url("src");
    let r = home
        .run(&args(&["manifest", "build", &src, "--opt", "profile=proc"]), &[])
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(committed(&env.open("src")).await.is_some(), "manifest committed");
    assert!(!r.stderr.contains(&srv.secret_key), "{r:?}");

    let r = home
        .run(&args(&["verify", &src, "--opt", "profile=broken"]), &[])
        .await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let err = r.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("\"broken\"") && err.contains(&src) && err.contains("token expired"),
        "{err}"
    );

    // A sync whose destination cannot get credentials: the same one line, nothing written.
    let dst = env.url("dst");
    let r = home
        .run(
            &args(&[
                "sync",
                &src,
                &dst,
                "--src-opt",
                "profile=proc",
                "--dst-opt",
                "profile=broken",
            ]),
            &[],
        )
        .await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let err = r.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("\"broken\"") && err.contains(&dst), "{err}");
    assert!(!srv.root.join("data/dst").exists(), "nothing written");
}

#[tokio::test]
async fn credential_process_runs_once_per_store_and_again_when_its_credentials_near_expiry() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(Backend::S3).await;
    demo_source(&env, "src").await;
    let srv = env.server.as_ref().unwrap();
    let home = AwsHome::new("", "");
    // Appends a line to its counter on each run; `expiry` is a `date -d` offset or empty.
    let script = |name: &str, expiry: &str| -> (PathBuf, PathBuf) {
        let counter = home.path().join(format!("{name}.runs"));
        let expiration = if expiry.is_empty() {
            String::new()
        } else {
            format!(r#","Expiration":"'"$(date -u -d '{expiry}' +%Y-%m-%dT%H:%M:%SZ)"'""#)
        };
        let p = home.path().join(format!("{name}.sh"));
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho run >> '{}'\nprintf '%s' '{{\"Version\":1,\"AccessKeyId\":\"{}\",\"SecretAccessKey\":\"{}\"{expiration}}}'\n",
                counter.display(),
                srv.access_key,
                srv.secret_key
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        (p, counter)
    };
    let (steady, steady_runs) = script("steady", "");
    let (soon, soon_runs) = script("soon", "+90 seconds");
    let endpoint = &srv.endpoint;
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[profile steady]\nendpoint_url = {endpoint}\ncredential_process = {}\n\n\
             [profile soon]\nendpoint_url = {endpoint}\ncredential_process = {}\n",
            steady.display(),
            soon.display()
        ),
    )
    .unwrap();
    let runs = |p: &Path| std::fs::read_to_string(p).unwrap_or_default().lines().count();
    let src = env.url("src");
    for profile in ["steady", "soon"] {
        let r = home
            .run(
                &args(&["manifest", "build", &src, "--opt", &format!("profile={profile}")]),
                &[],
            )
            .await;
        assert_eq!(r.code, Some(0), "{profile}: {r:?}");
    }
    // Listing, reading every shard's footer and writing the manifest: many signed requests.
    assert_eq!(
        runs(&steady_runs),
        1,
        "credentials without an expiry are fetched once"
    );
    assert!(
        runs(&soon_runs) > 1,
        "credentials expiring within minutes are fetched again: {} run(s)",
        runs(&soon_runs)
    );
}

#[tokio::test]
async fn an_option_beats_a_named_profile_which_beats_the_environment_which_beats_aws_profile() {
    let env = Env::new(Backend::S3).await;
    demo_source(&env, "src").await;
    let srv = env.server.as_ref().unwrap();
    // Nothing listens on port 9: a store sent there fails.
    let closed = "http://127.0.0.1:9";
    let home = AwsHome::new(
        &format!(
            "[profile good]\nendpoint_url = {}\n\n[profile closed]\nendpoint_url = {closed}\n",
            srv.endpoint
        ),
        &(credentials_section("good", &env) + &credentials_section("closed", &env)),
    );
    let src = env.url("src");
    let build = |extra: &[&str]| {
        let mut a = args(&["manifest", "build", &src]);
        a.extend(args(extra));
        a
    };
    let endpoint_opt = format!("endpoint={}", srv.endpoint);
    type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>);
    let cases: [Case; 3] = [
        (
            "endpoint= beats profile=",
            build(&[
                "--opt",
                "profile=closed",
                "--opt",
                &endpoint_opt,
                "--opt",
                "allow_http=true",
            ]),
            vec![],
        ),
        (
            "profile= beats AWS_ENDPOINT_URL",
            build(&["--opt", "profile=good"]),
            vec![("AWS_ENDPOINT_URL", closed)],
        ),
        (
            "AWS_ENDPOINT_URL beats AWS_PROFILE",
            build(&["--opt", "allow_http=true"]),
            vec![
                ("AWS_PROFILE", "closed"),
                ("AWS_ENDPOINT_URL", srv.endpoint.as_str()),
            ],
        ),
    ];
    for (what, argv, aws_env) in cases {
        let r = home.run(&argv, &aws_env).await;
        assert_eq!(r.code, Some(0), "{what}: {r:?}");
    }
}

#[tokio::test]
async fn no_credentials_anywhere_is_one_line_naming_the_store() {
    let env = Env::new(Backend::S3).await;
    demo_source(&env, "src").await;
    let srv = env.server.as_ref().unwrap();
    let home = AwsHome::new(&format!("[default]\nendpoint_url = {}\n", srv.endpoint), "");
    let src = env.url("src");
    let r = home.run(&args(&["manifest", "build", &src]), &[]).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    let err = r.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&src) && err.contains("no credentials found"),
        "{err}"
    );
}
