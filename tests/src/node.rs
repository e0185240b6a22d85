//! The node program: what runs inside real servers (`NODE_EXE lab-node backend --name rs1`).
//!
//! `backend --name NAME` serves, on `0.0.0.0` and on `[::]` (separate IPv6-only sockets; if the
//! host has no IPv6 at all, it says so on stderr and serves IPv4 only), in one process:
//! - TCP 80: HTTP/1.1. Keep-alive unless the client sends `Connection: close` (HTTP/1.0: only
//!   with `Connection: keep-alive`). Every response carries `X-Backend: NAME` and a
//!   `Content-Length`. Paths: `/` → `NAME\n`; `/bytes/N` → N bytes of [`pattern_byte`];
//!   `/status/CODE` → that status (200..=599) with body `NAME\n`; `/sleep/MS` → waits
//!   min(MS, 60000) ms, then `NAME\n`; anything else → 404. `HEAD` omits the body; request
//!   bodies (`Content-Length`) are read and discarded; chunked requests get 501.
//! - TCP 9000: echo until the client half-closes, then half-close back.
//! - UDP 9000: echo each datagram. UDP 80: answer each datagram with `NAME` (no newline).
//!   UDP replies leave from the address the datagram was sent to (`IP_PKTINFO` /
//!   `IPV6_PKTINFO`), so a DR real server answers from the VIP it holds on `lo`.
//!
//! It prints `ready` on stdout once every socket is bound, then runs until killed.
//!
//! `hostile --mode MODE --port P` is a misbehaving TCP server on `0.0.0.0:P` (and `[::]:P`) for
//! health-check tests; each connection gets, after the client's first bytes (or 200 ms of silence):
//! - `empty`: nothing, then a clean close (a 0-byte reply);
//! - `huge`: `HTTP/1.1 200 OK` with `Content-Length: 104857600` and 100 MiB of body;
//! - `garbage`: 4 KiB of bytes that are not HTTP, then close;
//! - `slow`: `HTTP/1.1 200 OK\r\n...` one byte per second;
//! - `rst`: a reset (close with `SO_LINGER` 0);
//! - `plain`: a plain HTTP 200 (to a client that expects TLS).
//!
//! It prints `ready` once bound; each connection is bounded to 200 s.
//!
//! Invariants: one thread per TCP connection (stack 256 KiB), `RLIMIT_NOFILE` raised to its
//! hard limit and a 4096 accept backlog, so 1,000 concurrent connections are fine; client input
//! can end a connection (bad request, timeout) but never panics the process; every socket
//! operation on a connection has a timeout, so idle peers cannot pin threads forever.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::sys;

/// Default HTTP port of a backend.
pub const HTTP_PORT: u16 = 80;
/// Default TCP and UDP echo port of a backend.
pub const ECHO_PORT: u16 = 9000;
/// Default UDP "name" port of a backend.
pub const UDP_NAME_PORT: u16 = 80;

const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_LINE: u64 = 8 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_SLEEP_MS: u64 = 60_000;
const THREAD_STACK: usize = 256 * 1024;
const PATTERN_PERIOD: u64 = 251;

/// Byte `offset` of the `/bytes/N` body: `offset % 251` (a prime period, so a shifted or
/// reordered segment shows up as a mismatch).
pub fn pattern_byte(offset: u64) -> u8 {
    // < 251, fits in u8.
    (offset % PATTERN_PERIOD) as u8
}

/// The first `len` bytes of the `/bytes/N` body.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern_byte).collect()
}

/// Entry point: `args` are the arguments after `lab-node` (e.g. `["backend", "--name",
/// "rs1"]`). Returns the process exit code (2 = usage error, 1 = runtime error); a running
/// backend never returns on its own.
pub fn run(args: &[String]) -> i32 {
    if args.first().is_some_and(|a| a == "hostile") {
        return match parse_hostile(&args[1..]) {
            Ok((mode, port)) => match hostile(mode, port) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("lab-node hostile: {e}");
                    1
                }
            },
            Err(msg) => {
                eprintln!("lab-node: {msg}\n{USAGE}");
                2
            }
        };
    }
    match parse(args) {
        Ok(config) => match backend(&config) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("lab-node backend {}: {e}", config.name);
                1
            }
        },
        Err(msg) => {
            eprintln!("lab-node: {msg}\n{USAGE}");
            2
        }
    }
}

