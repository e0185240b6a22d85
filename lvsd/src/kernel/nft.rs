//! The nftables guard, spoken directly in nf_tables netlink (NETLINK_NETFILTER).
//!
//! # What it installs
//!
//! One table `lvsd` in family `netdev`, created with `NFT_TABLE_F_OWNER`: the table belongs
//! to this guard's netlink socket, nobody else can change it, and the kernel deletes it
//! when the socket closes — also when lvsd is killed with SIGKILL. The socket therefore
//! lives exactly as long as the [`NftGuard`].
//!
//! Per device one base chain `in_<device>` (type filter, hook ingress, priority 0, policy
//! accept) with one rule per tuple:
//!
//! - `drop_dst (P, X, N)`: `meta protocol ip ip daddr X meta l4proto P th dport N drop`
//!   (traffic for a virtual service: the director's own stack must not answer it, e.g.
//!   with a RST);
//! - `accept_local X` (after the `drop_dst` rules, before the `drop_src` ones):
//!   `meta protocol ip ip daddr X accept` — traffic to one of the director's own addresses
//!   (the answers to its health checks, which come from a real server's RIP:port too) is
//!   the kernel's; a VIP:port is dropped before (its rule comes first);
//! - `drop_src (P, X, N)`: `meta protocol ip ip saddr X meta l4proto P th sport N drop`
//!   (NAT replies from a real server: the kernel must not forward a second copy).
//! - ICMP errors lvsd relays (types 3, 4 and 11, IPVS's set; `dataplane/icmp.rs`), one
//!   rule per address and type: `meta protocol ip ip daddr X meta l4proto icmp icmp type
//!   T drop` for every address of `drop_dst`, right after the `drop_dst` rules (the
//!   kernel must not act on an error lvsd forwards to a real server); and `... ip saddr X
//!   ... drop` for every address of `drop_src`, after `accept_local` (a NAT real server's
//!   error about a client's packet goes to the client translated by lvsd, not untranslated
//!   by the kernel; its errors to the director itself, e.g. a UDP health check's port
//!   unreachable, stay the kernel's). Echo and every other type are not touched: the
//!   kernel answers pings to a VIP. Non-first fragments never match a transport-header
//!   rule, so they reach the kernel.
//!
//! IPv6 has the same rules, in the same order, for the `*6` fields of [`GuardDevice`]:
//! `meta protocol ip6 ip6 {daddr|saddr} X meta l4proto P th {dport|sport} N drop`,
//! `meta protocol ip6 ip6 daddr X accept` for `accept_local6`, and for ICMPv6 the error
//! types 1 to 4 (destination unreachable, packet too big, time exceeded, parameter
//! problem: the errors RFC 4443 defines, all of which IPVS relays):
//! `meta protocol ip6 ip6 {daddr|saddr} X meta l4proto ipv6-icmp icmpv6 type T drop`.
//! `meta l4proto` and `th` are computed by the kernel after walking the IPv6 extension
//! headers (`ipv6_find_hdr`), so a TCP segment behind a hop-by-hop or destination-options
//! header is dropped like any other; a non-first fragment has no transport header for `th`
//! and reaches the kernel, as in IPv4. Neighbor Discovery (ICMPv6 133 to 137) and every
//! other informational ICMPv6 message (echo, MLD) is never matched by a drop rule, so the
//! kernel keeps answering Neighbor Solicitations for the VIPs and resolving its own
//! neighbours; the IPv4 rules never match IPv6 and vice versa (`meta protocol` first).
//!
//! Packet sockets see frames before the ingress hook, so lvsd still receives them.
//!
//! A device that does not exist (yet) is accepted by newer kernels (verified on 6.18: the
//! chain is created and hooks the device when it appears); older kernels refuse the chain
//! with `ENOENT`, reported as "creating the nftables ingress chain for device X: No such
//! file or directory ...; does the device exist?".
//!
//! # Invariants
//!
//! - [`NftGuard::install`] fails with [`KernelError::TableBusy`] if a table `netdev lvsd`
//!   already exists (another lvsd, or one made by hand); it never touches it.
//! - Every change is one nf_tables batch (BATCH_BEGIN .. BATCH_END), which the kernel
//!   applies atomically or not at all; [`NftGuard::replace`] deletes and recreates the
//!   table in a single batch, so there is no moment without the rules.
//! - Every kernel error is reported with the errno and the message that caused it.
//!
//! Message layout follows the kernel uapi (`linux/netfilter/nfnetlink.h`,
//! `linux/netfilter/nf_tables.h`): `nlmsghdr` + `nfgenmsg` + attributes; integers in
//! attributes are big-endian, nested attributes carry `NLA_F_NESTED`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use lvs_proto::Protocol;
use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::KernelError;

/// What the guard should drop, per device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardSpec {
    /// Devices (interfaces) to guard; a device listed twice gets the union of its tuples.
    pub devices: Vec<GuardDevice>,
}

/// The tuples to drop at one device's ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardDevice {
    /// Interface name.
    pub name: String,
    /// Drop IPv4 packets with this (protocol, destination address, destination port).
    pub drop_dst: Vec<(Protocol, Ipv4Addr, u16)>,
    /// Drop IPv4 packets with this (protocol, source address, source port).
    pub drop_src: Vec<(Protocol, Ipv4Addr, u16)>,
    /// Accept IPv4 packets to these (local) addresses before `drop_src` applies: health
    /// check answers from a real server's RIP:port to the director itself.
    pub accept_local: Vec<Ipv4Addr>,
    /// Drop IPv6 packets with this (protocol, destination address, destination port).
    pub drop_dst6: Vec<(Protocol, Ipv6Addr, u16)>,
    /// Drop IPv6 packets with this (protocol, source address, source port).
    pub drop_src6: Vec<(Protocol, Ipv6Addr, u16)>,
    /// Accept IPv6 packets to these (local) addresses before `drop_src6` applies.
    pub accept_local6: Vec<Ipv6Addr>,
}

