//! The optional TCP listener with mutual TLS (`[control] tls_listen`).
//!
//! Same tarpc service, same JSON framing, same limits and audit lines as the Unix socket
//! ([`super::server`]); only the identity differs:
//! - A client certificate is required and must chain to `tls_client_ca` (and be valid
//!   now); a client without one, or with one from another CA or expired, fails the
//!   handshake and never reaches the API.
//! - The names of a verified certificate are its subject CNs and the DNS names of its
//!   subject alternative names ([`cert_names`]). If one of them is in `tls_admin_names`
//!   the client is [`Role::Admin`]; every other verified client is [`Role::ReadOnly`].
//! - The actor in events and audit lines is the deciding name plus the client's address
//!   ([`lvs_proto::Actor::tls_client`]).
//!
//! Limits besides the shared ones: the handshake must finish within [`HANDSHAKE_TIMEOUT`],
//! and the TLS listener serves at most [`super::server::MAX_CONNECTIONS`] connections of
//! its own (the Unix socket keeps its slots, so remote clients cannot lock out local
//! ones).
//!
//! The certificate, key and CA files are read once, when the listener starts; errors name
//! the key and the file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lvs_proto::tls::{certs_from_pem, key_from_pem, provider, roots_from_pem};
use lvs_proto::{Actor, Role};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::auth::Peer;
use super::server::{MAX_CONNECTIONS, Shared, serve_peer};
use crate::config::TlsSettings;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound TLS listener with its configuration loaded, ready for [`serve`].
pub struct TlsListener {
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    admin_names: Arc<Vec<String>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("addr", &self.addr)
            .field("admin_names", &self.admin_names)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// The address it is bound to (with the real port when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Reads `control.<key>` at `path`.
fn read(key: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("control.{key} {}: cannot read: {e}", path.display()))
}

/// The server configuration from PEM texts: the daemon's chain and key, and the CA(s)
/// client certificates must chain to (a client certificate is required).
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> Result<ServerConfig, String> {
    let certs = certs_from_pem(cert_pem, "certificate").map_err(|e| e.to_string())?;
    let key = key_from_pem(key_pem, "key").map_err(|e| e.to_string())?;
    let roots = roots_from_pem(client_ca_pem, "client CA").map_err(|e| e.to_string())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("client CA: {e}"))?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))
}

/// Reads the files of `settings` and binds the listener. Errors are sentences naming the
/// key and the file, or the address.
pub fn bind(settings: &TlsSettings) -> Result<TlsListener, String> {
    // The configuration checks this already; settings made in code get the same rule.
    if settings.listen.ip().is_unspecified() && !settings.allow_wildcard {
        return Err(format!(
            "control.tls_listen {}: a wildcard address needs control.tls_allow_wildcard = true",
            settings.listen
        ));
    }
    let cert = read("tls_cert", &settings.cert)?;
    let key = read("tls_key", &settings.key)?;
    let ca = read("tls_client_ca", &settings.client_ca)?;
    // Name the file whose content is wrong.
    certs_from_pem(&cert, "certificate")
        .map_err(|e| format!("control.tls_cert {}: {e}", settings.cert.display()))?;
    key_from_pem(&key, "key")
        .map_err(|e| format!("control.tls_key {}: {e}", settings.key.display()))?;
    roots_from_pem(&ca, "client CA").map_err(|e| {
        format!(
            "control.tls_client_ca {}: {e}",
            settings.client_ca.display()
        )
    })?;
    let config = server_config(&cert, &key, &ca).map_err(|e| {
        format!(
            "control.tls_cert {} / control.tls_key {}: {e}",
            settings.cert.display(),
            settings.key.display()
        )
    })?;
    let listener = std::net::TcpListener::bind(settings.listen)
        .map_err(|e| format!("control.tls_listen {}: cannot listen: {e}", settings.listen))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control.tls_listen {}: {e}", settings.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("control.tls_listen {}: {e}", settings.listen))?;
    Ok(TlsListener {
        listener,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        admin_names: Arc::new(settings.admin_names.clone()),
        addr,
    })
}

