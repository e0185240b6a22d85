//! Validation of `health_check` and `passive` tables into [`HealthCheck`] and
//! [`PassiveCheck`].
//!
//! Every error names the key (`virtual_server[0].health_check.timeout`) and its line. A key
//! that belongs to another kind (`path` in a `tcp` check) is an error, never ignored.
//!
//! The keys, in keepalived's vocabulary (defaults in parentheses):
//!
//! ```toml
//! [[virtual_server]]
//! sorry_server = "192.0.2.99:80"  # or a bare IP (the virtual port); service forwarding
//! quorum = 1                      # >= 1: total weight of the live real servers needed
//! hysteresis = 0                  # 0..quorum
//! [virtual_server.health_check]   # the default of its real servers
//! kind = "http"                   # tcp | http | https | udp | dns | exec (required)
//! interval = "5s"                 # delay_loop, 100ms..=1h (keepalived's 60 s is too slow)
//! timeout = "5s"                  # connect_timeout, 0 < timeout <= interval (min(5s, interval))
//! rise = 1                        # 1..=100
//! fall = 1                        # keepalived retry, 1..=100
//! alpha = false                   # start down until `rise` successes
//! warmup = "0s"                   # first check after a random delay in 0..warmup (<= 1h)
//! inhibit_on_failure = false      # down = weight 0 instead of out of the list
//! connect_ip = "192.0.2.50"       # check another address / port (default: the server's);
//!                                 # IPv4 or IPv6 ("2001:db8:b::50"), any server's family
//! connect_port = 8080
//! # http, https:
//! path = "/"                      # starts with /, no spaces
//! status = [200, 299]             # one code (200), one range, or [[200, 299], [301, 302]]
//! virtualhost = "www.example.test"  # Host header and TLS name (default: the address;
//!                                 # "[2001:db8:b::11]:8080" style for an IPv6 literal)
//! digest = "<32 hex digits>"      # MD5 of the body (genhash)
//! regex = "..."                   # must match the body (bytes)
//! tls_verify = false              # https only; true needs tls_ca
//! tls_ca = "/etc/lvsd/rs-ca.pem"  # https with tls_verify only; absolute path
//! # udp: payload / payload_hex (default empty), expect / expect_hex (reply prefix; any reply)
//! # dns: name (default "."), type (A AAAA NS CNAME SOA MX TXT; default SOA), expect
//! # exec: command = ["/abs/path", "arg"] (required), dynamic_weight = false (misc_dynamic)
//! [virtual_server.passive]        # TCP services whose real servers are all NAT
//! failures = 5                    # 1..=1000 failed handshakes in a row -> down
//! syn_timeout = "2s"              # 100ms..=1h
//! backoff = "5s"                  # first retry, doubles; 100ms..=1h, <= max_backoff
//! max_backoff = "5m"              # 100ms..=1h
//! [[virtual_server.real_server]]
//! [virtual_server.real_server.health_check]  # replaces the service default completely
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw;
use super::{
    BodyRegex, CheckKind, ConfigError, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT, DnsCheck,
    DnsType, ExecCheck, HealthCheck, HttpCheck, MAX_CHECK_INTERVAL, MIN_CHECK_INTERVAL,
    PassiveCheck, Source, TlsCheck, UdpCheck,
};

/// The longest `payload` / `expect` of a UDP check (one datagram).
const MAX_PAYLOAD: usize = 65_507;

