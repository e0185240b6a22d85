//! `tcp`: the target accepts a TCP connection (keepalived `TCP_CHECK`).
//!
//! The connection is closed at once with an abort (`SO_LINGER` 0, an RST), as HAProxy
//! does for its checks: thousands of checks a second must not leave thousands of sockets in
//! TIME_WAIT on the director.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::checker::{Deadline, Pass, io_error};

/// Connects to `target` within the deadline.
pub(super) async fn run(target: SocketAddr, deadline: &Deadline) -> Result<Pass, String> {
    let stream = connect(target, deadline).await?;
    drop(stream);
    Ok(Pass::new("connected".into()))
}

/// A TCP connection to `target` that aborts (RST) when dropped.
pub(super) async fn connect(target: SocketAddr, deadline: &Deadline) -> Result<TcpStream, String> {
    let stream = deadline
        .run("connecting", TcpStream::connect(target))
        .await?
        .map_err(|e| format!("connect: {}", io_error(&e)))?;
    // Best effort: without it the close is an orderly FIN, which is only slower to clean up.
    let _ = stream.set_zero_linger();
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testutil::{V6, closed_port, closed_port_on, listener, listener_on};
    use super::*;

    #[tokio::test]
    async fn a_listening_port_passes() {
        let (addr, _server) = listener().await;
        let pass = run(addr, &Deadline::after(Duration::from_secs(2))).await;
        assert_eq!(pass, Ok(Pass::new("connected".into())));
    }

    #[tokio::test]
    async fn a_closed_port_fails_with_refused() {
        let addr = closed_port();
        let e = run(addr, &Deadline::after(Duration::from_secs(2))).await;
        assert_eq!(e, Err("connect: connection refused".into()));
    }

    #[tokio::test]
    async fn ipv6_targets_pass_and_fail_the_same_way() {
        let (addr, _server) = listener_on(V6).await;
        assert!(addr.is_ipv6());
        let pass = run(addr, &Deadline::after(Duration::from_secs(2))).await;
        assert_eq!(pass, Ok(Pass::new("connected".into())));
        let e = run(closed_port_on(V6), &Deadline::after(Duration::from_secs(2))).await;
        assert_eq!(e, Err("connect: connection refused".into()));
    }
}