/// The installed guard; dropping it removes the table (best effort; the kernel removes it
/// anyway when the socket closes).
#[derive(Debug)]
pub struct NftGuard {
    sock: Socket,
    seq: u32,
    spec: GuardSpec,
    installed: bool,
}

pub(crate) const TABLE: &str = "lvsd";

// linux/netlink.h
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_CAPPED: u16 = 0x100;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;

// linux/netfilter/nfnetlink.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16; // NLMSG_MIN_TYPE
const NFNL_MSG_BATCH_END: u16 = 17;
const NFNETLINK_V0: u8 = 0;
const AF_UNSPEC: u8 = 0;
const NFPROTO_NETDEV: u8 = 5;

// linux/netfilter/nf_tables.h: message types
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

// Table attributes and flags.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_TABLE_OWNER: u16 = 7;
const NFT_TABLE_F_OWNER: u32 = 0x2;
/// libnftnl's user-data TLV type for a table comment (`NFTNL_UDATA_TABLE_COMMENT`).
const UDATA_TABLE_COMMENT: u8 = 0;

// Chain attributes.
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
const NF_NETDEV_INGRESS: u32 = 0;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

// Rule and expression attributes.
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_PROTOCOL: u32 = 1;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

/// IP protocol number of ICMP.
const IPPROTO_ICMP: u8 = 1;
/// ICMP types whose errors lvsd relays and the kernel must not also handle (destination
/// unreachable, source quench, time exceeded: `wire::icmp::is_relayed_error`).
const ICMP_RELAYED: [u8; 3] = [3, 4, 11];
/// IPv6 next-header number of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 error types lvsd relays (RFC 4443's errors; never NDP, 133 to 137).
const ICMPV6_RELAYED: [u8; 4] = [1, 2, 3, 4];
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Where a family's fields are: (ethertype, source offset, destination offset, address
/// length) in the network header.
fn layout(addr: &IpAddr) -> (u16, u32, u32, u32) {
    match addr {
        IpAddr::V4(_) => (ETHERTYPE_IPV4, 12, 16, 4),
        IpAddr::V6(_) => (ETHERTYPE_IPV6, 8, 24, 16),
    }
}

