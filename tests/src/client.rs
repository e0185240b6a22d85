//! Client-side traffic helpers, meant to run inside `lab.client().run(|| ...)` (they use
//! plain std sockets, so they act in whatever namespace the calling thread is in).
//!
//! Every helper takes IPv4 and IPv6 targets alike (`(vip6(0), 80)` works as well as
//! `(vip(0), 80)`).
//!
//! Invariants: every helper is bounded in time. Connects use `connect_timeout`, and every read
//! and write is limited by the time left until the helper's overall deadline (`timeout` or
//! [`DEFAULT_TIMEOUT`]), so a silent peer yields [`LabError::Timeout`] instead of a hang.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// Overall time limit of the helpers that take no explicit timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const MAX_HEAD_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;

fn io_err(what: impl FnOnce() -> String, after: Duration, error: io::Error) -> LabError {
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => LabError::Timeout {
            what: what(),
            after,
            logs: String::new(),
        },
        _ => LabError::Io {
            context: what(),
            error,
        },
    }
}

/// Connect with a timeout; the stream gets `timeout` as read and write timeout and NODELAY.
pub fn tcp_connect(addr: impl Into<SocketAddr>, timeout: Duration) -> Result<TcpStream> {
    let addr = addr.into();
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| io_err(|| format!("connecting to {addr}"), timeout, e))?;
    let setup = || -> io::Result<()> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)
    };
    setup().map_err(|e| io_err(|| format!("configuring the socket to {addr}"), timeout, e))?;
    Ok(stream)
}

/// A TCP stream whose every read and write is bounded by a deadline.
#[derive(Debug)]
struct DeadlineStream {
    stream: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        Ok(left)
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// A parsed HTTP/1.x response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `X-Backend` header: which real server answered.
    pub fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }

    /// The body as (lossy) UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server will close the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

fn read_head_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<String> {
    buf.clear();
    let n = reader.take(MAX_HEAD_LINE).read_until(b'\n', buf)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before the response was complete",
        ));
    }
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "response line too long",
        ));
    }
    let text = String::from_utf8_lossy(buf);
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_response(reader: &mut impl BufRead, head_only: bool) -> io::Result<HttpResponse> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut buf = Vec::new();
    let status_line = read_head_line(reader, &mut buf)?;
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad status line {status_line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("bad status line {status_line:?}")));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| invalid(format!("bad status code in {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_head_line(reader, &mut buf)?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(invalid("too many headers".into()));
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(invalid(format!("bad header line {line:?}")));
        };
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
    {
        return Err(invalid("chunked responses are not supported".into()));
    }
    match response.header("content-length") {
        Some(len) => {
            let len: u64 = len
                .parse()
                .map_err(|_| invalid(format!("bad content-length {len:?}")))?;
            let got = reader.take(len).read_to_end(&mut response.body)?;
            if (got as u64) < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended after {got} of {len} bytes"),
                ));
            }
        }
        None => {
            reader.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}

fn request_bytes(method: &str, path: &str, addr: SocketAddr, keep_alive: bool) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: lvs-lab\r\nConnection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes()
}

/// One request on a fresh connection (`Connection: close`), bounded by `timeout` overall.
pub fn http_request(
    addr: impl Into<SocketAddr>,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<HttpResponse> {
    let addr = addr.into();
    let deadline = Instant::now() + timeout;
    let stream = tcp_connect(addr, timeout)?;
    let mut stream = DeadlineStream { stream, deadline };
    let what = || format!("HTTP {method} {path} to {addr}");
    stream
        .write_all(&request_bytes(method, path, addr, false))
        .map_err(|e| io_err(what, timeout, e))?;
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method.eq_ignore_ascii_case("HEAD"))
        .map_err(|e| io_err(what, timeout, e))
}

/// `GET path` on a fresh connection (5 s limit). Returns the `X-Backend` name and the body;
/// any status other than 200 or a missing `X-Backend` is an error.
pub fn http_get(addr: impl Into<SocketAddr>, path: &str) -> Result<(String, Vec<u8>)> {
    let addr = addr.into();
    let response = http_request(addr, "GET", path, DEFAULT_TIMEOUT)?;
    into_named_body(response, addr, path)
}

fn into_named_body(
    response: HttpResponse,
    addr: SocketAddr,
    path: &str,
) -> Result<(String, Vec<u8>)> {
    if response.status != 200 {
        return Err(LabError::Protocol(format!(
            "GET {path} from {addr}: status {} ({})",
            response.status,
            response.body_text().trim_end()
        )));
    }
    let backend = response
        .backend()
        .ok_or_else(|| LabError::Protocol(format!("GET {path} from {addr}: no X-Backend header")))?
        .to_owned();
    Ok((backend, response.body))
}

/// A keep-alive HTTP/1.1 client: every request reuses one TCP connection.
#[derive(Debug)]
pub struct HttpClient {
    reader: BufReader<DeadlineStream>,
    addr: SocketAddr,
    timeout: Duration,
}

impl HttpClient {
    /// Connect with [`DEFAULT_TIMEOUT`] as connect and per-request limit.
    pub fn connect(addr: impl Into<SocketAddr>) -> Result<Self> {
        Self::connect_timeout(addr, DEFAULT_TIMEOUT)
    }

