//! The kernel side of the director, over netlink only (no external programs, no `unsafe`):
//! links, IPv4 addresses and route lookups ([`Kernel`]), and the nftables guard that keeps
//! the kernel's own stack away from packets lvsd forwards ([`NftGuard`]).
//!
//! # Contract
//!
//! - Everything here is synchronous: [`Kernel`] drives rtnetlink (pinned 0.24) on a private
//!   tokio current-thread runtime, so callers are plain threads. Each request is bounded by
//!   a timeout ([`REQUEST_TIMEOUT`]).
//! - Operations act on the network namespace of the thread that called
//!   [`Kernel::connect`] / [`NftGuard::install`] (the netlink socket is bound to it), no
//!   matter which thread uses the object later.
//! - Errors are [`KernelError`]s whose messages say what failed in operator terms
//!   ("adding 203.0.113.10/32 to ext0: Operation not permitted (os error 1); lvsd needs
//!   root or CAP_NET_ADMIN"); the errno stays available through [`KernelError::errno`].
//! - Nothing is retried or made idempotent behind the caller's back: adding an address
//!   that exists fails with `EEXIST`, deleting a missing one with `EADDRNOTAVAIL`
//!   ([`KernelError::errno`] lets the caller decide).

mod links;
mod nft;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};

pub use links::LinkWatch;
pub use nft::{GuardDevice, GuardSpec, NftGuard};

/// How long one netlink request may take before it is reported as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Something the kernel refused or could not do, described in operator terms.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The operation needs privileges lvsd does not have (`EPERM`/`EACCES`).
    #[error("{what}: {source}; lvsd needs root or CAP_NET_ADMIN")]
    PermissionDenied {
        /// What was being done ("adding 203.0.113.10/32 to ext0").
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel answered with an error.
    #[error("{what}: {source}{hint}")]
    Os {
        /// What was being done.
        what: String,
        /// The OS error (errno).
        source: io::Error,
        /// Extra detail: the kernel's extended ack message or a hint, with a leading "; ".
        hint: String,
    },
    /// A netlink-level problem that is not an errno (malformed or unexpected reply).
    #[error("{what}: {detail}")]
    Netlink {
        /// What was being done.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The kernel did not answer in time.
    #[error("{what}: no answer from the kernel within {secs} s")]
    Timeout {
        /// What was being done.
        what: String,
        /// The timeout.
        secs: u64,
    },
    /// The request was refused before reaching the kernel (bad argument).
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being done.
        what: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The nftables table `lvsd` already exists in this network namespace.
    #[error("another lvsd owns this network namespace's nftables table `lvsd`{detail}")]
    TableBusy {
        /// Who owns it, if known, with a leading space.
        detail: String,
    },
}

impl KernelError {
    /// The errno behind this error, if there is one (e.g. `libc::EEXIST`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::PermissionDenied { source, .. } | KernelError::Os { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    /// Builds the error for an errno (positive), mapping EPERM/EACCES to
    /// [`KernelError::PermissionDenied`].
    pub(crate) fn from_errno(what: impl Into<String>, errno: i32, hint: String) -> KernelError {
        let what = what.into();
        let source = io::Error::from_raw_os_error(errno);
        if errno == libc::EPERM || errno == libc::EACCES {
            KernelError::PermissionDenied { what, source }
        } else {
            KernelError::Os { what, source, hint }
        }
    }

    pub(crate) fn from_io(what: impl Into<String>, err: io::Error) -> KernelError {
        match err.raw_os_error() {
            Some(errno) => KernelError::from_errno(what, errno, String::new()),
            None => KernelError::Netlink {
                what: what.into(),
                detail: err.to_string(),
            },
        }
    }

    fn from_rtnl(what: impl Into<String>, err: rtnetlink::Error) -> KernelError {
        match err {
            rtnetlink::Error::NetlinkError(msg) if msg.raw_code() != 0 => {
                KernelError::from_errno(what, -msg.raw_code(), String::new())
            }
            other => KernelError::Netlink {
                what: what.into(),
                detail: other.to_string(),
            },
        }
    }
}

/// One network interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address; all zeros for interfaces without a 6-byte one (lo, tunnels).
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Has carrier (`IFF_LOWER_UP`): up and able to pass packets.
    pub running: bool,
    /// IPv4 addresses with prefix length, in kernel order (primary first).
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

/// The kernel's answer to "how would you send to this address" (`ip route get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// Output interface.
    pub ifindex: u32,
    /// Next hop, if the destination is not on-link.
    pub gateway: Option<Ipv4Addr>,
    /// Source address the kernel would use.
    pub prefsrc: Option<Ipv4Addr>,
    /// The destination is an address of this host (routed via `lo`).
    pub local: bool,
}

/// A netlink route socket with its private runtime (see the module docs).
#[derive(Debug)]
pub struct Kernel {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl Kernel {
    /// Opens a netlink route socket in the calling thread's network namespace.
    pub fn connect() -> Result<Kernel, KernelError> {
        let what = "opening a netlink route socket";
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KernelError::from_io(what, e))?;
        // The socket must be created inside the runtime (it registers with its reactor).
        let (conn, handle, _unsolicited) = rt
            .block_on(async { rtnetlink::new_connection() })
            .map_err(|e| KernelError::from_io(what, e))?;
        rt.spawn(conn);
        Ok(Kernel { rt, handle })
    }

