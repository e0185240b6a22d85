//! Golden fixtures for ICMP (`icmp.rs`): input frame → expected verdict and output frame,
//! run in order against one [`Dataplane`], no sockets, no clock.
//!
//! Expected frames are built from scratch by [`icmp_frame`] (plain RFC 1071 sums, not the
//! core's incremental updates), so the core's translation is checked independently; one
//! case also carries literal bytes.
//!
//! Lab: the services of `fixtures.rs` (S1 TCP VIP:80 → RS1:80 NAT, S2 TCP VIP:443 →
//! RS2:8443 NAT, S3 TCP VIP_DR:80 → RS3 DR, S4 UDP VIP:53 → RS1:1053 NAT, ...) plus
//! T1 TCP 203.0.113.50:80 → RS3:80 TUN; a router 192.0.2.254 on the real servers' side.

use std::net::{Ipv4Addr, SocketAddrV4};

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use super::fixtures::lab_config;
use super::tests::*;
use super::*;
use crate::wire::build::FrameSpec;
use crate::wire::checksum;
use crate::wire::tcp::TcpControl;

const VIP_TUN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);
/// A router on the client's path.
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);

fn icmp_config() -> DataplaneConfig {
    let mut cfg = lab_config();
    cfg.services.push(service(
        Protocol::Tcp,
        VIP_TUN,
        80,
        SchedulerKind::Rr,
        vec![dest(RS3, 80, 1, Forwarding::Tun)],
    ));
    cfg
}

