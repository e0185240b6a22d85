//! The TLS listener end to end, without root: certificates made with rcgen (a CA, the
//! daemon's, clients' — admin, read-only, expired, and one from another CA), the server on
//! 127.0.0.1:0 next to the Unix socket of [`Harness`], clients from `lvs_proto::tls`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use lvs_proto::tls::{client_config, connect_tls_with, provider, roots_from_pem};
use lvs_proto::{LvsControlClient, TlsConnectError, connect_tls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};

use super::*;
use crate::config::TlsSettings;

/// A CA that signs server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf with subject CN `cn` and DNS names `dns`; `expired` makes it valid in 2020
    /// only.
    fn leaf(&self, cn: &str, dns: &[&str], expired: bool) -> Pem {
        let mut params =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2020, 12, 31);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// The PKI of a test: files for the daemon, PEM for the clients.
struct Pki {
    dir: PathBuf,
    ca: Ca,
    other_ca: Ca,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("lvsd-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        Pki {
            dir,
            ca: Ca::new("lvs test CA"),
            other_ca: Ca::new("another CA"),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `[control] tls_*` for a listener on 127.0.0.1:0 whose admin is `ops-admin`.
    fn settings(&self) -> TlsSettings {
        let server = self.ca.leaf("lvsd", &["localhost"], false);
        TlsSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: self.write("server.pem", &server.cert),
            key: self.write("server.key", &server.key),
            client_ca: self.write("clients-ca.pem", &self.ca.pem()),
            admin_names: vec!["ops-admin".to_string()],
            allow_wildcard: false,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(tag: &str) -> (Pki, Harness, SocketAddr) {
    let pki = Pki::new(tag);
    let tls = pki.settings();
    let h = Harness::start(tag, |s| s.tls = Some(tls));
    let addr = h.control.as_ref().unwrap().tls_addr().unwrap();
    (pki, h, addr)
}

async fn connect(pki: &Pki, addr: SocketAddr, client: &Pem) -> LvsControlClient {
    connect_tls(
        addr,
        "localhost",
        pki.ca.pem().as_bytes(),
        client.cert.as_bytes(),
        client.key.as_bytes(),
    )
    .await
    .unwrap()
}

/// Whether a client gets nowhere: the handshake fails, or (TLS 1.3: the daemon checks the
/// client's certificate after the client's side is done) the first RPC does.
async fn refused(connected: Result<LvsControlClient, TlsConnectError>) -> bool {
    let Ok(c) = connected else { return true };
    let answer = tokio::time::timeout(Duration::from_secs(5), c.version(ctx())).await;
    matches!(answer, Ok(Err(_)))
}

#[tokio::test]
async fn an_admin_certificate_may_change_things_and_is_audited_by_name() {
    let (pki, h, addr) = start("tls-admin");
    let admin = pki.ca.leaf("ops-admin", &[], false);
    let c = connect(&pki, addr, &admin).await;
    let me = c.whoami(ctx()).await.unwrap();
    assert_eq!(me.role, Role::Admin);
    let tls = me.actor.tls.clone().unwrap();
    assert_eq!(tls.name, "ops-admin");
    assert_eq!(tls.addr.ip(), addr.ip());
    assert_eq!(me.actor.uid, lvs_proto::Actor::NO_ID);

    let w = c.set_weight(ctx(), WEB, R1, 5).await.unwrap().unwrap();
    assert_eq!((w.old, w.new), (1, 5));
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let expected = format!(
        "tls=ops-admin peer={} set_weight {WEB} {R1} weight=5 -> ok: weight 1 -> 5",
        tls.addr
    );
    assert!(lines[0].ends_with(&expected), "{}", lines[0]);
    // The event names the certificate too.
    let events = c.events_since(ctx(), 0).await.unwrap().unwrap();
    let by = events.iter().find_map(|e| match &e.kind {
        EventKind::WeightChanged { by, .. } => Some(by.clone()),
        _ => None,
    });
    assert_eq!(by, Some(me.actor));
    // The Unix socket still works next to it.
    let local = h.client().await;
    assert_eq!(local.services(ctx()).await.unwrap().unwrap().len(), 3);
}

#[tokio::test]
async fn a_certificate_not_named_admin_may_only_read() {
    let (pki, h, addr) = start("tls-viewer");
    // A DNS name that is not an admin name does not help either.
    let viewer = pki.ca.leaf("ops-viewer", &["viewer.example.net"], false);
    let c = connect(&pki, addr, &viewer).await;
    let me = c.whoami(ctx()).await.unwrap();
    assert_eq!(me.role, Role::ReadOnly);
    assert_eq!(
        me.actor.tls.as_ref().map(|t| t.name.as_str()),
        Some("ops-viewer")
    );
    assert_eq!(c.services(ctx()).await.unwrap().unwrap().len(), 3);
    let e = c.set_weight(ctx(), WEB, R1, 5).await.unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "permission denied: read-only role: certificate `ops-viewer` is not in \
         control.tls_admin_names"
    );
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("tls=ops-viewer peer=127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("-> refused: permission denied"),
        "{}",
        lines[0]
    );
    // An admin name in the SAN counts as well.
    let by_dns = pki.ca.leaf("someone", &["ops-admin"], false);
    let c = connect(&pki, addr, &by_dns).await;
    let me = c.whoami(ctx()).await.unwrap();
    assert_eq!(me.role, Role::Admin);
    assert_eq!(me.actor.tls.map(|t| t.name), Some("ops-admin".to_string()));
}

#[tokio::test]
async fn clients_without_a_good_certificate_are_refused() {
    let (pki, h, addr) = start("tls-refused");
    let ca_pem = pki.ca.pem();
    // No client certificate at all.
    let roots = roots_from_pem(ca_pem.as_bytes(), "CA").unwrap();
    let anonymous = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert!(refused(connect_tls_with(addr, "localhost", Arc::new(anonymous)).await).await);
    // A certificate from another CA, even with an admin name.
    let stranger = pki.other_ca.leaf("ops-admin", &[], false);
    let config = client_config(
        ca_pem.as_bytes(),
        stranger.cert.as_bytes(),
        stranger.key.as_bytes(),
    )
    .unwrap();
    assert!(refused(connect_tls_with(addr, "localhost", Arc::new(config)).await).await);
    // An expired one.
    let expired = pki.ca.leaf("ops-admin", &[], true);
    let config = client_config(
        ca_pem.as_bytes(),
        expired.cert.as_bytes(),
        expired.key.as_bytes(),
    )
    .unwrap();
    assert!(refused(connect_tls_with(addr, "localhost", Arc::new(config)).await).await);
    // A client that does not trust the daemon's CA stops at the handshake.
    let admin = pki.ca.leaf("ops-admin", &[], false);
    let e = connect_tls(
        addr,
        "localhost",
        pki.other_ca.pem().as_bytes(),
        admin.cert.as_bytes(),
        admin.key.as_bytes(),
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.starts_with(&format!("TLS handshake with lvsd at {addr} failed")),
        "{e}"
    );
    // Nothing was audited, and a good client still gets in.
    assert!(h.audit_lines().is_empty());
    let c = connect(&pki, addr, &admin).await;
    assert_eq!(c.whoami(ctx()).await.unwrap().role, Role::Admin);
}

#[test]
fn startup_errors_name_the_key_and_the_file() {
    let pki = Pki::new("tls-files");
    let mut tls = pki.settings();
    tls.client_ca = pki.dir.join("missing.pem");
    let e = crate::control::tls::bind(&tls).err().unwrap_or_default();
    assert!(
        e.starts_with(&format!(
            "control.tls_client_ca {}: cannot read:",
            tls.client_ca.display()
        )),
        "{e}"
    );
    let mut tls = pki.settings();
    tls.listen = "0.0.0.0:0".parse().unwrap();
    let e = crate::control::tls::bind(&tls).err().unwrap_or_default();
    assert_eq!(
        e,
        "control.tls_listen 0.0.0.0:0: a wildcard address needs control.tls_allow_wildcard = true"
    );
    let mut tls = pki.settings();
    tls.key = pki.write("not-a-key.pem", &pki.ca.pem());
    let e = crate::control::tls::bind(&tls).err().unwrap_or_default();
    assert_eq!(
        e,
        format!(
            "control.tls_key {}: key: no `BEGIN ... PRIVATE KEY` block found",
            tls.key.display()
        )
    );
}
