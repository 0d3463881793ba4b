//! Azure Blob Storage for the suite: Azurite (npm `azurite`), one server per test process on
//! 127.0.0.1, its data in memory, a fresh container per test. object_store has no call that creates a
//! container, so [`create_container`] sends the REST `Create Container` request signed with
//! the emulator's well-known account key (SharedKey).
//!
//! `azurite-blob` is taken from `PATH` when it is there (`.ci/run` installs it), else installed
//! once with npm into the target directory. The server dies with the test process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::process::{cache_dir, free_port, on_path, spawn_for_process_lifetime};

pub const AZURITE_VERSION: &str = "3.35.0";
/// Azurite's development account and its published key (not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The API version `create_container` asks for.
const API_VERSION: &str = "2021-08-06";

/// The shared server's address; started on first use.
pub fn addr() -> SocketAddr {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    *SERVER.get_or_init(start)
}

/// The account's blob endpoint, `http://127.0.0.1:PORT/devstoreaccount1` (path-style).
pub fn endpoint() -> String {
    format!("http://{}/{ACCOUNT}", addr())
}

/// `azurite-blob` from `PATH`, else from the npm cache under the target directory.
fn azurite_blob() -> PathBuf {
    if let Some(p) = on_path("azurite-blob") {
        return p;
    }
    let dir = cache_dir("azurite");
    let bin = dir.join("node_modules/.bin/azurite-blob");
    if !bin.is_file() {
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(format!("azurite@{AZURITE_VERSION}"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && bin.is_file(),
            "could not install azurite@{AZURITE_VERSION} from npm into {}",
            dir.display()
        );
    }
    bin
}

fn start() -> SocketAddr {
    let bin = azurite_blob();
    let port = free_port();
    let mut cmd = Command::new(bin);
    // In memory: nothing on disk to clean up (and then it takes no --location).
    cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--inMemoryPersistence", "--silent", "--disableTelemetry"])
        .args(["--skipApiVersionCheck", "--loose"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    spawn_for_process_lifetime(cmd, "azurite-blob", addr);
    addr
}

/// Create `container` in the shared server's account.
pub fn create_container(container: &str) {
    let addr = addr();
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let path = format!("/{ACCOUNT}/{container}");
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n/{ACCOUNT}{path}\nrestype:container"
    );
    let auth = format!("SharedKey {ACCOUNT}:{}", sign(&string_to_sign));
    let mut s = TcpStream::connect(addr).expect("connect azurite");
    write!(
        s,
        "PUT {path}?restype=container HTTP/1.1\r\nHost: {addr}\r\nx-ms-date: {date}\r\n\
         x-ms-version: {API_VERSION}\r\nAuthorization: {auth}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "create container {container}: {answer}"
    );
}

/// Base64 HMAC-SHA256 of `s` under the account key: a SharedKey signature.
fn sign(s: &str) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(ACCOUNT_KEY).expect("account key");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(s.as_bytes());
    b64.encode(mac.finalize().into_bytes())
}

/// Store options for an `az://CONTAINER/…` URL on the shared server: its endpoint (not
/// `use_emulator`, whose address is process-global), the account and its key.
pub fn store_options() -> Vec<(String, String)> {
    [
        ("endpoint", endpoint()),
        ("account_name", ACCOUNT.to_string()),
        ("access_key", ACCOUNT_KEY.to_string()),
        ("allow_http", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