/// Accepts TLS clients until `shutdown` changes (or its sender is dropped), then closes
/// every connection. Must run inside the control thread's runtime.
pub async fn serve(tls: TlsListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let listener = match TcpListener::from_std(tls.listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("control: TLS listener {}: {e}", tls.addr);
            return;
        }
    };
    info!("control API (mutual TLS) listening on {}", tls.addr);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        warn!("control: {MAX_CONNECTIONS} TLS connections open; refusing {addr}");
                        continue;
                    };
                    let acceptor = tls.acceptor.clone();
                    let admin_names = Arc::clone(&tls.admin_names);
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        connection(stream, addr, acceptor, &admin_names, shared, shutdown).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    warn!("control: accepting a TLS connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// Handshakes with one client, identifies it by its certificate, and serves it.
async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    admin_names: &[String],
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            warn!("control: TLS handshake with {addr} failed: {e}");
            return;
        }
        Err(_) => {
            warn!(
                "control: TLS handshake with {addr} did not finish within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            );
            return;
        }
    };
    // The verifier requires a certificate, so there is one; stay defensive anyway.
    let names = match stream.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => cert_names(leaf),
        _ => {
            warn!("control: TLS client {addr} presented no certificate; closing it");
            return;
        }
    };
    let (name, role) = role_for_names(&names, admin_names);
    debug!("control: TLS client {addr} names {names:?}");
    let peer = Peer {
        actor: Actor::tls_client(name, addr),
        role,
    };
    serve_peer(stream, peer, shared, shutdown).await;
}

/// The role of a certificate with `names`, and the name that identifies it: the first of
/// its names in `admin_names` (admin), else its first name (read-only), else `(unnamed)`.
pub fn role_for_names(names: &[String], admin_names: &[String]) -> (String, Role) {
    match names.iter().find(|n| admin_names.contains(n)) {
        Some(n) => (n.clone(), Role::Admin),
        None => (
            names
                .first()
                .cloned()
                .unwrap_or_else(|| "(unnamed)".to_string()),
            Role::ReadOnly,
        ),
    }
}

/// A certificate's names: its subject common names, then the DNS names of its subject
/// alternative names, without duplicates. Unparseable parts yield no name.
pub fn cert_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    let mut names = common_names(ee.subject());
    for dns in ee.valid_dns_names() {
        if !names.iter().any(|n| n == dns) {
            names.push(dns.to_string());
        }
    }
    names
}

/// The common names (OID 2.5.4.3) in the contents of a DER `Name` (a SEQUENCE OF SET OF
/// AttributeTypeAndValue), as text when they are UTF8String, PrintableString or
/// IA5String.
fn common_names(mut name: &[u8]) -> Vec<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut out = Vec::new();
    while let Some((0x31, mut set, rest)) = der_tlv(name) {
        name = rest;
        while let Some((0x30, atv, next)) = der_tlv(set) {
            set = next;
            let Some((0x06, oid, value)) = der_tlv(atv) else {
                continue;
            };
            if oid != CN {
                continue;
            }
            if let Some((0x0c | 0x13 | 0x16, text, _)) = der_tlv(value) {
                if let Ok(s) = std::str::from_utf8(text) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

/// One DER TLV: (tag, contents, rest). `None` if it is truncated or uses a length form
/// DER does not allow.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, tail) = rest.split_at(n);
        rest = tail;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, tail) = rest.split_at(len);
    Some((tag, contents, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(
            der_tlv(&[0x04, 0x01, 0xaa, 0xbb]),
            Some((4, &[0xaa][..], &[0xbb][..]))
        );
        let long = [&[0x04, 0x81, 0x02][..], &[1, 2]].concat();
        assert_eq!(der_tlv(&long), Some((4, &[1, 2][..], &[][..])));
        // Truncated, or a length longer than the input.
        assert_eq!(der_tlv(&[0x04]), None);
        assert_eq!(der_tlv(&[0x04, 0x05, 1]), None);
        assert_eq!(der_tlv(&[0x04, 0x80]), None);
        assert_eq!(der_tlv(&[0x04, 0x85, 1, 1, 1, 1, 1]), None);
    }

    #[test]
    fn names_and_roles() {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut params = rcgen::CertificateParams::new(vec![
            "ops-admin.example.net".to_string(),
            "ops-viewer".to_string(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Ops");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Ops Viewer");
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        let names = cert_names(cert.der());
        assert_eq!(names, ["Ops Viewer", "ops-admin.example.net", "ops-viewer"]);
        let admins = ["ops-admin.example.net".to_string()];
        assert_eq!(
            role_for_names(&names, &admins),
            ("ops-admin.example.net".to_string(), Role::Admin)
        );
        assert_eq!(
            role_for_names(&names, &[]),
            ("Ops Viewer".to_string(), Role::ReadOnly)
        );
        assert_eq!(
            role_for_names(&[], &admins),
            ("(unnamed)".to_string(), Role::ReadOnly)
        );
        assert!(cert_names(&CertificateDer::from(vec![0x30, 0x03, 1])).is_empty());
    }
}
