//! `dns`: one query over UDP (keepalived `DNS_CHECK`); messages built and parsed with
//! hickory-proto.
//!
//! Passes when the reply (same id, a response) has RCODE NOERROR and at least one answer
//! record of the type asked for; with `expect`, one of those records must have that value
//! (an address compared as an address, other types by their text, case and the final dot
//! ignored). Replies with another id are ignored until the deadline. One datagram of at
//! most 4096 bytes is held.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use crate::config::{DnsCheck, DnsType};

use super::checker::{Deadline, Pass, io_error};

/// The largest reply read (EDNS-sized; a longer one is truncated by the kernel and fails
/// to parse).
const MAX_REPLY: usize = 4096;

/// A DNS check with its question built once.
#[derive(Debug)]
pub(super) struct Prepared {
    check: DnsCheck,
    record_type: RecordType,
    /// The name, or why it cannot be asked (never for a validated configuration).
    name: Result<Name, String>,
}

impl Prepared {
    pub(super) fn new(check: &DnsCheck) -> Self {
        let name = Name::from_ascii(&check.name)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|e| format!("DNS: name `{}`: {e}", check.name));
        Prepared {
            check: check.clone(),
            record_type: record_type(check.record_type),
            name,
        }
    }
}

fn record_type(t: DnsType) -> RecordType {
    match t {
        DnsType::A => RecordType::A,
        DnsType::Aaaa => RecordType::AAAA,
        DnsType::Ns => RecordType::NS,
        DnsType::Cname => RecordType::CNAME,
        DnsType::Soa => RecordType::SOA,
        DnsType::Mx => RecordType::MX,
        DnsType::Txt => RecordType::TXT,
    }
}

pub(super) async fn run(
    p: &Prepared,
    target: SocketAddr,
    deadline: &Deadline,
    received: &mut u64,
) -> Result<Pass, String> {
    let name = p.name.clone()?;
    let id = (super::random_u64() & 0xffff) as u16;
    let mut query = Message::new();
    query
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, p.record_type));
    let bytes = query.to_vec().map_err(|e| format!("DNS: {e}"))?;

    let sock = UdpSocket::bind(super::checker::unspecified(target))
        .await
        .map_err(|e| format!("udp socket: {}", io_error(&e)))?;
    sock.connect(target)
        .await
        .map_err(|e| format!("connect: {}", io_error(&e)))?;
    deadline
        .run("sending the query", sock.send(&bytes))
        .await?
        .map_err(|e| format!("sending the query: {}", io_error(&e)))?;
    let mut buf = vec![0u8; MAX_REPLY];
    let reply = loop {
        let n = deadline
            .run("waiting for the answer", sock.recv(&mut buf))
            .await?
            .map_err(|e| format!("DNS: {}", io_error(&e)))?;
        *received += n as u64;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.id() == id && m.message_type() == MessageType::Response => break m,
            // Not the answer to this query (or not DNS): wait for it until the deadline.
            _ => continue,
        }
    };
    judge(&p.check, p.record_type, &reply)
}

/// The verdict on a reply to the query.
fn judge(check: &DnsCheck, rtype: RecordType, reply: &Message) -> Result<Pass, String> {
    let code = reply.response_code();
    if code != ResponseCode::NoError {
        return Err(format!("DNS {}", rcode_name(code)));
    }
    let answers: Vec<&RData> = reply
        .answers()
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| r.data())
        .collect();
    let tname = check.record_type.name();
    if answers.is_empty() {
        return Err(format!("DNS NOERROR without a {tname} record"));
    }
    let Some(want) = &check.expect else {
        let n = answers.len();
        return Ok(Pass::new(format!(
            "DNS NOERROR, {n} {tname} record{}",
            if n == 1 { "" } else { "s" }
        )));
    };
    if answers.iter().any(|d| matches(d, want)) {
        return Ok(Pass::new(format!("DNS {tname} {want}")));
    }
    let got: Vec<String> = answers.iter().take(3).map(|d| d.to_string()).collect();
    Err(format!("DNS {tname} {} (expected {want})", got.join(", ")))
}

/// The RFC 1035 / 6895 mnemonic of a response code (`NXDOMAIN`).
fn rcode_name(code: ResponseCode) -> String {
    let name = match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        other => return format!("RCODE {}", u16::from(other)),
    };
    name.to_string()
}

