//! Golden fixtures for TUN forwarding (`tunnel.rs`): input frame → expected verdict and
//! output frames, against one [`Dataplane`], no sockets, no clock.
//!
//! Expected outer headers are written as byte literals here (only their checksum is
//! computed, by the plain RFC 1071 sum in `wire::checksum`, not by the IPIP builder);
//! inner packets must come out byte-identical to what went in (or, for `NEEDS_CSUM`,
//! identical to a from-scratch [`FrameSpec`] build).
//!
//! Lab: interfaces of `tests.rs` (EXT 1500, INT 1500); services
//! - T1 TCP 203.0.113.50:80 → RS1 192.0.2.11:80, TUN
//! - T2 UDP 203.0.113.50:53 → RS1:53, TUN
//! - T3 TCP 203.0.113.51:80 → 192.0.2.111:80 behind the router RS2 (next hop), TUN

use std::net::Ipv4Addr;

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use super::tests::*;
use super::*;
use crate::wire::build::{FrameSpec, checksums_valid};
use crate::wire::checksum;
use crate::wire::icmp::IcmpPacket;
use crate::wire::tcp::TcpControl;

const VIP_TUN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);
const VIP_FAR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 51);
const RS_FAR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 111);

fn tun_config() -> DataplaneConfig {
    use Protocol::{Tcp, Udp};
    let rr = SchedulerKind::Rr;
    let mut far = dest(RS_FAR, 80, 1, Forwarding::Tun);
    far.next_hop = RS2.into();
    config(vec![
        service(
            Tcp,
            VIP_TUN,
            80,
            rr,
            vec![dest(RS1, 80, 1, Forwarding::Tun)],
        ),
        service(
            Udp,
            VIP_TUN,
            53,
            rr,
            vec![dest(RS1, 53, 1, Forwarding::Tun)],
        ),
        service(Tcp, VIP_FAR, 80, rr, vec![far]),
    ])
}

/// Feeds one frame; returns the verdict and every frame to send (the verdict's and the
/// queued ones).
fn feed(lab: &mut Lab, rx: RxFrame<'_>) -> (Verdict, Vec<Vec<u8>>) {
    let v = lab.dp.process(lab.now, rx, &mut lab.out);
    let mut frames = Vec::new();
    match v {
        Verdict::TransmitPlain { ifindex, len } => {
            assert_eq!(ifindex, INT_IF);
            frames.push(lab.out[..len].to_vec());
            let mut buf = vec![0u8; 70_000];
            let mut guard = 0;
            while let Some((i, len)) = lab.dp.next_frame(&mut buf) {
                assert_eq!(i, INT_IF);
                frames.push(buf[..len].to_vec());
                guard += 1;
                assert!(guard < 1000, "next_frame never ends");
            }
        }
        Verdict::Reject { len, .. } | Verdict::Transmit { len, .. } => {
            frames.push(lab.out[..len].to_vec());
        }
        Verdict::Drop(_) | Verdict::Pass => {}
    }
    assert!(lab.dp.next_frame(&mut lab.out).is_none());
    let s = lab.dp.stats();
    assert_eq!(s.received, s.forwarded + s.dropped.total() + s.passed);
    (v, frames)
}

fn plain(data: &[u8]) -> RxFrame<'_> {
    RxFrame {
        ifindex: EXT_IF,
        data,
        csum_partial: false,
        gso: false,
        gso_size: 0,
    }
}

