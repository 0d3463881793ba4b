//! Input as users and stores give it (issue 12, items 3-5): keys the way consoles and SDKs make
//! them, URLs and options that mean what they say, malformed input that is exit 2 and never a
//! panic or an echoed secret, and a closed stdout that ends quietly.

use std::ffi::OsStr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use shardsync::store::Backend as StoreBackend;
use shardsync::sync::{sync, SyncOptions};
use shardsync::{Dataset, Error};

use crate::backends::{put, write_demo, Backend, Env, BUCKET};
use crate::common::s3::S3Server;
use crate::harness::{committed, paths};

/// What a finished run of the binary left behind.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn command<I, S>(args: I, env: &[(&str, &str)]) -> tokio::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_shardsync"));
    c.args(args)
        .env_remove("SHARDSYNC_JOBS")
        .env_remove("SHARDSYNC_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

async fn run_env<I, S>(args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = tokio::time::timeout(Duration::from_secs(120), command(args, env).output())
        .await
        .expect("shardsync did not finish within 120 s (a hang)")
        .expect("run shardsync");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_env(args, &[]).await
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The in-process server's options as `flag KEY=VALUE` arguments.
fn server_opts(srv: &S3Server, flag: &str) -> Vec<String> {
    srv.store_options()
        .into_iter()
        .flat_map(|(k, v)| [flag.to_string(), format!("{k}={v}")])
        .collect()
}

/// The subcommands, each as the arguments it takes for (source URL, source options,
/// destination URL, destination options, extra flags).
const COMMANDS: [&str; 6] = ["manifest build", "diff", "sync", "check", "verify", "watch"];

fn args_for(
    cmd: &str,
    src: &str,
    src_opts: &[String],
    dst: &str,
    dst_opts: &[String],
    extra: &[String],
) -> Vec<String> {
    let mut a: Vec<String> = cmd.split(' ').map(str::to_string).collect();
    let one_store = matches!(cmd, "manifest build" | "verify");
    a.push(src.to_string());
    if one_store {
        // One-store commands take the source's options under --opt.
        a.extend(src_opts.iter().map(|o| {
            if o == "--src-opt" {
                "--opt".to_string()
            } else {
                o.clone()
            }
        }));
    } else {
        a.push(dst.to_string());
        a.extend(src_opts.iter().cloned());
        a.extend(dst_opts.iter().cloned());
    }
    if cmd == "watch" {
        a.extend(s(&["--cycles", "1"]));
        if !extra.iter().any(|e| e == "--interval") {
            a.extend(s(&["--interval", "1s"]));
        }
    }
    a.extend(extra.iter().cloned());
    a
}

/// One malformed input: where it goes and what must never be printed.
struct Case {
    name: &'static str,
    /// Replaces the source URL.
    src: Option<String>,
    /// Added to the source's options (`--src-opt`, `--opt` for one-store commands).
    src_opt: Vec<String>,
    /// When set, the destination is the S3 dataset with these options added.
    dst_opt: Option<Vec<String>>,
    extra: Vec<String>,
    /// Commands this case applies to (`None`: all).
    only: Option<&'static [&'static str]>,
    secret: Option<&'static str>,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        src: None,
        src_opt: Vec::new(),
        dst_opt: None,
        extra: Vec::new(),
        only: None,
        secret: None,
    }
}

