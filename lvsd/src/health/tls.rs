//! The TLS client side of `https` checks (rustls, *ring*).
//!
//! `tls_verify = false` (the default, like keepalived's `SSL_GET`): any certificate is
//! accepted, but the handshake signatures are still checked, so the server must hold the
//! key of the certificate it sent. `tls_verify = true`: the certificate must chain to the
//! CAs in `tls_ca` and name the `virtualhost` (or, without one, the address). The server
//! name sent (SNI) is the `virtualhost` when it is a DNS name.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::config::TlsCheck;

/// A client configuration and the name to present, prepared once per target.
#[derive(Debug, Clone)]
pub(super) struct TlsSetup {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// Builds the client side for `tls`; reads `tls_ca` now. The error is the check's failure
/// message (`TLS: tls_ca /etc/ca.pem: cannot read: ...`).
pub(super) fn setup(
    tls: &TlsCheck,
    virtualhost: Option<&str>,
    target: SocketAddr,
) -> Result<TlsSetup, String> {
    let provider = lvs_proto::tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match (&tls.ca, tls.verify) {
        (Some(ca), true) => {
            let what = |m: String| format!("TLS: tls_ca {}: {m}", ca.display());
            let pem = std::fs::read(ca).map_err(|e| what(format!("cannot read: {e}")))?;
            let roots = lvs_proto::tls::roots_from_pem(&pem, "CA certificate")
                .map_err(|e| what(e.to_string()))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        // Configuration validation makes tls_verify need tls_ca; without one, nothing is
        // trusted rather than everything.
        (None, true) => {
            return Err("TLS: tls_verify needs tls_ca".into());
        }
        (_, false) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    // A host name without its port, as SNI and for verification; else the address.
    let host = virtualhost.map(host_part);
    let name = host
        .and_then(|h| ServerName::try_from(h.to_string()).ok())
        .unwrap_or(ServerName::IpAddress(target.ip().into()));
    Ok(TlsSetup {
        config: Arc::new(config),
        name,
    })
}

/// The host of a `virtualhost`: without a `:PORT`, an IPv6 address without its brackets
/// (`www.example.test:8443` -> `www.example.test`, `[2001:db8::11]:8443` -> `2001:db8::11`,
/// `2001:db8::11` as it is).
fn host_part(v: &str) -> &str {
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    if v.parse::<std::net::IpAddr>().is_ok() {
        return v;
    }
    match v.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => v,
    }
}

/// A TLS failure in a few words: rustls's error when the I/O error wraps one.
pub(super) fn error(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.to_string(),
        None => super::checker::io_error(e),
    }
}

/// Accepts every certificate, checks the handshake signatures (`tls_verify = false`).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::host_part;

    #[test]
    fn the_host_of_a_virtualhost_drops_the_port_and_the_brackets() {
        assert_eq!(host_part("www.example.test"), "www.example.test");
        assert_eq!(host_part("www.example.test:8443"), "www.example.test");
        assert_eq!(host_part("[2001:db8:b::11]:8443"), "2001:db8:b::11");
        assert_eq!(host_part("[2001:db8:b::11]"), "2001:db8:b::11");
        assert_eq!(host_part("2001:db8:b::11"), "2001:db8:b::11");
        assert_eq!(host_part("192.0.2.11:443"), "192.0.2.11");
    }
}