/// The literal outer header expected: 192.0.2.1 → `rip`, protocol 4, TTL 64, with the
/// given total length, id, TOS and flags; checksum filled by the plain RFC 1071 sum.
fn outer_literal(total: u16, ident: u16, tos: u8, flags_off: u16, rip: Ipv4Addr) -> Vec<u8> {
    let [t0, t1] = total.to_be_bytes();
    let [i0, i1] = ident.to_be_bytes();
    let [f0, f1] = flags_off.to_be_bytes();
    let r = rip.octets();
    let mut h = vec![
        0x45, tos, t0, t1, i0, i1, f0, f1, 64, 4, 0, 0, 192, 0, 2, 1, r[0], r[1], r[2], r[3],
    ];
    let c = !checksum::data(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn eth_literal(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut v = dst.to_vec();
    v.extend(src);
    v.extend([0x08, 0x00]);
    v
}

/// The inner packet of an encapsulated frame, as an Ethernet frame (for `checksums_valid`).
fn inner_frame(f: &[u8]) -> Vec<u8> {
    let mut v = f[..14].to_vec();
    v.extend(&f[34..]);
    v
}

#[test]
fn tun_golden_fixtures() {
    use DropReason as R;
    let mut lab = Lab::resolved(tun_config());
    let syn = TcpControl::SYN;
    let c1 = client(1, 40000);

    // 1. A SYN: outer header literal + the client's packet unchanged (id 1).
    let input = FrameSpec::tcp(GW_MAC, EXT_MAC, c1, sa(VIP_TUN, 80), syn).to_vec();
    let (v, f) = feed(&mut lab, plain(&input));
    let len = 14 + 20 + 40;
    assert_eq!(
        v,
        Verdict::TransmitPlain {
            ifindex: INT_IF,
            len
        }
    );
    let mut expect = eth_literal(RS1_MAC, INT_MAC);
    expect.extend(outer_literal(60, 1, 0, 0x4000, RS1));
    expect.extend(&input[14..]);
    assert_eq!(f, vec![expect]);

    // 2. UDP with TOS 0xb8 (copied to the outer) and without DF (not set on the outer).
    let mut spec = FrameSpec::udp(GW_MAC, EXT_MAC, client(2, 5353), sa(VIP_TUN, 53), b"q?");
    spec.ident = 7;
    let mut input = spec.to_vec();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut input[14..]);
        ip.set_dscp_ecn(0xb8);
        ip.set_flags_and_offset(false, false, 0);
        ip.fill_checksum();
    }
    let (v, f) = feed(&mut lab, plain(&input));
    assert!(matches!(v, Verdict::TransmitPlain { len: 64, .. }), "{v:?}");
    let mut expect = eth_literal(RS1_MAC, INT_MAC);
    expect.extend(outer_literal(50, 2, 0xb8, 0, RS1));
    expect.extend(&input[14..]);
    assert_eq!(f, vec![expect]);

    // 3. NEEDS_CSUM: the inner checksum is completed (the device cannot reach it).
    let c3 = client(3, 40001);
    let full = FrameSpec::tcp(GW_MAC, EXT_MAC, c3, sa(VIP_TUN, 80), syn)
        .with_payload(b"hello")
        .to_vec();
    let mut input = full.clone();
    make_partial(&mut input);
    assert_ne!(input, full);
    let (v, f) = feed(
        &mut lab,
        RxFrame {
            csum_partial: true,
            ..plain(&input)
        },
    );
    assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
    assert_eq!(&f[0][34..], &full[14..], "inner = the complete original");
    assert!(checksums_valid(&inner_frame(&f[0])));

    // 4. DF, 1500 bytes: too big for the 1480-byte tunnel → ICMP frag needed from the VIP
    //    back to the client's MAC on the interface it came in on.
    let big = vec![0x5a; 1460];
    let c4 = client(4, 40002);
    let input = FrameSpec::tcp(GW_MAC, EXT_MAC, c4, sa(VIP_TUN, 80), syn)
        .with_payload(&big)
        .to_vec();
    let (v, f) = feed(&mut lab, plain(&input));
    assert_eq!(
        v,
        Verdict::Reject {
            reason: R::NeedFrag,
            ifindex: EXT_IF,
            len: 14 + 576
        }
    );
    let icmp_frame = &f[0];
    assert_eq!(&icmp_frame[..14], &eth_literal(GW_MAC, EXT_MAC)[..]);
    let ip = Ipv4Packet::new_checked(&icmp_frame[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP_TUN, *c4.ip()));
    assert_eq!(ip.protocol(), IpProtocol::ICMP);
    let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(
        (icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()),
        (3, 4, 1480)
    );
    assert_eq!(icmp.payload(), &input[14..14 + 548], "quotes the original");

    // 5. No DF, 1500-byte UDP: the outer packet is fragmented (1480 + 20 bytes).
    let payload: Vec<u8> = (0..1472u32).map(|i| i as u8).collect();
    let mut input =
        FrameSpec::udp(GW_MAC, EXT_MAC, client(5, 5000), sa(VIP_TUN, 53), &payload).to_vec();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut input[14..]);
        ip.set_flags_and_offset(false, false, 0);
        ip.fill_checksum();
    }
    let (v, f) = feed(&mut lab, plain(&input));
    assert_eq!(
        v,
        Verdict::TransmitPlain {
            ifindex: INT_IF,
            len: 14 + 1500
        }
    );
    assert_eq!(f.len(), 2);
    assert_eq!(&f[0][14..34], &outer_literal(1500, 5, 0, 0x2000, RS1)[..]);
    assert_eq!(&f[1][14..34], &outer_literal(40, 5, 0, 1480 / 8, RS1)[..]);
    let mut joined = f[0][34..].to_vec();
    joined.extend(&f[1][34..]);
    assert_eq!(joined, &input[14..]);

    // 6. A GSO super-frame (DF, gso_size 1400, 10 000 bytes): 8 segments that each fit,
    //    with ids, sequence numbers and checksums fixed, payload intact.
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13) as u8).collect();
    let c6 = client(6, 40003);
    let mut input = FrameSpec::tcp(GW_MAC, EXT_MAC, c6, sa(VIP_TUN, 80), syn)
        .with_payload(&data)
        .to_vec();
    make_partial(&mut input);
    let (v, f) = feed(
        &mut lab,
        RxFrame {
            csum_partial: true,
            gso: true,
            gso_size: 1400,
            ..plain(&input)
        },
    );
    assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
    assert_eq!(f.len(), 8);
    let mut got = Vec::new();
    for (i, seg) in f.iter().enumerate() {
        assert!(seg.len() <= 14 + 1500, "segment {i} fits the MTU");
        let outer = Ipv4Packet::new_checked(&seg[14..]).unwrap();
        assert!(outer.verify_checksum() && outer.dont_frag());
        assert_eq!(outer.dst_addr(), RS1);
        let inner = inner_frame(seg);
        assert!(checksums_valid(&inner), "segment {i}");
        let t = crate::wire::tcp::TcpPacket::new_checked(&inner[34..]).unwrap();
        assert_eq!(t.seq_number(), 1 + 1400 * i as u32);
        got.extend_from_slice(t.payload());
    }
    assert_eq!(got, data);

    // 7. The same with gso_size 1460 (segments of 1500 bytes): frag needed, MTU 1480.
    let (v, _) = feed(
        &mut lab,
        RxFrame {
            csum_partial: true,
            gso: true,
            gso_size: 1460,
            ..plain(&input)
        },
    );
    assert!(
        matches!(
            v,
            Verdict::Reject {
                reason: R::NeedFrag,
                ..
            }
        ),
        "{v:?}"
    );

    // 8. A UDP GSO super-frame is not segmented.
    let udp = FrameSpec::udp(GW_MAC, EXT_MAC, client(8, 5001), sa(VIP_TUN, 53), &data).to_vec();
    let (v, _) = feed(
        &mut lab,
        RxFrame {
            gso: true,
            gso_size: 1400,
            ..plain(&udp)
        },
    );
    assert_eq!(v, Verdict::Drop(R::TooBig));

    // 9. Bad input: nested IPIP to a VIP, truncated inner TCP header, IPIP elsewhere.
    let mut nested = eth_literal(EXT_MAC, GW_MAC);
    nested.extend(outer_literal(60, 9, 0, 0, VIP_TUN));
    // (outer_literal's source is 192.0.2.1: a tunnel from "somewhere" to the VIP.)
    nested.extend(&FrameSpec::tcp(GW_MAC, EXT_MAC, c1, sa(VIP_TUN, 80), syn).to_vec()[14..]);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut nested[14..]);
        ip.set_dst_addr(VIP_TUN);
        ip.fill_checksum();
    }
    assert_eq!(
        feed(&mut lab, plain(&nested)).0,
        Verdict::Drop(R::Tunnelled)
    );
    let mut to_other = nested.clone();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut to_other[14..]);
        ip.set_dst_addr(Ipv4Addr::new(203, 0, 113, 99));
        ip.fill_checksum();
    }
    assert_eq!(feed(&mut lab, plain(&to_other)).0, Verdict::Pass);
    let mut short = FrameSpec::tcp(GW_MAC, EXT_MAC, client(9, 1), sa(VIP_TUN, 80), syn).to_vec();
    short.truncate(14 + 20 + 12);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut short[14..]);
        ip.set_total_len(32);
        ip.fill_checksum();
    }
    assert_eq!(feed(&mut lab, plain(&short)).0, Verdict::Drop(R::Truncated));
    // Every truncation of a TUN-bound frame is dropped or passed, never a panic.
    let whole = FrameSpec::tcp(GW_MAC, EXT_MAC, client(9, 2), sa(VIP_TUN, 80), syn).to_vec();
    for n in 0..whole.len() {
        let (v, _) = feed(&mut lab, plain(&whole[..n]));
        assert!(
            matches!(v, Verdict::Drop(_) | Verdict::Pass),
            "{n} bytes: {v:?}"
        );
    }

    // 10. A real server behind a router: outer destination = RIP, frame to the router.
    let input = FrameSpec::tcp(GW_MAC, EXT_MAC, client(10, 1), sa(VIP_FAR, 80), syn).to_vec();
    let (v, f) = feed(&mut lab, plain(&input));
    assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
    assert_eq!(&f[0][..14], &eth_literal(RS2_MAC, INT_MAC)[..]);
    let outer = Ipv4Packet::new_checked(&f[0][14..]).unwrap();
    assert_eq!((outer.src_addr(), outer.dst_addr()), (DIP, RS_FAR));
    assert_eq!(&f[0][34..], &input[14..]);

    let s = lab.dp.stats();
    assert_eq!(s.dropped[R::NeedFrag], 2);
    assert_eq!(s.dropped[R::Tunnelled], 1);
    assert_eq!(s.dropped[R::TooBig], 1);
    // Connections: T1 from rows 1, 3, 4, 6 (7 reused 6's); T2 rows 2, 5 (8 dropped after
    // scheduling: one more); T3 row 10.
    assert_eq!(s.services[0].counters.conns, 4);
    assert_eq!(s.services[1].counters.conns, 3);
    assert_eq!(s.services[2].counters.conns, 1);
    assert_eq!(s.services[0].dests[0].forwarding, Forwarding::Tun);
}