fn octets(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Interface names are at most IFNAMSIZ - 1 bytes.
const IFNAMSIZ: usize = 16;
/// How long to wait for the kernel's answers to a batch (normally already queued when
/// `send` returns, as nfnetlink processes batches synchronously).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds netlink messages into one buffer.
#[derive(Default)]
struct MsgBuf {
    buf: Vec<u8>,
}

impl MsgBuf {
    /// Starts a message: nlmsghdr + nfgenmsg. Returns its start offset for `end`.
    fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by end()
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: kernel
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    fn end(&mut self, start: usize) {
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
    }

    fn u32be(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    fn nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    fn nest_end(&mut self, start: usize) {
        let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// One expression: LIST_ELEM { NAME, DATA { ... } }.
    fn expr(&mut self, name: &str, data: impl FnOnce(&mut MsgBuf)) {
        let elem = self.nest(NFTA_LIST_ELEM);
        self.str(NFTA_EXPR_NAME, name);
        let d = self.nest(NFTA_EXPR_DATA);
        data(self);
        self.nest_end(d);
        self.nest_end(elem);
    }

    fn meta_load(&mut self, key: u32) {
        self.expr("meta", |m| {
            m.u32be(NFTA_META_KEY, key);
            m.u32be(NFTA_META_DREG, NFT_REG_1);
        });
    }

    fn payload_load(&mut self, base: u32, offset: u32, len: u32) {
        self.expr("payload", |m| {
            m.u32be(NFTA_PAYLOAD_DREG, NFT_REG_1);
            m.u32be(NFTA_PAYLOAD_BASE, base);
            m.u32be(NFTA_PAYLOAD_OFFSET, offset);
            m.u32be(NFTA_PAYLOAD_LEN, len);
        });
    }

    fn cmp_eq(&mut self, value: &[u8]) {
        self.expr("cmp", |m| {
            m.u32be(NFTA_CMP_SREG, NFT_REG_1);
            m.u32be(NFTA_CMP_OP, NFT_CMP_EQ);
            let d = m.nest(NFTA_CMP_DATA);
            m.attr(NFTA_DATA_VALUE, value);
            m.nest_end(d);
        });
    }

    fn verdict(&mut self, code: u32) {
        self.expr("immediate", |m| {
            m.u32be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            let d = m.nest(NFTA_IMMEDIATE_DATA);
            let v = m.nest(NFTA_DATA_VERDICT);
            m.u32be(NFTA_VERDICT_CODE, code);
            m.nest_end(v);
            m.nest_end(d);
        });
    }
}

/// Which side of the packet a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Dst,
    Src,
}

/// A batch under construction: messages plus, per sequence number, what each one does
/// (for error messages).
struct Batch {
    msg: MsgBuf,
    first_seq: u32,
    next_seq: u32,
    what: Vec<(u32, String)>,
    /// Sequence number of the last real message (the one that asks for an ACK).
    last: Option<(usize, u32)>,
}

impl Batch {
    fn new(first_seq: u32) -> Batch {
        let mut b = Batch {
            msg: MsgBuf::default(),
            first_seq,
            next_seq: first_seq,
            what: Vec::new(),
            last: None,
        };
        let seq = b.take_seq("starting an nftables transaction".to_string());
        let s = b.msg.begin(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        b.msg.end(s);
        b
    }

    fn take_seq(&mut self, what: String) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.what.push((seq, what));
        seq
    }

    /// Starts an nf_tables message in family netdev.
    fn begin(&mut self, msg_type: u16, flags: u16, what: String) -> usize {
        let seq = self.take_seq(what);
        let start = self.msg.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | msg_type,
            NLM_F_REQUEST | flags,
            seq,
            NFPROTO_NETDEV,
            0,
        );
        self.last = Some((start, seq));
        start
    }

    fn new_table(&mut self, exclusive: bool) {
        let excl = if exclusive { NLM_F_EXCL } else { 0 };
        let s = self.begin(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE | excl,
            format!("creating nftables table netdev {TABLE}"),
        );
        self.msg.str(NFTA_TABLE_NAME, TABLE);
        self.msg.u32be(NFTA_TABLE_FLAGS, NFT_TABLE_F_OWNER);
        let comment = format!(
            "lvsd (pid {}): drops what lvsd forwards; removed when lvsd exits",
            std::process::id()
        );
        let mut udata = vec![UDATA_TABLE_COMMENT];
        let mut c = comment.into_bytes();
        c.truncate(200);
        c.push(0);
        udata.push(u8::try_from(c.len()).unwrap_or(u8::MAX));
        udata.extend_from_slice(&c);
        self.msg.attr(NFTA_TABLE_USERDATA, &udata);
        self.msg.end(s);
    }

    fn del_table(&mut self) {
        let s = self.begin(
            NFT_MSG_DELTABLE,
            0,
            format!("deleting nftables table netdev {TABLE}"),
        );
        self.msg.str(NFTA_TABLE_NAME, TABLE);
        self.msg.end(s);
    }

    fn new_chain(&mut self, dev: &str) {
        let s = self.begin(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            format!("creating the nftables ingress chain for device {dev}"),
        );
        self.msg.str(NFTA_CHAIN_TABLE, TABLE);
        self.msg.str(NFTA_CHAIN_NAME, &chain_name(dev));
        let h = self.msg.nest(NFTA_CHAIN_HOOK);
        self.msg.u32be(NFTA_HOOK_HOOKNUM, NF_NETDEV_INGRESS);
        self.msg.u32be(NFTA_HOOK_PRIORITY, 0);
        self.msg.str(NFTA_HOOK_DEV, dev);
        self.msg.nest_end(h);
        self.msg.u32be(NFTA_CHAIN_POLICY, NF_ACCEPT);
        self.msg.str(NFTA_CHAIN_TYPE, "filter");
        self.msg.end(s);
    }

    fn new_rule(&mut self, dev: &str, side: Side, (proto, addr, port): (Protocol, IpAddr, u16)) {
        let dir = match side {
            Side::Dst => "to",
            Side::Src => "from",
        };
        let s = self.begin(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!(
                "adding the nftables drop rule for {proto} {dir} {} on {dev}",
                std::net::SocketAddr::from((addr, port))
            ),
        );
        self.msg.str(NFTA_RULE_TABLE, TABLE);
        self.msg.str(NFTA_RULE_CHAIN, &chain_name(dev));
        let (ethertype, src_off, dst_off, len) = layout(&addr);
        let (addr_off, port_off) = match side {
            Side::Dst => (dst_off, 2),
            Side::Src => (src_off, 0),
        };
        let e = self.msg.nest(NFTA_RULE_EXPRESSIONS);
        self.msg.meta_load(NFT_META_PROTOCOL);
        self.msg.cmp_eq(&ethertype.to_be_bytes());
        self.msg
            .payload_load(NFT_PAYLOAD_NETWORK_HEADER, addr_off, len);
        self.msg.cmp_eq(&octets(&addr));
        self.msg.meta_load(NFT_META_L4PROTO);
        self.msg.cmp_eq(&[proto.number()]);
        self.msg
            .payload_load(NFT_PAYLOAD_TRANSPORT_HEADER, port_off, 2);
        self.msg.cmp_eq(&port.to_be_bytes());
        self.msg.verdict(NF_DROP);
        self.msg.nest_end(e);
        self.msg.end(s);
    }

    /// `meta protocol ip ip {daddr|saddr} X meta l4proto icmp icmp type T drop`, or for
    /// IPv6 `meta protocol ip6 ip6 {daddr|saddr} X meta l4proto ipv6-icmp icmpv6 type T
    /// drop`.
    fn new_icmp_rule(&mut self, dev: &str, side: Side, addr: IpAddr, icmp_type: u8) {
        let dir = match side {
            Side::Dst => "to",
            Side::Src => "from",
        };
        let s = self.begin(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!(
                "adding the nftables drop rule for {} type {icmp_type} {dir} {addr} on {dev}",
                if addr.is_ipv4() { "ICMP" } else { "ICMPv6" }
            ),
        );
        self.msg.str(NFTA_RULE_TABLE, TABLE);
        self.msg.str(NFTA_RULE_CHAIN, &chain_name(dev));
        let (ethertype, src_off, dst_off, len) = layout(&addr);
        let addr_off = match side {
            Side::Dst => dst_off,
            Side::Src => src_off,
        };
        let l4 = if addr.is_ipv4() {
            IPPROTO_ICMP
        } else {
            IPPROTO_ICMPV6
        };
        let e = self.msg.nest(NFTA_RULE_EXPRESSIONS);
        self.msg.meta_load(NFT_META_PROTOCOL);
        self.msg.cmp_eq(&ethertype.to_be_bytes());
        self.msg
            .payload_load(NFT_PAYLOAD_NETWORK_HEADER, addr_off, len);
        self.msg.cmp_eq(&octets(&addr));
        self.msg.meta_load(NFT_META_L4PROTO);
        self.msg.cmp_eq(&[l4]);
        self.msg.payload_load(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
        self.msg.cmp_eq(&[icmp_type]);
        self.msg.verdict(NF_DROP);
        self.msg.nest_end(e);
        self.msg.end(s);
    }

    /// `meta protocol ip ip daddr X accept` (IPv6: `meta protocol ip6 ip6 daddr X accept`).
    fn new_accept_rule(&mut self, dev: &str, addr: IpAddr) {
        let s = self.begin(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!("adding the nftables accept rule for traffic to {addr} on {dev}"),
        );
        self.msg.str(NFTA_RULE_TABLE, TABLE);
        self.msg.str(NFTA_RULE_CHAIN, &chain_name(dev));
        let (ethertype, _, dst_off, len) = layout(&addr);
        let e = self.msg.nest(NFTA_RULE_EXPRESSIONS);
        self.msg.meta_load(NFT_META_PROTOCOL);
        self.msg.cmp_eq(&ethertype.to_be_bytes());
        self.msg
            .payload_load(NFT_PAYLOAD_NETWORK_HEADER, dst_off, len);
        self.msg.cmp_eq(&octets(&addr));
        self.msg.verdict(NF_ACCEPT);
        self.msg.nest_end(e);
        self.msg.end(s);
    }

    /// All chains and rules of `spec` (already validated and merged): per family (IPv4
    /// first), the `drop_dst` rules, then the `accept_local` ones, then the `drop_src`
    /// ones (module doc). A device with only IPv4 tuples gets exactly the rules it got
    /// before IPv6 existed.
    fn contents(&mut self, devices: &BTreeMap<String, Tuples>) {
        for (dev, t) in devices {
            self.new_chain(dev);
            self.family(dev, &t.dst, &t.local, &t.src, &ICMP_RELAYED);
            self.family(dev, &t.dst6, &t.local6, &t.src6, &ICMPV6_RELAYED);
        }
    }

    /// The rules of one family on one device.
    fn family<A: Copy + Ord + Into<IpAddr>>(
        &mut self,
        dev: &str,
        dst: &[(Protocol, A, u16)],
        local: &[A],
        src: &[(Protocol, A, u16)],
        icmp_types: &[u8],
    ) {
        for &(p, a, n) in dst {
            self.new_rule(dev, Side::Dst, (p, a.into(), n));
        }
        for addr in addrs(dst) {
            for &ty in icmp_types {
                self.new_icmp_rule(dev, Side::Dst, addr.into(), ty);
            }
        }
        if !src.is_empty() {
            for addr in local {
                self.new_accept_rule(dev, (*addr).into());
            }
        }
        for &(p, a, n) in src {
            self.new_rule(dev, Side::Src, (p, a.into(), n));
        }
        for addr in addrs(src) {
            for &ty in icmp_types {
                self.new_icmp_rule(dev, Side::Src, addr.into(), ty);
            }
        }
    }

    /// Closes the batch: the last real message asks for an ACK, then BATCH_END. Returns
    /// the bytes and the sequence number whose answer ends the exchange.
    fn finish(mut self) -> (Vec<u8>, u32, Vec<(u32, String)>, u32) {
        let mut ack_seq = self.first_seq;
        if let Some((start, seq)) = self.last {
            let flags_at = start + 6;
            let flags = u16::from_ne_bytes([self.msg.buf[flags_at], self.msg.buf[flags_at + 1]]);
            self.msg.buf[flags_at..flags_at + 2]
                .copy_from_slice(&(flags | NLM_F_ACK).to_ne_bytes());
            ack_seq = seq;
        }
        let seq = self.take_seq("ending the nftables transaction".to_string());
        let s = self.msg.begin(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.msg.end(s);
        (self.msg.buf, ack_seq, self.what, self.next_seq)
    }
}

/// The distinct addresses of sorted tuples, in order.
fn addrs<A: Copy + Ord>(tuples: &[(Protocol, A, u16)]) -> Vec<A> {
    let mut v: Vec<A> = tuples.iter().map(|t| t.1).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn chain_name(dev: &str) -> String {
    format!("in_{dev}")
}

/// De-duplicated tuples of one device.
#[derive(Debug, Default)]
struct Tuples {
    dst: Vec<(Protocol, Ipv4Addr, u16)>,
    src: Vec<(Protocol, Ipv4Addr, u16)>,
    local: Vec<Ipv4Addr>,
    dst6: Vec<(Protocol, Ipv6Addr, u16)>,
    src6: Vec<(Protocol, Ipv6Addr, u16)>,
    local6: Vec<Ipv6Addr>,
}

/// Validates device names and merges/sorts/de-duplicates the spec.
fn normalize(spec: &GuardSpec, what: &str) -> Result<BTreeMap<String, Tuples>, KernelError> {
    let mut out: BTreeMap<String, Tuples> = BTreeMap::new();
    for d in &spec.devices {
        let bad = |reason: &str| KernelError::Invalid {
            what: what.to_string(),
            reason: format!("device name {:?} {reason}", d.name),
        };
        if d.name.is_empty() {
            return Err(bad("is empty"));
        }
        if d.name.len() >= IFNAMSIZ {
            return Err(bad("is longer than 15 bytes"));
        }
        if d.name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
        {
            return Err(bad("contains a NUL, '/' or whitespace"));
        }
        let t = out.entry(d.name.clone()).or_default();
        t.dst.extend_from_slice(&d.drop_dst);
        t.src.extend_from_slice(&d.drop_src);
        t.local.extend_from_slice(&d.accept_local);
        t.dst6.extend_from_slice(&d.drop_dst6);
        t.src6.extend_from_slice(&d.drop_src6);
        t.local6.extend_from_slice(&d.accept_local6);
    }
    fn sorted<T: Ord>(v: &mut Vec<T>) {
        v.sort_unstable();
        v.dedup();
    }
    for t in out.values_mut() {
        sorted(&mut t.dst);
        sorted(&mut t.src);
        sorted(&mut t.local);
        sorted(&mut t.dst6);
        sorted(&mut t.src6);
        sorted(&mut t.local6);
    }
    Ok(out)
}

/// One parsed answer from the kernel.
#[derive(Debug)]
enum Answer {
    /// NLMSG_ERROR: errno (0 = ACK) and the kernel's extended-ack message, if any.
    Ack {
        seq: u32,
        errno: i32,
        msg: Option<String>,
    },
    /// Any other message (e.g. a NEWTABLE reply to GETTABLE): type and attribute bytes.
    Msg { seq: u32, ty: u16, attrs: Vec<u8> },
}

fn parse_answers(data: &[u8], out: &mut Vec<Answer>) {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= data.len() {
        let rd32 = |o: usize| u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        let rd16 = |o: usize| u16::from_ne_bytes([data[o], data[o + 1]]);
        let len = rd32(off) as usize;
        if len < NLMSG_HDRLEN || off + len > data.len() {
            break;
        }
        let ty = rd16(off + 4);
        let flags = rd16(off + 6);
        let seq = rd32(off + 8);
        let body = &data[off + NLMSG_HDRLEN..off + len];
        if ty == NLMSG_ERROR && body.len() >= 4 {
            let errno = -(i32::from_ne_bytes([body[0], body[1], body[2], body[3]]));
            let mut msg = None;
            if flags & NLM_F_ACK_TLVS != 0 && body.len() >= 4 + NLMSG_HDRLEN {
                // After the errno comes the request: only its header if the kernel capped
                // it (NETLINK_CAP_ACK), else all of it; then the extended-ack TLVs.
                let echoed = if flags & NLM_F_CAPPED != 0 {
                    NLMSG_HDRLEN
                } else {
                    (rd32(off + NLMSG_HDRLEN + 4) as usize + 3) & !3
                };
                let tlvs = body.get(4 + echoed..).unwrap_or_default();
                msg = find_attr(tlvs, NLMSGERR_ATTR_MSG)
                    .map(|v| {
                        String::from_utf8_lossy(v)
                            .trim_end_matches('\0')
                            .to_string()
                    })
                    .filter(|s| !s.is_empty());
            }
            out.push(Answer::Ack { seq, errno, msg });
        } else if ty != NLMSG_DONE {
            let attrs = body.get(4..).unwrap_or_default().to_vec(); // skip nfgenmsg
            out.push(Answer::Msg { seq, ty, attrs });
        }
        off += (len + 3) & !3;
    }
}

/// The payload of the first attribute of type `ty` in a flat attribute list.
fn find_attr(mut attrs: &[u8], ty: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]) & !NLA_F_NESTED;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == ty {
            return Some(&attrs[4..len]);
        }
        let next = (len + 3) & !3;
        attrs = attrs.get(next..)?;
    }
    None
}

fn be_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

impl NftGuard {
    /// Creates the table `netdev lvsd` and the chains and rules of `spec` in the calling
    /// thread's network namespace.
    pub fn install(spec: &GuardSpec) -> Result<NftGuard, KernelError> {
        let what = "installing the nftables guard";
        let devices = normalize(spec, what)?;
        let sock = open_socket()?;
        let mut guard = NftGuard {
            sock,
            seq: initial_seq(),
            spec: spec.clone(),
            installed: false,
        };
        guard.check_no_table()?;
        let mut b = Batch::new(guard.seq);
        b.new_table(true);
        b.contents(&devices);
        match guard.transact(b) {
            Ok(()) => {}
            // Lost a race against another creator.
            Err(e) if matches!(e.errno(), Some(libc::EEXIST)) => {
                return Err(KernelError::TableBusy {
                    detail: String::new(),
                });
            }
            Err(e) => return Err(e),
        }
        guard.installed = true;
        Ok(guard)
    }

    /// Replaces the chains and rules with those of `spec`, atomically (one batch that
    /// deletes and recreates the table). On error the previous rules stay in force.
    pub fn replace(&mut self, spec: &GuardSpec) -> Result<(), KernelError> {
        let devices = normalize(spec, "replacing the nftables guard rules")?;
        let mut b = Batch::new(self.seq);
        if self.installed {
            b.del_table();
        }
        b.new_table(false);
        b.contents(&devices);
        self.transact(b)?;
        self.installed = true;
        self.spec = spec.clone();
        Ok(())
    }

    /// Deletes the table (and with it every chain and rule).
    pub fn remove(mut self) -> Result<(), KernelError> {
        self.remove_table()
    }

    /// The spec currently installed.
    pub fn spec(&self) -> &GuardSpec {
        &self.spec
    }

    fn remove_table(&mut self) -> Result<(), KernelError> {
        if !self.installed {
            return Ok(());
        }
        let mut b = Batch::new(self.seq);
        b.del_table();
        self.transact(b)?;
        self.installed = false;
        Ok(())
    }

    /// Fails with TableBusy if `netdev lvsd` exists (GETTABLE; needs CAP_NET_ADMIN too).
    fn check_no_table(&mut self) -> Result<(), KernelError> {
        let what = format!("checking for an existing nftables table netdev {TABLE}");
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut m = MsgBuf::default();
        let s = m.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            NFPROTO_NETDEV,
            0,
        );
        m.str(NFTA_TABLE_NAME, TABLE);
        m.end(s);
        self.send(&m.buf, &what)?;
        let mut table: Option<Vec<u8>> = None;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            for a in self.read_answers(&what, deadline)? {
                match a {
                    Answer::Msg { seq: s, ty, attrs }
                        if s == seq && ty == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE =>
                    {
                        table = Some(attrs)
                    }
                    Answer::Ack { seq: s, errno, msg } if s == seq => {
                        return match (errno, table) {
                            (0, None) => Err(KernelError::Netlink {
                                what,
                                detail: "the kernel acknowledged without an answer".into(),
                            }),
                            (0, Some(attrs)) => Err(table_busy(&attrs)),
                            (libc::ENOENT, _) => Ok(()),
                            (e, _) => Err(KernelError::from_errno(what, e, ext_hint(msg))),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    fn send(&self, bytes: &[u8], what: &str) -> Result<(), KernelError> {
        if bytes.len() > 128 * 1024 {
            // Batches go to the kernel in one datagram: make room for it (best effort; a
            // failure shows up as EMSGSIZE below).
            let _ = crate::io::set_buffer_sizes(self.sock.as_fd(), None, Some(bytes.len() + 65536));
        }
        match self.sock.send(bytes, 0) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(n) => Err(KernelError::Netlink {
                what: what.to_string(),
                detail: format!("sent {n} of {} bytes", bytes.len()),
            }),
            Err(e) => Err(KernelError::from_io(what, e)),
        }
    }

    /// Reads every answer queued on the socket, waiting up to `deadline` for the first.
    fn read_answers(&self, what: &str, deadline: Instant) -> Result<Vec<Answer>, KernelError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match self.sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => parse_answers(&buf[..n.min(buf.len())], &mut out),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !out.is_empty() {
                        return Ok(out);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(KernelError::Timeout {
                            what: what.to_string(),
                            secs: ANSWER_TIMEOUT.as_secs(),
                        });
                    }
                    let mut ready = [false];
                    crate::io::poll_readable(
                        &[self.sock.as_fd()],
                        Some(deadline - now),
                        &mut ready,
                    )
                    .map_err(|e| KernelError::from_io(what, e))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // ENOBUFS: answers were lost (only possible with many errors); what we
                // have already shows the first failure.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && !out.is_empty() => {
                    return Ok(out);
                }
                Err(e) => return Err(KernelError::from_io(what, e)),
            }
        }
    }

    /// Sends a batch and checks the answers: any error fails (reporting the first one,
    /// with the message that caused it); success is the ACK of the last message.
    fn transact(&mut self, batch: Batch) -> Result<(), KernelError> {
        let what_tx = "applying an nftables transaction";
        let first_seq = batch.first_seq;
        let (bytes, ack_seq, what, next_seq) = batch.finish();
        self.seq = next_seq;
        self.send(&bytes, what_tx)?;
        let describe = |seq: u32| -> String {
            what.iter()
                .find(|(s, _)| *s == seq)
                .map(|(_, w)| w.clone())
                .unwrap_or_else(|| what_tx.to_string())
        };
        let in_batch = |seq: u32| seq.wrapping_sub(first_seq) < next_seq.wrapping_sub(first_seq);
        let mut first_error: Option<(u32, i32, Option<String>)> = None;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let answers = self.read_answers(what_tx, deadline)?;
            let mut done = false;
            for a in answers {
                if let Answer::Ack { seq, errno, msg } = a {
                    if !in_batch(seq) {
                        continue; // a stale answer to an earlier request
                    }
                    if errno != 0 {
                        let earlier = first_error.as_ref().is_none_or(|(s, _, _)| {
                            seq.wrapping_sub(first_seq) < s.wrapping_sub(first_seq)
                        });
                        if earlier {
                            first_error = Some((seq, errno, msg));
                        }
                        if seq == first_seq {
                            done = true; // the batch itself was refused
                        }
                    }
                    if seq == ack_seq {
                        done = true;
                    }
                }
            }
            if done {
                break;
            }
        }
        match first_error {
            None => Ok(()),
            Some((seq, errno, msg)) => {
                let w = describe(seq);
                let mut hint = ext_hint(msg);
                if errno == libc::ENOENT && w.contains("chain for device") {
                    hint.push_str("; does the device exist?");
                }
                Err(KernelError::from_errno(w, errno, hint))
            }
        }
    }
}

