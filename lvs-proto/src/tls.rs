//! The control API over TCP with mutual TLS: the client connect helper [`connect_tls`] and
//! the PEM and rustls helpers that lvsd's TLS listener shares.
//!
//! - Same framing and JSON codec as the Unix socket ([`crate::transport`]); TLS only wraps
//!   the byte stream.
//! - rustls with the *ring* crypto provider ([`provider`]), passed explicitly everywhere,
//!   so nothing depends on a process-wide default provider being installed.
//! - Mutual: the client verifies the daemon's certificate against the CA given to it and
//!   for the name it dials; the daemon requires a client certificate signed by its
//!   configured client CA. With TLS 1.3 a refused client certificate shows up on the first
//!   RPC (the daemon's alert arrives after the client's side of the handshake is done).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;

use crate::api::LvsControlClient;
use crate::transport::client_transport;

/// How long [`connect_tls`] waits for the TCP connection and the handshake together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS connection could not be set up, in a sentence naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    /// A PEM input held nothing usable.
    #[error("{what}: {message}")]
    Pem {
        /// Which input (`CA certificate`, `client certificate`, `client key`).
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificates or key (e.g. a key that does not match).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The name to verify the daemon's certificate for is not a DNS name or IP address.
    #[error("`{name}` is not a DNS name or IP address to verify the daemon's certificate for")]
    ServerName {
        /// The name given.
        name: String,
    },
    /// Nothing listens there.
    #[error("lvsd is not listening at {addr} (connection refused)")]
    NotListening {
        /// The address dialled.
        addr: String,
    },
    /// The TCP connection failed otherwise.
    #[error("cannot connect to lvsd at {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// The error.
        source: io::Error,
    },
    /// The TLS handshake failed (untrusted or misnamed server certificate, or the daemon
    /// refused this client's certificate).
    #[error("TLS handshake with lvsd at {addr} failed: {source}")]
    Handshake {
        /// The address dialled.
        addr: String,
        /// The error.
        source: io::Error,
    },
    /// No answer within [`CONNECT_TIMEOUT`].
    #[error("no answer from lvsd at {addr} within {} s", CONNECT_TIMEOUT.as_secs())]
    Timeout {
        /// The address dialled.
        addr: String,
    },
}

/// The crypto provider every TLS configuration of lvs uses (*ring*).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM text, in order; an error if there is none or one is
/// malformed. `what` names the input in the message.
pub fn certs_from_pem(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConnectError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConnectError::Pem {
            what,
            message: format!("malformed PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsConnectError::Pem {
            what,
            message: "no `BEGIN CERTIFICATE` block found".into(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM text.
pub fn key_from_pem(
    pem: &[u8],
    what: &'static str,
) -> Result<PrivateKeyDer<'static>, TlsConnectError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsConnectError::Pem {
        what,
        message: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no `BEGIN ... PRIVATE KEY` block found".to_string()
            }
            e => format!("malformed PEM: {e}"),
        },
    })
}

/// A root store holding every certificate of a PEM text.
pub fn roots_from_pem(pem: &[u8], what: &'static str) -> Result<RootCertStore, TlsConnectError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem, what)? {
        roots.add(cert).map_err(|e| TlsConnectError::Pem {
            what,
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A client configuration: trusts the daemons whose certificates `ca_pem` signed and
/// presents `client_cert_pem` (leaf first, then intermediates) with `client_key_pem`.
pub fn client_config(
    ca_pem: &[u8],
    client_cert_pem: &[u8],
    client_key_pem: &[u8],
) -> Result<ClientConfig, TlsConnectError> {
    let roots = roots_from_pem(ca_pem, "CA certificate")?;
    let certs = certs_from_pem(client_cert_pem, "client certificate")?;
    let key = key_from_pem(client_key_pem, "client key")?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?)
}

/// Connects to lvsd's TLS listener at `addr` (`HOST:PORT` or a socket address), checks
/// that its certificate was signed by `ca_pem` and is valid for `server_name`, presents
/// the client certificate, and starts the client's dispatch task. Call it inside a tokio
/// runtime; the client is cheap to clone.
pub async fn connect_tls(
    addr: impl ToSocketAddrs + fmt::Display,
    server_name: &str,
    ca_pem: &[u8],
    client_cert_pem: &[u8],
    client_key_pem: &[u8],
) -> Result<LvsControlClient, TlsConnectError> {
    let config = client_config(ca_pem, client_cert_pem, client_key_pem)?;
    connect_tls_with(addr, server_name, Arc::new(config)).await
}

/// [`connect_tls`] with a ready client configuration (e.g. one built with rustls directly).
pub async fn connect_tls_with(
    addr: impl ToSocketAddrs + fmt::Display,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<LvsControlClient, TlsConnectError> {
    let name =
        ServerName::try_from(server_name.to_string()).map_err(|_| TlsConnectError::ServerName {
            name: server_name.to_string(),
        })?;
    let shown = addr.to_string();
    let connect = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            let addr = shown.clone();
            match e.kind() {
                io::ErrorKind::ConnectionRefused => TlsConnectError::NotListening { addr },
                _ => TlsConnectError::Connect { addr, source: e },
            }
        })?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| TlsConnectError::Handshake {
                addr: shown.clone(),
                source: e,
            })
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| TlsConnectError::Timeout {
            addr: shown.clone(),
        })??;
    Ok(LvsControlClient::new(tarpc::client::Config::default(), client_transport(stream)).spawn())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_name_the_input() {
        let e = certs_from_pem(b"nothing here", "CA certificate")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("CA certificate: no `BEGIN CERTIFICATE` block found")
        );
        let e = key_from_pem(b"", "client key").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("client key: no `BEGIN ... PRIVATE KEY` block found")
        );
    }

    #[test]
    fn builds_a_client_config_from_rcgen_pem() {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = rcgen::CertificateParams::new(vec!["ops-admin".to_string()])
            .and_then(|p| p.self_signed(&key))
            .unwrap_or_else(|e| panic!("{e}"));
        let pem = cert.pem();
        let config = client_config(
            pem.as_bytes(),
            pem.as_bytes(),
            key.serialize_pem().as_bytes(),
        );
        assert!(config.is_ok(), "{:?}", config.err());
        // A key that is not the certificate's is refused.
        let other = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let config = client_config(
            pem.as_bytes(),
            pem.as_bytes(),
            other.serialize_pem().as_bytes(),
        );
        assert!(config.is_err());
    }

    #[tokio::test]
    async fn a_closed_port_says_nothing_listens() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        drop(l);
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let e = connect_tls_with(addr, "localhost", Arc::new(config))
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e,
            Some(format!(
                "lvsd is not listening at {addr} (connection refused)"
            ))
        );
    }
}