    fn run<T>(
        &self,
        what: impl Fn() -> String,
        fut: impl Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T, KernelError> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, fut).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(KernelError::from_rtnl(what(), e)),
            Err(_) => Err(KernelError::Timeout {
                what: what(),
                secs: REQUEST_TIMEOUT.as_secs(),
            }),
        }
    }

    fn links(&self) -> Result<Vec<LinkMessage>, KernelError> {
        let h = self.handle.clone();
        self.run(|| "listing network interfaces".to_string(), async move {
            h.link().get().execute().try_collect::<Vec<_>>().await
        })
    }

    fn ipv4_addresses(&self) -> Result<Vec<AddressMessage>, KernelError> {
        let h = self.handle.clone();
        self.run(|| "listing IPv4 addresses".to_string(), async move {
            let mut req = h.address().get();
            req.message_mut().header.family = AddressFamily::Inet;
            req.execute().try_collect::<Vec<_>>().await
        })
    }

    /// All interfaces with their IPv4 addresses, in ifindex order.
    pub fn interfaces(&self) -> Result<Vec<LinkInfo>, KernelError> {
        let links = self.links()?;
        let addrs = self.ipv4_addresses()?;
        let mut out: Vec<LinkInfo> = links.iter().map(link_info).collect();
        for a in &addrs {
            if let (Some(link), Some(ip)) = (
                out.iter_mut().find(|l| l.ifindex == a.header.index),
                address_of(a),
            ) {
                link.ipv4.push((ip, a.header.prefix_len));
            }
        }
        out.sort_by_key(|l| l.ifindex);
        Ok(out)
    }

    /// The name of interface `ifindex` ("ifindex N" if it cannot be found), for messages.
    fn name_of(&self, ifindex: u32) -> String {
        let h = self.handle.clone();
        let found = self
            .run(String::new, async move {
                h.link()
                    .get()
                    .match_index(ifindex)
                    .execute()
                    .try_collect::<Vec<_>>()
                    .await
            })
            .ok()
            .and_then(|v| v.first().map(|l| link_info(l).name));
        found.unwrap_or_else(|| format!("ifindex {ifindex}"))
    }

    /// How the kernel would route to `dst` (like `ip route get`).
    pub fn route_to(&self, dst: Ipv4Addr) -> Result<RouteInfo, KernelError> {
        let what = || format!("looking up the route to {dst}");
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 32;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        let h = self.handle.clone();
        let routes = self.run(what, async move {
            h.route().get(msg).execute().try_collect::<Vec<_>>().await
        })?;
        let Some(route) = routes.first() else {
            return Err(KernelError::Netlink {
                what: what(),
                detail: "the kernel returned no route".to_string(),
            });
        };
        let mut info = RouteInfo {
            ifindex: 0,
            gateway: None,
            prefsrc: None,
            local: route.header.kind == RouteType::Local,
        };
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Oif(i) => info.ifindex = *i,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => info.gateway = Some(*g),
                RouteAttribute::PrefSource(RouteAddress::Inet(s)) => info.prefsrc = Some(*s),
                _ => {}
            }
        }
        if info.ifindex == 0 {
            return Err(KernelError::Netlink {
                what: what(),
                detail: format!(
                    "the route (type {:?}) has no output interface",
                    route.header.kind
                ),
            });
        }
        Ok(info)
    }

    /// Adds `addr/prefix` to interface `ifindex` (fails with `EEXIST` if present).
    pub fn add_address(&self, ifindex: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), KernelError> {
        if prefix > 32 {
            return Err(KernelError::Invalid {
                what: format!("adding {addr}/{prefix}"),
                reason: "prefix length must be at most 32".to_string(),
            });
        }
        let h = self.handle.clone();
        self.run(
            || format!("adding {addr}/{prefix} to {}", self.name_of(ifindex)),
            async move {
                h.address()
                    .add(ifindex, IpAddr::V4(addr), prefix)
                    .execute()
                    .await
            },
        )
    }

    /// Removes `addr/prefix` from interface `ifindex` (fails with `EADDRNOTAVAIL` if absent).
    pub fn del_address(&self, ifindex: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), KernelError> {
        if prefix > 32 {
            return Err(KernelError::Invalid {
                what: format!("removing {addr}/{prefix}"),
                reason: "prefix length must be at most 32".to_string(),
            });
        }
        let msg = rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
            .index(ifindex)
            .address(addr, prefix)
            .build();
        let h = self.handle.clone();
        self.run(
            || format!("removing {addr}/{prefix} from {}", self.name_of(ifindex)),
            async move { h.address().del(msg).execute().await },
        )
    }

    /// The interface that holds `addr`, if any.
    pub fn has_address(&self, addr: Ipv4Addr) -> Result<Option<u32>, KernelError> {
        Ok(self
            .ipv4_addresses()?
            .iter()
            .find(|a| address_of(a) == Some(addr))
            .map(|a| a.header.index))
    }
}

fn link_info(l: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        ifindex: l.header.index,
        name: String::new(),
        mac: [0; 6],
        mtu: 0,
        up: l.header.flags.contains(LinkFlags::Up),
        running: l.header.flags.contains(LinkFlags::LowerUp),
        ipv4: Vec::new(),
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::Mtu(m) => info.mtu = *m,
            LinkAttribute::Address(a) => {
                if let Ok(mac) = <[u8; 6]>::try_from(a.as_slice()) {
                    info.mac = mac;
                }
            }
            _ => {}
        }
    }
    info
}

/// The local address of an IPv4 address message (`IFA_LOCAL`, else `IFA_ADDRESS`).
fn address_of(a: &AddressMessage) -> Option<Ipv4Addr> {
    let mut addr = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(ip)) => return Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) => addr = Some(*ip),
            _ => {}
        }
    }
    addr
}