fn malformed_cases(tmp: &std::path::Path) -> Vec<Case> {
    let url = |n, u: &str| Case {
        src: Some(u.to_string()),
        ..case(n)
    };
    vec![
        url("empty URL", ""),
        url("no bucket", "s3://"),
        url("empty bucket", "s3:///x"),
        url("unsupported scheme", "ftp://x/y"),
        Case {
            secret: Some("Q5ecretQuery"),
            ..url("a query", "s3://data/p?X-Amz-Signature=Q5ecretQuery")
        },
        Case {
            secret: Some("U5erSecret"),
            ..url("user info", "s3://AKIAUSER:U5erSecret@data/p")
        },
        url("empty segment", "s3://data/a//b"),
        url("dot-dot segment", "s3://data/a/../b"),
        url("file://relative", "file://relative/x"),
        url(
            "escape sequence in a path",
            &format!("{}/x\u{1b}[2Jy", tmp.display()),
        ),
        url("bell in a prefix", "s3://data/x\u{7}y"),
        Case {
            src_opt: s(&["--src-opt", "AKIAN0KEYSECRETVALUE"]),
            secret: Some("AKIAN0KEYSECRETVALUE"),
            ..case("an option without KEY=")
        },
        Case {
            src_opt: s(&["--src-opt", "=N0KeySecret"]),
            secret: Some("N0KeySecret"),
            ..case("an option with an empty key")
        },
        Case {
            src_opt: s(&["--src-opt", "no_such_key=1"]),
            ..case("an unknown option")
        },
        Case {
            dst_opt: Some(s(&["--dst-opt", "endpoint=localhost:9000"])),
            only: Some(&["diff", "sync", "check", "watch"]),
            ..case("an endpoint without a scheme")
        },
        Case {
            src_opt: s(&["--src-opt", "endpoint="]),
            ..case("an empty endpoint")
        },
        Case {
            src_opt: s(&["--src-opt", "allow_http=maybe"]),
            ..case("allow_http=maybe")
        },
        Case {
            src_opt: s(&["--src-opt", "region=us east"]),
            ..case("a region with a space")
        },
        Case {
            src_opt: s(&["--src-opt", "timeout=soon"]),
            ..case("a duration that is not one")
        },
        Case {
            src_opt: s(&["--src-opt", "secret_access_key="]),
            ..case("an empty secret")
        },
        Case {
            extra: s(&["-j", "0"]),
            ..case("-j 0")
        },
        Case {
            extra: s(&["--part-size", "1XB"]),
            only: Some(&["sync", "watch"]),
            ..case("--part-size 1XB")
        },
        Case {
            extra: s(&["--interval", "0s"]),
            only: Some(&["watch"]),
            ..case("--interval 0s")
        },
    ]
}

#[tokio::test]
async fn malformed_urls_and_options_exit_2_on_every_subcommand_without_panic_or_secret() {
    let env = Env::new(Backend::S3).await;
    let srv = env.server.as_ref().expect("s3");
    write_demo(&env.open("src"), 2, 50, 1).await;
    let dst_local = env.tmp.path().join("dst").display().to_string();
    let src_url = format!("s3://{BUCKET}/src");
    let dst_s3 = format!("s3://{BUCKET}/dst");
    let mut ran = 0;
    for c in malformed_cases(env.tmp.path()) {
        for cmd in COMMANDS {
            if c.only.is_some_and(|o| !o.contains(&cmd)) {
                continue;
            }
            let mut src_opts = server_opts(srv, "--src-opt");
            src_opts.extend(c.src_opt.iter().cloned());
            let (dst, dst_opts) = match &c.dst_opt {
                Some(extra) => {
                    let mut o = server_opts(srv, "--dst-opt");
                    o.extend(extra.iter().cloned());
                    (dst_s3.clone(), o)
                }
                None => (dst_local.clone(), Vec::new()),
            };
            let src = c.src.clone().unwrap_or_else(|| src_url.clone());
            let r = run(args_for(cmd, &src, &src_opts, &dst, &dst_opts, &c.extra)).await;
            let what = format!("{cmd} / {}", c.name);
            assert_eq!(r.code, Some(2), "{what}: {r:?}");
            assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
            let first = r.stderr.lines().next().unwrap_or("");
            assert!(first.contains("error"), "{what}: {}", r.stderr);
            // Ours are one line; clap's add a usage hint after an empty line.
            let ours = first.starts_with("shardsync: error:");
            assert!(
                !ours || r.stderr.trim_end().lines().count() == 1,
                "{what}: {}",
                r.stderr
            );
            for raw in ['\u{1b}', '\u{7}'] {
                assert!(
                    !r.stderr.contains(raw) && !r.stdout.contains(raw),
                    "{what}: raw control char"
                );
            }
            if let Some(secret) = c.secret {
                assert!(
                    !r.stderr.contains(secret) && !r.stdout.contains(secret),
                    "{what}: {r:?}"
                );
            }
            ran += 1;
        }
    }
    assert!(ran > 100, "{ran} runs");
    assert!(committed(&env.open("dst")).await.is_none(), "nothing committed");
}