    /// Connect; `timeout` bounds the connect and each later request.
    pub fn connect_timeout(addr: impl Into<SocketAddr>, timeout: Duration) -> Result<Self> {
        let addr = addr.into();
        let stream = tcp_connect(addr, timeout)?;
        Ok(Self {
            reader: BufReader::new(DeadlineStream {
                stream,
                deadline: Instant::now() + timeout,
            }),
            addr,
            timeout,
        })
    }

    /// The connection's local address (the client port the director sees).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.reader
            .get_ref()
            .stream
            .local_addr()
            .map_err(|e| io_err(|| "local_addr".into(), self.timeout, e))
    }

    /// The address connected to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Send `method path` on the connection and read the response.
    pub fn request(&mut self, method: &str, path: &str) -> Result<HttpResponse> {
        let addr = self.addr;
        let timeout = self.timeout;
        let what = || format!("HTTP {method} {path} to {addr} (keep-alive)");
        self.reader.get_mut().deadline = Instant::now() + timeout;
        self.reader
            .get_mut()
            .write_all(&request_bytes(method, path, addr, true))
            .map_err(|e| io_err(what, timeout, e))?;
        read_response(&mut self.reader, method.eq_ignore_ascii_case("HEAD"))
            .map_err(|e| io_err(what, timeout, e))
    }

    /// `GET path`: the full response (any status).
    pub fn get(&mut self, path: &str) -> Result<HttpResponse> {
        self.request("GET", path)
    }

    /// `GET path` expecting 200: the `X-Backend` name and the body, like [`http_get`].
    pub fn get_named(&mut self, path: &str) -> Result<(String, Vec<u8>)> {
        let response = self.get(path)?;
        into_named_body(response, self.addr, path)
    }
}

/// Send `payload` to a TCP echo service, half-close, and return everything read back until
/// the server closes (10 s limit). Writing runs on its own thread, so payloads larger than
/// the socket buffers cannot deadlock.
pub fn tcp_echo(addr: impl Into<SocketAddr>, payload: &[u8]) -> Result<Vec<u8>> {
    tcp_echo_timeout(addr, payload, Duration::from_secs(10))
}

/// [`tcp_echo`] with an explicit overall time limit.
pub fn tcp_echo_timeout(
    addr: impl Into<SocketAddr>,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let addr = addr.into();
    let deadline = Instant::now() + timeout;
    let stream = tcp_connect(addr, timeout)?;
    let writer_stream = stream
        .try_clone()
        .map_err(|e| io_err(|| format!("cloning the socket to {addr}"), timeout, e))?;
    let what = || format!("TCP echo with {addr}");
    thread::scope(|scope| {
        let writer = scope.spawn(move || -> io::Result<()> {
            let mut w = DeadlineStream {
                stream: writer_stream,
                deadline,
            };
            w.write_all(payload)?;
            w.stream.shutdown(Shutdown::Write)
        });
        let mut reader = DeadlineStream { stream, deadline };
        let mut echoed = Vec::with_capacity(payload.len());
        let read = reader.read_to_end(&mut echoed);
        if read.is_err() {
            // Unblock the writer (it may wait for window space that will never come).
            let _ = reader.stream.shutdown(Shutdown::Both);
        }
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("echo writer thread panicked")));
        read.map_err(|e| io_err(what, timeout, e))?;
        written.map_err(|e| io_err(what, timeout, e))?;
        Ok(echoed)
    })
}

/// Send one datagram from an ephemeral port and return the first reply *from `addr`*
/// (a connected socket: replies from any other source, e.g. a DR real server answering from
/// its RIP, are ignored and end in a timeout).
pub fn udp_exchange(
    addr: impl Into<SocketAddr>,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let addr = addr.into();
    let what = || format!("UDP exchange with {addr}");
    let run = || -> io::Result<Vec<u8>> {
        let any: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(any)?;
        sock.connect(addr)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        sock.send(payload)?;
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    };
    run().map_err(|e| io_err(what, timeout, e))
}

/// Ask a backend's UDP name port which real server answered ([`DEFAULT_TIMEOUT`]).
pub fn udp_name(addr: impl Into<SocketAddr>) -> Result<String> {
    let reply = udp_exchange(addr, b"who?", DEFAULT_TIMEOUT)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head: bool) -> io::Result<HttpResponse> {
        read_response(&mut io::Cursor::new(raw.to_vec()), head)
    }

    #[test]
    fn parses_responses() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nX-Backend: rs1\r\nContent-Length: 4\r\n\r\nrs1\nEXTRA",
            false,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.backend(), Some("rs1"));
        assert_eq!(r.body, b"rs1\n");
        let r = parse(b"HTTP/1.0 503 Nope\r\nConnection: close\r\n\r\nbye", false).unwrap();
        assert_eq!(r.status, 503);
        assert!(r.closes());
        assert_eq!(r.body, b"bye");
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true).unwrap();
        assert!(r.body.is_empty());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", false).is_err());
        assert!(parse(b"SSH-2.0\r\n\r\n", false).is_err());
        assert!(parse(b"", false).is_err());
        assert!(
            parse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .is_err()
        );
    }

    #[test]
    fn timeouts_map_to_timeout_errors() {
        let e = io_err(
            || "x".into(),
            Duration::from_secs(1),
            io::Error::from(io::ErrorKind::WouldBlock),
        );
        assert!(matches!(e, LabError::Timeout { .. }));
    }
}
