//! The kernel side of the director, over netlink only (no external programs, no `unsafe`):
//! links, IPv4 and IPv6 addresses and route lookups ([`Kernel`]), and the nftables guard
//! that keeps the kernel's own stack away from packets lvsd forwards ([`NftGuard`]).
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
//!
//! # IPv6
//!
//! - [`LinkInfo::ipv6`] lists an interface's IPv6 addresses (link-local ones included),
//!   except those whose duplicate address detection failed: first the usable ones, then
//!   the tentative (DAD still running: they become usable without any change lvsd would
//!   notice) and deprecated ones (such as the VIPs [`Kernel::add_vip`] adds), each group in
//!   kernel order. [`LinkInfo::link_local6`] / [`LinkInfo::global6`] pick the first of
//!   their kind, so a usable one when there is one.
//! - [`Kernel::route_to6`] answers for an IPv6 destination with the output interface, the
//!   next hop (the gateway, else the destination itself) and lvsd's source addresses on
//!   that link: a global one ([`RouteInfo6::source`]: the kernel's own choice when it is a
//!   usable global address of the output interface, else the first usable global address
//!   there; "usable" = neither tentative nor deprecated) and the interface's link-local
//!   address ([`RouteInfo6::link_local`], the source of lvsd's Neighbor Solicitations).
//! - [`Kernel::add_vip`] adds an IPv6 VIP as a /128 with `IFA_F_NODAD` (usable at once: no
//!   DAD delay, and the kernel answers Neighbor Solicitations for it) and a preferred
//!   lifetime of 0 (deprecated, valid forever): it still receives traffic and is answered
//!   for, but the kernel's source address selection never picks it for connections the
//!   director opens itself (health checks, lvsd's NS), exactly as a VIP must behave.
//!   [`Kernel::vip_interface`] places a VIP of either family like the IPv4 one always was.

mod links;
mod nft;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo,
};
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
    /// IPv6 addresses with prefix length, link-local ones included, usable ones first
    /// (see the module docs for which are listed and in which order).
    pub ipv6: Vec<(Ipv6Addr, u8)>,
}

impl LinkInfo {
    /// The interface's first link-local IPv6 address (fe80::/10), if it has one.
    pub fn link_local6(&self) -> Option<Ipv6Addr> {
        self.ipv6
            .iter()
            .map(|(a, _)| *a)
            .find(|a| is_link_local6(*a))
    }

    /// The interface's first IPv6 address that is not link-local (nor loopback), if any.
    pub fn global6(&self) -> Option<Ipv6Addr> {
        self.ipv6
            .iter()
            .map(|(a, _)| *a)
            .find(|a| !is_link_local6(*a) && !a.is_loopback())
    }

    /// Whether an IPv4 network of this interface (prefix shorter than /32) contains `ip`.
    pub fn contains4(&self, ip: Ipv4Addr) -> bool {
        self.ipv4
            .iter()
            .any(|(net, len)| *len < 32 && same_prefix(&net.octets(), &ip.octets(), *len))
    }

    /// Whether an IPv6 network of this interface (prefix shorter than /128, link-local
    /// ones excluded) contains `ip`.
    pub fn contains6(&self, ip: Ipv6Addr) -> bool {
        self.ipv6.iter().any(|(net, len)| {
            *len < 128 && !is_link_local6(*net) && same_prefix(&net.octets(), &ip.octets(), *len)
        })
    }
}

