//! IPv6 through the forwarding core: NDP for the next hops, NAT66, DR over IPv6,
//! extension headers, fragments, ICMPv6 relays, persistence prefixes, listings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use super::tests::*;
use super::*;
use crate::wire::build::FrameSpec6;
use crate::wire::icmpv6::{self, Icmpv6Packet, NdpRepr, msg};
use crate::wire::ipv6::{Ipv6Repr, next_header};
use crate::wire::tcp::TcpControl;

const CLIENT_GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 1);

fn sa6(a: Ipv6Addr, port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(a, port, 0, 0)
}

/// A Neighbor Advertisement "`ip` is at `mac`" to the director's inside address.
fn neighbor_advert(ip: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    ndp_frame(
        ip,
        DIP6,
        mac,
        INT_MAC,
        NdpRepr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target: ip,
            target_lladdr: Some(mac),
        },
        255,
    )
}

fn ndp_frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    repr: NdpRepr,
    hop_limit: u8,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + repr.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..14]);
    eth.set_src_addr(src_mac);
    eth.set_dst_addr(dst_mac);
    eth.set_ethertype(EtherType::IPV6);
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: next_header::ICMPV6,
        payload_len: repr.len(),
        hop_limit,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    repr.emit(src, dst, &mut f[54..]);
    f
}

/// Whether an Ethernet/IPv6/TCP-or-UDP frame (no extension headers) has a valid L4 checksum.
fn checksums_valid6(frame: &[u8]) -> bool {
    let ip = Ipv6Packet::new_checked(&frame[14..]).unwrap();
    let (s, d) = (ip.src_addr(), ip.dst_addr());
    let l4 = ip.payload();
    let len = u32::try_from(l4.len()).unwrap();
    crate::wire::checksum::combine(&[
        ipv6::pseudo_header(s, d, ip.next_header(), len),
        crate::wire::checksum::data(l4),
    ]) == 0xffff
}

fn tcp6_in(from: SocketAddrV6, to: SocketAddrV6, control: TcpControl) -> Vec<u8> {
    FrameSpec6::tcp(GW_MAC, EXT_MAC, from, to, control)
        .with_payload(b"hello over six")
        .to_vec()
}

fn v6_lab(forwarding: Forwarding, port: u16) -> Lab {
    let cfg = config(vec![service(
        Protocol::Tcp,
        VIP6,
        80,
        SchedulerKind::Rr,
        vec![dest(RS1_6, port, 1, forwarding)],
    )]);
    let mut lab = Lab::new(cfg);
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS1_6, RS1_MAC)).0,
        Verdict::Pass
    );
    lab
}

#[test]
fn neighbor_solicitation_then_advert_resolves() {
    let cfg = config(vec![service(
        Protocol::Tcp,
        VIP6,
        80,
        SchedulerKind::Rr,
        vec![dest(RS1_6, 80, 1, Forwarding::Nat)],
    )]);
    let mut lab = Lab::new(cfg);
    assert_eq!(lab.dp.unresolved_neighbours(), 1);
    let mut out = vec![0u8; 2048];
    let (ifindex, len) = lab.dp.poll_transmit(lab.now, &mut out).expect("an NS");
    assert_eq!(ifindex, INT_IF);
    let f = &out[..len];
    let eth = EthernetFrame::new_checked(f).unwrap();
    assert_eq!(eth.ethertype(), EtherType::IPV6);
    assert_eq!(eth.dst_addr(), [0x33, 0x33, 0xff, 0, 0, 0x11]);
    assert_eq!(eth.src_addr(), INT_MAC);
    let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.hop_limit(), 255);
    assert_eq!(ip.src_addr(), DIP6);
    assert_eq!(ip.dst_addr(), icmpv6::solicited_node(RS1_6));
    let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert_eq!(
        NdpRepr::parse(&m).unwrap(),
        NdpRepr::NeighborSolicit {
            target: RS1_6,
            source_lladdr: Some(INT_MAC),
        }
    );
    // Not resolved by an advert with a wrong hop limit (RFC 4861 §7.1.2), nor by one for
    // another target; resolved by the right one.
    let mut bad = neighbor_advert(RS1_6, RS1_MAC);
    bad = {
        let repr = NdpRepr::parse(&Icmpv6Packet::new_checked(&bad[54..]).unwrap()).unwrap();
        ndp_frame(RS1_6, DIP6, RS1_MAC, INT_MAC, repr, 64)
    };
    assert_eq!(lab.rx(INT_IF, &bad).0, Verdict::Pass);
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS2_6, RS2_MAC)).0,
        Verdict::Pass
    );
    assert_eq!(lab.dp.unresolved_neighbours(), 1);
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS1_6, RS1_MAC)).0,
        Verdict::Pass
    );
    assert_eq!(lab.dp.unresolved_neighbours(), 0);
    // A tampered checksum teaches nothing either.
    let mut lab2 = Lab::new(config(vec![service(
        Protocol::Tcp,
        VIP6,
        80,
        SchedulerKind::Rr,
        vec![dest(RS1_6, 80, 1, Forwarding::Nat)],
    )]));
    let mut f = neighbor_advert(RS1_6, RS1_MAC);
    f[56] ^= 0xff;
    assert_eq!(lab2.rx(INT_IF, &f).0, Verdict::Pass);
    assert_eq!(lab2.dp.unresolved_neighbours(), 1);
}

