//! A second S3 implementation for the suite: moto's server (PyPI `moto[server]`), one per test
//! process on 127.0.0.1, a fresh bucket per test. moto differs from s3s-fs where it matters to
//! shardsync: it accepts a wrong `x-amz-checksum-sha256` (DESIGN.md's server table).
//!
//! moto is taken from the machine's Python when it has it, else installed once into a venv
//! under the target directory (`pip` from PyPI). The server dies with the test process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::process::{cache_dir, free_port, pip_install_into_venv, spawn_for_process_lifetime};

pub const MOTO_VERSION: &str = "5.2.1";

/// The shared server's endpoint, `http://127.0.0.1:PORT`; started on first use.
pub fn endpoint() -> String {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    let addr = SERVER.get_or_init(start);
    format!("http://{addr}")
}

fn python_with_moto() -> PathBuf {
    let has_moto = |py: &std::path::Path| {
        Command::new(py)
            .args(["-c", "import moto.server, flask"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let system = PathBuf::from("python3");
    if has_moto(&system) {
        return system;
    }
    let py = cache_dir("moto-venv").join("bin/python");
    if !has_moto(&py) {
        pip_install_into_venv("moto-venv", &format!("moto[server]=={MOTO_VERSION}"));
    }
    py
}

fn start() -> SocketAddr {
    let py = python_with_moto();
    let port = free_port();
    let mut cmd = Command::new(py);
    cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .env_remove("AWS_CA_BUNDLE");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    spawn_for_process_lifetime(cmd, "moto-server", addr);
    addr
}

/// Create `bucket` (moto takes an unsigned `PUT /bucket`).
pub fn create_bucket(bucket: &str) {
    let ep = endpoint();
    let addr = ep.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect moto");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "create bucket {bucket}: {answer}"
    );
}

/// Store options for a client of the shared server.
pub fn store_options() -> Vec<(String, String)> {
    [
        ("endpoint", endpoint()),
        ("access_key_id", "moto-test-key".to_string()),
        ("secret_access_key", "moto-test-secret".to_string()),
        ("region", "us-east-1".to_string()),
        ("allow_http", "true".to_string()),
        ("virtual_hosted_style_request", "false".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