#[tokio::test]
async fn explicit_options_beat_the_environment() {
    let env = Env::new(Backend::S3).await;
    let srv = env.server.as_ref().expect("s3");
    write_demo(&env.open("src"), 2, 50, 2).await;
    let url = format!("s3://{BUCKET}/src");
    let build = |extra: &[String]| {
        let mut a = s(&["manifest", "build", &url]);
        a.extend(extra.iter().cloned());
        a
    };
    // Every variable that could move the endpoint, the region or the credentials points
    // somewhere wrong; the options point at the server.
    let hostile = [
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ENDPOINT", "http://127.0.0.1:9"),
        ("AWS_REGION", "eu-central-1"),
        ("AWS_DEFAULT_REGION", "ap-south-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAWRONG"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
        ("AWS_SESSION_TOKEN", "EnvSessionToken"),
    ];
    let r = run_env(build(&server_opts(srv, "--opt")), &hostile).await;
    assert_eq!(r.code, Some(0), "options must win over the environment: {r:?}");

    // The environment is still the fallback for what the options leave out.
    let ep = srv.endpoint.clone();
    let r = run_env(
        build(&s(&[
            "--opt",
            "allow_http=true",
            "--opt",
            "virtual_hosted_style_request=false",
        ])),
        &[
            ("AWS_ENDPOINT_URL_S3", ep.as_str()),
            ("AWS_ACCESS_KEY_ID", srv.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", srv.secret_key.as_str()),
            ("AWS_REGION", "us-east-1"),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "environment fallback: {r:?}");

    // A malformed variable is named, not a panic.
    let r = run_env(build(&[]), &[("AWS_ENDPOINT_URL_S3", "localhost:9000")]).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("AWS_ENDPOINT_URL_S3") && !r.stderr.contains("panicked"),
        "{r:?}"
    );
}

backend_tests!(hash_percent_and_question_in_a_root_are_key_characters);
async fn hash_percent_and_question_in_a_root_are_key_characters(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let (root, url) = match backend {
        // '?' starts a query in an s3://, az:// or memory:// URL and is refused there.
        Backend::S3 | Backend::Moto | Backend::Azurite | Backend::Memory => {
            ("runs/exp#3/100%25", env.url("runs/exp#3/100%25"))
        }
        Backend::Local => ("runs/exp#3/q?x=1/100%25", env.url("runs/exp#3/q?x=1/100%25")),
    };
    let ds = env.open(root);
    assert!(ds.root.as_ref().ends_with(root), "{what}: root {}", ds.root);
    write_demo(&ds, 2, 50, 3).await;
    // A decoy where a cut or decoded URL would land.
    put(&env.open("runs/exp"), "decoy.json", &b"{}"[..]).await;

    let built = shardsync::manifest::build_manifest(&ds, None, &Default::default())
        .await
        .expect("build");
    assert_eq!(
        built.manifest.totals.files, 3,
        "{what}: only the typed root's objects"
    );
    if backend != Backend::Memory {
        let mut a = s(&["manifest", "build", &url]);
        a.extend(env.cli_options("--opt"));
        let r = run(&a).await;
        assert_eq!(r.code, Some(0), "{what}: {r:?}");
        assert!(
            r.stdout.contains(&format!("{root}/_shardsync/manifest.json")),
            "{what}: {}",
            r.stdout
        );
        assert!(
            committed(&ds).await.is_some(),
            "{what}: manifest under the typed root"
        );
        assert!(
            committed(&env.open("runs/exp")).await.is_none(),
            "{what}: not under a cut root"
        );
    }
    if backend == Backend::Local {
        let file_url = format!("file://{}", env.tmp.path().join(root).display());
        let r = run(s(&["verify", &file_url])).await;
        assert_eq!(r.code, Some(0), "{what}: file:// as typed: {r:?}");
    }
}

/// What object_store shows of a console's folder marker on AWS S3 (checked against moto 5.2,
/// which keeps `dir/` keys as S3 does): a zero-byte object `dir` in the listing, whose HEAD and
/// GET answer 404. This store lists such markers over any inner store.
#[derive(Debug)]
struct ConsoleFolders {
    inner: Arc<dyn ObjectStore>,
    markers: Vec<Path>,
}

impl std::fmt::Display for ConsoleFolders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsoleFolders({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for ConsoleFolders {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> object_store::Result<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(l, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let markers: Vec<object_store::Result<ObjectMeta>> = self
            .markers
            .iter()
            .filter(|m| prefix.is_none_or(|p| m.prefix_matches(p)))
            .map(|m| {
                Ok(ObjectMeta {
                    location: m.clone(),
                    last_modified: chrono::Utc::now(),
                    size: 0,
                    e_tag: Some("\"d41d8cd98f00b204e9800998ecf8427e\"".into()),
                    version: None,
                })
            })
            .collect();
        self.inner
            .list(prefix)
            .chain(futures::stream::iter(markers))
            .boxed()
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

/// PUT a zero-byte `key` as a console does, trailing `/` and all (object_store cannot name it).
async fn raw_put_folder(srv: &S3Server, key: &str) {
    use object_store::aws::{AwsAuthorizer, AwsCredential};
    use object_store::client::{HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector};
    let cred = AwsCredential {
        key_id: srv.access_key.clone(),
        secret_key: srv.secret_key.clone(),
        token: None,
    };
    let mut req = HttpRequest::new(HttpRequestBody::from(Vec::new()));
    *req.method_mut() = "PUT".parse().expect("method");
    *req.uri_mut() = format!("{}/{BUCKET}/{key}", srv.endpoint).parse().expect("uri");
    let host = srv.addr.to_string();
    req.headers_mut().insert("host", host.parse().expect("host"));
    AwsAuthorizer::new(&cred, "s3", "us-east-1")
        .try_authorize(&mut req, None)
        .expect("sign");
    let client = ReqwestConnector::default()
        .connect(&object_store::ClientOptions::new().with_allow_http(true))
        .expect("client");
    let resp = client.execute(req).await.expect("PUT folder marker");
    assert!(resp.status().is_success(), "PUT {key}: {}", resp.status());
}

/// The in-process server, with folder markers PUT as consoles do.
#[tokio::test]
async fn folder_markers_put_on_the_s3_server_never_fail_a_cli_sync() {
    let env = Env::new(Backend::S3).await;
    let srv = env.server.as_ref().expect("s3");
    let src = env.open("src");
    write_demo(&src, 2, 50, 4).await;
    raw_put_folder(srv, "src/empty-folder/").await;
    raw_put_folder(srv, "src/train/").await;
    let mut a = s(&[
        "sync",
        &env.url("src"),
        &env.tmp.path().join("out").display().to_string(),
    ]);
    a.extend(env.cli_options("--src-opt"));
    let r = run(&a).await;
    assert_eq!(r.code, Some(0), "s3s-fs markers: {r:?}");
}

backend_tests!(folder_markers_never_fail_a_build_or_a_sync);
/// What AWS S3 lists for folder markers, with every backend as the source.
async fn folder_markers_never_fail_a_build_or_a_sync(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let inner = env.open("src");
    write_demo(&inner, 2, 50, 5).await;
    let markers = ["empty-folder", "shards", "shards/nested"]
        .map(|m| inner.key(m))
        .to_vec();
    let store: Arc<dyn ObjectStore> = Arc::new(ConsoleFolders {
        inner: inner.store.clone(),
        markers,
    });
    let src = Dataset::from_store(store, inner.root.clone(), inner.url.clone(), StoreBackend::S3);
    let listing = shardsync::listing::list_dataset(&src).await.expect("list");
    assert_eq!(listing.folder_markers, 3, "{what}");
    let built = shardsync::manifest::build_manifest(&src, None, &Default::default())
        .await
        .expect("build");
    assert_eq!(built.manifest.totals.files, 3, "{what}: markers are not objects");
    let dst = env.open("dst");
    let out = sync(&src, &dst, &SyncOptions::default()).await.expect("sync");
    assert!(
        out.report.consistent && out.report.shards_failed == 0,
        "{what}: {:?}",
        out.report
    );
    assert_eq!(paths(&dst).await.len(), 3, "{what}: no marker copied");
}

backend_tests!(keys_that_cannot_be_carried_are_named_and_the_rest_syncs);
async fn keys_that_cannot_be_carried_are_named_and_the_rest_syncs(backend: Backend) {
    let env = Env::new(backend).await;
    let what = format!("{backend:?}");
    let src = env.open("src");
    write_demo(&src, 2, 50, 6).await;
    let odd = ["odd\\name.json", "c1\u{9b}2J.json"];
    for k in odd {
        src.store
            .put(
                &Path::parse(format!("{}/{k}", src.root.as_ref())).expect("key"),
                PutPayload::from_static(b"x"),
            )
            .await
            .expect("put odd key");
    }
    // Azure stores a backslash in a blob name as '/': that key is odd/name.json there,
    // which is carried.
    let odd_kept = if backend == Backend::Azurite { 1 } else { 2 };
    let dst = env.open("dst");
    let out = sync(&src, &dst, &SyncOptions::default()).await.expect("sync");
    assert!(out.report.consistent, "{what}");
    assert_eq!(paths(&dst).await.len(), 5 - odd_kept, "{what}: the rest synced");
    let w = out.report.warnings.join("\n");
    assert!(
        w.contains(&format!("{odd_kept} key(s) not carried"))
            && (odd_kept == 1 || w.contains("odd\\\\name.json")),
        "{what}: {w}"
    );
    assert!(
        !w.contains('\u{9b}') && w.contains("\\u{9b}"),
        "{what}: escaped: {w}"
    );

    let strict = SyncOptions {
        strict: true,
        ..SyncOptions::default()
    };
    match sync(&src, &env.open("dst2"), &strict).await {
        Err(Error::UnsupportedKeys { count, .. }) if count == odd_kept => {}
        other => panic!("{what}: --strict: {other:?}"),
    }
    assert!(
        paths(&env.open("dst2")).await.is_empty(),
        "{what}: strict wrote nothing"
    );
}

#[tokio::test]
async fn control_characters_in_keys_never_reach_the_terminal_raw() {
    let env = Env::new(Backend::Local).await;
    let src = env.open("src");
    write_demo(&src, 2, 50, 7).await;
    let dir = env.tmp.path().join("src");
    for name in ["c1\u{9b}31m.json", "c1\u{85}.json", "c1\u{90}x.json"] {
        std::fs::write(dir.join(name), b"x").expect("write odd file");
    }
    let (s_url, d_url) = (env.url("src"), env.url("dst"));
    for cmd in [
        &["manifest", "build", &s_url][..],
        &["diff", &s_url, &d_url],
        &["sync", &s_url, &d_url],
        &["check", &s_url, &d_url],
    ] {
        let r = run(cmd).await;
        let what = cmd[0];
        assert!(matches!(r.code, Some(0) | Some(1)), "{what}: {r:?}");
        for raw in ['\u{9b}', '\u{85}', '\u{90}'] {
            assert!(
                !r.stdout.contains(raw) && !r.stderr.contains(raw),
                "{what}: raw {raw:?}: {r:?}"
            );
        }
        assert!(
            r.stderr.contains("3 key(s) not carried") || r.stdout.contains("3 key(s) not carried"),
            "{what}: {r:?}"
        );
    }
    let r = run(s(&["sync", &s_url, &env.url("dst3"), "--strict"])).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("3 key(s) cannot be carried") && !r.stderr.contains('\u{1b}'),
        "{r:?}"
    );

    // A name object_store cannot represent stops its listing: fatal, named, escaped.
    std::fs::write(dir.join("esc\u{1b}[2J\r.json"), b"x").expect("write odd file");
    for cmd in [
        &["manifest", "build", &s_url][..],
        &["sync", &s_url, &env.url("dst4")],
    ] {
        let r = run(cmd).await;
        assert_eq!(r.code, Some(2), "{r:?}");
        assert!(r.stderr.contains("esc\\u{1b}[2J\\r.json"), "{r:?}");
        assert!(!r.stderr.contains('\u{1b}') && !r.stderr.contains('\r'), "{r:?}");
    }
    assert!(
        paths(&env.open("dst4")).await.is_empty(),
        "nothing copied from a partial listing"
    );
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly_and_keeps_the_exit_code() {
    let env = Env::new(Backend::Local).await;
    let src = env.open("src");
    write_demo(&src, 40, 20, 8).await;
    let (s_url, d_url) = (env.url("src"), env.url("dst"));
    for args in [
        s(&["diff", &s_url, &d_url]),
        s(&["diff", &s_url, &d_url, "--format", "json"]),
        s(&["check", &s_url, &d_url, "--format", "json"]),
        s(&["check", &s_url, &d_url]),
    ] {
        // The reader goes away before a byte is read, as `| head -c 0` does.
        let mut child = command(&args, &[]).spawn().expect("spawn");
        drop(child.stdout.take());
        let mut stderr = child.stderr.take().expect("stderr");
        let mut err = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
            .await
            .expect("stderr");
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("exits")
            .expect("status");
        assert_eq!(status.code(), Some(1), "{args:?}: drift is still exit 1: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}
