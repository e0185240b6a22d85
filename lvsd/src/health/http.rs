//! `http` / `https`: a GET whose status must be in range, optionally with an MD5 digest
//! (keepalived `genhash` style) or a regular expression over the body (keepalived
//! `HTTP_GET` / `SSL_GET`).
//!
//! The request is HTTP/1.0 with `Host` (the `virtualhost`, else the address, an IPv6 one in
//! brackets as RFC 3986 writes it: `Host: [2001:db8::11]:8080`) and
//! `Connection: close`, so servers answer with a plain body delimited by `Content-Length`
//! or the close (no chunked encoding to undo). A chunked reply anyway fails the check when
//! the body is needed.
//!
//! Bounds (the policy for hostile targets): the status line and headers must fit in
//! [`MAX_HEADERS`] bytes, else the check fails (`headers over 64 KiB`). The body is read
//! only when `digest` or `regex` needs it, at most [`MAX_BODY`] bytes: a longer body (by
//! `Content-Length`, before reading it, or by reading one byte more) fails the check. The
//! digest is computed while reading; only `regex` keeps the body, so a check holds at most
//! `MAX_BODY` bytes. Invariant: bytes received <= `MAX_HEADERS + MAX_BODY + 1`.
//! A reply that does not start with `HTTP/` fails as soon as 5 bytes are in.

use std::net::SocketAddr;

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::config::HttpCheck;

use super::checker::{Deadline, Pass, io_error, preview};
use super::tcp;
use super::tls::{self, TlsSetup};

/// The most bytes of status line and headers read.
pub const MAX_HEADERS: usize = 64 * 1024;
/// The most bytes of body read (only with `digest` or `regex`).
pub const MAX_BODY: usize = 1024 * 1024;
/// The read size.
const CHUNK: usize = 16 * 1024;

/// An HTTP check prepared for one target.
#[derive(Debug)]
pub(super) struct Prepared {
    check: HttpCheck,
    request: Vec<u8>,
    /// `https`: the client configuration, or why there is none (e.g. `tls_ca` unreadable).
    tls: Option<Result<TlsSetup, String>>,
}

impl Prepared {
    pub(super) fn new(check: &HttpCheck, target: SocketAddr) -> Self {
        let default_port = if check.tls.is_some() { 443 } else { 80 };
        let host = match &check.virtualhost {
            Some(v) => v.clone(),
            None if target.port() == default_port => match target {
                SocketAddr::V4(t) => t.ip().to_string(),
                SocketAddr::V6(t) => format!("[{}]", t.ip()),
            },
            // `[2001:db8::11]:8080` for IPv6.
            None => SocketAddr::new(target.ip(), target.port()).to_string(),
        };
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lvsd-health/{}\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n",
            check.path,
            env!("CARGO_PKG_VERSION")
        )
        .into_bytes();
        let tls = check
            .tls
            .as_ref()
            .map(|t| tls::setup(t, check.virtualhost.as_deref(), target));
        Prepared {
            check: check.clone(),
            request,
            tls,
        }
    }
}

/// One GET against `target`; `received` counts the bytes read.
pub(super) async fn run(
    p: &Prepared,
    target: SocketAddr,
    deadline: &Deadline,
    received: &mut u64,
) -> Result<Pass, String> {
    let setup = match &p.tls {
        None => None,
        Some(Ok(setup)) => Some(setup),
        Some(Err(message)) => return Err(message.clone()),
    };
    let stream = tcp::connect(target, deadline).await?;
    // The request goes out in one write; no reason to wait for more.
    let _ = stream.set_nodelay(true);
    match setup {
        None => exchange(stream, p, deadline, received).await,
        Some(setup) => {
            let connector = TlsConnector::from(setup.config.clone());
            let tls = deadline
                .run(
                    "in the TLS handshake",
                    connector.connect(setup.name.clone(), stream),
                )
                .await?
                .map_err(|e| format!("TLS: {}", tls::error(&e)))?;
            exchange(tls, p, deadline, received).await
        }
    }
}