#[test]
fn nat66_both_ways() {
    let mut lab = v6_lab(Forwarding::Nat, 8080);
    let c = client6(7, 40000);
    let syn = tcp6_in(c, sa6(VIP6, 80), TcpControl::SYN);
    let out = lab.fwd(EXT_IF, &syn);
    let ip = Ipv6Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(ip.dst_addr(), RS1_6);
    assert_eq!(ip.src_addr(), *c.ip());
    assert_eq!(&out[0..6], &RS1_MAC);
    assert_eq!(&out[6..12], &INT_MAC);
    assert_eq!(u16::from_be_bytes([out[56], out[57]]), 8080);
    assert!(checksums_valid6(&out), "inbound L4 checksum");
    // The reply from RS1:8080 to the client: source becomes VIP6:80.
    let reply = FrameSpec6::tcp(
        RS1_MAC,
        INT_MAC,
        sa6(RS1_6, 8080),
        c,
        TcpControl::SYN | TcpControl::ACK,
    )
    .to_vec();
    let back = lab.fwd(INT_IF, &reply);
    let ip = Ipv6Packet::new_checked(&back[14..]).unwrap();
    assert_eq!(ip.src_addr(), VIP6);
    assert_eq!(u16::from_be_bytes([back[54], back[55]]), 80);
    assert_eq!(&back[0..6], &GW_MAC);
    assert!(checksums_valid6(&back), "reply L4 checksum");
    let conns = lab.dp.connections(lab.now);
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].client, std::net::SocketAddr::V6(c));
    assert_eq!(conns[0].real, "[2001:db8:b::11]:8080".parse().unwrap());
    assert_eq!(conns[0].state, "SYN_RECV");
    // UDP NAT66 too, with a zero-free checksum.
    let cfg = config(vec![service(
        Protocol::Udp,
        VIP6,
        53,
        SchedulerKind::Rr,
        vec![dest(RS1_6, 5353, 1, Forwarding::Nat)],
    )]);
    let mut lab = Lab::new(cfg);
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS1_6, RS1_MAC)).0,
        Verdict::Pass
    );
    let q = FrameSpec6::udp(GW_MAC, EXT_MAC, c, sa6(VIP6, 53), b"query").to_vec();
    let out = lab.fwd(EXT_IF, &q);
    assert!(checksums_valid6(&out));
    assert_eq!(u16::from_be_bytes([out[56], out[57]]), 5353);
}

#[test]
fn nat66_partial_checksum_stays_partial_sum() {
    let mut lab = v6_lab(Forwarding::Nat, 8080);
    let c = client6(9, 41000);
    let mut syn = tcp6_in(c, sa6(VIP6, 80), TcpControl::SYN);
    // What the kernel hands over with CHECKSUM_PARTIAL: the pseudo-header sum.
    let l4_len = u32::try_from(syn.len() - 54).unwrap();
    let ph = ipv6::pseudo_header(*c.ip(), VIP6, 6, l4_len);
    syn[54 + 16..54 + 18].copy_from_slice(&ph.to_be_bytes());
    let (v, out) = lab.rx_frame(RxFrame {
        ifindex: EXT_IF,
        data: &syn,
        csum_partial: true,
        gso: false,
        gso_size: 0,
    });
    assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    let want = ipv6::pseudo_header(*c.ip(), RS1_6, 6, l4_len);
    assert_eq!(u16::from_be_bytes([out[70], out[71]]), want);
}

