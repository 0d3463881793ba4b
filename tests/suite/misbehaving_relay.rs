//! An HTTP/1.1 relay in front of a server (the in-process S3 server) that misbehaves on chosen
//! requests the way networks and servers do: an answer lost after the request was carried out,
//! a response body cut halfway, a server that restarts and refuses connections meanwhile.
//!
//! Unlike [`crate::faults::PausingRelay`], which pumps bytes, this relay reads whole HTTP
//! requests. Each request is sent upstream on a fresh connection with `Connection: close`, its
//! response is read to the end, and it reaches the client with `Connection: close` too, so
//! every request has its own connection on both sides and no keep-alive state can be confused
//! by a fault. object_store's client opens a new connection per request then, which it does
//! without complaint.
//!
//! Rules match on the method and a substring of the request target (path and query, as sent:
//! e.g. `_shardsync/manifest.json`, `list-type=2`), fire a set number of times, and count how
//! often they fired, so a test can assert its fault was really injected.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// What a rule does to a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Carry the request out (the server answers in full), then reset the client's connection
    /// before any byte of the answer reaches it: for a PUT, the write happened but the client
    /// never heard.
    LoseAnswer,
    /// Pass the response head and the first half of its body, then close the connection: the
    /// client reads fewer bytes than the response announced. Only responses with a body of at
    /// least two bytes are cut (and counted).
    CutBody,
    /// The server goes down as the request arrives: the request is not carried out, its
    /// connection and every open one are reset, and connections are refused for this long.
    Restart(Duration),
}

/// One misbehaviour: requests with `method` whose target contains `contains` (and not
/// `unless`), the first `times` of them.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: String,
    pub contains: String,
    pub unless: Option<String>,
    pub action: Action,
    pub times: usize,
}

impl Rule {
    /// A rule that fires once.
    pub fn new(method: &str, contains: &str, action: Action) -> Rule {
        Rule {
            method: method.to_string(),
            contains: contains.to_string(),
            unless: None,
            action,
            times: 1,
        }
    }

    /// Fire on the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = n;
        self
    }

    /// Do not match targets that contain `s`.
    pub fn unless(mut self, s: &str) -> Rule {
        self.unless = Some(s.to_string());
        self
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
            && target.contains(self.contains.as_str())
            && !self.unless.as_deref().is_some_and(|u| target.contains(u))
    }
}

/// A rule armed on a relay, and how often it has fired.
#[derive(Debug)]
pub struct Armed {
    pub rule: Rule,
    fired: AtomicUsize,
}

impl Armed {
    /// How many requests this rule has misbehaved on.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }

    /// Whether the rule matches and has firings left (without taking one).
    fn wants(&self, method: &str, target: &str) -> bool {
        self.rule.matches(method, target) && self.fired() < self.rule.times
    }

    /// Take one firing, if any is left.
    fn fire(&self) -> bool {
        self.fired
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.rule.times).then_some(n + 1)
            })
            .is_ok()
    }
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Vec<Arc<Armed>>>,
    /// `METHOD target -> status or fault`, in order, for failure messages.
    log: Mutex<Vec<String>>,
    /// Asks the accept loop to go down for the duration.
    restart: tokio::sync::mpsc::UnboundedSender<Duration>,
    /// While a restart is under way, requests on connections accepted before it are reset.
    down: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn log(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

/// The relay. Dropping it stops it.
pub struct MisbehavingRelay {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl MisbehavingRelay {
    pub async fn start(upstream: SocketAddr) -> MisbehavingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            restart: tx,
            down: Default::default(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone(), rx));
        MisbehavingRelay { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Arm a rule from now on; the handle counts its firings. Earlier rules match first.
    pub fn arm(&self, rule: Rule) -> Arc<Armed> {
        let armed = Arc::new(Armed {
            rule,
            fired: AtomicUsize::new(0),
        });
        self.shared.rules.lock().unwrap().push(armed.clone());
        armed
    }

    /// Every request seen so far, `METHOD target -> outcome`, one a line.
    pub fn log(&self) -> String {
        self.shared.log.lock().unwrap().join("\n")
    }
}

impl Drop for MisbehavingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    shared: Arc<Shared>,
    mut restarts: tokio::sync::mpsc::UnboundedReceiver<Duration>,
) {
    let addr = listener.local_addr().expect("relay addr");
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    conns.spawn(serve(client, shared.clone()));
                }
            }
            Some(down_for) = restarts.recv() => {
                shared.down.store(true, Ordering::SeqCst);
                drop(listener);
                conns.abort_all();
                tokio::time::sleep(down_for).await;
                listener = rebind(addr).await;
                shared.down.store(false, Ordering::SeqCst);
                shared.log(format!("(server back after {down_for:?})"));
            }
        }
    }
}

