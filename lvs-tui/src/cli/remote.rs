//! `lvsctl --connect tls://HOST:PORT --ca FILE --cert FILE --key FILE`: reaching lvsd's
//! TCP listener with mutual TLS instead of its Unix socket.
//!
//! - [`TlsTarget::from_flags`] checks the flags without touching the files (so usage
//!   errors exit 2 even when the files or the daemon are missing); the files are read when
//!   connecting, and a file that cannot be read or holds no usable PEM is named in the
//!   error (exit 1).
//! - The daemon's certificate must be signed by `--ca` and valid for HOST (or for
//!   `--tls-name NAME` when connecting by an address the certificate does not name).
//! - The target is in scope for one run ([`scope`]), where the CLI's single connect point
//!   picks it up ([`current`]) instead of the socket; `--connect` takes precedence over
//!   `--socket`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lvs_proto::LvsControlClient;

use super::CliError;

tokio::task_local! {
    static TARGET: Option<Arc<TlsTarget>>;
}

/// Where and how to connect over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// The URL as given (`tls://HOST:PORT`), for messages.
    pub url: String,
    /// `HOST:PORT` to dial.
    pub addr: String,
    /// The name the daemon's certificate must be valid for.
    pub server_name: String,
    /// `--ca`.
    pub ca: PathBuf,
    /// `--cert`.
    pub cert: PathBuf,
    /// `--key`.
    pub key: PathBuf,
}

impl TlsTarget {
    /// The target the flags ask for: `None` without `--connect`; a usage error for a URL
    /// that is not `tls://HOST:PORT`, a missing `--ca`/`--cert`/`--key`, or those flags
    /// without `--connect`.
    pub fn from_flags(
        connect: Option<&str>,
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        tls_name: Option<&str>,
    ) -> Result<Option<TlsTarget>, CliError> {
        let Some(url) = connect else {
            let stray = [
                ("--ca", ca.is_some()),
                ("--cert", cert.is_some()),
                ("--key", key.is_some()),
                ("--tls-name", tls_name.is_some()),
            ];
            return match stray.iter().find(|(_, given)| *given) {
                Some((flag, _)) => Err(CliError::Usage(format!(
                    "{flag} is only used with --connect tls://HOST:PORT"
                ))),
                None => Ok(None),
            };
        };
        let bad = || {
            CliError::Usage(format!(
                "--connect `{url}` is not a TLS address: write tls://HOST:PORT, e.g. \
                 tls://192.0.2.1:7443"
            ))
        };
        let addr = url.strip_prefix("tls://").ok_or_else(bad)?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad());
        }
        let need = |flag: &str, v: Option<&Path>| {
            v.map(Path::to_path_buf).ok_or_else(|| {
                CliError::Usage(format!("--connect {url} needs {flag} FILE as well"))
            })
        };
        Ok(Some(TlsTarget {
            url: url.to_string(),
            addr: addr.to_string(),
            server_name: tls_name.unwrap_or(host).to_string(),
            ca: need("--ca", ca)?,
            cert: need("--cert", cert)?,
            key: need("--key", key)?,
        }))
    }

    /// Reads the files and connects.
    pub async fn connect(&self) -> Result<LvsControlClient, CliError> {
        let read = |flag: &str, p: &Path| {
            std::fs::read(p)
                .map_err(|e| CliError::Failed(format!("cannot read {flag} {}: {e}", p.display())))
        };
        let ca = read("--ca", &self.ca)?;
        let cert = read("--cert", &self.cert)?;
        let key = read("--key", &self.key)?;
        // Name the file whose content is wrong.
        let pem = |flag: &str, p: &Path, e: lvs_proto::TlsConnectError| {
            CliError::Failed(format!("{flag} {}: {e}", p.display()))
        };
        lvs_proto::tls::roots_from_pem(&ca, "CA certificate")
            .map_err(|e| pem("--ca", &self.ca, e))?;
        lvs_proto::tls::certs_from_pem(&cert, "client certificate")
            .map_err(|e| pem("--cert", &self.cert, e))?;
        lvs_proto::tls::key_from_pem(&key, "client key").map_err(|e| pem("--key", &self.key, e))?;
        lvs_proto::connect_tls(self.addr.as_str(), &self.server_name, &ca, &cert, &key)
            .await
            .map_err(|e| CliError::Failed(e.to_string()))
    }
}

/// Runs `f` with `target` as the connection to use.
pub async fn scope<F: Future>(target: Option<TlsTarget>, f: F) -> F::Output {
    TARGET.scope(target.map(Arc::new), f).await
}

/// The TLS target of the running command, if it has one.
pub fn current() -> Option<Arc<TlsTarget>> {
    TARGET.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(r: Result<Option<TlsTarget>, CliError>) -> String {
        match r {
            Err(CliError::Usage(m)) => m,
            other => format!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn flags() {
        let (ca, cert, key) = (Path::new("/ca"), Path::new("/c"), Path::new("/k"));
        assert_eq!(
            TlsTarget::from_flags(None, None, None, None, None).ok(),
            Some(None)
        );
        let t = TlsTarget::from_flags(
            Some("tls://lvs1.example.net:7443"),
            Some(ca),
            Some(cert),
            Some(key),
            None,
        );
        let t = t.ok().flatten();
        assert_eq!(
            t.as_ref().map(|t| t.addr.as_str()),
            Some("lvs1.example.net:7443")
        );
        assert_eq!(
            t.as_ref().map(|t| t.server_name.as_str()),
            Some("lvs1.example.net")
        );
        let t = TlsTarget::from_flags(
            Some("tls://[2001:db8::1]:7443"),
            Some(ca),
            Some(cert),
            Some(key),
            Some("lvs1"),
        )
        .ok()
        .flatten();
        assert_eq!(
            t.map(|t| (t.addr, t.server_name)),
            Some(("[2001:db8::1]:7443".to_string(), "lvs1".to_string()))
        );
        assert_eq!(
            usage(TlsTarget::from_flags(
                Some("https://x:1"),
                Some(ca),
                Some(cert),
                Some(key),
                None
            )),
            "--connect `https://x:1` is not a TLS address: write tls://HOST:PORT, e.g. \
             tls://192.0.2.1:7443"
        );
        assert!(
            usage(TlsTarget::from_flags(
                Some("tls://x"),
                None,
                None,
                None,
                None
            ))
            .contains("not a TLS address")
        );
        assert_eq!(
            usage(TlsTarget::from_flags(
                Some("tls://x:7443"),
                Some(ca),
                None,
                Some(key),
                None
            )),
            "--connect tls://x:7443 needs --cert FILE as well"
        );
        assert_eq!(
            usage(TlsTarget::from_flags(None, Some(ca), None, None, None)),
            "--ca is only used with --connect tls://HOST:PORT"
        );
    }
}