const USAGE: &str = "usage: lab-node backend --name NAME [--http-port P] [--echo-port P] \
                     [--udp-name-port P]\n       lab-node hostile --mode \
                     empty|huge|garbage|slow|rst|plain --port P";

/// How a `hostile` server misbehaves (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Close without a byte.
    Empty,
    /// 100 MiB body.
    Huge,
    /// Bytes that are not HTTP.
    Garbage,
    /// One byte per second.
    Slow,
    /// A reset.
    Rst,
    /// Plain HTTP where TLS is expected.
    Plain,
}

impl Hostile {
    /// Its `--mode` word.
    pub fn word(self) -> &'static str {
        match self {
            Hostile::Empty => "empty",
            Hostile::Huge => "huge",
            Hostile::Garbage => "garbage",
            Hostile::Slow => "slow",
            Hostile::Rst => "rst",
            Hostile::Plain => "plain",
        }
    }

    /// Every mode.
    pub const ALL: [Hostile; 6] = [
        Hostile::Empty,
        Hostile::Huge,
        Hostile::Garbage,
        Hostile::Slow,
        Hostile::Rst,
        Hostile::Plain,
    ];
}

fn parse_hostile(args: &[String]) -> Result<(Hostile, u16), String> {
    let (mut mode, mut port) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--mode" => {
                mode = Some(
                    Hostile::ALL
                        .into_iter()
                        .find(|m| m.word() == value)
                        .ok_or_else(|| format!("unknown mode {value:?}"))?,
                );
            }
            "--port" => {
                port = Some(
                    value
                        .parse::<u16>()
                        .map_err(|_| format!("--port: bad port {value:?}"))?,
                );
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok((
        mode.ok_or("--mode is required")?,
        port.ok_or("--port is required")?,
    ))
}

fn hostile(mode: Hostile, port: u16) -> Result<(), String> {
    raise_nofile_limit();
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
        .map_err(|e| format!("bind tcp/{port}: {e}"))?;
    // IPv6 too, where the host has it (best effort, like the backend's).
    let l6 = match sys::bind_v6only_tcp(port, 4096) {
        Ok(l6) => Some(l6),
        Err(e) => {
            eprintln!("lab-node hostile: no IPv6 socket ({e}); serving IPv4 only");
            None
        }
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    if let Some(l6) = l6 {
        thread::Builder::new()
            .name("hostile6-accept".into())
            .spawn(move || accept_loop(&l6, move |s| serve_hostile(s, mode)))
            .map_err(|e| format!("spawning the IPv6 accept thread: {e}"))?;
    }
    accept_loop(&l, move |s| serve_hostile(s, mode));
    Ok(())
}

fn serve_hostile(mut stream: TcpStream, mode: Hostile) -> io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(200)))?;
    // The client's first bytes (a request, a TLS ClientHello), or 200 ms of silence.
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
    match mode {
        Hostile::Empty => stream.shutdown(std::net::Shutdown::Both),
        Hostile::Huge => {
            const LEN: usize = 100 << 20;
            stream.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n").as_bytes(),
            )?;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..LEN / chunk.len() {
                stream.write_all(&chunk)?;
            }
            Ok(())
        }
        Hostile::Garbage => {
            let junk: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            stream.write_all(&junk)
        }
        Hostile::Slow => {
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".iter() {
                stream.write_all(&[*b])?;
                thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        }
        Hostile::Rst => {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger)
                .map_err(io::Error::from)?;
            drop(stream);
            Ok(())
        }
        Hostile::Plain => stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BackendConfig {
    name: String,
    http_port: u16,
    echo_port: u16,
    udp_name_port: u16,
}

