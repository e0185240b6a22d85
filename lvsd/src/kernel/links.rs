//! Link-state notifications: a netlink route socket subscribed to `RTMGRP_LINK`.
//!
//! Contract: [`LinkWatch`] is only a doorbell. Its fd becomes readable when the kernel
//! announces a link change (`RTM_NEWLINK` / `RTM_DELLINK`, up, down, carrier); the caller
//! then calls [`LinkWatch::drain`] and reads the current states with
//! [`super::Kernel::interfaces`]. Nothing is parsed here, so a lost notification
//! (`ENOBUFS` on an overflowing socket) only delays the caller until its next periodic
//! re-read — it can never leave a wrong state behind.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::KernelError;

/// `RTMGRP_LINK` (linux/rtnetlink.h).
const RTMGRP_LINK: u32 = 1;

/// A socket that wakes up on link changes (module doc).
#[derive(Debug)]
pub struct LinkWatch {
    sock: Socket,
}

impl LinkWatch {
    /// Subscribes to link notifications in the calling thread's network namespace.
    pub fn open() -> Result<LinkWatch, KernelError> {
        let what = "subscribing to link notifications";
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| KernelError::from_io(what, e))?;
        sock.bind(&SocketAddr::new(0, RTMGRP_LINK))
            .map_err(|e| KernelError::from_io(what, e))?;
        sock.set_non_blocking(true)
            .map_err(|e| KernelError::from_io(what, e))?;
        Ok(LinkWatch { sock })
    }

    /// Discards every queued notification; true if there was at least one (or the
    /// socket overflowed, which also means "something changed").
    pub fn drain(&self) -> bool {
        let mut buf = vec![0u8; 16 * 1024];
        let mut any = false;
        // Bounded: a flood of notifications cannot keep the caller here.
        for _ in 0..1024 {
            match self.sock.recv(&mut &mut buf[..], 0) {
                Ok(0) => break,
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ENOBUFS: notifications were lost; the caller re-reads everything anyway.
                Err(_) => {
                    any = true;
                    break;
                }
            }
        }
        any
    }
}

impl AsFd for LinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
