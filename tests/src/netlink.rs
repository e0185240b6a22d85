//! rtnetlink plumbing: one current-thread tokio runtime per call, on a thread that is already
//! inside the target namespace, so the route socket — and every request sent on it — belongs
//! to that namespace.
//!
//! Invariants: [`block_on`] must only be called from a thread inside the wanted namespace
//! (the lab calls it from [`crate::netns::Netns::run`]); every request is bounded by
//! [`NETLINK_TIMEOUT`]; no runtime or socket outlives the call.
//! - IPv6 addresses are always added with `IFA_F_NODAD`: the lab's addresses are unique by
//!   construction, and a tentative address would make the first seconds of every test racy.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::error::{Context, LabError, Result};

/// Upper bound for one [`block_on`] call (all requests it makes together).
pub const NETLINK_TIMEOUT: Duration = Duration::from_secs(20);

/// An IPv4 address configured on an interface, as reported by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface name inside the namespace.
    pub ifname: String,
    /// Interface index inside the namespace.
    pub ifindex: u32,
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// An IPv6 address configured on an interface, as reported by the kernel (link-local ones
/// included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr6 {
    /// Interface name inside the namespace.
    pub ifname: String,
    /// Interface index inside the namespace.
    pub ifindex: u32,
    /// The address.
    pub addr: Ipv6Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// Open a route socket in the calling thread's namespace and drive `f` with its handle on a
/// fresh current-thread runtime.
pub(crate) fn block_on<F, Fut, T>(f: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx("building a tokio runtime for netlink")?;
    runtime.block_on(async move {
        let (connection, handle, _) =
            rtnetlink::new_connection().ctx("opening a netlink route socket")?;
        let driver = tokio::spawn(connection);
        let outcome = tokio::time::timeout(NETLINK_TIMEOUT, f(handle)).await;
        driver.abort();
        outcome.map_err(|_| LabError::Timeout {
            what: "netlink requests".into(),
            after: NETLINK_TIMEOUT,
            logs: String::new(),
        })?
    })
}

/// Index of the interface called `name`.
pub(crate) async fn link_index(handle: &Handle, name: &str) -> Result<u32> {
    let link = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .with_ctx(|| format!("looking up interface {name}"))?;
    link.map(|l| l.header.index)
        .ok_or_else(|| LabError::Invalid(format!("no interface called {name}")))
}

/// All links of the namespace.
pub(crate) async fn links(handle: &Handle) -> Result<Vec<LinkMessage>> {
    handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .ctx("listing interfaces")
}

/// The name carried by a link message.
pub(crate) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

/// Hardware address of `name`.
pub(crate) async fn link_mac(handle: &Handle, name: &str) -> Result<[u8; 6]> {
    let link = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .with_ctx(|| format!("looking up interface {name}"))?
        .ok_or_else(|| LabError::Invalid(format!("no interface called {name}")))?;
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        })
        .ok_or_else(|| LabError::Invalid(format!("{name} has no 6-byte hardware address")))
}

/// Set `name` administratively up or down.
pub(crate) async fn set_link_up(handle: &Handle, name: &str, up: bool) -> Result<()> {
    let index = link_index(handle, name).await?;
    let builder = LinkUnspec::new_with_index(index);
    let msg = if up { builder.up() } else { builder.down() }.build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .with_ctx(|| format!("setting {name} {}", if up { "up" } else { "down" }))
}

/// Create a bridge (up, multicast snooping off so every frame floods like a dumb switch
/// until learned).
pub(crate) async fn create_bridge(handle: &Handle, name: &str) -> Result<u32> {
    handle
        .link()
        .add(LinkBridge::new(name).mcast_snooping(false).build())
        .execute()
        .await
        .with_ctx(|| format!("creating bridge {name}"))?;
    link_index(handle, name).await
}

/// One end of a veth pair: its name and, if not the socket's own namespace, the namespace fd
/// it is created in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VethEnd<'a> {
    pub name: &'a str,
    pub netns: Option<RawFd>,
}

/// Create a veth pair whose ends are born directly in their namespaces (no rename/move dance).
pub(crate) async fn create_veth(handle: &Handle, a: VethEnd<'_>, b: VethEnd<'_>) -> Result<()> {
    let mut peer = LinkUnspec::new_with_name(b.name);
    if let Some(fd) = b.netns {
        peer = peer.setns_by_fd(fd);
    }
    let mut builder = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(a.name.to_owned())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    if let Some(fd) = a.netns {
        builder = builder.setns_by_fd(fd);
    }
    handle
        .link()
        .add(builder.build())
        .execute()
        .await
        .with_ctx(|| format!("creating veth {} <-> {}", a.name, b.name))
}