/// Sends the request and judges the reply.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    p: &Prepared,
    deadline: &Deadline,
    received: &mut u64,
) -> Result<Pass, String> {
    let sending = "sending the request";
    deadline
        .run(sending, async {
            s.write_all(&p.request).await?;
            s.flush().await
        })
        .await?
        .map_err(|e| format!("{sending}: {}", io_error(&e)))?;

    // Status line and headers.
    let mut head: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; CHUNK];
    let end = loop {
        let room = (MAX_HEADERS - head.len()).min(CHUNK);
        if room == 0 {
            return Err(format!("headers over {} KiB", MAX_HEADERS / 1024));
        }
        let reading = "reading the headers";
        let n = deadline
            .run(reading, s.read(&mut chunk[..room]))
            .await?
            .map_err(|e| match (head.is_empty(), e.kind()) {
                (true, std::io::ErrorKind::ConnectionReset) => {
                    "empty reply: connection reset without a response".to_string()
                }
                _ => format!("{reading}: {}", io_error(&e)),
            })?;
        if n == 0 {
            return Err(if head.is_empty() {
                "empty reply: connection closed without a response".into()
            } else {
                format!("connection closed inside the headers: {}", preview(&head))
            });
        }
        *received += n as u64;
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if head.len() >= 5 && !head.starts_with(b"HTTP/") {
            return Err(format!("not an HTTP response: {}", preview(&head)));
        }
        if let Some(i) = find(&head[from..], b"\r\n\r\n") {
            break from + i + 4;
        }
    };
    let (status, headers) = parse_head(&head[..end])?;
    if !p
        .check
        .status
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&status))
    {
        return Err(format!("HTTP {status}"));
    }
    if p.check.digest.is_none() && p.check.regex.is_none() {
        return Ok(Pass::new(format!("HTTP {status}")));
    }

    // The body, for the digest or the regex.
    if headers.chunked {
        return Err(format!(
            "HTTP {status}: chunked body (not sent to HTTP/1.0 requests) not supported"
        ));
    }
    if let Some(len) = headers.content_length {
        if len > MAX_BODY as u64 {
            return Err(format!(
                "HTTP {status}: body of {len} bytes over the {} KiB limit",
                MAX_BODY / 1024
            ));
        }
    }
    let limit = headers
        .content_length
        .map_or(MAX_BODY, |l| usize::try_from(l).unwrap_or(MAX_BODY));
    let mut md5 = Md5::new();
    let mut kept: Vec<u8> = Vec::new();
    let keep = p.check.regex.is_some();
    let mut body_len = 0usize;
    let mut take = |bytes: &[u8], body_len: &mut usize| {
        md5.update(bytes);
        if keep {
            kept.extend_from_slice(bytes);
        }
        *body_len += bytes.len();
    };
    let first = &head[end..];
    take(&first[..first.len().min(limit)], &mut body_len);
    if first.len() > MAX_BODY {
        // Only with MAX_HEADERS > MAX_BODY; kept for the invariant's sake.
        return Err(format!("HTTP {status}: body over {} KiB", MAX_BODY / 1024));
    }
    while body_len < limit || headers.content_length.is_none() {
        // One byte beyond the cap tells "longer than allowed" from "exactly the cap".
        let room = match headers.content_length {
            Some(_) => limit - body_len,
            None => limit + 1 - body_len,
        }
        .min(CHUNK);
        let reading = "reading the body";
        let n = match deadline.run(reading, s.read(&mut chunk[..room])).await? {
            Ok(n) => n,
            // TLS peers often close without close_notify: the end of the body all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("{reading}: {}", io_error(&e))),
        };
        if n == 0 {
            if headers.content_length.is_some() {
                return Err(format!(
                    "HTTP {status}: connection closed after {body_len} of {limit} body bytes"
                ));
            }
            break;
        }
        *received += n as u64;
        if body_len + n > limit {
            return Err(format!("HTTP {status}: body over {} KiB", MAX_BODY / 1024));
        }
        take(&chunk[..n], &mut body_len);
    }
    if let Some(want) = &p.check.digest {
        let got: [u8; 16] = md5.finalize().into();
        if &got != want {
            return Err(format!("HTTP {status}: digest mismatch ({})", hex(&got)));
        }
    }
    if let Some(re) = &p.check.regex {
        if !re.is_match(&kept) {
            return Err(format!("HTTP {status}: body does not match regex"));
        }
    }
    Ok(Pass::new(format!("HTTP {status}")))
}

/// What the body reading needs from the headers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Headers {
    content_length: Option<u64>,
    chunked: bool,
}