async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..200 {
        let bound = TcpSocket::new_v4().and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(1024)
        });
        if let Ok(l) = bound {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("relay: cannot bind {addr} again");
}

/// Close with RST, as a crashed peer's kernel does: the client sees "connection reset".
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// One client connection: one request (the client is told `Connection: close`).
async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    let Some(request) = read_request(&mut client, &mut buf).await else {
        return;
    };
    let (method, target) = request_line(&request.head);
    let what = format!("{method} {target}");
    if shared.down.load(Ordering::SeqCst) {
        shared.log(format!("{what} -> reset (server down)"));
        return reset(client);
    }
    let rule = {
        let rules = shared.rules.lock().unwrap();
        rules.iter().find(|r| r.wants(&method, &target)).cloned()
    };
    if let Some(r) = &rule {
        if let Action::Restart(down_for) = r.rule.action {
            if r.fire() {
                shared.down.store(true, Ordering::SeqCst);
                shared.log(format!("{what} -> server restart for {down_for:?}"));
                reset(client);
                let _ = shared.restart.send(down_for);
                return;
            }
        }
    }
    let Ok(mut server) = TcpStream::connect(shared.upstream).await else {
        shared.log(format!("{what} -> upstream unreachable"));
        return reset(client);
    };
    let mut out = with_connection_close(&request.head);
    out.extend_from_slice(&request.body);
    if server.write_all(&out).await.is_err() {
        return reset(client);
    }
    let mut response = Vec::new();
    if server.read_to_end(&mut response).await.is_err() {
        return reset(client);
    }
    let status = String::from_utf8_lossy(response.split(|&b| b == b'\r').next().unwrap_or_default())
        .split(' ')
        .nth(1)
        .unwrap_or("?")
        .to_string();
    let head_len = find(&response, b"\r\n\r\n").map_or(response.len(), |i| i + 4);
    let body_len = response.len() - head_len;
    match rule.as_ref().map(|r| r.rule.action) {
        Some(Action::LoseAnswer) if rule.as_ref().is_some_and(|r| r.fire()) => {
            shared.log(format!("{what} -> {status}, answer lost"));
            return reset(client);
        }
        Some(Action::CutBody) if body_len >= 2 && rule.as_ref().is_some_and(|r| r.fire()) => {
            shared.log(format!(
                "{what} -> {status}, body cut at {} of {body_len}",
                body_len / 2
            ));
            let mut cut = with_connection_close(&response[..head_len]);
            cut.extend_from_slice(&response[head_len..head_len + body_len / 2]);
            let _ = client.write_all(&cut).await;
            let _ = client.shutdown().await;
            return;
        }
        _ => {}
    }
    shared.log(format!("{what} -> {status}"));
    let mut whole = with_connection_close(&response[..head_len]);
    whole.extend_from_slice(&response[head_len..]);
    let _ = client.write_all(&whole).await;
    let _ = client.shutdown().await;
}

/// An HTTP/1.1 request as read: the head (start line and headers, with the blank line) and
/// the body bytes as framed on the wire (chunked bodies keep their framing).
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Read one request from `stream` (`buf` holds bytes read ahead). `None` if the peer closed
/// or sent something this relay does not understand.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Message> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 || !fill(stream, buf).await {
            return None;
        }
    };
    let head: Vec<u8> = buf.drain(..head_end).collect();
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let header = |name: &str| {
        text.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i + 2;
                }
                if !fill(stream, buf).await {
                    return None;
                }
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end - 2]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            // The chunk, its CRLF; the last chunk is followed by (empty) trailers and a CRLF.
            let need = line_end + size + 2;
            while buf.len() < need {
                if !fill(stream, buf).await {
                    return None;
                }
            }
            body.extend(buf.drain(..need));
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        while buf.len() < len {
            if !fill(stream, buf).await {
                return None;
            }
        }
        body.extend(buf.drain(..len));
    }
    Some(Message { head, body })
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The method and request target of a request head.
fn request_line(head: &[u8]) -> (String, String) {
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\r').next().unwrap_or_default()).to_string();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    (method, target)
}

/// `head` with its connection-management headers replaced by `Connection: close`.
fn with_connection_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if i > 0 && matches!(name.as_str(), "connection" | "keep-alive" | "proxy-connection") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    out.into_bytes()
}