impl Drop for NftGuard {
    fn drop(&mut self) {
        if let Err(e) = self.remove_table() {
            tracing::warn!("{e} (the kernel removes the table when lvsd's socket closes)");
        }
    }
}

fn ext_hint(msg: Option<String>) -> String {
    msg.map(|m| format!("; kernel says: {m}"))
        .unwrap_or_default()
}

fn table_busy(attrs: &[u8]) -> KernelError {
    let flags = find_attr(attrs, NFTA_TABLE_FLAGS)
        .and_then(be_u32)
        .unwrap_or(0);
    let owner = find_attr(attrs, NFTA_TABLE_OWNER).and_then(be_u32);
    let mut detail = String::new();
    if flags & NFT_TABLE_F_OWNER != 0 {
        if let Some(port) = owner {
            let _ = write!(detail, " (netlink port id {port})");
        }
    } else {
        detail.push_str(
            " (or it was created by hand: it has no owner, so `nft delete table netdev lvsd` \
             removes it)",
        );
    }
    KernelError::TableBusy { detail }
}

fn open_socket() -> Result<Socket, KernelError> {
    let what = "opening an nftables netlink socket";
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| KernelError::from_io(what, e))?;
    sock.bind_auto()
        .map_err(|e| KernelError::from_io(what, e))?;
    sock.set_non_blocking(true)
        .map_err(|e| KernelError::from_io(what, e))?;
    // Short acks (no echo of our request) with the kernel's error strings.
    let _ = sock.set_cap_ack(true);
    let _ = sock.set_ext_ack(true);
    let _ = crate::io::set_buffer_sizes(sock.as_fd(), Some(1 << 20), None);
    Ok(sock)
}

