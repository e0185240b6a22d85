//! Test targets: small servers on loopback ephemeral ports (127.0.0.1, or ::1 through the
//! `*_on` variants given [`V6`]; never any other address), certificates, a temporary
//! directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::config::{CheckKind, HealthCheck};

/// A check of `kind` with keepalived-ish test settings (1 s interval, 500 ms timeout).
pub fn check(kind: CheckKind) -> HealthCheck {
    HealthCheck {
        kind,
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        rise: 1,
        fall: 1,
        alpha: false,
        warmup: Duration::ZERO,
        inhibit_on_failure: false,
        connect_ip: None,
        connect_port: None,
    }
}

/// IPv4 loopback, where the servers without `_on` listen.
pub const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// IPv6 loopback.
pub const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// The address a socket bound to `ip` got; the family must be `ip`'s.
fn bound(ip: IpAddr, a: SocketAddr) -> SocketAddr {
    assert_eq!(a.ip(), ip, "bound {ip}, got {a}");
    a
}

/// A loopback TCP port with nothing listening (bound, then released).
pub fn closed_port() -> SocketAddr {
    closed_port_on(V4)
}

/// A TCP port of loopback `ip` with nothing listening.
pub fn closed_port_on(ip: IpAddr) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    bound(ip, l.local_addr().unwrap())
}

/// A loopback UDP port with nothing bound.
pub fn closed_udp_port() -> SocketAddr {
    closed_udp_port_on(V4)
}

/// A UDP port of loopback `ip` with nothing bound.
pub fn closed_udp_port_on(ip: IpAddr) -> SocketAddr {
    let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
    bound(ip, s.local_addr().unwrap())
}

/// A listener that accepts and drops every connection, on the current runtime.
pub async fn listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    listener_on(V4).await
}

/// [`listener`] on loopback `ip`.
pub async fn listener_on(ip: IpAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = bound(ip, l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    (addr, task)
}

/// Runs `handle` for every accepted connection (each on its own task).
pub async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    serve_on(V4, handle).await
}

/// [`serve`] on loopback `ip`.
pub async fn serve_on<F, Fut>(ip: IpAddr, handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = bound(ip, l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(handle(s));
        }
    });
    addr
}

/// The requests an [`http_server`] received.
#[derive(Debug)]
pub struct Seen(mpsc::UnboundedReceiver<String>);

impl Seen {
    /// The first request's head.
    pub async fn recv_first(mut self) -> String {
        tokio::time::timeout(Duration::from_secs(2), self.0.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// Reads a request head (at most 8 KiB) from `s`.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// An HTTP server that answers every request with `response` and closes.
pub async fn http_server(response: Vec<u8>) -> (SocketAddr, Seen) {
    http_server_on(V4, response).await
}

/// [`http_server`] on loopback `ip`.
pub async fn http_server_on(ip: IpAddr, response: Vec<u8>) -> (SocketAddr, Seen) {
    let (tx, rx) = mpsc::unbounded_channel();
    let response = Arc::new(response);
    let addr = serve_on(ip, move |mut s| {
        let (tx, response) = (tx.clone(), response.clone());
        async move {
            let head = read_head(&mut s).await;
            let _ = tx.send(head);
            let _ = s.write_all(&response).await;
            let _ = s.shutdown().await;
        }
    })
    .await;
    (addr, Seen(rx))
}

/// A certificate with its key.
#[derive(Debug)]
pub struct TestCert {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl TestCert {
    /// Self-signed, for `name`.
    pub fn self_signed(name: &str) -> TestCert {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCert {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// A CA that signs [`TestCert`]s.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa")
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "health test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `name`.
    pub fn leaf(&self, name: &str) -> TestCert {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        TestCert {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// An HTTPS server presenting `cert` that answers every request with `response`.
pub async fn https_server(cert: &TestCert, response: Vec<u8>) -> SocketAddr {
    https_server_on(V4, cert, response).await
}

/// [`https_server`] on loopback `ip`.
pub async fn https_server_on(ip: IpAddr, cert: &TestCert, response: Vec<u8>) -> SocketAddr {
    let key = PrivateKeyDer::try_from(cert.key.clone()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(lvs_proto::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let response = Arc::new(response);
    serve_on(ip, move |s| {
        let (acceptor, response) = (acceptor.clone(), response.clone());
        async move {
            let Ok(mut tls) = acceptor.accept(s).await else {
                return;
            };
            read_head(&mut tls).await;
            let _ = tls.write_all(&response).await;
            let _ = tls.shutdown().await;
        }
    })
    .await
}

/// A UDP server answering each datagram with `answer(datagram)` (None: silence).
pub async fn udp_server<F>(answer: F) -> SocketAddr
where
    F: Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
{
    udp_server_on(V4, answer).await
}

/// [`udp_server`] on loopback `ip`.
pub async fn udp_server_on<F>(ip: IpAddr, answer: F) -> SocketAddr
where
    F: Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static,
{
    let sock = UdpSocket::bind((ip, 0)).await.unwrap();
    let addr = bound(ip, sock.local_addr().unwrap());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            if let Some(reply) = answer(&buf[..n]) {
                let _ = sock.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "lvsd-health-{}-{:x}",
            std::process::id(),
            super::random_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