/// Validates one `health_check` table; `key` is its dotted path.
pub(super) fn health_check(
    src: &Source<'_>,
    key: &str,
    hc: &Spanned<raw::HealthCheck>,
) -> Result<HealthCheck, ConfigError> {
    let table_span = hc.span();
    let hc = hc.get_ref();
    let k = |name: &str| format!("{key}.{name}");
    let kind_name = hc.kind.get_ref().as_str();
    if !matches!(kind_name, "tcp" | "http" | "https" | "udp" | "dns" | "exec") {
        return Err(src.error(
            &hc.kind.span(),
            &k("kind"),
            format!(
                "unknown check kind `{kind_name}`: expected tcp, http, https, udp, dns or exec"
            ),
        ));
    }
    foreign_keys(src, key, kind_name, hc)?;

    let interval = match duration(src, &k("interval"), &hc.interval)? {
        None => DEFAULT_CHECK_INTERVAL,
        Some((d, span)) => {
            if !(MIN_CHECK_INTERVAL..=MAX_CHECK_INTERVAL).contains(&d) {
                return Err(src.error(
                    &span,
                    &k("interval"),
                    format!("{d:?} is out of range: an interval is 100ms..=1h"),
                ));
            }
            d
        }
    };
    let timeout = match duration(src, &k("timeout"), &hc.timeout)? {
        None => DEFAULT_CHECK_TIMEOUT.min(interval),
        Some((d, span)) => {
            if d.is_zero() {
                return Err(src.error(&span, &k("timeout"), "must be greater than zero".into()));
            }
            if d > interval {
                return Err(src.error(
                    &span,
                    &k("timeout"),
                    format!(
                        "{d:?} is longer than the interval {interval:?}: a check must finish \
                         before the next one starts"
                    ),
                ));
            }
            d
        }
    };
    let warmup = match duration(src, &k("warmup"), &hc.warmup)? {
        None => Duration::ZERO,
        Some((d, span)) => {
            if d > MAX_CHECK_INTERVAL {
                return Err(src.error(
                    &span,
                    &k("warmup"),
                    format!("{d:?} is too long: at most 1h"),
                ));
            }
            d
        }
    };
    let count = |name: &str, v: &Option<Spanned<i64>>| -> Result<u32, ConfigError> {
        let Some(v) = v else { return Ok(1) };
        let n = *v.get_ref();
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| src.error(&v.span(), &k(name), format!("{n} is out of range: 1..=100")))
    };
    let rise = count("rise", &hc.rise)?;
    let fall = count("fall", &hc.fall)?;
    let connect_ip = match &hc.connect_ip {
        None => None,
        Some(v) => Some(connect_ip(v).map_err(|m| src.error(&v.span(), &k("connect_ip"), m))?),
    };
    let connect_port = match &hc.connect_port {
        None => None,
        Some(v) => {
            let n = *v.get_ref();
            Some(u16::try_from(n).ok().filter(|&p| p != 0).ok_or_else(|| {
                src.error(
                    &v.span(),
                    &k("connect_port"),
                    format!("{n} is not a port: 1..=65535"),
                )
            })?)
        }
    };
    let kind = match kind_name {
        "tcp" => CheckKind::Tcp,
        "http" | "https" => CheckKind::Http(http(src, key, kind_name == "https", hc)?),
        "udp" => CheckKind::Udp(udp(src, key, hc)?),
        "dns" => CheckKind::Dns(dns(src, key, hc)?),
        _ => CheckKind::Exec(exec(src, key, &table_span, hc)?),
    };
    Ok(HealthCheck {
        kind,
        interval,
        timeout,
        rise,
        fall,
        alpha: hc.alpha.as_ref().is_some_and(|a| *a.get_ref()),
        warmup,
        inhibit_on_failure: hc.inhibit_on_failure.as_ref().is_some_and(|a| *a.get_ref()),
        connect_ip,
        connect_port,
    })
}

/// Refuses keys that belong to another kind of check.
fn foreign_keys(
    src: &Source<'_>,
    key: &str,
    kind: &str,
    hc: &raw::HealthCheck,
) -> Result<(), ConfigError> {
    let is_http = matches!(kind, "http" | "https");
    let present: [(&str, Option<Range<usize>>, bool); 15] = [
        ("path", hc.path.as_ref().map(Spanned::span), is_http),
        ("status", hc.status.as_ref().map(Spanned::span), is_http),
        (
            "virtualhost",
            hc.virtualhost.as_ref().map(Spanned::span),
            is_http,
        ),
        ("digest", hc.digest.as_ref().map(Spanned::span), is_http),
        ("regex", hc.regex.as_ref().map(Spanned::span), is_http),
        (
            "tls_verify",
            hc.tls_verify.as_ref().map(Spanned::span),
            kind == "https",
        ),
        (
            "tls_ca",
            hc.tls_ca.as_ref().map(Spanned::span),
            kind == "https",
        ),
        (
            "payload",
            hc.payload.as_ref().map(Spanned::span),
            kind == "udp",
        ),
        (
            "payload_hex",
            hc.payload_hex.as_ref().map(Spanned::span),
            kind == "udp",
        ),
        (
            "expect",
            hc.expect.as_ref().map(Spanned::span),
            matches!(kind, "udp" | "dns"),
        ),
        (
            "expect_hex",
            hc.expect_hex.as_ref().map(Spanned::span),
            kind == "udp",
        ),
        ("name", hc.name.as_ref().map(Spanned::span), kind == "dns"),
        (
            "type",
            hc.record_type.as_ref().map(Spanned::span),
            kind == "dns",
        ),
        (
            "command",
            hc.command.as_ref().map(Spanned::span),
            kind == "exec",
        ),
        (
            "dynamic_weight",
            hc.dynamic_weight.as_ref().map(Spanned::span),
            kind == "exec",
        ),
    ];
    for (name, span, allowed) in present {
        if let (Some(span), false) = (span, allowed) {
            let owner = match name {
                "path" | "status" | "virtualhost" | "digest" | "regex" => "http and https checks",
                "tls_verify" | "tls_ca" => "https checks (kind = \"https\")",
                "payload" | "payload_hex" | "expect_hex" => "udp checks",
                "expect" => "udp and dns checks",
                "name" | "type" => "dns checks",
                _ => "exec checks",
            };
            return Err(src.error(
                &span,
                &format!("{key}.{name}"),
                format!("is for {owner}, not for kind = \"{kind}\""),
            ));
        }
    }
    Ok(())
}

