//! `udp`: send `payload`, a reply must come within the timeout (keepalived `UDP_CHECK`
//! with a required reply); with `expect`, the reply must begin with it.
//!
//! The socket is connected, so an ICMP port unreachable fails the check at once
//! (`connection refused`) instead of at the timeout. Only the first datagram from the
//! target counts; it is read into a buffer of `max(expect, 512)` bytes (the rest of a
//! longer datagram is discarded by the kernel), so a check holds no more than that.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

use crate::config::UdpCheck;

use super::checker::{Deadline, Pass, io_error, preview};

pub(super) async fn run(
    check: &UdpCheck,
    target: SocketAddr,
    deadline: &Deadline,
    received: &mut u64,
) -> Result<Pass, String> {
    let sock = UdpSocket::bind(super::checker::unspecified(target))
        .await
        .map_err(|e| format!("udp socket: {}", io_error(&e)))?;
    sock.connect(target)
        .await
        .map_err(|e| format!("connect: {}", io_error(&e)))?;
    deadline
        .run("sending", sock.send(&check.payload))
        .await?
        .map_err(|e| format!("sending: {}", io_error(&e)))?;
    let expect = check.expect.as_deref().unwrap_or_default();
    let mut buf = vec![0u8; expect.len().max(512)];
    let n = deadline
        .run("waiting for a reply", sock.recv(&mut buf))
        .await?
        .map_err(|e| format!("reply: {}", io_error(&e)))?;
    *received += n as u64;
    let reply = &buf[..n];
    if !reply.starts_with(expect) {
        return Err(format!("unexpected reply: {}", preview(reply)));
    }
    Ok(Pass::new(format!("reply of {n} bytes")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::checker::Checker;
    use super::super::testutil;
    use super::*;
    use crate::config::CheckKind;

    fn udp(payload: &[u8], expect: Option<&[u8]>) -> crate::config::HealthCheck {
        let mut c = testutil::check(CheckKind::Udp(UdpCheck {
            payload: payload.to_vec(),
            expect: expect.map(<[u8]>::to_vec),
        }));
        c.timeout = Duration::from_millis(300);
        c
    }

    #[tokio::test]
    async fn a_reply_passes_and_expect_compares_its_start() {
        // Echoes with "pong " in front.
        let addr = testutil::udp_server(|req| Some([b"pong ".as_slice(), req].concat())).await;
        let out = Checker::new(&udp(b"ping", None), addr).run().await;
        assert_eq!((out.ok, out.message.as_str()), (true, "reply of 9 bytes"));
        let out = Checker::new(&udp(b"ping", Some(b"pong ping")), addr)
            .run()
            .await;
        assert!(out.ok, "{out:?}");
        let out = Checker::new(&udp(b"ping", Some(b"pong")), addr).run().await;
        assert!(out.ok, "{out:?}");
        let out = Checker::new(&udp(b"ping", Some(b"PONG")), addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "unexpected reply: pong ping")
        );
    }

    #[tokio::test]
    async fn no_reply_fails_at_the_timeout() {
        let addr = testutil::udp_server(|_| None).await;
        let out = Checker::new(&udp(b"ping", None), addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "timeout after 300ms waiting for a reply")
        );
        assert!(out.latency < Duration::from_millis(700));
    }

    #[tokio::test]
    async fn ipv6_targets_get_an_ipv6_socket() {
        let addr = testutil::udp_server_on(testutil::V6, |req| Some(req.to_vec())).await;
        let out = Checker::new(&udp(b"ping", Some(b"ping")), addr).run().await;
        assert_eq!((out.ok, out.message.as_str()), (true, "reply of 4 bytes"));
        let addr = testutil::closed_udp_port_on(testutil::V6);
        let out = Checker::new(&udp(b"ping", None), addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "reply: connection refused")
        );
    }

    #[tokio::test]
    async fn a_closed_port_fails_at_once() {
        let addr = testutil::closed_udp_port();
        let out = Checker::new(&udp(b"ping", None), addr).run().await;
        assert_eq!(
            (out.ok, out.message.as_str()),
            (false, "reply: connection refused")
        );
        assert!(out.latency < Duration::from_millis(200));
    }
}