/// A sequence start that differs between processes and runs, for readable traces.
fn initial_seq() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (t as u32).wrapping_mul(1000)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn message_layout() {
        let mut b = Batch::new(100);
        b.new_table(true);
        let (bytes, ack_seq, what, next) = b.finish();
        assert_eq!((ack_seq, next), (101, 103));
        assert_eq!(what.len(), 3);
        // BATCH_BEGIN: len 20, type 16, flags REQUEST, seq 100, nfgenmsg res_id BE 10.
        assert_eq!(&bytes[0..4], &20u32.to_ne_bytes());
        assert_eq!(&bytes[4..6], &16u16.to_ne_bytes());
        assert_eq!(&bytes[6..8], &1u16.to_ne_bytes());
        assert_eq!(&bytes[8..12], &100u32.to_ne_bytes());
        assert_eq!(&bytes[16..20], &[0, 0, 0, 10]);
        // NEWTABLE: type 0x0a00, flags REQUEST|ACK|EXCL|CREATE, family netdev.
        let t = &bytes[20..];
        assert_eq!(&t[4..6], &0x0a00u16.to_ne_bytes());
        assert_eq!(&t[6..8], &(1u16 | 4 | 0x200 | 0x400).to_ne_bytes());
        assert_eq!(t[16], NFPROTO_NETDEV);
        let attrs = &t[20..u32::from_ne_bytes([t[0], t[1], t[2], t[3]]) as usize];
        assert_eq!(find_attr(attrs, NFTA_TABLE_NAME), Some(&b"lvsd\0"[..]));
        assert_eq!(find_attr(attrs, NFTA_TABLE_FLAGS), Some(&[0, 0, 0, 2][..]));
        // Every message is 4-byte aligned and the lengths add up.
        let mut off = 0;
        let mut n = 0;
        while off < bytes.len() {
            let len =
                u32::from_ne_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
                    as usize;
            assert_eq!(len % 4, 0);
            off += len;
            n += 1;
        }
        assert_eq!((off, n), (bytes.len(), 3));
    }

    #[test]
    fn rule_expressions() {
        let mut b = Batch::new(1);
        b.new_rule(
            "ext0",
            Side::Dst,
            (Protocol::Tcp, Ipv4Addr::new(203, 0, 113, 10).into(), 80),
        );
        let (bytes, ..) = b.finish();
        let r = &bytes[20..];
        let len = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize;
        let attrs = &r[20..len];
        assert_eq!(find_attr(attrs, NFTA_RULE_CHAIN), Some(&b"in_ext0\0"[..]));
        let exprs = find_attr(attrs, NFTA_RULE_EXPRESSIONS).expect("expressions");
        let mut names = Vec::new();
        let mut data = Vec::new();
        let mut rest = exprs;
        while rest.len() >= 4 {
            let l = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
            let elem = &rest[4..l];
            names.push(
                String::from_utf8_lossy(find_attr(elem, NFTA_EXPR_NAME).expect("name")).to_string(),
            );
            data.push(find_attr(elem, NFTA_EXPR_DATA).expect("data").to_vec());
            rest = &rest[(l + 3) & !3..];
        }
        let names: Vec<&str> = names.iter().map(|n| n.trim_end_matches('\0')).collect();
        assert_eq!(
            names,
            [
                "meta",
                "cmp",
                "payload",
                "cmp",
                "meta",
                "cmp",
                "payload",
                "cmp",
                "immediate"
            ]
        );
        let cmp_value = |d: &[u8]| {
            find_attr(
                find_attr(d, NFTA_CMP_DATA).expect("cmp data"),
                NFTA_DATA_VALUE,
            )
            .expect("value")
            .to_vec()
        };
        assert_eq!(cmp_value(&data[1]), [0x08, 0x00]);
        assert_eq!(cmp_value(&data[3]), [203, 0, 113, 10]);
        assert_eq!(cmp_value(&data[5]), [6]);
        assert_eq!(cmp_value(&data[7]), [0, 80]);
        assert_eq!(
            find_attr(&data[2], NFTA_PAYLOAD_OFFSET),
            Some(&[0, 0, 0, 16][..])
        );
        assert_eq!(
            find_attr(&data[6], NFTA_PAYLOAD_BASE),
            Some(&[0, 0, 0, 2][..])
        );
        assert_eq!(
            find_attr(&data[6], NFTA_PAYLOAD_OFFSET),
            Some(&[0, 0, 0, 2][..])
        );
    }

    /// The expressions of one rule message at the start of a batch: (name, data) pairs.
    fn expressions(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let r = &bytes[20..];
        let len = u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize;
        let exprs = find_attr(&r[20..len], NFTA_RULE_EXPRESSIONS).expect("expressions");
        let mut out = Vec::new();
        let mut rest = exprs;
        while rest.len() >= 4 {
            let l = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
            let elem = &rest[4..l];
            let name = String::from_utf8_lossy(find_attr(elem, NFTA_EXPR_NAME).expect("name"))
                .trim_end_matches('\0')
                .to_string();
            out.push((
                name,
                find_attr(elem, NFTA_EXPR_DATA).expect("data").to_vec(),
            ));
            rest = &rest[(l + 3) & !3..];
        }
        out
    }

    fn cmp_value(d: &[u8]) -> Vec<u8> {
        find_attr(
            find_attr(d, NFTA_CMP_DATA).expect("cmp data"),
            NFTA_DATA_VALUE,
        )
        .expect("value")
        .to_vec()
    }

    #[test]
    fn ipv6_rule_expressions() {
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
        let rip = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
        // TCP to VIP:80: ethertype 0x86dd, 16 bytes of daddr at network offset 24.
        let mut b = Batch::new(1);
        b.new_rule("ext0", Side::Dst, (Protocol::Tcp, vip.into(), 80));
        let e = expressions(&b.finish().0);
        assert_eq!(e.len(), 9);
        assert_eq!(cmp_value(&e[1].1), [0x86, 0xdd]);
        assert_eq!(
            find_attr(&e[2].1, NFTA_PAYLOAD_OFFSET),
            Some(&[0, 0, 0, 24][..])
        );
        assert_eq!(
            find_attr(&e[2].1, NFTA_PAYLOAD_LEN),
            Some(&[0, 0, 0, 16][..])
        );
        assert_eq!(cmp_value(&e[3].1), vip.octets());
        assert_eq!(cmp_value(&e[5].1), [6]);
        assert_eq!(cmp_value(&e[7].1), [0, 80]);
        // From RIP: saddr at 8, source port at transport offset 0.
        let mut b = Batch::new(1);
        b.new_rule("ext0", Side::Src, (Protocol::Udp, rip.into(), 53));
        let e = expressions(&b.finish().0);
        assert_eq!(
            find_attr(&e[2].1, NFTA_PAYLOAD_OFFSET),
            Some(&[0, 0, 0, 8][..])
        );
        assert_eq!(cmp_value(&e[3].1), rip.octets());
        assert_eq!(
            find_attr(&e[6].1, NFTA_PAYLOAD_OFFSET),
            Some(&[0, 0, 0, 0][..])
        );
        // ICMPv6 errors: l4proto 58 and the type byte.
        let mut b = Batch::new(1);
        b.new_icmp_rule("ext0", Side::Dst, vip.into(), 2);
        let e = expressions(&b.finish().0);
        assert_eq!(cmp_value(&e[5].1), [58]);
        assert_eq!(cmp_value(&e[7].1), [2]);
        // Accept: 16 bytes of daddr.
        let mut b = Batch::new(1);
        b.new_accept_rule("ext0", rip.into());
        let e = expressions(&b.finish().0);
        assert_eq!(e.len(), 5);
        assert_eq!(cmp_value(&e[3].1), rip.octets());
    }

    /// The rules of a mixed device, in order: per family drop_dst, ICMP to, accept,
    /// drop_src, ICMP from; NDP types never appear; a device without IPv6 tuples gets
    /// exactly its IPv4 rules.
    #[test]
    fn contents_order_and_no_ndp() {
        let vip6 = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
        let rip6 = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
        let spec = GuardSpec {
            devices: vec![GuardDevice {
                name: "ext0".into(),
                drop_dst: vec![(Protocol::Tcp, Ipv4Addr::new(203, 0, 113, 10), 80)],
                drop_dst6: vec![(Protocol::Tcp, vip6, 80)],
                drop_src6: vec![(Protocol::Tcp, rip6, 8080)],
                accept_local6: vec![Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1)],
                ..GuardDevice::default()
            }],
        };
        let mut b = Batch::new(1);
        b.contents(&normalize(&spec, "x").expect("valid"));
        let (_, _, what, _) = b.finish();
        let what: Vec<&str> = what.iter().map(|(_, w)| w.as_str()).collect();
        let rules: Vec<&str> = what
            .iter()
            .filter(|w| w.contains(" rule "))
            .map(|w| w.trim_start_matches("adding the nftables "))
            .collect();
        assert_eq!(
            rules,
            [
                "drop rule for tcp to 203.0.113.10:80 on ext0",
                "drop rule for ICMP type 3 to 203.0.113.10 on ext0",
                "drop rule for ICMP type 4 to 203.0.113.10 on ext0",
                "drop rule for ICMP type 11 to 203.0.113.10 on ext0",
                "drop rule for tcp to [2001:db8:f::10]:80 on ext0",
                "drop rule for ICMPv6 type 1 to 2001:db8:f::10 on ext0",
                "drop rule for ICMPv6 type 2 to 2001:db8:f::10 on ext0",
                "drop rule for ICMPv6 type 3 to 2001:db8:f::10 on ext0",
                "drop rule for ICMPv6 type 4 to 2001:db8:f::10 on ext0",
                "accept rule for traffic to 2001:db8:b::1 on ext0",
                "drop rule for tcp from [2001:db8:b::11]:8080 on ext0",
                "drop rule for ICMPv6 type 1 from 2001:db8:b::11 on ext0",
                "drop rule for ICMPv6 type 2 from 2001:db8:b::11 on ext0",
                "drop rule for ICMPv6 type 3 from 2001:db8:b::11 on ext0",
                "drop rule for ICMPv6 type 4 from 2001:db8:b::11 on ext0",
            ],
            "{what:#?}"
        );
        assert!(ICMPV6_RELAYED.iter().all(|t| !(133..=137).contains(t)));
    }

    #[test]
    fn normalize_merges_and_validates() {
        let vip = Ipv4Addr::new(203, 0, 113, 10);
        let spec = GuardSpec {
            devices: vec![
                GuardDevice {
                    name: "ext0".into(),
                    drop_dst: vec![(Protocol::Tcp, vip, 80), (Protocol::Tcp, vip, 80)],
                    drop_src: vec![],
                    accept_local: vec![],
                    ..GuardDevice::default()
                },
                GuardDevice {
                    name: "ext0".into(),
                    drop_dst: vec![(Protocol::Udp, vip, 53)],
                    drop_src: vec![],
                    accept_local: vec![],
                    ..GuardDevice::default()
                },
            ],
        };
        let n = normalize(&spec, "x").expect("valid");
        assert_eq!(n.len(), 1);
        assert_eq!(n["ext0"].dst.len(), 2);
        for bad in ["", "a-name-that-is-too-long", "a/b", "a b"] {
            let spec = GuardSpec {
                devices: vec![GuardDevice {
                    name: bad.into(),
                    ..GuardDevice::default()
                }],
            };
            let err = normalize(&spec, "installing").expect_err(bad);
            assert!(
                err.to_string().starts_with("installing: device name"),
                "{err}"
            );
        }
    }

    /// A batch that fails half-way is rolled back whole, and the error names the message
    /// that failed.
    #[test]
    fn failed_batch_changes_nothing_and_names_the_culprit() {
        use crate::io::testutil::{Netns, root_or_skip};
        if !root_or_skip("kernel::nft::unit::failed_batch_changes_nothing_and_names_the_culprit") {
            return;
        }
        let ns = Netns::new("k-batch");
        ns.ip("link add d0 type veth peer name d0p");
        let list = || {
            let out = ns.exec(&["nft", "list", "ruleset"]);
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let spec = GuardSpec {
            devices: vec![GuardDevice {
                name: "d0".into(),
                drop_dst: vec![(Protocol::Tcp, Ipv4Addr::new(203, 0, 113, 10), 80)],
                drop_src: vec![],
                accept_local: vec![],
                ..GuardDevice::default()
            }],
        };
        let mut guard = ns.run(|| NftGuard::install(&spec)).expect("install");
        let before = list();
        assert!(before.contains("tcp dport 80 drop"), "{before}");
        // Delete the table, recreate it empty, then delete it twice: the last message
        // fails with ENOENT, so none of it may happen.
        let mut b = Batch::new(guard.seq);
        b.del_table();
        b.new_table(false);
        b.del_table();
        b.del_table();
        let err = guard.transact(b).expect_err("double delete");
        assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
        assert!(
            err.to_string()
                .starts_with("deleting nftables table netdev lvsd: No such file or directory"),
            "{err}"
        );
        assert_eq!(list(), before);
        // The guard still works afterwards.
        guard.replace(&GuardSpec::default()).expect("replace");
        assert!(!list().contains("dport 80 drop"));
    }

    #[test]
    fn parses_error_answers_with_extack() {
        // NLMSG_ERROR, flags ACK_TLVS, seq 7, error -2, echoed header, MSG attr.
        let mut m = Vec::new();
        let tlv_msg = b"No such file\0";
        let tlv_len = 4 + tlv_msg.len();
        let total = 16 + 4 + 16 + ((tlv_len + 3) & !3);
        m.extend_from_slice(&(total as u32).to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&0x300u16.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-2i32).to_ne_bytes());
        m.extend_from_slice(&[0u8; 16]);
        m.extend_from_slice(&(tlv_len as u16).to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(tlv_msg);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        let mut out = Vec::new();
        parse_answers(&m, &mut out);
        match out.as_slice() {
            [
                Answer::Ack {
                    seq: 7,
                    errno: 2,
                    msg: Some(s),
                },
            ] => assert_eq!(s, "No such file"),
            other => panic!("{other:?}"),
        }
    }
}
