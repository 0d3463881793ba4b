//! A standalone S3 server (s3s-fs over a directory) for benchmarks: a stand-in for a region.
//!
//! ```text
//! cargo run --release --example s3-server -- --root DIR --port PORT [--access-key K --secret-key S]
//! ```
//!
//! Every directory directly under DIR is a bucket (DIR is created if missing). Listens on
//! 127.0.0.1:PORT (PORT 0 picks a free port), prints one line
//! `listening on http://127.0.0.1:PORT` on stdout, and runs until killed (SIGINT/SIGTERM).
//! Without `--access-key/--secret-key` it runs with SigV4 auth disabled (any credentials work).

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(about = "In-process-style S3 server (s3s-fs) on 127.0.0.1 for benchmarks")]
struct Opt {
    /// Directory holding the buckets (one sub-directory per bucket).
    #[arg(long)]
    root: PathBuf,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Access key for SigV4 auth (requires --secret-key).
    #[arg(long, requires = "secret_key")]
    access_key: Option<String>,
    /// Secret key for SigV4 auth (requires --access-key).
    #[arg(long, requires = "access_key")]
    secret_key: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let opt = Opt::parse();
    // Two cores on the bench machines; let tokio pick the worker count from the host.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(opt))
}

async fn run(opt: Opt) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opt.root)?;
    let fs = s3s_fs::FileSystem::new(&opt.root)
        .map_err(|e| anyhow::anyhow!("s3s-fs on {}: {e:?}", opt.root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    if let (Some(ak), Some(sk)) = (opt.access_key, opt.secret_key) {
        builder.set_auth(SimpleAuth::from_single(ak, sk));
    }
    let service = builder.build();

    let listener = TcpListener::bind(("127.0.0.1", opt.port)).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }

    let http = ConnBuilder::new(TokioExecutor::new());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let sock = tokio::select! {
            res = listener.accept() => match res {
                Ok((sock, _)) => sock,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = sock.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(sock), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
