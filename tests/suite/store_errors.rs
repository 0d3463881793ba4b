//! What a failing store looks like from the command line, on S3 (s3s-fs) and Azure (Azurite): an
//! unreachable endpoint, wrong credentials, a missing bucket or container. Each is exit 2 and
//! one line that names the side and the URL, says the cause in a few words (the server's
//! answer in full only under `-v`), and echoes no credential.

use crate::backends::{write_demo, Backend, Env};
use crate::harness::{shardsync, Run};

/// The one error line of a failed run (retries before it are warnings of their own): exit 2.
fn the_error_line(r: &Run, what: &str) -> String {
    assert_eq!(r.code, Some(2), "{what}: {r:?}");
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.contains(" WARN ") && !l.starts_with("warning: "))
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one line: {}", r.stderr);
    let line = lines[0].to_string();
    assert!(line.starts_with("shardsync: error: "), "{what}: {line}");
    assert!(!line.contains('<'), "{what}: the server's XML is for -v: {line}");
    line
}

/// `env`'s options with `key` set to `value`.
fn options_with(env: &Env, key: &str, value: &str) -> Vec<(String, String)> {
    env.options()
        .into_iter()
        .map(|(k, v)| if k == key { (k, value.to_string()) } else { (k, v) })
        .collect()
}

fn flags(flag: &str, options: &[(String, String)]) -> Vec<String> {
    options
        .iter()
        .flat_map(|(k, v)| [flag.to_string(), format!("{k}={v}")])
        .collect()
}

/// A store made to fail: its URL, the options that make it fail, words its error must say.
struct Case {
    what: String,
    url: String,
    options: Vec<(String, String)>,
    says: Vec<String>,
}

/// The three failures on one backend, each from the destination side (a sync to it) and the
/// source side (a check from it); then the whole answer under -v.
async fn failures_name_side_and_url(backend: Backend, secret_key: &str, wrong: &str, missing_word: &str) {
    let env = Env::new(backend).await;
    let local = Env::new(Backend::Local).await;
    write_demo(&local.open("src"), 2, 20, 1).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let endpoint = match backend {
        Backend::Azurite => format!("http://{closed}/{}", crate::common::azurite::ACCOUNT),
        _ => format!("http://{closed}"),
    };
    let case = |what: &str, url: String, options, says: &[&str]| Case {
        what: format!("{backend:?}, {what}"),
        url,
        options,
        says: says.iter().map(|s| s.to_string()).collect(),
    };
    let missing = env.url("ds").replacen(&env.bucket(), "no-such-bucket", 1);
    let cases = [
        case(
            "unreachable",
            env.url("ds"),
            options_with(&env, "endpoint", &endpoint),
            &["Connection refused", &closed.to_string()],
        ),
        case(
            "wrong credentials",
            env.url("ds"),
            options_with(&env, secret_key, wrong),
            &["403"],
        ),
        case("missing bucket", missing, env.options(), &["404", missing_word]),
    ];
    for c in &cases {
        names_side_and_url(c, &local.url("src"), wrong).await;
    }

    let options = options_with(&env, secret_key, wrong);
    let mut sync = vec!["sync".to_string(), local.url("src"), env.url("ds"), "-v".into()];
    sync.extend(flags("--dst-opt", &options));
    let r = shardsync(&sync).await;
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("caused by: ") && r.stderr.contains('<'),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(wrong), "{}", r.stderr);
}

/// `sync local → case` names the destination, `check case local` the source; neither line
/// echoes a key or secret.
async fn names_side_and_url(c: &Case, local: &str, wrong: &str) {
    let Case { what, url, .. } = c;
    let mut sync = vec!["sync".to_string(), local.to_string(), url.clone()];
    sync.extend(flags("--dst-opt", &c.options));
    let line = the_error_line(&shardsync(&sync).await, what);
    assert!(line.contains(&format!("destination {url}: ")), "{what}: {line}");
    for word in &c.says {
        assert!(line.contains(word.as_str()), "{what}: {word:?} in {line}");
    }
    assert!(!line.contains(wrong), "{what}: {line}");
    for (k, v) in &c.options {
        if k.contains("key") || k.contains("secret") {
            assert!(!line.contains(v.as_str()), "{what}: {k} echoed: {line}");
        }
    }

    let mut check = vec!["check".to_string(), url.clone(), local.to_string()];
    check.extend(flags("--src-opt", &c.options));
    let line = the_error_line(&shardsync(&check).await, what);
    assert!(line.contains(&format!("source {url}: ")), "{what}: {line}");
}

#[tokio::test]
async fn s3_failures_are_one_line_naming_side_and_url() {
    // s3s-fs: it checks signatures (moto does not).
    failures_name_side_and_url(Backend::S3, "secret_access_key", "wr0ng-s3cr3t", "NoSuchBucket").await;
}

#[tokio::test]
async fn azure_failures_are_one_line_naming_side_and_url() {
    // An account key is base64.
    let wrong = "d3Iwbmctc2VjcmV0LXZhbHVlLXdyMG5nLXMzY3IzdA==";
    failures_name_side_and_url(Backend::Azurite, "access_key", wrong, "ContainerNotFound").await;
}