/// An IPv4 header (checksum from scratch) for `payload_len` bytes of payload.
fn ip_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    frag: u16,
    options: &[u8],
    payload_len: usize,
) -> Vec<u8> {
    let hl = 20 + options.len();
    let total = u16::try_from(hl + payload_len).unwrap();
    let mut h = vec![0x40 | (hl / 4) as u8, 0];
    h.extend(total.to_be_bytes());
    h.extend([0x0b, 0xad]);
    h.extend(frag.to_be_bytes());
    h.extend([61, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    h.extend(options);
    let c = !checksum::data(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// Ethernet + IPv4 + ICMP `typ`/`code` with the 4 `rest` bytes and `body` (the quote), all
/// checksums computed from scratch.
#[allow(clippy::too_many_arguments)]
fn icmp_frame(
    macs: (MacAddr, MacAddr),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
    options: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![typ, code, 0, 0];
    icmp.extend(rest);
    icmp.extend(body);
    let c = !checksum::data(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = macs.1.to_vec();
    f.extend(macs.0);
    f.extend([0x08, 0x00]);
    f.extend(ip_header(src, dst, 1, 0, options, icmp.len()));
    f.extend(icmp);
    f
}

/// The first `20 + n` bytes of the IPv4 packet in `frame` (what an error quotes).
fn quote(frame: &[u8], n: usize) -> Vec<u8> {
    frame[14..14 + 20 + n].to_vec()
}

/// Sets the quoted header's address at `at` (12 src, 16 dst) and the port at `port_at`
/// (20 sport, 22 dport); recomputes the quoted header checksum, leaves the L4 checksum.
fn requote(mut q: Vec<u8>, at: usize, addr: Ipv4Addr, port_at: usize, port: u16) -> Vec<u8> {
    q[at..at + 4].copy_from_slice(&addr.octets());
    q[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    q[10..12].fill(0);
    let c = !checksum::data(&q[..20]);
    q[10..12].copy_from_slice(&c.to_be_bytes());
    q
}

/// RS1 192.0.2.11 tells the client 198.51.100.1 that UDP port 1053 is unreachable, quoting
/// the datagram the director forwarded (198.51.100.1:5000 → 192.0.2.11:1053, "query").
pub(super) fn port_unreachable_from_rs1() -> Vec<u8> {
    let fwd = FrameSpec::udp(INT_MAC, RS1_MAC, client(1, 5000), sa(RS1, 1053), b"query").to_vec();
    icmp_frame(
        (RS1_MAC, INT_MAC),
        RS1,
        client(1, 5000).ip().to_owned(),
        3,
        3,
        [0; 4],
        &quote(&fwd, 13),
        &[],
    )
}

/// A SYN-ACK as sent from `from` (the VIP side) to `to`, as a real server or lvsd sends it.
fn reply_packet(from: SocketAddrV4, to: SocketAddrV4) -> Vec<u8> {
    FrameSpec::tcp(EXT_MAC, GW_MAC, from, to, TcpControl::SYN | TcpControl::ACK).to_vec()
}

/// An error from the client-side router about `quoted` (an IPv4 packet), to `dst`.
fn from_router(dst: Ipv4Addr, typ: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    icmp_frame((GW_MAC, EXT_MAC), ROUTER, dst, typ, code, rest, quoted, &[])
}

const MTU_1400: [u8; 4] = [0, 0, 0x05, 0x78];

/// A router on the real servers' network.
const BACK_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const BACK_ROUTER_MAC: MacAddr = [2, 0, 0, 0, 0, 0xfe];

/// An error from the router behind the director, to `dst`.
fn from_back_router(dst: Ipv4Addr, typ: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    icmp_frame(
        (BACK_ROUTER_MAC, INT_MAC),
        BACK_ROUTER,
        dst,
        typ,
        code,
        rest,
        quoted,
        &[],
    )
}

/// An IPIP packet `dip → rip` (DF, as the core copies it) around `inner`, as quoted.
fn ipip_quote(dip: Ipv4Addr, rip: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
    let mut q = ip_header(dip, rip, 4, 0x4000, &[], inner.len());
    q.extend(inner);
    q
}

/// `f` (an [`icmp_frame`]) as the core originates errors: TOS 0xc0, id `ident`, TTL 64.
fn core_error(mut f: Vec<u8>, ident: u16) -> Vec<u8> {
    f[15] = 0xc0;
    f[18..20].copy_from_slice(&ident.to_be_bytes());
    f[22] = 64;
    f[24..26].fill(0);
    let c = !checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

struct Case {
    desc: &'static str,
    ifindex: u32,
    input: Vec<u8>,
    verdict: Verdict,
    out: Option<Vec<u8>>,
}

fn case(desc: &'static str, ifindex: u32, input: Vec<u8>, verdict: Verdict) -> Case {
    Case {
        desc,
        ifindex,
        input,
        verdict,
        out: None,
    }
}

fn cases() -> Vec<Case> {
    use DropReason as R;
    let syn = TcpControl::SYN;
    let c1 = client(1, 5000);
    let c2 = client(2, 41000);
    let c3 = client(3, 42000);
    let c4 = client(4, 43000);
    let mut v = Vec::new();
    for (ip, mac) in [(RS1, RS1_MAC), (RS2, RS2_MAC), (RS3, RS3_MAC)] {
        v.push(case("ARP", INT_IF, arp_reply(ip, mac), Verdict::Pass));
    }
    // Connections: UDP c1 → VIP:53 (RS1:1053), TCP c2 → VIP:443 (RS2:8443),
    // TCP c3 → VIP_DR:80 (RS3), TCP c4 → VIP_TUN:80 (RS3, TUN).
    let udp = FrameSpec::udp(GW_MAC, EXT_MAC, c1, sa(VIP, 53), b"query").to_vec();
    v.push(case(
        "UDP to VIP:53",
        EXT_IF,
        udp.clone(),
        tx(INT_IF, udp.len()),
    ));
    v.push(case(
        "SYN to VIP:443",
        EXT_IF,
        tcp_in(c2, sa(VIP, 443), syn),
        tx(INT_IF, tcp_in(c2, sa(VIP, 443), syn).len()),
    ));
    v.push(case(
        "SYN to VIP_DR:80",
        EXT_IF,
        tcp_in(c3, sa(VIP_DR, 80), syn),
        tx(INT_IF, tcp_in(c3, sa(VIP_DR, 80), syn).len()),
    ));
    let tun_syn = tcp_in(c4, sa(VIP_TUN, 80), syn);
    v.push(case(
        "SYN to VIP_TUN:80",
        EXT_IF,
        tun_syn.clone(),
        Verdict::TransmitPlain {
            ifindex: INT_IF,
            len: tun_syn.len() + 20,
        },
    ));

    // --- Outbound (NAT): RS1's port unreachable → the client, from the VIP. ---
    let input = port_unreachable_from_rs1();
    let fwd_quote = quote(
        &FrameSpec::udp(INT_MAC, RS1_MAC, c1, sa(RS1, 1053), b"query").to_vec(),
        13,
    );
    let expect = icmp_frame(
        (EXT_MAC, GW_MAC),
        VIP,
        *c1.ip(),
        3,
        3,
        [0; 4],
        &requote(fwd_quote, 16, VIP, 22, 53),
        &[],
    );
    v.push(Case {
        desc: "NAT outbound: RS1 port unreachable → client from VIP, quote RS1:1053 → VIP:53",
        ifindex: INT_IF,
        verdict: tx(EXT_IF, expect.len()),
        input,
        out: Some(expect),
    });

    // --- Inbound NAT: frag needed about VIP:443 → c2 → RS2, quote RS2:8443 → c2. ---
    let q = quote(&reply_packet(sa(VIP, 443), c2), 8);
    let input = from_router(VIP, 3, 4, MTU_1400, &q);
    // The outer header keeps everything but the destination (same id, TTL, TOS).
    let expect = icmp_frame(
        (INT_MAC, RS2_MAC),
        ROUTER,
        RS2,
        3,
        4,
        MTU_1400,
        &requote(q.clone(), 12, RS2, 20, 8443),
        &[],
    );
    v.push(Case {
        desc: "NAT inbound: frag needed to VIP → RS2, quote RS2:8443 → client",
        ifindex: EXT_IF,
        verdict: tx(INT_IF, expect.len()),
        input,
        out: Some(expect),
    });
    // The same with IP options on the outer header: kept, offsets follow IHL.
    let opts = [1, 1, 1, 0];
    let input = icmp_frame((GW_MAC, EXT_MAC), ROUTER, VIP, 3, 4, MTU_1400, &q, &opts);
    let expect = icmp_frame(
        (INT_MAC, RS2_MAC),
        ROUTER,
        RS2,
        3,
        4,
        MTU_1400,
        &requote(q.clone(), 12, RS2, 20, 8443),
        &opts,
    );
    v.push(Case {
        desc: "NAT inbound with outer IP options",
        ifindex: EXT_IF,
        verdict: tx(INT_IF, expect.len()),
        input,
        out: Some(expect),
    });

    // --- Inbound DR: time exceeded about VIP_DR:80 → c3: MACs only. ---
    let q = quote(&reply_packet(sa(VIP_DR, 80), c3), 8);
    let input = from_router(VIP_DR, 11, 0, [0; 4], &q);
    let mut expect = input.clone();
    expect[..6].copy_from_slice(&RS3_MAC);
    expect[6..12].copy_from_slice(&INT_MAC);
    v.push(Case {
        desc: "DR inbound: time exceeded to VIP_DR → RS3, MACs only",
        ifindex: EXT_IF,
        verdict: tx(INT_IF, expect.len()),
        input,
        out: Some(expect),
    });
    // Source quench is relayed too (IPVS does).
    let input = from_router(VIP_DR, 4, 0, [0; 4], &q);
    let mut expect = input.clone();
    expect[..6].copy_from_slice(&RS3_MAC);
    expect[6..12].copy_from_slice(&INT_MAC);
    v.push(Case {
        desc: "DR inbound: source quench → RS3",
        ifindex: EXT_IF,
        verdict: tx(INT_IF, expect.len()),
        input,
        out: Some(expect),
    });

    // --- Inbound TUN: frag needed about VIP_TUN:80 → c4, in IPIP to RS3. ---
    let q = quote(&reply_packet(sa(VIP_TUN, 80), c4), 8);
    let input = from_router(VIP_TUN, 3, 4, MTU_1400, &q);
    let mut expect = RS3_MAC.to_vec();
    expect.extend(INT_MAC);
    expect.extend([0x08, 0x00]);
    let inner = &input[14..];
    // Outer: TOS of the inner (0), no DF, TTL 64, IPIP, DIP → RS3; id = the tunnel's
    // counter (the SYN above took 1).
    let mut outer = vec![0x45, 0];
    outer.extend(u16::try_from(inner.len() + 20).unwrap().to_be_bytes());
    outer.extend([0, 2, 0, 0, 64, 4, 0, 0]);
    outer.extend(DIP.octets());
    outer.extend(RS3.octets());
    let c = !checksum::data(&outer);
    outer[10..12].copy_from_slice(&c.to_be_bytes());
    expect.extend(outer);
    expect.extend(inner);
    v.push(Case {
        desc: "TUN inbound: frag needed to VIP_TUN → IPIP to RS3, error unchanged inside",
        ifindex: EXT_IF,
        verdict: Verdict::TransmitPlain {
            ifindex: INT_IF,
            len: expect.len(),
        },
        input,
        out: Some(expect),
    });

    // --- Errors from a router behind the director about a TUN packet (to the DIP). ---
    let tun_syn_ip = tun_syn[14..].to_vec();
    let relay_cases = [
        (
            "TUN relay: frag needed (1400) about the IPIP packet → client, 3/4 MTU 1380",
            3,
            4,
            MTU_1400,
            [0, 0, 0x05, 0x64],
        ),
        (
            "TUN relay: frag needed without an MTU → the egress MTU less 20 (1480)",
            3,
            4,
            [0; 4],
            [0, 0, 0x05, 0xc8],
        ),
        (
            "TUN relay: time exceeded → client, 11/0",
            11,
            0,
            [0; 4],
            [0; 4],
        ),
    ];
    for (i, (desc, typ, code, rest, relayed)) in relay_cases.into_iter().enumerate() {
        let input = from_back_router(DIP, typ, code, rest, &ipip_quote(DIP, RS3, &tun_syn_ip));
        let ident = 3 + u16::try_from(i).unwrap();
        let expect = core_error(
            icmp_frame(
                (EXT_MAC, GW_MAC),
                VIP_TUN,
                *c4.ip(),
                typ,
                code,
                relayed,
                &tun_syn_ip,
                &[],
            ),
            ident,
        );
        v.push(Case {
            desc,
            ifindex: INT_IF,
            verdict: Verdict::TransmitPlain {
                ifindex: EXT_IF,
                len: expect.len(),
            },
            input,
            out: Some(expect),
        });
    }
    let mut no_df = tun_syn_ip.clone();
    no_df[6] = 0;
    no_df[10..12].fill(0);
    let c = !checksum::data(&no_df[..20]);
    no_df[10..12].copy_from_slice(&c.to_be_bytes());
    v.push(case(
        "TUN relay: frag needed about a client packet without DF: not relayed",
        INT_IF,
        from_back_router(DIP, 3, 4, MTU_1400, &ipip_quote(DIP, RS3, &no_df)),
        Verdict::Drop(R::IcmpNotRelayed),
    ));
    v.push(case(
        "TUN relay: IPIP to an address that is no TUN real server: the kernel's",
        INT_IF,
        from_back_router(DIP, 3, 4, MTU_1400, &ipip_quote(DIP, RS1, &tun_syn_ip)),
        Verdict::Pass,
    ));
    v.push(case(
        "TUN relay: IPIP to RS3 about a flow with no connection",
        INT_IF,
        from_back_router(
            DIP,
            3,
            4,
            MTU_1400,
            &ipip_quote(
                DIP,
                RS3,
                &tcp_in(client(4, 1), sa(VIP_TUN, 80), TcpControl::ACK)[14..],
            ),
        ),
        Verdict::Drop(R::IcmpNoConnection),
    ));
    v.push(case(
        "TUN relay: IPIP to RS3 about the DR connection (another forwarding method)",
        INT_IF,
        from_back_router(
            DIP,
            3,
            4,
            MTU_1400,
            &ipip_quote(DIP, RS3, &tcp_in(c3, sa(VIP_DR, 80), syn)[14..]),
        ),
        Verdict::Drop(R::IcmpNoConnection),
    ));
    v.push(case(
        "TUN relay: IPIP quote whose inner packet is cut short",
        INT_IF,
        from_back_router(
            DIP,
            3,
            4,
            MTU_1400,
            &ipip_quote(DIP, RS3, &tun_syn_ip[..24]),
        ),
        Verdict::Drop(R::IcmpMalformed),
    ));
    v.push(case(
        "echo request to the DIP",
        INT_IF,
        from_back_router(DIP, 8, 0, [0, 1, 0, 1], b"ping"),
        Verdict::Pass,
    ));

    // --- Left to the kernel. ---
    let echo = from_router(VIP, 8, 0, [0, 1, 0, 1], b"ping");
    v.push(case("echo request to a VIP", EXT_IF, echo, Verdict::Pass));
    let q = quote(&reply_packet(sa(VIP, 443), c2), 8);
    v.push(case(
        "parameter problem to a VIP (IPVS relays only 3, 4, 11)",
        EXT_IF,
        from_router(VIP, 12, 0, [20, 0, 0, 0], &q),
        Verdict::Pass,
    ));
    v.push(case(
        "echo request from RS1 to a client (routed by the kernel)",
        INT_IF,
        icmp_frame((RS1_MAC, INT_MAC), RS1, *c1.ip(), 8, 0, [0; 4], b"x", &[]),
        Verdict::Pass,
    ));
    let hc = quote(
        &FrameSpec::udp(INT_MAC, RS1_MAC, sa(DIP, 33000), sa(RS1, 1053), b"hc").to_vec(),
        8,
    );
    v.push(case(
        "port unreachable from RS1 to the DIP (a health check's answer)",
        INT_IF,
        icmp_frame((RS1_MAC, INT_MAC), RS1, DIP, 3, 3, [0; 4], &hc, &[]),
        Verdict::Pass,
    ));
    v.push(case(
        "port unreachable from a DR real server's address: the kernel's",
        INT_IF,
        icmp_frame(
            (RS3_MAC, INT_MAC),
            RS3,
            *c3.ip(),
            3,
            3,
            [0; 4],
            &quote(&tcp_in(c3, sa(RS3, 80), syn), 8),
            &[],
        ),
        Verdict::Pass,
    ));
    v.push(case(
        "unreachable between strangers",
        EXT_IF,
        from_router(Ipv4Addr::new(198, 51, 100, 9), 3, 1, [0; 4], &q),
        Verdict::Pass,
    ));

    // --- Bad input and unrelated errors (to a VIP / from a RIP). ---
    let good = from_router(VIP, 3, 4, MTU_1400, &q);
    let mut bad_icmp = good.clone();
    bad_icmp[36] ^= 0xff;
    v.push(case(
        "ICMP checksum wrong",
        EXT_IF,
        bad_icmp,
        Verdict::Drop(R::BadChecksum),
    ));
    let mut bad_ip = good.clone();
    bad_ip[24] ^= 0xff;
    v.push(case(
        "outer IPv4 checksum wrong",
        EXT_IF,
        bad_ip,
        Verdict::Drop(R::BadChecksum),
    ));
    v.push(case(
        "ICMP header cut short (4 bytes)",
        EXT_IF,
        {
            let mut f = GW_MAC.to_vec();
            f[..6].copy_from_slice(&EXT_MAC);
            f.extend(GW_MAC);
            f.extend([0x08, 0x00]);
            f.extend(ip_header(ROUTER, VIP, 1, 0, &[], 4));
            f.extend([3, 4, 0xfc, 0xfb]);
            f
        },
        Verdict::Drop(R::Truncated),
    ));
    v.push(case(
        "quote with 4 bytes of L4 (< 8)",
        EXT_IF,
        from_router(VIP, 3, 4, MTU_1400, &q[..24]),
        Verdict::Drop(R::IcmpMalformed),
    ));
    v.push(case(
        "quote shorter than an IPv4 header",
        EXT_IF,
        from_router(VIP, 3, 1, [0; 4], &q[..12]),
        Verdict::Drop(R::IcmpMalformed),
    ));
    let mut ihl_big = q.clone();
    ihl_big[0] = 0x4f;
    v.push(case(
        "quote IHL 15 > what is quoted",
        EXT_IF,
        from_router(VIP, 3, 1, [0; 4], &ihl_big),
        Verdict::Drop(R::IcmpMalformed),
    ));
    let mut ihl_small = q.clone();
    ihl_small[0] = 0x43;
    v.push(case(
        "quote IHL 3",
        EXT_IF,
        from_router(VIP, 3, 1, [0; 4], &ihl_small),
        Verdict::Drop(R::IcmpMalformed),
    ));
    let about_icmp = {
        let mut b = ip_header(VIP, *c2.ip(), 1, 0, &[], 8);
        b.extend([3, 3, 0, 0, 0, 0, 0, 0]);
        b
    };
    v.push(case(
        "an error about an ICMP error",
        EXT_IF,
        from_router(VIP, 3, 1, [0; 4], &about_icmp),
        Verdict::Drop(R::IcmpUnsupported),
    ));
    let about_gre = {
        let mut b = ip_header(VIP, *c2.ip(), 47, 0, &[], 8);
        b.extend([0; 8]);
        b
    };
    v.push(case(
        "an error about an unknown protocol (GRE)",
        EXT_IF,
        from_router(VIP, 3, 1, [0; 4], &about_gre),
        Verdict::Drop(R::IcmpUnsupported),
    ));
    let later_frag = {
        let mut b = ip_header(VIP, *c2.ip(), 6, 0x00b9, &[], 8);
        b.extend([0x01, 0xbb, 0xa0, 0x28, 0, 0, 0, 0]);
        b
    };
    v.push(case(
        "an error quoting a non-first fragment",
        EXT_IF,
        from_router(VIP, 3, 4, MTU_1400, &later_frag),
        Verdict::Drop(R::IcmpUnsupported),
    ));
    v.push(case(
        "an error about a flow with no connection (other client port)",
        EXT_IF,
        from_router(
            VIP,
            3,
            4,
            MTU_1400,
            &quote(&reply_packet(sa(VIP, 443), client(2, 1)), 8),
        ),
        Verdict::Drop(R::IcmpNoConnection),
    ));
    v.push(case(
        "port unreachable from RS1 about no connection",
        INT_IF,
        icmp_frame(
            (RS1_MAC, INT_MAC),
            RS1,
            *c1.ip(),
            3,
            3,
            [0; 4],
            &quote(
                &FrameSpec::udp(INT_MAC, RS1_MAC, client(1, 9), sa(RS1, 1053), b"q").to_vec(),
                8,
            ),
            &[],
        ),
        Verdict::Drop(R::IcmpNoConnection),
    ));
    let mut frag = good.clone();
    frag[20] = 0x20; // MF: a first fragment of an error
    frag[24..26].fill(0);
    let c = !checksum::data(&frag[14..34]);
    frag[24..26].copy_from_slice(&c.to_be_bytes());
    v.push(case(
        "a fragmented ICMP error to a VIP",
        EXT_IF,
        frag,
        Verdict::Drop(R::Fragment),
    ));
    v
}

fn tx(ifindex: u32, len: usize) -> Verdict {
    Verdict::Transmit { ifindex, len }
}

fn out_of(lab: &mut Lab, v: Verdict) -> Vec<u8> {
    match v {
        Verdict::Transmit { len, .. } | Verdict::TransmitPlain { len, .. } => {
            lab.out[..len].to_vec()
        }
        _ => Vec::new(),
    }
}

#[test]
fn icmp_golden_fixtures() {
    let cases = cases();
    let mut lab = Lab::new(icmp_config());
    let mut conns_before_errors = None;
    for (i, c) in cases.iter().enumerate() {
        if c.desc.starts_with("NAT outbound") {
            conns_before_errors = Some((lab.dp.conn_count(), lab.dp.stats()));
        }
        let rx = RxFrame {
            ifindex: c.ifindex,
            data: &c.input,
            csum_partial: false,
            gso: false,
            gso_size: 0,
        };
        let v = lab.dp.process(lab.now, rx, &mut lab.out);
        assert_eq!(v, c.verdict, "case {i}: {}", c.desc);
        let out = out_of(&mut lab, v);
        if let Some(expect) = &c.out {
            assert_eq!(hex_of(&out), hex_of(expect), "case {i}: {}", c.desc);
        }
        assert!(lab.dp.next_frame(&mut lab.out).is_none());
        assert_invariant(&lab.dp.stats());
    }
    let s = lab.dp.stats();
    let (conns, before) = conns_before_errors.expect("NAT outbound case");
    // ICMP errors never create connections.
    assert_eq!(lab.dp.conn_count(), conns);
    let count =
        |f: &dyn Fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count() as u64;
    assert_eq!(s.received, cases.len() as u64);
    assert_eq!(s.passed, count(&|v| *v == Verdict::Pass));
    for reason in DropReason::ALL {
        assert_eq!(
            s.dropped[reason],
            count(&|v| *v == Verdict::Drop(reason)),
            "{reason}"
        );
    }
    // The outbound error counts as an outgoing packet of S4 (UDP VIP:53) and RS1:1053.
    let svc = |s: &Stats, vip: Ipv4Addr, port: u16, p: Protocol| {
        s.services
            .iter()
            .find(|x| (x.vip, x.port, x.protocol) == (std::net::IpAddr::V4(vip), port, p))
            .map(|x| x.counters)
            .unwrap()
    };
    let (b4, a4) = (
        svc(&before, VIP, 53, Protocol::Udp),
        svc(&s, VIP, 53, Protocol::Udp),
    );
    assert_eq!((a4.outpkts - b4.outpkts, a4.inpkts - b4.inpkts), (1, 0));
    assert_eq!(a4.conns, b4.conns);
    // Inbound errors count as incoming packets: S2 got the frag-needed twice, S3 the time
    // exceeded and the source quench.
    let (b2, a2) = (
        svc(&before, VIP, 443, Protocol::Tcp),
        svc(&s, VIP, 443, Protocol::Tcp),
    );
    assert_eq!((a2.inpkts - b2.inpkts, a2.outpkts - b2.outpkts), (2, 0));
    let (b3, a3) = (
        svc(&before, VIP_DR, 80, Protocol::Tcp),
        svc(&s, VIP_DR, 80, Protocol::Tcp),
    );
    assert_eq!(a3.inpkts - b3.inpkts, 2);
}

/// One literal case: RS1's port unreachable translated. The expected bytes were computed
/// outside this crate (a separate RFC 1071 script building the packets field by field).
#[test]
fn outbound_port_unreachable_literal() {
    let mut lab = Lab::resolved(lab_config());
    let udp = FrameSpec::udp(GW_MAC, EXT_MAC, client(1, 5000), sa(VIP, 53), b"query").to_vec();
    assert!(matches!(lab.rx(EXT_IF, &udp).0, Verdict::Transmit { .. }));
    let (v, out) = lab.rx(INT_IF, &port_unreachable_from_rs1());
    assert_eq!(
        v,
        Verdict::Transmit {
            ifindex: EXT_IF,
            len: out.len()
        }
    );
    assert_eq!(
        hex_of(&out),
        concat!(
            // Ethernet: to the client's router from the outside interface.
            "0200000000c1",
            "020000000101",
            "0800",
            // Outer IPv4: id 0x0bad, TTL 61, ICMP, VIP → client, header checksum 0x0bd4.
            "4500003d0bad00003d01",
            "0bd4",
            "cb00710a",
            "c6336401",
            // ICMP 3/3 (port unreachable), checksum 0xed43 over the translated message.
            "0303",
            "ed43",
            "00000000",
            // Quote: client:5000 → VIP:53 as the client sent it; quoted header checksum
            // 0xd48c; the UDP checksum 0xac06 is RS1's view (RIP:1053), left as IPVS does.
            "45000021000040004011",
            "d48c",
            "c6336401",
            "cb00710a",
            "1388",
            "0035",
            "000d",
            "ac06",
            "7175657279",
        )
    );
}

/// Relayed tunnel errors share the core's ICMP budget (burst 50): the 51st at the same
/// instant is dropped and counted; a millisecond later one more goes.
#[test]
fn tunnel_relay_is_rate_limited() {
    let mut lab = Lab::resolved(icmp_config());
    let syn = tcp_in(client(4, 43000), sa(VIP_TUN, 80), TcpControl::SYN);
    assert!(matches!(
        lab.rx(EXT_IF, &syn).0,
        Verdict::TransmitPlain { .. }
    ));
    let err = from_back_router(DIP, 3, 4, MTU_1400, &ipip_quote(DIP, RS3, &syn[14..]));
    let mut sent = 0;
    for _ in 0..60 {
        match lab.rx(INT_IF, &err).0 {
            Verdict::TransmitPlain { ifindex, .. } => {
                assert_eq!(ifindex, EXT_IF);
                sent += 1;
            }
            v => assert_eq!(v, Verdict::Drop(DropReason::IcmpRateLimited)),
        }
    }
    assert_eq!(sent, crate::dataplane::tunnel::ICMP_BURST);
    assert_eq!(lab.dp.stats().dropped[DropReason::IcmpRateLimited], 10);
    lab.now += std::time::Duration::from_millis(1);
    assert!(matches!(
        lab.rx(INT_IF, &err).0,
        Verdict::TransmitPlain { .. }
    ));
}

/// Every prefix and every single-byte corruption of every case's frame, fed after the
/// connections exist: never a panic, the accounting identity always holds.
#[test]
fn icmp_truncations_and_garbage_never_panic() {
    let cases = cases();
    let mut lab = Lab::new(icmp_config());
    for c in &cases {
        let _ = lab.rx(c.ifindex, &c.input);
    }
    for c in &cases {
        for n in 0..c.input.len() {
            let _ = lab.rx(c.ifindex, &c.input[..n]);
        }
        for at in 14..c.input.len() {
            let mut f = c.input.clone();
            f[at] ^= 0x5a;
            let _ = lab.rx(c.ifindex, &f);
        }
    }
    assert_invariant(&lab.dp.stats());
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