fn duration(
    src: &Source<'_>,
    key: &str,
    v: &Option<Spanned<raw::Seconds>>,
) -> Result<Option<(Duration, Range<usize>)>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let d = v
        .get_ref()
        .to_duration()
        .map_err(|m| src.error(&v.span(), key, m))?;
    Ok(Some((d, v.span())))
}

/// `connect_ip`: a unicast IPv4 or IPv6 address (loopback allowed: a local agent may
/// answer), of either family whatever the real server's; an IPv6 one may be written in
/// brackets. Not link-local (no interface to say which link) nor IPv4-mapped.
fn connect_ip(v: &Spanned<String>) -> Result<IpAddr, String> {
    let text = v.get_ref().trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .filter(|t| t.contains(':'))
        .unwrap_or(text);
    let ip = bare.parse::<IpAddr>().map_err(|_| {
        format!("`{text}` is not an IP address (IPv4 or IPv6; write the port in connect_port)")
    })?;
    match ip {
        IpAddr::V4(a) if a.is_unspecified() || a.is_multicast() || a.is_broadcast() => {
            Err(format!("`{ip}` cannot be checked"))
        }
        IpAddr::V6(a) if a.is_unspecified() || a.is_multicast() => {
            Err(format!("`{ip}` cannot be checked"))
        }
        IpAddr::V6(a) if a.is_unicast_link_local() => Err(format!(
            "`{ip}` is link-local: a check needs an address without an interface scope"
        )),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => Err(format!(
            "`{ip}` is an IPv4-mapped IPv6 address: write the IPv4 address itself"
        )),
        ip => Ok(ip),
    }
}

fn http(
    src: &Source<'_>,
    key: &str,
    https: bool,
    hc: &raw::HealthCheck,
) -> Result<HttpCheck, ConfigError> {
    let k = |name: &str| format!("{key}.{name}");
    let path = match &hc.path {
        None => "/".to_string(),
        Some(p) => {
            let t = p.get_ref();
            if !t.starts_with('/') || t.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(src.error(
                    &p.span(),
                    &k("path"),
                    format!("`{t}` is not a request path: it starts with / and has no spaces"),
                ));
            }
            t.clone()
        }
    };
    let status = match &hc.status {
        None => vec![(200, 299)],
        Some(s) => status(s.get_ref()).map_err(|m| src.error(&s.span(), &k("status"), m))?,
    };
    let virtualhost = match &hc.virtualhost {
        None => None,
        Some(v) => {
            let t = v.get_ref();
            let ok = !t.is_empty()
                && t.len() <= 253
                && t.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
                });
            if !ok {
                return Err(src.error(
                    &v.span(),
                    &k("virtualhost"),
                    format!("`{t}` is not a host name"),
                ));
            }
            Some(t.clone())
        }
    };
    let digest = match &hc.digest {
        None => None,
        Some(d) => Some(md5_hex(d.get_ref()).ok_or_else(|| {
            src.error(
                &d.span(),
                &k("digest"),
                format!(
                    "`{}` is not an MD5 digest: 32 hexadecimal digits, as genhash prints it",
                    d.get_ref()
                ),
            )
        })?),
    };
    let regex = match &hc.regex {
        None => None,
        Some(r) => Some(
            BodyRegex::new(r.get_ref())
                .map_err(|e| src.error(&r.span(), &k("regex"), format!("invalid: {e}")))?,
        ),
    };
    let tls = if https {
        let verify = hc.tls_verify.as_ref().is_some_and(|v| *v.get_ref());
        let ca = match &hc.tls_ca {
            None => None,
            Some(p) => {
                let path = PathBuf::from(p.get_ref());
                if !path.is_absolute() || path.file_name().is_none() {
                    return Err(src.error(
                        &p.span(),
                        &k("tls_ca"),
                        format!("`{}` must be an absolute path to a file", p.get_ref()),
                    ));
                }
                Some(path)
            }
        };
        if verify && ca.is_none() {
            let span = hc.tls_verify.as_ref().map_or(hc.kind.span(), Spanned::span);
            return Err(src.error(
                &span,
                &k("tls_verify"),
                "needs tls_ca: the CA that signed the real servers' certificates (PEM)".into(),
            ));
        }
        if !verify {
            if let Some(p) = &hc.tls_ca {
                return Err(src.error(
                    &p.span(),
                    &k("tls_ca"),
                    "has no effect without tls_verify = true".into(),
                ));
            }
        }
        Some(TlsCheck { verify, ca })
    } else {
        None
    };
    Ok(HttpCheck {
        path,
        status,
        virtualhost,
        digest,
        regex,
        tls,
    })
}