#[test]
fn frag_needed_is_rate_limited() {
    let mut lab = Lab::resolved(tun_config());
    let big = vec![0u8; 1460];
    let mut answered = 0;
    for i in 0..80u16 {
        let input = FrameSpec::tcp(
            GW_MAC,
            EXT_MAC,
            client(1, 10_000 + i),
            sa(VIP_TUN, 80),
            TcpControl::SYN,
        )
        .with_payload(&big)
        .to_vec();
        match feed(&mut lab, plain(&input)).0 {
            Verdict::Reject { .. } => answered += 1,
            Verdict::Drop(DropReason::NeedFrag) => {}
            v => panic!("{v:?}"),
        }
    }
    assert_eq!(answered, 50);
    assert_eq!(lab.dp.stats().dropped[DropReason::NeedFrag], 80);
    // A second later the bucket is full again.
    lab.now += std::time::Duration::from_secs(1);
    let input = FrameSpec::tcp(
        GW_MAC,
        EXT_MAC,
        client(2, 1),
        sa(VIP_TUN, 80),
        TcpControl::SYN,
    )
    .with_payload(&big)
    .to_vec();
    assert!(matches!(
        feed(&mut lab, plain(&input)).0,
        Verdict::Reject { .. }
    ));
}

// --- IPv6 and mixed families (6in6, 4in6, 6in4), through `tunnel_out` directly ---------
//
// These call `Dataplane::tunnel_out` with a hand-built `Inbound`/`Path` (what `inbound`
// hands over once a packet is bound), so the tunnel's policy is pinned independently of the
// classification. Addresses from the IPv6 lab plan: client 2001:db8:c::10, VIP
// 2001:db8:f::10, DIP 2001:db8:b::1, RS1 2001:db8:b::11; IPv4 as above.

