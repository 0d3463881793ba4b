//! A TCP relay that makes loopback look like a long link, for benchmarks (`tc netem` is not
//! available on the bench machines).
//!
//! ```text
//! cargo run --release --example relay -- --listen 0 --target 127.0.0.1:9000 --delay-ms 20 --conn-mibps 8
//! ```
//!
//! Every chunk read from either side is held for `--delay-ms` (the one-way delay) before it is
//! forwarded, without limiting throughput: chunks are pipelined, each with its own deadline. A
//! new connection forwards nothing for one round trip (2 × delay), standing in for the TCP
//! handshake that loopback makes free. Listens on 127.0.0.1, prints `listening on
//! http://127.0.0.1:PORT`, runs until killed.
//!
//! `--conn-mibps R` caps each connection at R MiB/s in each direction, with no burst: a chunk
//! leaves no earlier than the previous one's size allows at that rate. That is what makes a
//! cross-region link window-bound per TCP connection (tens of MB/s over tens of ms of round
//! trip) while the link as a whole carries far more: a tool fills it only with many
//! connections. The relay then holds about one bandwidth-delay product per direction, so the
//! sender feels back-pressure as it would on the real link.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "Delaying TCP relay on 127.0.0.1 (one-way delay per chunk, one RTT per new connection)")]
struct Opt {
    /// Port to listen on, on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    listen: u16,
    /// Where to forward, HOST:PORT.
    #[arg(long)]
    target: String,
    /// One-way delay in milliseconds.
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// Cap on each connection's rate per direction, in MiB/s (0 = no cap).
    #[arg(long, default_value_t = 0.0)]
    conn_mibps: f64,
}

/// How one direction of a connection is shaped.
#[derive(Debug, Clone, Copy)]
struct Shape {
    delay: Duration,
    /// Seconds per byte (0: unlimited).
    secs_per_byte: f64,
    /// Chunks held in the relay per direction.
    chunks: usize,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let opt = Opt::parse();
    let listener = TcpListener::bind(("127.0.0.1", opt.listen)).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);
    let delay = Duration::from_millis(opt.delay_ms);
    let shape = if opt.conn_mibps > 0.0 {
        let bytes_per_sec = opt.conn_mibps * 1024.0 * 1024.0;
        // About one bandwidth-delay product (round trip) in flight, in 64 KiB chunks.
        let bdp = bytes_per_sec * 2.0 * delay.as_secs_f64();
        Shape {
            delay,
            secs_per_byte: 1.0 / bytes_per_sec,
            chunks: ((bdp / 65536.0).ceil() as usize).clamp(4, 512),
        }
    } else {
        Shape {
            delay,
            secs_per_byte: 0.0,
            chunks: 512,
        }
    };
    loop {
        let (client, _) = listener.accept().await?;
        let target = opt.target.clone();
        tokio::spawn(async move {
            let accepted = Instant::now();
            let Ok(server) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            // Nothing moves before the simulated handshake completes.
            let start = accepted + 2 * delay;
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(pipe(cr, sw, shape, start));
            let down = tokio::spawn(pipe(sr, cw, shape, start));
            let _ = tokio::join!(up, down);
        });
    }
}

/// Forward `r` to `w`, each chunk released `delay` after it was read (never before `start`),
/// and no sooner than the rate cap allows after the previous chunk.
async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    shape: Shape,
    start: Instant,
) {
    let delay = shape.delay;
    // Unshaped: 512 chunks of up to 64 KiB in flight, ample for 20-100 ms at loopback rates.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(shape.chunks);
    let writer = tokio::spawn(async move {
        let mut free_at = start;
        while let Some((due, chunk)) = rx.recv().await {
            let at = due.max(free_at);
            tokio::time::sleep_until(at).await;
            if w.write_all(&chunk).await.is_err() {
                return;
            }
            free_at = at + Duration::from_secs_f64(chunk.len() as f64 * shape.secs_per_byte);
        }
        let _ = w.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