/// `status`: ranges of codes within 100..=599.
fn status(s: &raw::Status) -> Result<Vec<(u16, u16)>, String> {
    let code = |n: i64| -> Result<u16, String> {
        u16::try_from(n)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| format!("{n} is not an HTTP status code: 100..=599"))
    };
    let range = |r: &[i64]| -> Result<(u16, u16), String> {
        let [lo, hi] = r else {
            return Err(format!(
                "{r:?} is not a range: write [LOW, HIGH], one code, or a list of ranges"
            ));
        };
        let (lo, hi) = (code(*lo)?, code(*hi)?);
        if lo > hi {
            return Err(format!("[{lo}, {hi}] is empty: the low code comes first"));
        }
        Ok((lo, hi))
    };
    match s {
        raw::Status::Code(n) => code(*n).map(|c| vec![(c, c)]),
        raw::Status::Range(r) => range(r).map(|r| vec![r]),
        raw::Status::Ranges(list) if list.is_empty() => Err("no status codes given".into()),
        raw::Status::Ranges(list) => list.iter().map(|r| range(r)).collect(),
    }
}

/// 32 hex digits into 16 bytes.
fn md5_hex(text: &str) -> Option<[u8; 16]> {
    let bytes = hex(text.trim())?;
    bytes.try_into().ok()
}

/// Hex digits (an even number, either case) into bytes.
pub(super) fn hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

fn udp(src: &Source<'_>, key: &str, hc: &raw::HealthCheck) -> Result<UdpCheck, ConfigError> {
    let bytes = |text: &Option<Spanned<String>>,
                 hex_text: &Option<Spanned<String>>,
                 name: &str|
     -> Result<Option<Vec<u8>>, ConfigError> {
        let hex_name = format!("{name}_hex");
        let value = match (text, hex_text) {
            (Some(_), Some(h)) => {
                return Err(src.error(
                    &h.span(),
                    &format!("{key}.{hex_name}"),
                    format!("give {name} or {hex_name}, not both"),
                ));
            }
            (Some(t), None) => Some((t.get_ref().as_bytes().to_vec(), t.span(), name.to_string())),
            (None, Some(h)) => {
                let b = hex(h.get_ref().trim()).ok_or_else(|| {
                    src.error(
                        &h.span(),
                        &format!("{key}.{hex_name}"),
                        format!(
                            "`{}` is not hexadecimal bytes (an even number of 0-9a-f digits)",
                            h.get_ref()
                        ),
                    )
                })?;
                Some((b, h.span(), hex_name))
            }
            (None, None) => None,
        };
        match value {
            Some((b, span, name)) if b.len() > MAX_PAYLOAD => Err(src.error(
                &span,
                &format!("{key}.{name}"),
                format!(
                    "{} bytes is more than one datagram ({MAX_PAYLOAD})",
                    b.len()
                ),
            )),
            other => Ok(other.map(|(b, _, _)| b)),
        }
    };
    Ok(UdpCheck {
        payload: bytes(&hc.payload, &hc.payload_hex, "payload")?.unwrap_or_default(),
        expect: bytes(&hc.expect, &hc.expect_hex, "expect")?,
    })
}