mod v6 {
    use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};

    use super::super::tests::*;
    use super::super::tunnel::{Inbound, Path};
    use super::super::*;
    use super::{VIP_TUN, eth_literal};
    use crate::wire::build::{FrameSpec, FrameSpec6, checksums_valid, checksums_valid6};
    use crate::wire::checksum;
    use crate::wire::icmp::IcmpPacket;
    use crate::wire::icmpv6::Icmpv6Packet;
    use crate::wire::ipv6::{self, Ipv6Packet};
    use crate::wire::tcp::{TcpControl, TcpPacket};

    const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
    const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
    const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);

    fn c6(port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(C6, port, 0, 0)
    }

    fn v6(port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(VIP6, port, 0, 0)
    }

    fn tcp6(port: u16, payload: &[u8]) -> Vec<u8> {
        FrameSpec6::tcp(GW_MAC, EXT_MAC, c6(port), v6(80), TcpControl::SYN)
            .with_payload(payload)
            .to_vec()
    }

    fn udp6(port: u16, payload: &[u8]) -> Vec<u8> {
        FrameSpec6::udp(GW_MAC, EXT_MAC, c6(port), v6(53), payload).to_vec()
    }

    fn tcp4(port: u16, payload: &[u8]) -> Vec<u8> {
        FrameSpec::tcp(
            GW_MAC,
            EXT_MAC,
            client(1, port),
            sa(VIP_TUN, 80),
            TcpControl::SYN,
        )
        .with_payload(payload)
        .to_vec()
    }

    /// The outer path: DIP → RIP of one family, egress MTU `mtu`.
    fn path(six: bool, mtu: u32) -> Path {
        let (dip, rip) = if six {
            (IpAddr::V6(DIP6), IpAddr::V6(RS6))
        } else {
            (IpAddr::V4(DIP), IpAddr::V4(RS1))
        };
        Path {
            ifindex: INT_IF,
            src_mac: INT_MAC,
            dst_mac: RS1_MAC,
            mtu,
            dip,
            rip,
        }
    }

    /// What `inbound` would hand over for the client frame `f` (TCP or UDP).
    fn inbound(f: &[u8]) -> Inbound {
        let ip = &f[14..];
        let (ip_len, client, vip, l4) = if ip[0] >> 4 == 6 {
            let p = Ipv6Packet::new_checked(ip).unwrap();
            let len = 40 + usize::from(p.payload_len());
            (
                len,
                p.src_addr().into(),
                p.dst_addr().into(),
                p.next_header(),
            )
        } else {
            let p = Ipv4Packet::new_checked(ip).unwrap();
            let len = usize::from(p.total_len());
            (
                len,
                p.src_addr().into(),
                p.dst_addr().into(),
                p.protocol().0,
            )
        };
        Inbound {
            protocol: if l4 == 17 {
                lvs_proto::Protocol::Udp
            } else {
                lvs_proto::Protocol::Tcp
            },
            ip_len,
            src_mac: GW_MAC,
            client,
            vip,
        }
    }

    fn rx(data: &[u8]) -> RxFrame<'_> {
        RxFrame {
            ifindex: EXT_IF,
            data,
            csum_partial: false,
            gso: false,
            gso_size: 0,
        }
    }

    /// `tunnel_out` on `rx` (the frame queue cleared first, as `process` does); returns the
    /// verdict and every frame to send.
    fn send(lab: &mut Lab, rx: RxFrame<'_>, p: &Inbound, path: Path) -> (Verdict, Vec<Vec<u8>>) {
        lab.dp.tunnel.clear();
        let v = lab.dp.tunnel_out(lab.now, rx, p, path, &mut lab.out);
        let mut frames = Vec::new();
        match v {
            Verdict::TransmitPlain { ifindex, len } => {
                assert_eq!(ifindex, INT_IF);
                frames.push(lab.out[..len].to_vec());
                let mut buf = vec![0u8; 70_000];
                while let Some((i, len)) = lab.dp.next_frame(&mut buf) {
                    assert_eq!(i, INT_IF);
                    frames.push(buf[..len].to_vec());
                    assert!(frames.len() < 2000, "next_frame never ends");
                }
            }
            Verdict::Reject { ifindex, len, .. } => {
                assert_eq!(ifindex, EXT_IF);
                frames.push(lab.out[..len].to_vec());
            }
            _ => {}
        }
        (v, frames)
    }

    fn lab() -> Lab {
        Lab::new(config(vec![]))
    }

    /// Literal outer IPv6 header DIP6 → RS6, hop limit 64, flow label 0.
    fn outer6(payload_len: u16, next: u8, tc: u8) -> Vec<u8> {
        let [p0, p1] = payload_len.to_be_bytes();
        let mut h = vec![0x60 | (tc >> 4), tc << 4, 0, 0, p0, p1, next, 64];
        h.extend(DIP6.octets());
        h.extend(RS6.octets());
        h
    }

    /// Literal outer IPv4 header 192.0.2.1 → RS1, TTL 64, protocol `proto`; checksum by the
    /// plain RFC 1071 sum.
    fn outer4(total: u16, ident: u16, tos: u8, flags_off: u16, proto: u8) -> Vec<u8> {
        let [t0, t1] = total.to_be_bytes();
        let [i0, i1] = ident.to_be_bytes();
        let [f0, f1] = flags_off.to_be_bytes();
        let mut h = vec![
            0x45, tos, t0, t1, i0, i1, f0, f1, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 11,
        ];
        let c = !checksum::data(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    fn eth6(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut v = dst.to_vec();
        v.extend(src);
        v.extend([0x86, 0xdd]);
        v
    }

    /// The inner packet of an encapsulated frame (outer header `hdr` bytes) as an Ethernet
    /// frame of its own family, for `checksums_valid*`.
    fn inner_frame(f: &[u8], hdr: usize) -> Vec<u8> {
        let mut v = f[..12].to_vec();
        v.extend(if f[14 + hdr] >> 4 == 6 {
            [0x86, 0xdd]
        } else {
            [0x08, 0x00]
        });
        v.extend(&f[14 + hdr..]);
        v
    }

    fn inner_valid(f: &[u8], hdr: usize) -> bool {
        let i = inner_frame(f, hdr);
        if i[12] == 0x86 {
            checksums_valid6(&i)
        } else {
            checksums_valid(&i)
        }
    }

    /// The NEEDS_CSUM form of an IPv6 TCP/UDP frame: the pseudo-header sum in the field.
    fn make_partial6(f: &mut [u8]) {
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let nh = ip.next_header();
        let sum = ipv6::pseudo_header(
            ip.src_addr(),
            ip.dst_addr(),
            nh,
            u32::from(ip.payload_len()),
        );
        let at = 14 + 40 + if nh == 6 { 16 } else { 6 };
        f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }

    /// Reassembles outer IPv6 fragments (fragment header right after the fixed header):
    /// checks offsets, M flags, one identification, next header `nh`; returns the inner
    /// packet.
    fn reassemble6(frames: &[Vec<u8>], nh: u8, mtu: usize) -> Vec<u8> {
        let mut data = Vec::new();
        let mut ident = None;
        for (i, f) in frames.iter().enumerate() {
            assert!(f.len() <= 14 + mtu, "fragment {i} fits the MTU");
            assert_eq!(&f[12..14], &[0x86, 0xdd]);
            let p = Ipv6Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(p.next_header(), 44);
            assert_eq!((p.src_addr(), p.dst_addr()), (DIP6, RS6));
            let u = p.upper_layer(ipv6::MAX_EXT_HEADERS).unwrap();
            let frag = u.fragment.unwrap();
            assert_eq!(f[14 + 40], nh);
            assert_eq!(usize::from(frag.offset), data.len());
            assert_eq!(frag.more, i + 1 < frames.len());
            assert_eq!(*ident.get_or_insert(frag.ident), frag.ident);
            if i + 1 < frames.len() {
                assert_eq!((f.len() - 14 - 48) % 8, 0);
            }
            data.extend_from_slice(&f[14 + 48..]);
        }
        data
    }

    /// Reassembles outer IPv4 fragments (protocol `proto`, DF clear).
    fn reassemble4(frames: &[Vec<u8>], proto: u8, mtu: usize) -> Vec<u8> {
        let mut data = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            assert!(f.len() <= 14 + mtu);
            let p = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(p.verify_checksum() && !p.dont_frag());
            assert_eq!(p.protocol().0, proto);
            assert_eq!(usize::from(p.frag_offset()), data.len());
            assert_eq!(p.more_frags(), i + 1 < frames.len());
            data.extend_from_slice(p.payload());
        }
        data
    }

    /// Checks an ICMPv6 Packet Too Big frame: to the client's MAC from the ingress
    /// interface, VIP → client, hop limit 64, MTU `mtu`, checksum, quote within 1280.
    fn assert_ptb(f: &[u8], mtu: u32, invoking: &[u8]) {
        assert_eq!(&f[..14], &eth6(GW_MAC, EXT_MAC)[..]);
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(f.len(), 14 + ip.packet().len());
        assert!(ip.packet().len() <= 1280);
        assert_eq!((ip.src_addr(), ip.dst_addr()), (VIP6, C6));
        assert_eq!((ip.next_header(), ip.hop_limit()), (58, 64));
        assert_eq!((ip.traffic_class(), ip.flow_label()), (0, 0));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(VIP6, C6));
        assert_eq!(
            (icmp.msg_type(), icmp.code(), icmp.header_data()),
            (2, 0, mtu)
        );
        let quoted = invoking.len().min(1280 - 48);
        assert_eq!(icmp.body(), &invoking[..quoted]);
    }

    /// 6in6, 4in6 and 6in4, TCP and UDP: outer headers byte for byte, inner unchanged.
    #[test]
    fn golden_all_families() {
        let mut lab = lab();

        // 1. 6in6 TCP SYN: next header 41, payload length = the inner packet.
        let f = tcp6(40000, b"");
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert_eq!(
            v,
            Verdict::TransmitPlain {
                ifindex: INT_IF,
                len: 14 + 40 + 60
            }
        );
        let mut expect = eth6(RS1_MAC, INT_MAC);
        expect.extend(outer6(60, 41, 0));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 2. 6in6 UDP with traffic class 0xb9 (ECN CE... copied as is) and flow label
        //    0x12345 (not copied: outer flow label 0).
        let mut spec = FrameSpec6::udp(GW_MAC, EXT_MAC, c6(5353), v6(53), b"q?");
        spec.traffic_class = 0xbb;
        spec.flow_label = 0x12345;
        let f = spec.to_vec();
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert!(
            matches!(v, Verdict::TransmitPlain { len: 104, .. }),
            "{v:?}"
        );
        let mut expect = eth6(RS1_MAC, INT_MAC);
        expect.extend(outer6(50, 41, 0xbb));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 3. 4in6 TCP with TOS 0x10 and DF: next header 4, traffic class 0x10.
        let mut f = tcp4(40001, b"hi");
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_dscp_ecn(0x10);
            ip.fill_checksum();
        }
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert!(matches!(v, Verdict::TransmitPlain { len: 96, .. }), "{v:?}");
        let mut expect = eth6(RS1_MAC, INT_MAC);
        expect.extend(outer6(42, 4, 0x10));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 4. 4in6 UDP.
        let f = FrameSpec::udp(GW_MAC, EXT_MAC, client(2, 5353), sa(VIP_TUN, 53), b"abc").to_vec();
        let (_, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        let mut expect = eth6(RS1_MAC, INT_MAC);
        expect.extend(outer6(31, 4, 0));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 5. 6in4 TCP: protocol 41, DF clear (IPVS: df = 0 for IPv6), TOS = traffic class,
        //    the IPv4 identification counter (1: the first IPv4 outer of this lab).
        let mut spec = FrameSpec6::tcp(GW_MAC, EXT_MAC, c6(40002), v6(80), TcpControl::SYN);
        spec.traffic_class = 0x28;
        let f = spec.to_vec();
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(false, 1500));
        assert!(matches!(v, Verdict::TransmitPlain { len: 94, .. }), "{v:?}");
        let mut expect = eth_literal(RS1_MAC, INT_MAC);
        expect.extend(outer4(80, 1, 0x28, 0, 41));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 6. 6in4 UDP: id 2.
        let f = udp6(5354, b"ping");
        let (_, out) = send(&mut lab, rx(&f), &inbound(&f), path(false, 1500));
        let mut expect = eth_literal(RS1_MAC, INT_MAC);
        expect.extend(outer4(72, 2, 0, 0, 41));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 7. 4in4 still IPIP with DF copied (id 3).
        let f = tcp4(40003, b"");
        let (_, out) = send(&mut lab, rx(&f), &inbound(&f), path(false, 1500));
        let mut expect = eth_literal(RS1_MAC, INT_MAC);
        expect.extend(outer4(60, 3, 0, 0x4000, 4));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 8. A v6 packet that exactly fits the 6in6 tunnel (1460 bytes at MTU 1500).
        let f = udp6(1, &vec![7u8; 1460 - 48]);
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert!(
            matches!(v, Verdict::TransmitPlain { len: 1514, .. }),
            "{v:?}"
        );
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][54..], &f[14..]);
    }

    /// Inner IPv6 too big: Packet Too Big with the tunnel MTU (at least 1280); between the
    /// tunnel MTU and 1280 the outer packet is fragmented instead.
    #[test]
    fn packet_too_big_and_small_tunnels() {
        use DropReason as R;
        let mut lab = lab();

        // 6in6 at MTU 1500: tunnel MTU 1460; a 1500-byte packet gets PTB 1460.
        let f = tcp6(1, &vec![0x5a; 1440]);
        assert_eq!(f.len(), 14 + 1500);
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert_eq!(
            v,
            Verdict::Reject {
                reason: R::NeedFrag,
                ifindex: EXT_IF,
                len: 14 + 1280
            }
        );
        assert_ptb(&out[0], 1460, &f[14..]);
        // 6in4 at MTU 1500: tunnel MTU 1480.
        let (_, out) = send(&mut lab, rx(&f), &inbound(&f), path(false, 1500));
        assert_ptb(&out[0], 1480, &f[14..]);
        // A short invoking packet is quoted whole.
        let small = udp6(2, b"x");
        let (_, out) = send(&mut lab, rx(&small), &inbound(&small), path(true, 1300));
        assert_eq!(
            out[0].len(),
            14 + 40 + 40 + 8 + 1,
            "fits: transmitted, not PTB"
        );
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1300));
        assert!(matches!(v, Verdict::Reject { len: 1294, .. }), "{v:?}");
        assert_ptb(&out[0], 1280, &f[14..]);

        // 6in6 at MTU 1300 (tunnel MTU 1260): a 1280-byte packet is encapsulated and the
        // outer IPv6 packet fragmented (RFC 2473 §7.1); 1281 bytes get PTB 1280.
        let f = udp6(3, &vec![0x33; 1280 - 48]);
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1300));
        assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
        assert_eq!(out.len(), 2);
        assert_eq!(reassemble6(&out, 41, 1300), &f[14..]);
        let f = udp6(4, &vec![0x34; 1281 - 48]);
        let (_, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1300));
        assert_ptb(&out[0], 1280, &f[14..]);

        // 6in4 at MTU 1200 (tunnel MTU 1180): up to 1280 the outer IPv4 is fragmented,
        // protocol 41, DF clear.
        let f = tcp6(5, &vec![0x35; 1280 - 60]);
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(false, 1200));
        assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
        assert_eq!(out.len(), 2);
        assert_eq!(reassemble4(&out, 41, 1200), &f[14..]);
        let f = tcp6(6, &vec![0x36; 1300 - 60]);
        let (_, out) = send(&mut lab, rx(&f), &inbound(&f), path(false, 1200));
        assert_ptb(&out[0], 1280, &f[14..]);

        // 4in6, DF, 1500 bytes: ICMP frag needed with the tunnel MTU 1460 (IPv4).
        let f = tcp4(7, &vec![0x37; 1460]);
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert!(
            matches!(
                v,
                Verdict::Reject {
                    reason: R::NeedFrag,
                    ..
                }
            ),
            "{v:?}"
        );
        assert_eq!(&out[0][..14], &eth_literal(GW_MAC, EXT_MAC)[..]);
        let ip = Ipv4Packet::new_checked(&out[0][14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (VIP_TUN, *client(1, 7).ip())
        );
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()),
            (3, 4, 1460)
        );

        // 4in6 without DF: the outer IPv6 packet is fragmented (fragment header, next
        // header 4), as the stack does after IPVS.
        let mut f = tcp4(8, &vec![0x38; 1460]);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_flags_and_offset(false, false, 0);
            ip.fill_checksum();
        }
        let (v, out) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert!(
            matches!(v, Verdict::TransmitPlain { len: 1510, .. }),
            "{v:?}"
        );
        assert_eq!(out.len(), 2);
        assert_eq!(reassemble6(&out, 4, 1500), &f[14..]);
        // The next fragmented packet has another identification.
        let (_, again) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1500));
        assert_ne!(&again[0][14 + 44..14 + 48], &out[0][14 + 44..14 + 48]);

        // An ICMPv6 packet too big: dropped without an error about it (RFC 4443 §2.4 (e)).
        let mut icmp6 = udp6(9, &vec![0u8; 1500 - 48]);
        icmp6[14 + 6] = 58;
        let mut p = inbound(&icmp6);
        p.ip_len = 1500;
        let (v, _) = send(&mut lab, rx(&icmp6), &p, path(true, 1500));
        assert_eq!(v, Verdict::Drop(R::TooBig));

        // An IPv6 outer needs an egress MTU of 1280; an IPv4 outer a tunnel MTU of 68.
        let f = udp6(10, b"x");
        let (v, _) = send(&mut lab, rx(&f), &inbound(&f), path(true, 1279));
        assert_eq!(v, Verdict::Drop(R::TooBig));
        let (v, _) = send(&mut lab, rx(&f), &inbound(&f), path(false, 87));
        assert_eq!(v, Verdict::Drop(R::TooBig));
        let (v, _) = send(&mut lab, rx(&f), &inbound(&f), path(false, 88));
        assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
    }

    #[test]
    fn packet_too_big_is_rate_limited_with_frag_needed() {
        let mut lab = lab();
        let big6 = tcp6(1, &vec![0u8; 1440]);
        let mut answered = 0;
        for _ in 0..80 {
            match send(&mut lab, rx(&big6), &inbound(&big6), path(true, 1500)).0 {
                Verdict::Reject { .. } => answered += 1,
                Verdict::Drop(DropReason::NeedFrag) => {}
                v => panic!("{v:?}"),
            }
        }
        assert_eq!(answered, 50);
        // One budget for both families: an IPv4 frag needed is limited too.
        let big4 = tcp4(2, &vec![0u8; 1460]);
        assert_eq!(
            send(&mut lab, rx(&big4), &inbound(&big4), path(false, 1500)).0,
            Verdict::Drop(DropReason::NeedFrag)
        );
        lab.now += std::time::Duration::from_millis(2);
        let n = (0..10)
            .filter(|_| {
                matches!(
                    send(&mut lab, rx(&big6), &inbound(&big6), path(true, 1500)).0,
                    Verdict::Reject { .. }
                )
            })
            .count();
        assert_eq!(n, 2, "1000/s: two tokens in 2 ms");
    }

    /// NEEDS_CSUM IPv6 frames: the inner checksum is completed over the IPv6
    /// pseudo-header, in a single frame and before fragmenting.
    #[test]
    fn partial_checksums_v6() {
        let mut lab = lab();
        for full in [tcp6(1, b"hello"), udp6(2, b"world")] {
            let mut input = full.clone();
            make_partial6(&mut input);
            assert_ne!(input, full);
            for six in [true, false] {
                let hdr = if six { 40 } else { 20 };
                let (v, out) = send(
                    &mut lab,
                    RxFrame {
                        csum_partial: true,
                        ..rx(&input)
                    },
                    &inbound(&input),
                    path(six, 1500),
                );
                assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
                assert_eq!(
                    &out[0][14 + hdr..],
                    &full[14..],
                    "inner = the complete original"
                );
                assert!(inner_valid(&out[0], hdr));
            }
        }
        // Fragmented (6in6 at MTU 1300, 1280 bytes): completed before fragmenting.
        let full = udp6(3, &vec![9u8; 1280 - 48]);
        let mut input = full.clone();
        make_partial6(&mut input);
        let (_, out) = send(
            &mut lab,
            RxFrame {
                csum_partial: true,
                ..rx(&input)
            },
            &inbound(&input),
            path(true, 1300),
        );
        assert_eq!(reassemble6(&out, 41, 1300), &full[14..]);
        // An extension header (destination options, 8 bytes) before TCP is walked.
        let mut ext = tcp6(4, b"ext");
        ext.splice(54..54, [6u8, 0, 1, 4, 0, 0, 0, 0]);
        ext[14 + 6] = 60;
        let plen = u16::from_be_bytes([ext[18], ext[19]]) + 8;
        ext[18..20].copy_from_slice(&plen.to_be_bytes());
        let mut input = ext.clone();
        let sum = ipv6::pseudo_header(C6, VIP6, 6, u32::from(plen) - 8);
        input[54 + 8 + 16..54 + 8 + 18].copy_from_slice(&sum.to_be_bytes());
        let (v, out) = send(
            &mut lab,
            RxFrame {
                csum_partial: true,
                ..rx(&input)
            },
            &inbound(&input),
            path(true, 1500),
        );
        assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
        assert!(inner_valid(&out[0], 40));
        assert_eq!(&out[0][54..], &ext[14..]);
    }

    fn gso(input: &[u8], size: u16) -> RxFrame<'_> {
        RxFrame {
            csum_partial: true,
            gso: true,
            gso_size: size,
            ..rx(input)
        }
    }

    /// TCP/IPv6 GSO super-frames: segmented, each segment encapsulated, checksums valid,
    /// the payload intact; too big a `gso_size` gets Packet Too Big.
    #[test]
    fn gso_v6() {
        use DropReason as R;
        let mut lab = lab();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13) as u8).collect();
        let mut input = tcp6(1, &data);
        make_partial6(&mut input);
        let mut ident = 0;
        for (six, mtu, size, count) in [
            (true, 1500, 1400, 8),
            (false, 1500, 1400, 8),
            (true, 1300, 0, 9),
            (true, 1300, 1220, 9),
        ] {
            let hdr = if six { 40 } else { 20 };
            let (v, out) = send(
                &mut lab,
                gso(&input, size),
                &inbound(&input),
                path(six, mtu),
            );
            assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
            assert_eq!(out.len(), count, "{six} {mtu} {size}");
            let mss = if size == 0 || mtu == 1300 {
                usize::try_from(mtu).unwrap() - hdr - 60
            } else {
                usize::from(size)
            };
            let mut got = Vec::new();
            for (i, seg) in out.iter().enumerate() {
                assert!(
                    seg.len() <= 14 + usize::try_from(mtu).unwrap(),
                    "segment {i}"
                );
                if six {
                    let o = Ipv6Packet::new_checked(&seg[14..]).unwrap();
                    assert_eq!(&seg[14..54], &outer6(o.payload_len(), 41, 0)[..]);
                } else {
                    ident += 1;
                    let o = Ipv4Packet::new_checked(&seg[14..]).unwrap();
                    let total = o.total_len();
                    assert_eq!(&seg[14..34], &outer4(total, ident, 0, 0, 41)[..]);
                }
                assert!(inner_valid(seg, hdr), "segment {i}");
                let t = TcpPacket::new_checked(&seg[14 + hdr + 40..]).unwrap();
                assert_eq!(t.seq_number(), 1 + (mss * i) as u32);
                got.extend_from_slice(t.payload());
            }
            assert_eq!(got, data);
        }
        // gso_size 1440 needs 1500 bytes > the 1460 tunnel MTU: PTB 1460.
        let (v, out) = send(
            &mut lab,
            gso(&input, 1440),
            &inbound(&input),
            path(true, 1500),
        );
        assert!(matches!(v, Verdict::Reject { .. }), "{v:?}");
        assert_ptb(&out[0], 1460, &input[14..]);
        // At MTU 1300, 1221 bytes per segment (1281 > 1280): PTB 1280.
        let (_, out) = send(
            &mut lab,
            gso(&input, 1221),
            &inbound(&input),
            path(true, 1300),
        );
        assert_ptb(&out[0], 1280, &input[14..]);
        // UDP GSO: not segmented.
        let udp = udp6(2, &data);
        let (v, _) = send(&mut lab, gso(&udp, 1400), &inbound(&udp), path(true, 1500));
        assert_eq!(v, Verdict::Drop(R::TooBig));
        // An extension header in a GSO super-frame: refused.
        let mut ext = tcp6(3, &data);
        ext.splice(54..54, [6u8, 0, 1, 4, 0, 0, 0, 0]);
        ext[14 + 6] = 60;
        let plen = u16::from_be_bytes([ext[18], ext[19]]) + 8;
        ext[18..20].copy_from_slice(&plen.to_be_bytes());
        let (v, _) = send(&mut lab, gso(&ext, 1400), &inbound(&ext), path(true, 1500));
        assert_eq!(v, Verdict::Drop(R::BadL4Header));
    }

    /// Bad input never panics: truncated inner packets, lengths that lie, families that
    /// disagree, tunnels inside the tunnel, random bytes.
    #[test]
    fn bad_input_never_panics() {
        use DropReason as R;
        let mut lab = lab();
        let whole = tcp6(1, b"payload");
        let p = inbound(&whole);
        for n in 0..whole.len() {
            for six in [true, false] {
                let (v, _) = send(&mut lab, rx(&whole[..n]), &p, path(six, 1500));
                assert!(
                    matches!(v, Verdict::Drop(R::Truncated | R::BadIpHeader)),
                    "{n}: {v:?}"
                );
            }
        }
        // ip_len shorter than the packet's own length.
        for ip_len in 0..p.ip_len {
            let q = Inbound { ip_len, ..p };
            let (v, _) = send(&mut lab, rx(&whole), &q, path(true, 1500));
            assert!(matches!(v, Verdict::Drop(_)), "{ip_len}: {v:?}");
        }
        // Inbound addresses of the other family than the inner packet.
        let q = Inbound {
            client: IpAddr::V4(DIP),
            ..p
        };
        assert_eq!(
            send(&mut lab, rx(&whole), &q, path(true, 1500)).0,
            Verdict::Drop(R::BadIpHeader)
        );
        // DIP and RIP of different families.
        let mixed = Path {
            rip: IpAddr::V4(RS1),
            ..path(true, 1500)
        };
        assert_eq!(
            send(&mut lab, rx(&whole), &p, mixed).0,
            Verdict::Drop(R::NoInterface)
        );
        // Version 5.
        let mut v5 = whole.clone();
        v5[14] = 0x50;
        assert_eq!(
            send(&mut lab, rx(&v5), &p, path(true, 1500)).0,
            Verdict::Drop(R::BadIpHeader)
        );

        // Nested tunnels: a 6in6 packet (itself carrying TCP) as the client's packet. It is
        // opaque payload: encapsulated as is, but its checksum cannot be completed and it
        // cannot be segmented.
        let mut nested = whole[..14].to_vec();
        nested.extend(outer6(u16::try_from(whole.len() - 14).unwrap(), 41, 0));
        nested.extend(&whole[14..]);
        let mut q = inbound(&whole);
        q.ip_len = nested.len() - 14;
        q.client = IpAddr::V6(DIP6);
        q.vip = IpAddr::V6(RS6);
        let (v, out) = send(&mut lab, rx(&nested), &q, path(true, 1500));
        assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
        assert_eq!(&out[0][54..], &nested[14..]);
        let partial = RxFrame {
            csum_partial: true,
            ..rx(&nested)
        };
        assert_eq!(
            send(&mut lab, partial, &q, path(false, 1500)).0,
            Verdict::Drop(R::BadL4Header)
        );
        let gso = RxFrame {
            gso: true,
            gso_size: 100,
            ..rx(&nested)
        };
        assert_eq!(
            send(&mut lab, gso, &q, path(true, 1500)).0,
            Verdict::Drop(R::BadL4Header)
        );
        // 4in4 inside a 6in6 tunnel frame with a truncated inner header.
        let mut bad = nested.clone();
        bad[14 + 40] = 0x45;
        let _ = send(&mut lab, rx(&bad), &q, path(true, 1500));

        // Random bytes behind an IPv6 or IPv4 version nibble, random lengths and flags.
        let mut x: u32 = 0x9e37_79b9;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..3000 {
            let len = (next() % 1600) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = f.get_mut(14) {
                *b = if round % 2 == 0 { 0x60 } else { 0x45 } | (*b & 0x0f);
            }
            if round % 3 == 0 {
                if let Some(b) = f.get_mut(20) {
                    *b = [6u8, 17, 41, 4, 44, 0, 60][(next() % 7) as usize];
                }
            }
            let r = next();
            let six_in = round % 2 == 0;
            let (client, vip): (IpAddr, IpAddr) = if six_in {
                (C6.into(), VIP6.into())
            } else {
                (DIP.into(), VIP_TUN.into())
            };
            let q = Inbound {
                protocol: if r & 1 == 0 {
                    lvs_proto::Protocol::Tcp
                } else {
                    lvs_proto::Protocol::Udp
                },
                ip_len: (next() % 1700) as usize,
                src_mac: GW_MAC,
                client,
                vip,
            };
            let frame = RxFrame {
                ifindex: EXT_IF,
                data: &f,
                csum_partial: r & 2 != 0,
                gso: r & 4 != 0,
                gso_size: (next() % 2000) as u16,
            };
            let mtu = 1200 + next() % 400;
            let _ = send(&mut lab, frame, &q, path(r & 8 != 0, mtu));
        }
    }
}

