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
    far.next_hop = RS2;
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