fn dns(src: &Source<'_>, key: &str, hc: &raw::HealthCheck) -> Result<DnsCheck, ConfigError> {
    let k = |name: &str| format!("{key}.{name}");
    let name = match &hc.name {
        None => ".".to_string(),
        Some(n) => {
            let t = n.get_ref().trim();
            let labels_ok = t == "."
                || (!t.is_empty()
                    && t.len() <= 253
                    && t.trim_end_matches('.').split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                    }));
            if !labels_ok {
                return Err(src.error(
                    &n.span(),
                    &k("name"),
                    format!("`{t}` is not a domain name"),
                ));
            }
            t.to_string()
        }
    };
    let record_type = match &hc.record_type {
        None => DnsType::Soa,
        Some(t) => {
            let upper = t.get_ref().trim().to_ascii_uppercase();
            DnsType::ALL
                .into_iter()
                .find(|d| d.name() == upper)
                .ok_or_else(|| {
                    src.error(
                        &t.span(),
                        &k("type"),
                        format!(
                            "unknown record type `{}`: expected A, AAAA, NS, CNAME, SOA, MX or TXT",
                            t.get_ref()
                        ),
                    )
                })?
        }
    };
    let expect = match &hc.expect {
        None => None,
        Some(e) => {
            let t = e.get_ref().trim();
            let ok = match record_type {
                DnsType::A => t.parse::<Ipv4Addr>().is_ok(),
                DnsType::Aaaa => t.parse::<Ipv6Addr>().is_ok(),
                _ => !t.is_empty(),
            };
            if !ok {
                return Err(src.error(
                    &e.span(),
                    &k("expect"),
                    format!(
                        "`{t}` cannot be the value of a {} record",
                        record_type.name()
                    ),
                ));
            }
            Some(t.to_string())
        }
    };
    Ok(DnsCheck {
        name,
        record_type,
        expect,
    })
}

fn exec(
    src: &Source<'_>,
    key: &str,
    table: &Range<usize>,
    hc: &raw::HealthCheck,
) -> Result<ExecCheck, ConfigError> {
    let k = format!("{key}.command");
    let Some(cmd) = &hc.command else {
        return Err(src.error(
            table,
            &k,
            "an exec check needs command = [\"/path/to/program\", \"arg\", ...]".into(),
        ));
    };
    let Some(program) = cmd.get_ref().first() else {
        return Err(src.error(
            &cmd.span(),
            &k,
            "is empty: give at least the program".into(),
        ));
    };
    let p = PathBuf::from(program.get_ref());
    if !p.is_absolute() || p.file_name().is_none() {
        return Err(src.error(
            &program.span(),
            &k,
            format!(
                "`{}` must be an absolute path to the program (no shell, no PATH search)",
                program.get_ref()
            ),
        ));
    }
    if let Some(a) = cmd.get_ref().iter().find(|a| a.get_ref().contains('\0')) {
        return Err(src.error(&a.span(), &k, "an argument contains a NUL byte".into()));
    }
    Ok(ExecCheck {
        command: cmd.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
        dynamic_weight: hc.dynamic_weight.as_ref().is_some_and(|d| *d.get_ref()),
    })
}

/// Validates a `passive` table.
pub(super) fn passive(
    src: &Source<'_>,
    key: &str,
    p: &raw::Passive,
) -> Result<PassiveCheck, ConfigError> {
    let d = PassiveCheck::default();
    let k = |name: &str| format!("{key}.{name}");
    let failures = match &p.failures {
        None => d.failures,
        Some(v) => {
            let n = *v.get_ref();
            u32::try_from(n)
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    src.error(
                        &v.span(),
                        &k("failures"),
                        format!("{n} is out of range: 1..=1000"),
                    )
                })?
        }
    };
    let time = |name: &str,
                v: &Option<Spanned<raw::Seconds>>,
                default: Duration|
     -> Result<(Duration, Option<Range<usize>>), ConfigError> {
        match duration(src, &k(name), v)? {
            None => Ok((default, None)),
            Some((t, span)) if !(MIN_CHECK_INTERVAL..=MAX_CHECK_INTERVAL).contains(&t) => Err(src
                .error(
                    &span,
                    &k(name),
                    format!("{t:?} is out of range: 100ms..=1h"),
                )),
            Some((t, span)) => Ok((t, Some(span))),
        }
    };
    let (syn_timeout, _) = time("syn_timeout", &p.syn_timeout, d.syn_timeout)?;
    let (backoff, backoff_span) = time("backoff", &p.backoff, d.backoff)?;
    let (max_backoff, max_span) = time("max_backoff", &p.max_backoff, d.max_backoff)?;
    if backoff > max_backoff {
        let (span, name) = match (max_span, backoff_span) {
            (Some(s), _) => (s, "max_backoff"),
            (None, Some(s)) => (s, "backoff"),
            // Both defaults: 5 s <= 5 min, so one of them was written.
            (None, None) => (0..0, "backoff"),
        };
        return Err(src.error(
            &span,
            &k(name),
            format!("backoff {backoff:?} is longer than max_backoff {max_backoff:?}"),
        ));
    }
    Ok(PassiveCheck {
        failures,
        syn_timeout,
        backoff,
        max_backoff,
    })
}