/// Attach `port` to bridge `bridge_index` and bring it up.
pub(crate) async fn attach_to_bridge(handle: &Handle, port: &str, bridge_index: u32) -> Result<()> {
    let index = link_index(handle, port).await?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .controller(bridge_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .with_ctx(|| format!("attaching {port} to its bridge"))
}

/// Add (or keep, if present) `addr/prefix` on `ifname` (IPv6: with `IFA_F_NODAD`, usable at
/// once).
pub(crate) async fn add_address(
    handle: &Handle,
    ifname: &str,
    addr: impl Into<IpAddr>,
    prefix: u8,
) -> Result<()> {
    let addr = addr.into();
    let index = link_index(handle, ifname).await?;
    let mut request = handle.address().add(index, addr, prefix).replace();
    if addr.is_ipv6() {
        request.message_mut().header.flags = AddressHeaderFlags::Nodad;
    }
    request
        .execute()
        .await
        .with_ctx(|| format!("adding {addr}/{prefix} to {ifname}"))
}

/// Remove `addr` from `ifname` (any prefix length). Absent addresses are not an error.
pub(crate) async fn del_address(
    handle: &Handle,
    ifname: &str,
    addr: impl Into<IpAddr>,
) -> Result<()> {
    let addr = addr.into();
    let index = link_index(handle, ifname).await?;
    let found: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(addr)
        .execute()
        .try_collect()
        .await
        .with_ctx(|| format!("listing addresses of {ifname}"))?;
    for msg in found {
        handle
            .address()
            .del(msg)
            .execute()
            .await
            .with_ctx(|| format!("removing {addr} from {ifname}"))?;
    }
    Ok(())
}

/// Every IPv4 address of the namespace.
pub(crate) async fn addresses(handle: &Handle) -> Result<Vec<IfAddr>> {
    let links = links(handle).await?;
    let msgs: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .ctx("listing addresses")?;
    let mut out = Vec::new();
    for msg in msgs {
        let ifindex = msg.header.index;
        let ifname = links
            .iter()
            .find(|l| l.header.index == ifindex)
            .and_then(link_name)
            .unwrap_or_default()
            .to_owned();
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on p2p links).
        let local = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let address = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        if let Some(addr) = local.or(address) {
            out.push(IfAddr {
                ifname,
                ifindex,
                addr,
                prefix: msg.header.prefix_len,
            });
        }
    }
    Ok(out)
}

/// Every IPv6 address of the namespace (link-local ones included).
pub(crate) async fn addresses6(handle: &Handle) -> Result<Vec<IfAddr6>> {
    let links = links(handle).await?;
    let msgs: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .ctx("listing addresses")?;
    let mut out = Vec::new();
    for msg in msgs {
        let ifindex = msg.header.index;
        let ifname = links
            .iter()
            .find(|l| l.header.index == ifindex)
            .and_then(link_name)
            .unwrap_or_default()
            .to_owned();
        let addr = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V6(ip)) | AddressAttribute::Local(IpAddr::V6(ip)) => {
                Some(*ip)
            }
            _ => None,
        });
        if let Some(addr) = addr {
            out.push(IfAddr6 {
                ifname,
                ifindex,
                addr,
                prefix: msg.header.prefix_len,
            });
        }
    }
    Ok(out)
}

/// Adds `route`, replacing one to the same destination; `what` names it in the error.
async fn install_route(
    handle: &Handle,
    route: RouteMessage,
    what: impl FnOnce() -> String,
) -> Result<()> {
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .with_ctx(what)
}

/// Install (or replace) the IPv6 default route via `gateway`.
pub(crate) async fn replace_default_route6(handle: &Handle, gateway: Ipv6Addr) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv6Addr>::new()
        .gateway(gateway)
        .build();
    install_route(handle, route, || {
        format!("setting the IPv6 default route via {gateway}")
    })
    .await
}

/// Install (or replace) a route to `dst/prefix` via `gateway` (IPv6).
pub(crate) async fn replace_route6(
    handle: &Handle,
    dst: Ipv6Addr,
    prefix: u8,
    gateway: Ipv6Addr,
) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(dst, prefix)
        .gateway(gateway)
        .build();
    install_route(handle, route, || {
        format!("adding the route {dst}/{prefix} via {gateway}")
    })
    .await
}

/// Install (or replace) an on-link IPv6 route to `dst/prefix` out of `ifname`.
pub(crate) async fn replace_device_route6(
    handle: &Handle,
    dst: Ipv6Addr,
    prefix: u8,
    ifname: &str,
) -> Result<()> {
    let index = link_index(handle, ifname).await?;
    let route = RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(dst, prefix)
        .output_interface(index)
        .build();
    install_route(handle, route, || {
        format!("adding the route {dst}/{prefix} dev {ifname}")
    })
    .await
}

/// Remove the IPv6 route to `dst/prefix` (main table).
pub(crate) async fn del_route6(handle: &Handle, dst: Ipv6Addr, prefix: u8) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv6Addr>::new()
        .destination_prefix(dst, prefix)
        .build();
    handle
        .route()
        .del(route)
        .execute()
        .await
        .with_ctx(|| format!("removing the route {dst}/{prefix}"))
}

/// Install (or replace) the IPv4 default route via `gateway`.
pub(crate) async fn replace_default_route(handle: &Handle, gateway: Ipv4Addr) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    install_route(handle, route, || {
        format!("setting the default route via {gateway}")
    })
    .await
}

/// Install (or replace) a route to `dst/prefix` via `gateway`.
pub(crate) async fn replace_route(
    handle: &Handle,
    dst: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst, prefix)
        .gateway(gateway)
        .build();
    install_route(handle, route, || {
        format!("adding the route {dst}/{prefix} via {gateway}")
    })
    .await
}

/// Install (or replace) an on-link route to `dst/prefix` out of `ifname` (no gateway: the
/// kernel ARPs for each destination on that link).
pub(crate) async fn replace_device_route(
    handle: &Handle,
    dst: Ipv4Addr,
    prefix: u8,
    ifname: &str,
) -> Result<()> {
    let index = link_index(handle, ifname).await?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst, prefix)
        .output_interface(index)
        .scope(rtnetlink::packet_route::route::RouteScope::Link)
        .build();
    install_route(handle, route, || {
        format!("adding the route {dst}/{prefix} dev {ifname}")
    })
    .await
}

/// Remove the route to `dst/prefix` (main table). Absent routes are an error from the kernel.
pub(crate) async fn del_route(handle: &Handle, dst: Ipv4Addr, prefix: u8) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst, prefix)
        .build();
    handle
        .route()
        .del(route)
        .execute()
        .await
        .with_ctx(|| format!("removing the route {dst}/{prefix}"))
}