#[test]
fn dr6_changes_only_macs() {
    let mut lab = v6_lab(Forwarding::Dr, 80);
    let syn = tcp6_in(client6(3, 40001), sa6(VIP6, 80), TcpControl::SYN);
    let out = lab.fwd(EXT_IF, &syn);
    assert_eq!(&out[0..6], &RS1_MAC);
    assert_eq!(&out[6..12], &INT_MAC);
    assert_eq!(&out[12..], &syn[12..]);
}

/// A TCP SYN to VIP6:80 behind `n` destination-options extension headers.
fn with_ext_headers(n: usize) -> Vec<u8> {
    let plain = tcp6_in(client6(4, 40002), sa6(VIP6, 80), TcpControl::SYN);
    let l4 = &plain[54..];
    let mut f = plain[..54].to_vec();
    for i in 0..n {
        let next = if i + 1 == n {
            6
        } else {
            next_header::DEST_OPTS
        };
        // 8 bytes: next header, length 0, a PadN option of 4 bytes.
        f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    f.extend_from_slice(l4);
    f[14 + 6] = if n == 0 { 6 } else { next_header::DEST_OPTS };
    let payload = u16::try_from(f.len() - 54).unwrap();
    f[18..20].copy_from_slice(&payload.to_be_bytes());
    f
}

#[test]
fn extension_headers_walked_then_refused_past_seven() {
    let mut lab = v6_lab(Forwarding::Nat, 8080);
    let out = lab.fwd(EXT_IF, &with_ext_headers(2));
    // The port rewrite found the TCP header after the two options headers.
    let at = 14 + 40 + 16 + 2;
    assert_eq!(u16::from_be_bytes([out[at], out[at + 1]]), 8080);
    let (v, _) = lab.rx(EXT_IF, &with_ext_headers(8));
    assert_eq!(v, Verdict::Drop(DropReason::ExtHeaders));
    assert_eq!(lab.dp.stats().dropped[DropReason::ExtHeaders], 1);
    // Truncated chains and headers never panic.
    let f = with_ext_headers(3);
    for cut in 14..f.len() {
        let mut g = f[..cut].to_vec();
        if g.len() >= 20 {
            let pl = u16::try_from(g.len().saturating_sub(54)).unwrap_or(0);
            g[18..20].copy_from_slice(&pl.to_be_bytes());
        }
        let _ = lab.rx(EXT_IF, &g);
    }
}

#[test]
fn fragments_to_a_vip_are_dropped() {
    let mut lab = v6_lab(Forwarding::Nat, 8080);
    let plain = tcp6_in(client6(5, 40003), sa6(VIP6, 80), TcpControl::SYN);
    let mut f = plain[..54].to_vec();
    f[20] = next_header::FRAGMENT;
    // Fragment header: next TCP, offset 0, more fragments.
    f.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
    f.extend_from_slice(&plain[54..]);
    let pl = u16::try_from(f.len() - 54).unwrap();
    f[18..20].copy_from_slice(&pl.to_be_bytes());
    assert_eq!(lab.rx(EXT_IF, &f).0, Verdict::Drop(DropReason::Fragment));
}

#[test]
fn persistence_prefix_groups_a_slash_64() {
    let mut svc = service(
        Protocol::Tcp,
        VIP6,
        80,
        SchedulerKind::Rr,
        vec![
            dest(RS1_6, 80, 1, Forwarding::Nat),
            dest(RS2_6, 80, 1, Forwarding::Nat),
        ],
    );
    svc.persistence = Some(Persistence {
        timeout: Duration::from_secs(300),
        netmask: Ipv4Addr::BROADCAST,
        prefix6: 64,
        quiescent_template_expire: false,
    });
    let mut lab = Lab::new(config(vec![svc]));
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS1_6, RS1_MAC)).0,
        Verdict::Pass
    );
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS2_6, RS2_MAC)).0,
        Verdict::Pass
    );
    let target = |lab: &mut Lab, n: u16, port: u16| {
        let out = lab.fwd(
            EXT_IF,
            &tcp6_in(client6(n, port), sa6(VIP6, 80), TcpControl::SYN),
        );
        Ipv6Packet::new_checked(&out[14..]).unwrap().dst_addr()
    };
    let first = target(&mut lab, 0x10, 1000);
    // Other hosts of the same /64: the same real server (rr alone would alternate).
    for n in 0x11..0x15 {
        assert_eq!(target(&mut lab, n, 1000 + n), first);
    }
    let conns = lab.dp.connections(lab.now);
    assert!(
        conns
            .iter()
            .any(|c| c.template && c.client.ip() == IpAddr::V6("2001:db8:c::".parse().unwrap()))
    );
}