fn parse(args: &[String]) -> Result<BackendConfig, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("backend") => {}
        Some(other) => return Err(format!("unknown role {other:?}")),
        None => return Err("missing role".into()),
    }
    let mut name = None;
    let mut config = BackendConfig {
        name: String::new(),
        http_port: HTTP_PORT,
        echo_port: ECHO_PORT,
        udp_name_port: UDP_NAME_PORT,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let port = || {
            value
                .parse::<u16>()
                .map_err(|_| format!("{flag}: bad port {value:?}"))
        };
        match flag.as_str() {
            "--name" => name = Some(value.clone()),
            "--http-port" => config.http_port = port()?,
            "--echo-port" => config.echo_port = port()?,
            "--udp-name-port" => config.udp_name_port = port()?,
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    config.name = name.ok_or("--name is required")?;
    if config.name.is_empty() || config.name.contains(['\r', '\n']) {
        return Err("--name must be a non-empty single line".into());
    }
    Ok(config)
}

fn raise_nofile_limit() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn backend(config: &BackendConfig) -> Result<(), String> {
    raise_nofile_limit();
    let any = |port| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let bind_tcp = |port| -> Result<TcpListener, String> {
        let l = TcpListener::bind(any(port)).map_err(|e| format!("bind tcp/{port}: {e}"))?;
        sys::set_listen_backlog(&l, 4096).map_err(|e| format!("listen tcp/{port}: {e}"))?;
        Ok(l)
    };
    let bind_udp = |port| -> Result<UdpSocket, String> {
        let s = UdpSocket::bind(any(port)).map_err(|e| format!("bind udp/{port}: {e}"))?;
        sys::enable_pktinfo(&s).map_err(|e| format!("IP_PKTINFO udp/{port}: {e}"))?;
        Ok(s)
    };
    let http = bind_tcp(config.http_port)?;
    let echo = bind_tcp(config.echo_port)?;
    let udp_echo = bind_udp(config.echo_port)?;
    let udp_name = bind_udp(config.udp_name_port)?;
    let v6 = match bind_v6(config) {
        Ok(sockets) => Some(sockets),
        Err(e) => {
            eprintln!(
                "lab-node backend {}: no IPv6 sockets ({e}); serving IPv4 only",
                config.name
            );
            None
        }
    };

    let name: Arc<str> = Arc::from(config.name.as_str());
    let mut threads: Vec<(&str, JoinHandle<()>)> = Vec::new();
    let spawn = |label: &'static str, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new()
            .name(label.into())
            .spawn(f)
            .map(|h| (label, h))
            .map_err(|e| format!("spawning {label}: {e}"))
    };
    {
        let name = Arc::clone(&name);
        threads.push(spawn(
            "http-accept",
            Box::new(move || accept_loop(&http, move |s| serve_http(s, &name))),
        )?);
    }
    threads.push(spawn(
        "echo-accept",
        Box::new(move || accept_loop(&echo, serve_echo)),
    )?);
    threads.push(spawn(
        "udp-echo",
        Box::new(move || udp_loop(&udp_echo, |payload| payload.to_vec())),
    )?);
    {
        let name = Arc::clone(&name);
        threads.push(spawn(
            "udp-name",
            Box::new(move || udp_loop(&udp_name, |_| name.as_bytes().to_vec())),
        )?);
    }
    if let Some((http6, echo6, udp_echo6, udp_name6)) = v6 {
        {
            let name = Arc::clone(&name);
            threads.push(spawn(
                "http6-accept",
                Box::new(move || accept_loop(&http6, move |s| serve_http(s, &name))),
            )?);
        }
        threads.push(spawn(
            "echo6-accept",
            Box::new(move || accept_loop(&echo6, serve_echo)),
        )?);
        threads.push(spawn(
            "udp6-echo",
            Box::new(move || udp_loop(&udp_echo6, |payload| payload.to_vec())),
        )?);
        let name = Arc::clone(&name);
        threads.push(spawn(
            "udp6-name",
            Box::new(move || udp_loop(&udp_name6, |_| name.as_bytes().to_vec())),
        )?);
    }

    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }

    // The serving loops never end; one finishing means it panicked.
    loop {
        if let Some((label, _)) = threads.iter().find(|(_, h)| h.is_finished()) {
            return Err(format!("{label} thread stopped"));
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// The IPv6 counterparts of the backend's sockets: HTTP, TCP echo, UDP echo, UDP name.
fn bind_v6(
    config: &BackendConfig,
) -> Result<(TcpListener, TcpListener, UdpSocket, UdpSocket), String> {
    let tcp = |port| sys::bind_v6only_tcp(port, 4096).map_err(|e| format!("bind tcp6/{port}: {e}"));
    let udp = |port| -> Result<UdpSocket, String> {
        let s = sys::bind_v6only_udp(port).map_err(|e| format!("bind udp6/{port}: {e}"))?;
        sys::enable_pktinfo(&s).map_err(|e| format!("IPV6_RECVPKTINFO udp6/{port}: {e}"))?;
        Ok(s)
    };
    Ok((
        tcp(config.http_port)?,
        tcp(config.echo_port)?,
        udp(config.echo_port)?,
        udp(config.udp_name_port)?,
    ))
}

fn accept_loop<F>(listener: &TcpListener, serve: F)
where
    F: Fn(TcpStream) -> io::Result<()> + Send + Sync + Clone + 'static,
{
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let serve = serve.clone();
                let spawned = thread::Builder::new()
                    .stack_size(THREAD_STACK)
                    .spawn(move || {
                        let _ = serve(stream);
                    });
                if let Err(e) = spawned {
                    // Out of threads: the connection is dropped (closed) and we go on.
                    eprintln!("lab-node: cannot spawn a connection thread: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE, ECONNABORTED, ...: back off briefly and keep serving.
                eprintln!("lab-node: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn udp_loop(sock: &UdpSocket, reply: impl Fn(&[u8]) -> Vec<u8>) {
    let mut buf = vec![0u8; 65536];
    loop {
        match sys::recv_with_dst(sock, &mut buf) {
            Ok(rx) => {
                let Some(payload) = buf.get(..rx.len) else {
                    continue;
                };
                let answer = reply(payload);
                let sent = match rx.to {
                    Some(local) => sys::send_from(sock, &answer, rx.from, local),
                    None => sock.send_to(&answer, rx.from),
                };
                if sent.is_err() {
                    // E.g. a datagram to a broadcast address: answer from the default source.
                    let _ = sock.send_to(&answer, rx.from);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("lab-node: udp recv: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn serve_echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return stream.shutdown(std::net::Shutdown::Write);
        }
        stream.write_all(&buf[..n])?;
    }
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    keep_alive: bool,
    content_length: u64,
    chunked: bool,
}

/// Why a request could not be parsed.
#[derive(Debug, PartialEq, Eq)]
enum BadRequest {
    /// Clean end of stream before a request started.
    Eof,
    /// Malformed: answer 400 and close.
    Malformed(&'static str),
}

fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Result<(), BadRequest>> {
    buf.clear();
    let n = reader.take(MAX_LINE).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Err(BadRequest::Eof));
    }
    if buf.last() != Some(&b'\n') {
        return Ok(Err(BadRequest::Malformed("line too long or truncated")));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Ok(()))
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Result<Request, BadRequest>> {
    let mut line = Vec::new();
    // Tolerate a few empty lines before the request line (RFC 9112 §2.2).
    let mut empties = 0;
    loop {
        if let Err(bad) = read_line(reader, &mut line)? {
            return Ok(Err(bad));
        }
        if !line.is_empty() {
            break;
        }
        empties += 1;
        if empties > 4 {
            return Ok(Err(BadRequest::Malformed("empty request")));
        }
    }
    let Ok(request_line) = std::str::from_utf8(&line) else {
        return Ok(Err(BadRequest::Malformed("request line is not UTF-8")));
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(Err(BadRequest::Malformed("bad request line")));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Ok(Err(BadRequest::Malformed("unsupported HTTP version"))),
    };
    let mut request = Request {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or_default().to_owned(),
        keep_alive: http11,
        content_length: 0,
        chunked: false,
    };
    for _ in 0..=MAX_HEADERS {
        match read_line(reader, &mut line)? {
            Ok(()) => {}
            Err(BadRequest::Eof) => return Ok(Err(BadRequest::Malformed("eof in headers"))),
            Err(bad) => return Ok(Err(bad)),
        }
        if line.is_empty() {
            return Ok(Ok(request));
        }
        let text = String::from_utf8_lossy(&line);
        let Some((key, value)) = text.split_once(':') else {
            return Ok(Err(BadRequest::Malformed("header without colon")));
        };
        let value = value.trim();
        if key.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    request.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    request.keep_alive = true;
                }
            }
        } else if key.eq_ignore_ascii_case("content-length") {
            let Ok(len) = value.parse() else {
                return Ok(Err(BadRequest::Malformed("bad content-length")));
            };
            request.content_length = len;
        } else if key.eq_ignore_ascii_case("transfer-encoding") {
            request.chunked = true;
        }
    }
    Ok(Err(BadRequest::Malformed("too many headers")))
}

/// What to send back.
#[derive(Debug, PartialEq, Eq)]
enum Body {
    Text(String),
    Pattern(u64),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Self::Text(t) => t.len() as u64,
            Self::Pattern(n) => *n,
        }
    }
}

/// Route a request: status and body. Sleeps for `/sleep/MS`.
fn route(name: &str, path: &str) -> (u16, Body) {
    let named = || Body::Text(format!("{name}\n"));
    if path == "/" {
        return (200, named());
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        return match n.parse::<u64>() {
            Ok(n) => (200, Body::Pattern(n)),
            Err(_) => (400, Body::Text("bad byte count\n".into())),
        };
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return match code.parse::<u16>() {
            Ok(code) if (200..=599).contains(&code) => (code, named()),
            _ => (400, Body::Text("bad status code\n".into())),
        };
    }
    if let Some(ms) = path.strip_prefix("/sleep/") {
        return match ms.parse::<u64>() {
            Ok(ms) => {
                thread::sleep(Duration::from_millis(ms.min(MAX_SLEEP_MS)));
                (200, named())
            }
            Err(_) => (400, Body::Text("bad sleep time\n".into())),
        };
    }
    (404, Body::Text("not found\n".into()))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(
    out: &mut impl Write,
    name: &str,
    status: u16,
    body: &Body,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut message = format!(
        "HTTP/1.1 {status} {}\r\nX-Backend: {name}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason(status),
        match body {
            Body::Text(_) => "text/plain",
            Body::Pattern(_) => "application/octet-stream",
        },
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    if head_only {
        return out.write_all(&message);
    }
    match body {
        Body::Text(text) => {
            message.extend_from_slice(text.as_bytes());
            out.write_all(&message)
        }
        Body::Pattern(len) => {
            out.write_all(&message)?;
            // A whole number of periods, so every chunk starts at pattern offset 0.
            let chunk = pattern((PATTERN_PERIOD * 256) as usize);
            let mut left = *len;
            while left > 0 {
                let n = left.min(chunk.len() as u64);
                // n <= chunk.len(), so the cast and the slice are in range.
                out.write_all(&chunk[..n as usize])?;
                left -= n;
            }
            Ok(())
        }
    }
}

fn serve_http(stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let request = match read_request(&mut reader)? {
            Ok(r) => r,
            Err(BadRequest::Eof) => return Ok(()),
            Err(BadRequest::Malformed(why)) => {
                let body = Body::Text(format!("{why}\n"));
                return write_response(&mut writer, name, 400, &body, false, false);
            }
        };
        if request.chunked {
            let body = Body::Text("chunked requests are not supported\n".into());
            return write_response(&mut writer, name, 501, &body, false, false);
        }
        if request.content_length > 0 {
            let want = request.content_length;
            let got = io::copy(&mut (&mut reader).take(want), &mut io::sink())?;
            if got < want {
                return Ok(());
            }
        }
        let (status, body) = route(name, &request.path);
        let head_only = request.method.eq_ignore_ascii_case("HEAD");
        write_response(
            &mut writer,
            name,
            status,
            &body,
            request.keep_alive,
            head_only,
        )?;
        if !request.keep_alive {
            let _ = writer.shutdown(std::net::Shutdown::Write);
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_backend_args() {
        let c = parse(&args(&["backend", "--name", "rs1"])).unwrap();
        assert_eq!(c.name, "rs1");
        assert_eq!((c.http_port, c.echo_port, c.udp_name_port), (80, 9000, 80));
        let c = parse(&args(&["backend", "--name", "x", "--http-port", "8080"])).unwrap();
        assert_eq!(c.http_port, 8080);
        assert!(parse(&args(&[])).is_err());
        assert!(parse(&args(&["frontend"])).is_err());
        assert!(parse(&args(&["backend"])).is_err());
        assert!(parse(&args(&["backend", "--name"])).is_err());
        assert!(parse(&args(&["backend", "--name", "a", "--http-port", "x"])).is_err());
        assert!(parse(&args(&["backend", "--name", "a\nb"])).is_err());
        assert_eq!(run(&args(&["nope"])), 2);
    }

    #[test]
    fn pattern_is_periodic() {
        let p = pattern(600);
        assert_eq!(p[0], 0);
        assert_eq!(p[250], 250);
        assert_eq!(p[251], 0);
        assert_eq!(p[599], pattern_byte(599));
    }

    fn parse_req(raw: &[u8]) -> Result<Request, BadRequest> {
        read_request(&mut io::Cursor::new(raw.to_vec())).unwrap()
    }

    #[test]
    fn parses_requests() {
        let r = parse_req(b"GET /bytes/10?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(r.path, "/bytes/10");
        assert!(r.keep_alive);
        let r = parse_req(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").unwrap();
        assert!(!r.keep_alive);
        let r = parse_req(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!r.keep_alive);
        let r = parse_req(b"GET / HTTP/1.0\nconnection: keep-alive\n\n").unwrap();
        assert!(r.keep_alive);
        let r = parse_req(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!(r.content_length, 5);
        assert_eq!(parse_req(b""), Err(BadRequest::Eof));
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET / HTTP/1.1\r\nnocolon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_req(bad), Err(BadRequest::Malformed(_))),
                "{bad:?}"
            );
        }
        let long = [
            b"GET /".to_vec(),
            vec![b'a'; 9000],
            b" HTTP/1.1\r\n\r\n".to_vec(),
        ]
        .concat();
        assert!(matches!(parse_req(&long), Err(BadRequest::Malformed(_))));
    }

    #[test]
    fn routes() {
        assert_eq!(route("rs1", "/"), (200, Body::Text("rs1\n".into())));
        assert_eq!(route("rs1", "/bytes/7"), (200, Body::Pattern(7)));
        assert_eq!(route("rs1", "/status/503").0, 503);
        assert_eq!(route("rs1", "/status/99").0, 400);
        assert_eq!(route("rs1", "/bytes/x").0, 400);
        assert_eq!(route("rs1", "/nope").0, 404);
    }

    #[test]
    fn writes_responses() {
        let mut out = Vec::new();
        write_response(&mut out, "rs2", 200, &Body::Pattern(300), true, false).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nX-Backend: rs2\r\n"));
        assert!(text.contains("Content-Length: 300\r\n"));
        let body_at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(&out[body_at..], pattern(300).as_slice());

        let mut out = Vec::new();
        write_response(
            &mut out,
            "rs2",
            200,
            &Body::Text("rs2\n".into()),
            false,
            true,
        )
        .unwrap();
        assert!(out.ends_with(b"Connection: close\r\n\r\n"));
    }
}