/// The status code and the headers of `head` (status line to the blank line).
fn parse_head(head: &[u8]) -> Result<(u16, Headers), String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| code.len() == 3 && (100..=599).contains(c) && version.starts_with("HTTP/"))
        .ok_or_else(|| format!("not an HTTP response: {}", preview(status_line.as_bytes())))?;
    let mut headers = Headers::default();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let len = value.parse::<u64>().map_err(|_| {
                format!(
                    "HTTP {status}: bad Content-Length `{}`",
                    preview(value.as_bytes())
                )
            })?;
            headers.content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            headers.chunked = true;
        }
    }
    Ok((status, headers))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::checker::Checker;
    use super::super::testutil::{self, TestCa, TestCert};
    use super::*;
    use crate::config::{BodyRegex, CheckKind, HealthCheck, TlsCheck};

    fn http_check(f: impl FnOnce(&mut HttpCheck)) -> HealthCheck {
        let mut h = HttpCheck {
            path: "/health".into(),
            status: vec![(200, 299)],
            virtualhost: None,
            digest: None,
            regex: None,
            tls: None,
        };
        f(&mut h);
        let mut c = testutil::check(CheckKind::Http(h));
        c.timeout = Duration::from_millis(500);
        c
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";

    #[tokio::test]
    async fn status_in_range_passes_and_the_request_is_http10_with_host() {
        let (addr, seen) = testutil::http_server(OK.to_vec()).await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.message, "HTTP 200");
        let req = seen.recv_first().await;
        assert!(req.starts_with("GET /health HTTP/1.0\r\n"), "{req}");
        assert!(req.contains(&format!("\r\nHost: {addr}\r\n")), "{req}");
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
        // A virtualhost replaces the address.
        let (addr, seen) = testutil::http_server(OK.to_vec()).await;
        let c = http_check(|h| h.virtualhost = Some("www.example.test".into()));
        assert!(Checker::new(&c, addr).run().await.ok);
        assert!(
            seen.recv_first()
                .await
                .contains("\r\nHost: www.example.test\r\n")
        );
    }

    #[tokio::test]
    async fn wrong_status_fails_naming_it() {
        let (addr, _) = testutil::http_server(b"HTTP/1.1 503 Busy\r\n\r\n".to_vec()).await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert_eq!((out.ok, out.message.as_str()), (false, "HTTP 503"));
        // ... and passes when the ranges say so.
        let c = http_check(|h| h.status = vec![(200, 200), (500, 503)]);
        assert!(Checker::new(&c, addr).run().await.ok);
    }

    #[tokio::test]
    async fn digest_and_regex_over_the_body() {
        let (addr, _) = testutil::http_server(OK.to_vec()).await;
        // md5("hello world")
        let good: [u8; 16] = [
            0x5e, 0xb6, 0x3b, 0xbb, 0xe0, 0x1e, 0xee, 0xd0, 0x93, 0xcb, 0x22, 0xbb, 0x8f, 0x5a,
            0xcd, 0xc3,
        ];
        let out = Checker::new(&http_check(|h| h.digest = Some(good)), addr)
            .run()
            .await;
        assert!(out.ok, "{out:?}");
        let out = Checker::new(&http_check(|h| h.digest = Some([0; 16])), addr)
            .run()
            .await;
        assert!(!out.ok);
        assert_eq!(
            out.message,
            "HTTP 200: digest mismatch (5eb63bbbe01eeed093cb22bb8f5acdc3)"
        );
        let re = |p: &str| Some(BodyRegex::new(p).unwrap());
        let out = Checker::new(&http_check(|h| h.regex = re("wor.d$")), addr)
            .run()
            .await;
        assert!(out.ok, "{out:?}");
        let out = Checker::new(&http_check(|h| h.regex = re("^bye")), addr)
            .run()
            .await;
        assert_eq!(out.message, "HTTP 200: body does not match regex");
        // Without Content-Length the body ends at the close.
        let (addr, _) = testutil::http_server(b"HTTP/1.0 200 OK\r\n\r\nhello world".to_vec()).await;
        assert!(
            Checker::new(&http_check(|h| h.digest = Some(good)), addr)
                .run()
                .await
                .ok
        );
    }

    #[tokio::test]
    async fn a_zero_byte_reply_fails_at_once() {
        // Reads the request, closes (FIN) without a byte.
        let addr = testutil::serve(|mut s| async move {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
        })
        .await;
        let start = Instant::now();
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "empty reply: connection closed without a response")
        );
        assert!(start.elapsed() < Duration::from_millis(400));
        // Closes at once, the request unread: the kernel answers it with an RST.
        let addr = testutil::serve(|_s| async {}).await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert!(!out.ok);
        assert!(
            out.message.starts_with("empty reply: connection "),
            "{out:?}"
        );
        assert!(out.latency < Duration::from_millis(400));
    }

    #[tokio::test]
    async fn garbage_instead_of_http_fails() {
        let addr = testutil::serve(|mut s| async move {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert!(!out.ok);
        assert!(
            out.message.starts_with("not an HTTP response: SSH-2.0"),
            "{out:?}"
        );
        assert!(out.latency < Duration::from_millis(400), "{out:?}");
    }

    #[tokio::test]
    async fn one_byte_per_second_fails_within_the_timeout() {
        let addr = testutil::serve(|mut s| async move {
            for b in b"HTTP/1.1 200 OK\r\n\r\n" {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
        .await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert!(!out.ok);
        assert_eq!(out.message, "timeout after 500ms reading the headers");
        assert!(out.latency < Duration::from_millis(900), "{out:?}");
    }

    #[tokio::test]
    async fn a_reset_fails() {
        let addr = testutil::serve(|s| async move {
            let _ = s.set_zero_linger();
            drop(s);
        })
        .await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert!(!out.ok);
        // Depending on timing the RST hits the write or the read, or the read sees the end.
        let m = out.message.as_str();
        assert!(
            m.ends_with("connection reset")
                || m.starts_with("empty reply")
                || m.ends_with("broken pipe"),
            "{out:?}"
        );
    }

    /// A server that sends headers, then 100 MiB, counting what it managed to write.
    async fn flood(headers: &'static [u8]) -> (SocketAddr, Arc<AtomicU64>) {
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let addr = testutil::serve(move |mut s| {
            let counter = counter.clone();
            async move {
                let _ = s.write_all(headers).await;
                let block = vec![b'x'; 64 * 1024];
                for _ in 0..1600 {
                    if s.write_all(&block).await.is_err() {
                        return;
                    }
                    counter.fetch_add(block.len() as u64, Ordering::Relaxed);
                }
            }
        })
        .await;
        (addr, sent)
    }

    #[tokio::test]
    async fn a_100_mib_reply_is_cut_at_the_caps() {
        let cap = (MAX_HEADERS + MAX_BODY + 1) as u64;
        // Endless headers: cut at 64 KiB.
        let (addr, _) = flood(b"HTTP/1.1 200 OK\r\nX-Junk: ").await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "headers over 64 KiB")
        );
        assert!(out.received <= MAX_HEADERS as u64, "{}", out.received);
        // A 100 MiB body without digest or regex: not read at all.
        let (addr, _) = flood(b"HTTP/1.1 200 OK\r\n\r\n").await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert!(out.ok, "{out:?}");
        assert!(out.received <= cap, "{}", out.received);
        // With a digest: read up to the cap, then fail within the timeout.
        let (addr, sent) = flood(b"HTTP/1.1 200 OK\r\n\r\n").await;
        let out = Checker::new(&http_check(|h| h.digest = Some([0; 16])), addr)
            .run()
            .await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "HTTP 200: body over 1024 KiB")
        );
        assert!(out.received <= cap, "{}", out.received);
        assert!(out.latency < Duration::from_millis(900), "{out:?}");
        // The server got nowhere near 100 MiB out (socket buffers aside).
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(sent.load(Ordering::Relaxed) < 32 << 20);
        // A Content-Length over the cap fails before reading.
        let (addr, _) = flood(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n").await;
        let out = Checker::new(
            &http_check(|h| h.regex = Some(BodyRegex::new("x").unwrap())),
            addr,
        )
        .run()
        .await;
        assert_eq!(
            out.message,
            "HTTP 200: body of 104857600 bytes over the 1024 KiB limit"
        );
        assert!(out.received <= (MAX_HEADERS + CHUNK) as u64);
    }

    #[tokio::test]
    async fn ipv6_targets_are_asked_with_a_bracketed_host() {
        let (addr, seen) = testutil::http_server_on(testutil::V6, OK.to_vec()).await;
        let out = Checker::new(&http_check(|_| {}), addr).run().await;
        assert!(out.ok, "{out:?}");
        let req = seen.recv_first().await;
        let host = format!("\r\nHost: [::1]:{}\r\n", addr.port());
        assert!(req.contains(&host), "{req}");
        let out = Checker::new(&http_check(|_| {}), testutil::closed_port_on(testutil::V6))
            .run()
            .await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "connect: connection refused")
        );
    }

    #[test]
    fn the_host_of_an_ipv6_target_on_the_default_port_is_bracketed() {
        let p = Prepared::new(
            match &http_check(|_| {}).kind {
                CheckKind::Http(h) => h,
                other => panic!("{other:?}"),
            },
            "[2001:db8:b::11]:80".parse().unwrap(),
        );
        let req = String::from_utf8_lossy(&p.request).into_owned();
        assert!(req.contains("\r\nHost: [2001:db8:b::11]\r\n"), "{req}");
    }

    #[tokio::test]
    async fn https_over_ipv6_verifies_the_address_without_a_virtualhost() {
        let dir = testutil::TempDir::new();
        let ca = TestCa::new();
        let ca_pem = dir.write("ca.pem", ca.pem().as_bytes());
        let check = |ca_pem: &std::path::Path| {
            http_check(|h| {
                h.tls = Some(TlsCheck {
                    verify: true,
                    ca: Some(ca_pem.to_path_buf()),
                });
            })
        };
        // A certificate for ::1 (an IP SAN): the address is the name checked.
        let addr = testutil::https_server_on(testutil::V6, &ca.leaf("::1"), OK.to_vec()).await;
        let out = Checker::new(&check(&ca_pem), addr).run().await;
        assert!(out.ok, "{out:?}");
        // For another address: refused.
        let addr =
            testutil::https_server_on(testutil::V6, &ca.leaf("2001:db8:b::11"), OK.to_vec()).await;
        let out = Checker::new(&check(&ca_pem), addr).run().await;
        assert!(
            out.message.starts_with("TLS: invalid peer certificate"),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn nothing_listening_fails_with_refused() {
        let out = Checker::new(&http_check(|_| {}), testutil::closed_port())
            .run()
            .await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "connect: connection refused")
        );
    }

    fn https(verify: bool, ca: Option<std::path::PathBuf>) -> HealthCheck {
        http_check(|h| {
            h.virtualhost = Some("rs1.example.test".into());
            h.tls = Some(TlsCheck { verify, ca });
        })
    }

    #[tokio::test]
    async fn https_without_verification_accepts_a_self_signed_certificate() {
        let cert = TestCert::self_signed("rs1.example.test");
        let addr = testutil::https_server(&cert, OK.to_vec()).await;
        let out = Checker::new(&https(false, None), addr).run().await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.message, "HTTP 200");
    }

    #[tokio::test]
    async fn https_with_verification() {
        let dir = testutil::TempDir::new();
        let ca = TestCa::new();
        let ca_pem = dir.write("ca.pem", ca.pem().as_bytes());
        // Signed by the CA given, for the virtualhost: passes.
        let addr = testutil::https_server(&ca.leaf("rs1.example.test"), OK.to_vec()).await;
        let out = Checker::new(&https(true, Some(ca_pem.clone())), addr)
            .run()
            .await;
        assert!(out.ok, "{out:?}");
        // Another name: fails, named.
        let addr = testutil::https_server(&ca.leaf("rs9.example.test"), OK.to_vec()).await;
        let out = Checker::new(&https(true, Some(ca_pem.clone())), addr)
            .run()
            .await;
        assert!(!out.ok);
        assert!(
            out.message.starts_with("TLS: invalid peer certificate"),
            "{out:?}"
        );
        // Self-signed: fails.
        let addr =
            testutil::https_server(&TestCert::self_signed("rs1.example.test"), OK.to_vec()).await;
        let out = Checker::new(&https(true, Some(ca_pem)), addr).run().await;
        assert!(!out.ok);
        assert!(
            out.message.starts_with("TLS: invalid peer certificate"),
            "{out:?}"
        );
        // An unreadable CA file: every run fails, naming it.
        let out = Checker::new(&https(true, Some(dir.path("missing.pem"))), addr)
            .run()
            .await;
        assert!(out.message.starts_with("TLS: tls_ca "), "{out:?}");
        assert!(out.message.contains("missing.pem"), "{out:?}");
    }

    #[tokio::test]
    async fn https_against_plain_tcp_fails_within_the_timeout() {
        // A plain server that talks first (or answers the ClientHello with plain text).
        let addr = testutil::serve(|mut s| async move {
            let _ = s.write_all(OK).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        let out = Checker::new(&https(false, None), addr).run().await;
        assert!(!out.ok);
        assert!(out.message.starts_with("TLS: "), "{out:?}");
        // A silent one: the handshake times out.
        let addr = testutil::serve(|_s| async move {
            let _s = _s;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let out = Checker::new(&https(false, None), addr).run().await;
        assert_eq!(out.message, "timeout after 500ms in the TLS handshake");
        assert!(out.latency < Duration::from_millis(900));
    }

    #[test]
    fn heads_are_parsed() {
        let (s, h) = parse_head(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert_eq!((s, h.content_length, h.chunked), (204, Some(0), false));
        let (_, h) =
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert!(h.chunked);
        assert!(parse_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    }
}