#[test]
fn icmp6_packet_too_big_to_vip_reaches_nat_server() {
    let mut lab = v6_lab(Forwarding::Nat, 8080);
    let c = client6(6, 40004);
    lab.fwd(EXT_IF, &tcp6_in(c, sa6(VIP6, 80), TcpControl::SYN));
    // A router on the client's path reports on a reply VIP6:80 -> client.
    let reply = FrameSpec6::tcp(EXT_MAC, GW_MAC, sa6(VIP6, 80), c, TcpControl::ACK)
        .with_payload(&[0xab; 1400])
        .to_vec();
    let mut body = vec![0u8; 1232];
    let n = icmpv6::emit_error(
        msg::PACKET_TOO_BIG,
        0,
        1400,
        CLIENT_GW6,
        VIP6,
        &reply[14..],
        &mut body,
    );
    let mut f = vec![0u8; 54 + n];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..14]);
        eth.set_src_addr(GW_MAC);
        eth.set_dst_addr(EXT_MAC);
        eth.set_ethertype(EtherType::IPV6);
    }
    Ipv6Repr {
        src_addr: CLIENT_GW6,
        dst_addr: VIP6,
        next_header: next_header::ICMPV6,
        payload_len: n,
        hop_limit: 64,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    f[54..].copy_from_slice(&body[..n]);
    let out = lab.fwd(EXT_IF, &f);
    let ip = Ipv6Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(ip.dst_addr(), RS1_6);
    let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(m.msg_type(), msg::PACKET_TOO_BIG);
    assert_eq!(m.header_data(), 1400);
    assert!(m.verify_checksum(ip.src_addr(), ip.dst_addr()));
    let q = m.invoking_header().unwrap();
    assert_eq!(q.src_addr, RS1_6);
    assert_eq!(u16::from_be_bytes([m.body()[40], m.body()[41]]), 8080);
    // Quoting no connection: dropped and counted; a cut quote: malformed.
    let mut none = f.clone();
    none[54 + 8 + 40 + 2] ^= 1; // the quoted client port
    let m = Icmpv6Packet::new_unchecked(&mut none[54..]);
    let mut m = m;
    m.fill_checksum(CLIENT_GW6, VIP6);
    assert_eq!(
        lab.rx(EXT_IF, &none).0,
        Verdict::Drop(DropReason::IcmpNoConnection)
    );
    let mut cut = f[..54 + 8 + 44].to_vec();
    cut[18..20].copy_from_slice(&52u16.to_be_bytes());
    Icmpv6Packet::new_unchecked(&mut cut[54..]).fill_checksum(CLIENT_GW6, VIP6);
    assert_eq!(
        lab.rx(EXT_IF, &cut).0,
        Verdict::Drop(DropReason::IcmpMalformed)
    );
}

#[test]
fn kill_and_listing_cover_both_families() {
    let cfg = config(vec![
        service(
            Protocol::Tcp,
            VIP,
            80,
            SchedulerKind::Rr,
            vec![dest(RS1, 80, 1, Forwarding::Nat)],
        ),
        service(
            Protocol::Tcp,
            VIP6,
            80,
            SchedulerKind::Rr,
            vec![dest(RS1_6, 80, 1, Forwarding::Nat)],
        ),
    ]);
    let mut lab = Lab::resolved(cfg);
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS1_6, RS1_MAC)).0,
        Verdict::Pass
    );
    lab.fwd(
        EXT_IF,
        &tcp_in(client(1, 1000), sa(VIP, 80), TcpControl::SYN),
    );
    lab.fwd(
        EXT_IF,
        &tcp6_in(client6(1, 1000), sa6(VIP6, 80), TcpControl::SYN),
    );
    let (page, more) = lab
        .dp
        .connections_page(lab.now, &ConnFilter::default(), None, 10);
    assert!(!more);
    assert_eq!(page.len(), 2);
    assert!(
        page[0].1.virt.is_ipv4() && page[1].1.virt.is_ipv6(),
        "v4 sorts first"
    );
    let filter = ConnFilter {
        client: Some(("2001:db8:c::".parse().unwrap(), 64)),
        ..ConnFilter::default()
    };
    let (page, _) = lab.dp.connections_page(lab.now, &filter, None, 10);
    assert_eq!(page.len(), 1);
    let killed = lab.dp.kill_entry(lab.now, |t| t.virt.0.is_ipv6());
    assert!(killed.is_some());
    assert_eq!(lab.dp.conn_count(), 1);
    let s = lab.dp.stats();
    assert_eq!(
        s.services[1].dests[0].inactive + s.services[1].dests[0].active,
        0
    );
}