/// The three new family combinations through `process`: classification, scheduling and
/// neighbour resolution of both families, then `tunnel_out`.
mod process_v6 {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    use lvs_proto::{Forwarding, Protocol, SchedulerKind};

    use super::super::tests::*;
    use super::super::*;
    use super::{VIP_TUN, eth_literal, feed, plain};
    use crate::wire::build::{FrameSpec, FrameSpec6};
    use crate::wire::checksum;
    use crate::wire::icmpv6::{Icmpv6Packet, NdpRepr};
    use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr, next_header};
    use crate::wire::tcp::TcpControl;

    const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
    const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
    const D6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
    const R6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);

    fn s6(a: Ipv6Addr, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(a, port, 0, 0)
    }

    /// "R6 is at RS1_MAC", to the DIP.
    fn advert() -> Vec<u8> {
        let na = NdpRepr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target: R6,
            target_lladdr: Some(RS1_MAC),
        };
        let mut f = vec![0u8; 14 + 40 + na.len()];
        f[..6].copy_from_slice(&INT_MAC);
        f[6..12].copy_from_slice(&RS1_MAC);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        Ipv6Repr {
            src_addr: R6,
            dst_addr: D6,
            next_header: next_header::ICMPV6,
            payload_len: na.len(),
            hop_limit: 255,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
        na.emit(R6, D6, &mut f[54..]);
        f
    }

    fn outer6(payload_len: u16, next: u8) -> Vec<u8> {
        let [p0, p1] = payload_len.to_be_bytes();
        let mut h = vec![0x60, 0, 0, 0, p0, p1, next, 64];
        h.extend(D6.octets());
        h.extend(R6.octets());
        h
    }

    fn eth6(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut v = dst.to_vec();
        v.extend(src);
        v.extend([0x86, 0xdd]);
        v
    }

    #[test]
    fn tun_6in6_4in6_6in4_through_process() {
        let rr = SchedulerKind::Rr;
        let cfg = config(vec![
            // 6in6
            service(
                Protocol::Tcp,
                V6,
                80,
                rr,
                vec![dest(R6, 80, 1, Forwarding::Tun)],
            ),
            // 6in4
            service(
                Protocol::Udp,
                V6,
                53,
                rr,
                vec![dest(RS1, 53, 1, Forwarding::Tun)],
            ),
            // 4in6
            service(
                Protocol::Tcp,
                VIP_TUN,
                80,
                rr,
                vec![dest(R6, 80, 1, Forwarding::Tun)],
            ),
        ]);
        let mut lab = Lab::new(cfg);
        assert_eq!(lab.rx(INT_IF, &arp_reply(RS1, RS1_MAC)).0, Verdict::Pass);
        assert_eq!(lab.rx(INT_IF, &advert()).0, Verdict::Pass);

        // 6in6 SYN.
        let f =
            FrameSpec6::tcp(GW_MAC, EXT_MAC, s6(C6, 40000), s6(V6, 80), TcpControl::SYN).to_vec();
        let (v, out) = feed(&mut lab, plain(&f));
        assert!(
            matches!(v, Verdict::TransmitPlain { len: 114, .. }),
            "{v:?}"
        );
        let mut expect = eth6(RS1_MAC, INT_MAC);
        expect.extend(outer6(60, 41));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 6in4 UDP: protocol 41, DF clear, the first IPv4 outer id.
        let f = FrameSpec6::udp(GW_MAC, EXT_MAC, s6(C6, 5353), s6(V6, 53), b"q").to_vec();
        let (v, out) = feed(&mut lab, plain(&f));
        assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
        let mut hdr = vec![
            0x45, 0, 0, 69, 0, 1, 0, 0, 64, 41, 0, 0, 192, 0, 2, 1, 192, 0, 2, 11,
        ];
        let c = !checksum::data(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        let mut expect = eth_literal(RS1_MAC, INT_MAC);
        expect.extend(hdr);
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 4in6 SYN.
        let c = std::net::SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 40001);
        let f = FrameSpec::tcp(GW_MAC, EXT_MAC, c, sa(VIP_TUN, 80), TcpControl::SYN).to_vec();
        let (v, out) = feed(&mut lab, plain(&f));
        assert!(matches!(v, Verdict::TransmitPlain { .. }), "{v:?}");
        let mut expect = eth6(RS1_MAC, INT_MAC);
        expect.extend(outer6(40, 4));
        expect.extend(&f[14..]);
        assert_eq!(out, vec![expect]);

        // 6in6, too big: Packet Too Big 1460 back to the client.
        let big = FrameSpec6::tcp(GW_MAC, EXT_MAC, s6(C6, 40002), s6(V6, 80), TcpControl::SYN)
            .with_payload(&[0u8; 1440])
            .to_vec();
        let (v, out) = feed(&mut lab, plain(&big));
        assert!(
            matches!(
                v,
                Verdict::Reject {
                    reason: DropReason::NeedFrag,
                    ifindex: EXT_IF,
                    ..
                }
            ),
            "{v:?}"
        );
        let ip = Ipv6Packet::new_checked(&out[0][14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (V6, C6));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(V6, C6));
        assert_eq!((icmp.msg_type(), icmp.header_data()), (2, 1460));

        let s = lab.dp.stats();
        assert_eq!(s.services[0].counters.conns, 2);
        assert_eq!(s.services[1].counters.conns, 1);
        assert_eq!(s.services[2].counters.conns, 1);
        assert_eq!(s.dropped[DropReason::NeedFrag], 1);
    }
}