/// Whether record data `d` has the value `want`.
fn matches(d: &RData, want: &str) -> bool {
    let address = match d {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    };
    if let Some(ip) = address {
        return want.parse::<IpAddr>().is_ok_and(|w| w == ip);
    }
    let norm = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
    norm(&d.to_string()) == norm(want)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};

    use super::super::checker::Checker;
    use super::super::testutil;
    use super::*;
    use crate::config::CheckKind;

    fn dns(name: &str, t: DnsType, expect: Option<&str>) -> crate::config::HealthCheck {
        let mut c = testutil::check(CheckKind::Dns(DnsCheck {
            name: name.into(),
            record_type: t,
            expect: expect.map(str::to_string),
        }));
        c.timeout = Duration::from_millis(300);
        c
    }

    /// A responder that knows `www.example.test. A 192.0.2.1` and
    /// `alias.example.test. CNAME www.example.test.`; everything else is NXDOMAIN.
    async fn zone() -> SocketAddr {
        testutil::udp_server(|req| {
            let q = Message::from_vec(req).ok()?;
            let query = q.queries().first()?.clone();
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .add_query(query.clone());
            let name = query.name().to_ascii();
            let ttl = 60;
            match (name.as_str(), query.query_type()) {
                ("www.example.test.", RecordType::A) => {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        ttl,
                        RData::A(A::new(192, 0, 2, 1)),
                    ));
                }
                ("alias.example.test.", RecordType::CNAME) => {
                    let target = Name::from_ascii("www.example.test.").ok()?;
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        ttl,
                        RData::CNAME(CNAME(target)),
                    ));
                }
                ("www.example.test.", _) | ("alias.example.test.", _) => {}
                _ => {
                    r.set_response_code(ResponseCode::NXDomain);
                }
            }
            r.to_vec().ok()
        })
        .await
    }

    #[tokio::test]
    async fn an_answer_passes_and_expect_checks_its_value() {
        let addr = zone().await;
        let out = Checker::new(&dns("www.example.test", DnsType::A, None), addr)
            .run()
            .await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (true, "DNS NOERROR, 1 A record")
        );
        let c = dns("www.example.test", DnsType::A, Some("192.0.2.1"));
        let out = Checker::new(&c, addr).run().await;
        assert_eq!((out.ok, out.message.as_str()), (true, "DNS A 192.0.2.1"));
        let c = dns(
            "alias.example.test.",
            DnsType::Cname,
            Some("WWW.example.test"),
        );
        assert!(Checker::new(&c, addr).run().await.ok);
    }

    #[tokio::test]
    async fn an_ipv6_server_is_asked_over_ipv6() {
        let addr = testutil::udp_server_on(testutil::V6, |req| {
            let q = Message::from_vec(req).ok()?;
            let query = q.queries().first()?.clone();
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .add_query(query.clone())
                .add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::AAAA(AAAA::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11)),
                ));
            r.to_vec().ok()
        })
        .await;
        assert!(addr.is_ipv6());
        let c = dns("www.example.test", DnsType::Aaaa, Some("2001:db8:b::11"));
        let out = Checker::new(&c, addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (true, "DNS AAAA 2001:db8:b::11")
        );
    }

    #[tokio::test]
    async fn wrong_answer_nxdomain_and_no_record_fail() {
        let addr = zone().await;
        let c = dns("www.example.test", DnsType::A, Some("192.0.2.2"));
        let out = Checker::new(&c, addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "DNS A 192.0.2.1 (expected 192.0.2.2)")
        );
        let out = Checker::new(&dns("nope.example.test", DnsType::A, None), addr)
            .run()
            .await;
        assert_eq!((out.ok, out.message.as_str()), (false, "DNS NXDOMAIN"));
        let out = Checker::new(&dns("www.example.test", DnsType::Mx, None), addr)
            .run()
            .await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "DNS NOERROR without a MX record")
        );
    }

    #[tokio::test]
    async fn garbage_and_silence_fail_at_the_timeout() {
        let addr = testutil::udp_server(|_| Some(b"garbage".to_vec())).await;
        let out = Checker::new(&dns("www.example.test", DnsType::A, None), addr)
            .run()
            .await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "timeout after 300ms waiting for the answer")
        );
        assert!(out.latency < Duration::from_millis(700));
    }
}