#[test]
fn icmp_about_a_v4_flow_tunnelled_to_a_v6_server_goes_in_ipv6() {
    let cfg = config(vec![service(
        Protocol::Tcp,
        VIP,
        80,
        SchedulerKind::Rr,
        vec![dest(RS1_6, 80, 1, Forwarding::Tun)],
    )]);
    let mut lab = Lab::new(cfg);
    assert_eq!(
        lab.rx(INT_IF, &neighbor_advert(RS1_6, RS1_MAC)).0,
        Verdict::Pass
    );
    let c = client(8, 40100);
    let (v, _) = lab.rx(EXT_IF, &tcp_in(c, sa(VIP, 80), TcpControl::SYN));
    assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
    // The real server's reply VIP:80 -> client, reported on by a router to the VIP.
    let reply =
        crate::wire::build::FrameSpec::tcp(EXT_MAC, GW_MAC, sa(VIP, 80), c, TcpControl::ACK)
            .to_vec();
    let mut f = vec![0u8; 14 + 576];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..14]);
        eth.set_src_addr(GW_MAC);
        eth.set_dst_addr(EXT_MAC);
        eth.set_ethertype(EtherType::IPV4);
    }
    let n = crate::wire::icmp::emit_error(
        &mut f[14..],
        (Ipv4Addr::new(203, 0, 113, 1), VIP, 7),
        (3, 1, [0; 4]),
        &reply[14..],
    )
    .expect("error built");
    f.truncate(14 + n);
    let (v, out) = lab.rx(EXT_IF, &f);
    let Verdict::TransmitPlain { ifindex, len } = v else {
        panic!("not relayed: {v:?}");
    };
    assert_eq!(ifindex, INT_IF);
    let frame = &lab.out[..len];
    assert!(out.is_empty());
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.ethertype(), EtherType::IPV6);
    let outer = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!((outer.src_addr(), outer.dst_addr()), (DIP6, RS1_6));
    assert_eq!(outer.next_header(), 4, "IPv4 in IPv6");
    assert_eq!(
        outer.payload(),
        &f[14..14 + n],
        "the error itself, unchanged"
    );
}

/// A TUN service on VIP6:80 to `rs` (IPv6 or IPv4), resolved, with one connection from
/// `c`; returns the lab and the tunnel packet the director sent (from its IP header on).
fn tun6_with_conn(rs: IpAddr, c: SocketAddrV6) -> (Lab, Vec<u8>) {
    let cfg = config(vec![service(
        Protocol::Tcp,
        VIP6,
        80,
        SchedulerKind::Rr,
        vec![dest(rs, 80, 1, Forwarding::Tun)],
    )]);
    let mut lab = Lab::new(cfg);
    let resolve = match rs {
        IpAddr::V6(a) => neighbor_advert(a, RS1_MAC),
        IpAddr::V4(a) => arp_reply(a, RS1_MAC),
    };
    assert_eq!(lab.rx(INT_IF, &resolve).0, Verdict::Pass);
    let syn = FrameSpec6::tcp(GW_MAC, EXT_MAC, c, sa6(VIP6, 80), TcpControl::SYN)
        .with_payload(&[7; 1000])
        .to_vec();
    let (v, _) = lab.rx(EXT_IF, &syn);
    let Verdict::TransmitPlain { len, .. } = v else {
        panic!("not tunnelled: {v:?}");
    };
    let sent = lab.out[14..len].to_vec();
    (lab, sent)
}