/// Whether `a` is an IPv6 link-local unicast address (fe80::/10).
pub fn is_link_local6(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether the first `len` bits of `a` and `b` are equal (`len` capped at their size).
fn same_prefix(a: &[u8], b: &[u8], len: u8) -> bool {
    let len = usize::from(len).min(a.len() * 8);
    let (bytes, bits) = (len / 8, len % 8);
    if a.get(..bytes) != b.get(..bytes) {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - bits);
    match (a.get(bytes), b.get(bytes)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
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

/// The kernel's answer to "how would you send to this IPv6 address", with lvsd's own
/// addresses on that link (module docs, IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo6 {
    /// Output interface.
    pub ifindex: u32,
    /// Next hop, if the destination is not on-link (often a link-local router address).
    pub gateway: Option<Ipv6Addr>,
    /// Where frames go on the link: the gateway, else the destination itself.
    pub next_hop: Ipv6Addr,
    /// Source address the kernel would use (its source address selection).
    pub prefsrc: Option<Ipv6Addr>,
    /// A usable global address of the output interface to send from (module docs).
    pub source: Option<Ipv6Addr>,
    /// The output interface's link-local address (source of Neighbor Solicitations).
    pub link_local: Option<Ipv6Addr>,
    /// The destination is an address of this host (routed via `lo`).
    pub local: bool,
}

/// One IPv6 address as listed by the kernel (private: flags decide usability).
#[derive(Debug, Clone, Copy)]
struct Addr6 {
    ifindex: u32,
    addr: Ipv6Addr,
    prefix: u8,
    flags: AddressFlags,
}

impl Addr6 {
    /// Fit to send from: DAD finished successfully and not deprecated.
    fn usable(&self) -> bool {
        !self.flags.intersects(
            AddressFlags::Tentative | AddressFlags::Dadfailed | AddressFlags::Deprecated,
        )
    }
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

    fn ipv6_addresses(&self) -> Result<Vec<Addr6>, KernelError> {
        let h = self.handle.clone();
        let msgs = self.run(|| "listing IPv6 addresses".to_string(), async move {
            let mut req = h.address().get();
            req.message_mut().header.family = AddressFamily::Inet6;
            req.execute().try_collect::<Vec<_>>().await
        })?;
        Ok(msgs
            .iter()
            .filter(|a| a.header.family == AddressFamily::Inet6)
            .filter_map(|a| {
                Some(Addr6 {
                    ifindex: a.header.index,
                    addr: address6_of(a)?,
                    prefix: a.header.prefix_len,
                    flags: address_flags(a),
                })
            })
            .collect())
    }

    /// All interfaces with their IPv4 and IPv6 addresses, in ifindex order.
    pub fn interfaces(&self) -> Result<Vec<LinkInfo>, KernelError> {
        let links = self.links()?;
        let addrs = self.ipv4_addresses()?;
        let addrs6 = self.ipv6_addresses()?;
        let mut out: Vec<LinkInfo> = links.iter().map(link_info).collect();
        for a in &addrs {
            if let (Some(link), Some(ip)) = (
                out.iter_mut().find(|l| l.ifindex == a.header.index),
                address_of(a),
            ) {
                link.ipv4.push((ip, a.header.prefix_len));
            }
        }
        let mut addrs6: Vec<&Addr6> = addrs6
            .iter()
            .filter(|a| !a.flags.contains(AddressFlags::Dadfailed))
            .collect();
        // Usable addresses first (stable: kernel order within each group), so the first
        // global one is never a deprecated VIP.
        addrs6.sort_by_key(|a| !a.usable());
        for a in addrs6 {
            if let Some(link) = out.iter_mut().find(|l| l.ifindex == a.ifindex) {
                link.ipv6.push((a.addr, a.prefix));
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
        self.del_ip(ifindex, IpAddr::V4(addr), prefix)
    }

    /// Removes `addr/prefix` (either family) from interface `ifindex` (fails with
    /// `EADDRNOTAVAIL` if absent).
    pub fn del_ip(&self, ifindex: u32, addr: IpAddr, prefix: u8) -> Result<(), KernelError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(KernelError::Invalid {
                what: format!("removing {addr}/{prefix}"),
                reason: format!("prefix length must be at most {max}"),
            });
        }
        let msg = match addr {
            IpAddr::V4(a) => rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
                .index(ifindex)
                .address(a, prefix)
                .build(),
            IpAddr::V6(a) => rtnetlink::AddressMessageBuilder::<Ipv6Addr>::new()
                .index(ifindex)
                .address(a, prefix)
                .build(),
        };
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

    /// How the kernel would route to the IPv6 address `dst` (like `ip -6 route get`), with
    /// lvsd's source addresses on the output link (module docs, IPv6).
    pub fn route_to6(&self, dst: Ipv6Addr) -> Result<RouteInfo6, KernelError> {
        let what = || format!("looking up the route to {dst}");
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet6;
        msg.header.destination_prefix_length = 128;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet6(dst)));
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
        let mut ifindex = 0;
        let mut gateway = None;
        let mut prefsrc = None;
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Oif(i) => ifindex = *i,
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(*g),
                RouteAttribute::PrefSource(RouteAddress::Inet6(s)) => prefsrc = Some(*s),
                _ => {}
            }
        }
        if ifindex == 0 {
            return Err(KernelError::Netlink {
                what: what(),
                detail: format!(
                    "the route (type {:?}) has no output interface",
                    route.header.kind
                ),
            });
        }
        let addrs: Vec<Addr6> = self
            .ipv6_addresses()?
            .into_iter()
            .filter(|a| a.ifindex == ifindex)
            .collect();
        let global = |a: &&Addr6| a.usable() && !is_link_local6(a.addr) && !a.addr.is_loopback();
        let source = prefsrc
            .filter(|p| addrs.iter().filter(global).any(|a| a.addr == *p))
            .or_else(|| addrs.iter().find(global).map(|a| a.addr));
        // A tentative link-local address is still better than none for NS (RFC 4861
        // allows only the unspecified address then, which the caller can fall back to).
        let link_local = addrs
            .iter()
            .filter(|a| is_link_local6(a.addr) && !a.flags.contains(AddressFlags::Dadfailed))
            .min_by_key(|a| !a.usable())
            .map(|a| a.addr);
        Ok(RouteInfo6 {
            ifindex,
            gateway,
            next_hop: gateway.unwrap_or(dst),
            prefsrc,
            source,
            link_local,
            local: route.header.kind == RouteType::Local,
        })
    }

    /// Adds the IPv6 address `addr/prefix` to interface `ifindex` with `IFA_F_NODAD`
    /// (usable at once). Fails with `EEXIST` if present.
    pub fn add_address6(
        &self,
        ifindex: u32,
        addr: Ipv6Addr,
        prefix: u8,
    ) -> Result<(), KernelError> {
        self.add6(ifindex, addr, prefix, false)
    }

    /// [`Kernel::add_address6`], and [`Kernel::add_vip`] with `deprecated` (preferred
    /// lifetime 0: never chosen as a source address).
    fn add6(
        &self,
        ifindex: u32,
        addr: Ipv6Addr,
        prefix: u8,
        deprecated: bool,
    ) -> Result<(), KernelError> {
        if prefix > 128 {
            return Err(KernelError::Invalid {
                what: format!("adding {addr}/{prefix}"),
                reason: "prefix length must be at most 128".to_string(),
            });
        }
        let h = self.handle.clone();
        self.run(
            || format!("adding {addr}/{prefix} to {}", self.name_of(ifindex)),
            async move {
                let mut req = h.address().add(ifindex, IpAddr::V6(addr), prefix);
                let m = req.message_mut();
                m.header.flags = AddressHeaderFlags::Nodad;
                m.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
                if deprecated {
                    let mut life = CacheInfo::default();
                    life.ifa_preferred = 0;
                    life.ifa_valid = u32::MAX;
                    m.attributes.push(AddressAttribute::CacheInfo(life));
                }
                req.execute().await
            },
        )
    }

    /// Removes the IPv6 address `addr/prefix` from interface `ifindex` (fails with
    /// `EADDRNOTAVAIL` if absent).
    pub fn del_address6(
        &self,
        ifindex: u32,
        addr: Ipv6Addr,
        prefix: u8,
    ) -> Result<(), KernelError> {
        self.del_ip(ifindex, IpAddr::V6(addr), prefix)
    }

    /// The interface that holds the IPv6 address `addr`, if any.
    pub fn has_address6(&self, addr: Ipv6Addr) -> Result<Option<u32>, KernelError> {
        Ok(self
            .ipv6_addresses()?
            .iter()
            .find(|a| a.addr == addr)
            .map(|a| a.ifindex))
    }

    /// The interface that holds `addr` (either family), if any.
    pub fn has_ip(&self, addr: IpAddr) -> Result<Option<u32>, KernelError> {
        match addr {
            IpAddr::V4(a) => self.has_address(a),
            IpAddr::V6(a) => self.has_address6(a),
        }
    }

    /// Adds a VIP to interface `ifindex`: an IPv4 one as /32 (as
    /// [`Kernel::add_address`]), an IPv6 one as /128, `IFA_F_NODAD`, deprecated (module
    /// docs). Fails with `EEXIST` if present.
    pub fn add_vip(&self, ifindex: u32, vip: IpAddr) -> Result<(), KernelError> {
        match vip {
            IpAddr::V4(a) => self.add_address(ifindex, a, 32),
            IpAddr::V6(a) => self.add6(ifindex, a, 128, true),
        }
    }

    /// Removes a VIP added by [`Kernel::add_vip`] (/32 or /128).
    pub fn del_vip(&self, ifindex: u32, vip: IpAddr) -> Result<(), KernelError> {
        match vip {
            IpAddr::V4(a) => self.del_address(ifindex, a, 32),
            IpAddr::V6(a) => self.del_address6(ifindex, a, 128),
        }
    }

    /// The interface a VIP lives on, among `links` (the interfaces lvsd uses): where it
    /// already is, else the interface with a network that contains it, else the interface
    /// of the route towards it. Both families, the same rule.
    pub fn vip_interface(&self, vip: IpAddr, links: &[LinkInfo]) -> Result<u32, KernelError> {
        let holds = |l: &&LinkInfo| match vip {
            IpAddr::V4(a) => l.ipv4.iter().any(|(x, _)| *x == a),
            IpAddr::V6(a) => l.ipv6.iter().any(|(x, _)| *x == a),
        };
        if let Some(l) = links.iter().find(holds) {
            return Ok(l.ifindex);
        }
        let contains = |l: &&LinkInfo| match vip {
            IpAddr::V4(a) => l.contains4(a),
            IpAddr::V6(a) => l.contains6(a),
        };
        if let Some(l) = links.iter().find(contains) {
            return Ok(l.ifindex);
        }
        let what = format!("placing VIP {vip}");
        let ifindex = match vip {
            IpAddr::V4(a) => self.route_to(a).map(|r| r.ifindex),
            IpAddr::V6(a) => self.route_to6(a).map(|r| r.ifindex),
        };
        match ifindex {
            Ok(i) if links.iter().any(|l| l.ifindex == i) => Ok(i),
            _ => Err(KernelError::Invalid {
                what,
                reason: "no attached network contains it and no route leads to it through \
                         an interface lvsd uses; add the VIP to an interface yourself"
                    .to_string(),
            }),
        }
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
        ipv6: Vec::new(),
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

/// The local address of an IPv6 address message (`IFA_LOCAL` if present, else
/// `IFA_ADDRESS`; for IPv6 they only differ on point-to-point peers).
fn address6_of(a: &AddressMessage) -> Option<Ipv6Addr> {
    let mut addr = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V6(ip)) => return Some(*ip),
            AddressAttribute::Address(IpAddr::V6(ip)) => addr = Some(*ip),
            _ => {}
        }
    }
    addr
}

/// An address's flags: `IFA_FLAGS` (32 bits) when present, else the header's 8 bits.
fn address_flags(a: &AddressMessage) -> AddressFlags {
    for attr in &a.attributes {
        if let AddressAttribute::Flags(f) = attr {
            return *f;
        }
    }
    AddressFlags::from_bits_retain(u32::from(a.header.flags.bits()))
}