/// Checks a relayed ICMPv6 error to the client; returns (type, code, data).
fn relayed_to_client(lab: &Lab, v: Verdict, c: SocketAddrV6, inner: &[u8]) -> (u8, u8, u32) {
    let Verdict::TransmitPlain { ifindex, len } = v else {
        panic!("not relayed: {v:?}");
    };
    assert_eq!(ifindex, EXT_IF);
    let frame = &lab.out[..len];
    assert_eq!(
        &frame[0..6],
        &GW_MAC,
        "to the MAC the client's packets come from"
    );
    let ip = Ipv6Packet::new_checked(&frame[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP6, *c.ip()));
    let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum(VIP6, *c.ip()));
    assert_eq!(
        m.body(),
        &inner[..m.body().len()],
        "quotes the client's packet"
    );
    (m.msg_type(), m.code(), m.header_data())
}

#[test]
fn router_errors_about_6in6_reach_the_client() {
    let c = client6(0x21, 42000);
    let (mut lab, sent) = tun6_with_conn(IpAddr::V6(RS1_6), c);
    let inner = sent[40..].to_vec();
    let router = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0xfe);
    let error = |ty: u8, code: u8, data: u32| {
        let mut body = vec![0u8; 1232];
        let n = icmpv6::emit_error(ty, code, data, router, DIP6, &sent, &mut body);
        let mut f = vec![0u8; 54 + n];
        {
            let mut eth = EthernetFrame::new_unchecked(&mut f[..14]);
            eth.set_src_addr(RS2_MAC);
            eth.set_dst_addr(INT_MAC);
            eth.set_ethertype(EtherType::IPV6);
        }
        Ipv6Repr {
            src_addr: router,
            dst_addr: DIP6,
            next_header: next_header::ICMPV6,
            payload_len: n,
            hop_limit: 64,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
        f[54..].copy_from_slice(&body[..n]);
        f
    };
    // Packet Too Big 1400 for the outer packet: the client hears 1400 - 40.
    let (v, _) = lab.rx(INT_IF, &error(msg::PACKET_TOO_BIG, 0, 1400));
    assert_eq!(
        relayed_to_client(&lab, v, c, &inner),
        (msg::PACKET_TOO_BIG, 0, 1360)
    );
    // Never below the IPv6 minimum.
    let (v, _) = lab.rx(INT_IF, &error(msg::PACKET_TOO_BIG, 0, 1300));
    assert_eq!(relayed_to_client(&lab, v, c, &inner).2, 1280);
    let (v, _) = lab.rx(INT_IF, &error(msg::TIME_EXCEEDED, 0, 0));
    assert_eq!(
        relayed_to_client(&lab, v, c, &inner),
        (msg::TIME_EXCEEDED, 0, 0)
    );
    // Not about lvsd's tunnel (another outer destination): the kernel's.
    let mut other = sent.clone();
    other[24 + 15] ^= 0x40;
    let mut body = vec![0u8; 1232];
    let n = icmpv6::emit_error(
        msg::PACKET_TOO_BIG,
        0,
        1400,
        router,
        DIP6,
        &other,
        &mut body,
    );
    let mut f = error(msg::PACKET_TOO_BIG, 0, 1400);
    f.truncate(54 + n);
    f[54..].copy_from_slice(&body[..n]);
    assert_eq!(lab.rx(INT_IF, &f).0, Verdict::Pass);
    let s = lab.dp.stats();
    assert_eq!(s.dropped.total(), 0, "{s:?}");
}

#[test]
fn router_frag_needed_about_6in4_becomes_packet_too_big() {
    let c = client6(0x22, 42001);
    let (mut lab, sent) = tun6_with_conn(IpAddr::V4(RS1), c);
    assert_eq!(sent[9], 41, "IPv6 in IPv4");
    let inner = sent[20..].to_vec();
    let router = Ipv4Addr::new(192, 0, 2, 254);
    let mut f = vec![0u8; 14 + 576];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..14]);
        eth.set_src_addr(RS2_MAC);
        eth.set_dst_addr(INT_MAC);
        eth.set_ethertype(EtherType::IPV4);
    }
    let n = crate::wire::icmp::emit_error(
        &mut f[14..],
        (router, DIP, 9),
        (3, 4, [0, 0, 0x05, 0x78]), // frag needed, next-hop MTU 1400
        &sent,
    )
    .expect("error built");
    f.truncate(14 + n);
    let (v, _) = lab.rx(INT_IF, &f);
    assert_eq!(
        relayed_to_client(&lab, v, c, &inner),
        (msg::PACKET_TOO_BIG, 0, 1380)
    );
}
