//! Golden packet fixtures (Katran style): a table of rows — description, input frame,
//! expected verdict, expected output bytes — run in order against one [`Dataplane`], with
//! no sockets and no clock.
//!
//! The core cases carry literal expected bytes (computed independently of this crate). The
//! others build the expected frame with [`FrameSpec`], which computes every checksum from
//! scratch, so the incremental updates of the core are still checked independently; every
//! transmitted frame is also checked with [`checksums_valid`].
//!
//! Lab (see `tests.rs`): services
//! - S1 TCP 203.0.113.10:80 → RS1 192.0.2.11:80, NAT
//! - S2 TCP 203.0.113.10:443 → RS2 192.0.2.12:8443, NAT (port translation)
//! - S3 TCP 203.0.113.20:80 → RS3 192.0.2.13:80, DR
//! - S4 UDP 203.0.113.10:53 → RS1 192.0.2.11:1053, NAT
//! - S5 TCP 203.0.113.30:80 → RS2:80 with weight 0 only
//! - S6 TCP 203.0.113.40:80 → RS4 192.0.2.14:80, whose MAC never resolves

use lvs_proto::{Forwarding, Protocol, SchedulerKind};

use super::tests::*;
use super::*;
use crate::wire::build::{FrameSpec, checksums_valid, l4_checksum_offset};
use crate::wire::tcp::TcpControl;

pub(super) fn lab_config() -> DataplaneConfig {
    use Forwarding::{Dr, Nat};
    use Protocol::{Tcp, Udp};
    let rr = SchedulerKind::Rr;
    config(vec![
        service(Tcp, VIP, 80, rr, vec![dest(RS1, 80, 1, Nat)]),
        service(Tcp, VIP, 443, rr, vec![dest(RS2, 8443, 1, Nat)]),
        service(Tcp, VIP_DR, 80, rr, vec![dest(RS3, 80, 1, Dr)]),
        service(Udp, VIP, 53, rr, vec![dest(RS1, 1053, 1, Nat)]),
        service(Tcp, VIP_ZERO, 80, rr, vec![dest(RS2, 80, 0, Nat)]),
        service(Tcp, VIP_UNRES, 80, rr, vec![dest(RS4, 80, 1, Nat)]),
    ])
}

/// What a row expects in the output buffer.
enum Out {
    /// Nothing (not a Transmit).
    Nothing,
    /// Exactly these bytes, with complete checksums.
    Bytes(Vec<u8>),
    /// Exactly these bytes, whose L4 field is a partial sum; finishing it as the device
    /// would must give a valid checksum.
    Partial(Vec<u8>, Protocol),
}

struct Row {
    desc: &'static str,
    ifindex: u32,
    input: Vec<u8>,
    csum_partial: bool,
    gso: bool,
    verdict: Verdict,
    out: Out,
}

fn row(desc: &'static str, ifindex: u32, input: Vec<u8>, verdict: Verdict, out: Out) -> Row {
    Row {
        desc,
        ifindex,
        input,
        csum_partial: false,
        gso: false,
        verdict,
        out,
    }
}

fn drop(desc: &'static str, input: Vec<u8>, reason: DropReason) -> Row {
    row(desc, EXT_IF, input, Verdict::Drop(reason), Out::Nothing)
}

fn pass(desc: &'static str, ifindex: u32, input: Vec<u8>) -> Row {
    row(desc, ifindex, input, Verdict::Pass, Out::Nothing)
}

fn tx(ifindex: u32, len: usize) -> Verdict {
    Verdict::Transmit { ifindex, len }
}

/// Edits the IPv4 header of a frame and recomputes the header checksum.
fn ip_edit(mut f: Vec<u8>, edit: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    edit(&mut ip);
    ip.fill_checksum();
    f
}

/// Inserts 4 bytes of IP options (NOP NOP NOP EOL) into a frame.
fn with_ip_options(f: &[u8]) -> Vec<u8> {
    let mut v = f[..34].to_vec();
    v.extend([1, 1, 1, 0]);
    v.extend(&f[34..]);
    let total = u16::try_from(v.len() - 14).unwrap();
    ip_edit(v, |ip| {
        ip.set_version_and_header_len(24);
        ip.set_total_len(total);
    })
}

fn zero_l4_checksum(mut f: Vec<u8>) -> Vec<u8> {
    let at = l4_checksum_offset(&f).unwrap();
    f[at..at + 2].fill(0);
    f
}

fn partial(mut f: Vec<u8>) -> Vec<u8> {
    make_partial(&mut f);
    f
}

fn rows() -> Vec<Row> {
    use DropReason as R;
    let syn = TcpControl::SYN;
    let vip80 = sa(VIP, 80);
    let mut rows = vec![
        pass(
            "ARP reply from RS1 is learned",
            INT_IF,
            arp_reply(RS1, RS1_MAC),
        ),
        pass(
            "ARP reply from RS2 is learned",
            INT_IF,
            arp_reply(RS2, RS2_MAC),
        ),
        pass(
            "ARP reply from RS3 is learned",
            INT_IF,
            arp_reply(RS3, RS3_MAC),
        ),
    ];

    // --- Core cases, literal bytes. ---
    rows.push(row(
        "NAT inbound SYN: dst VIP:80 -> RS1:80, MACs to RS1 from the inside interface",
        EXT_IF,
        hex(concat!(
            "0200000001010200000000c10800",
            "4500002c123440004006c258c6336401cb00710a",
            "9c40005001020304000000006002faf0965f0000020405b4",
        )),
        tx(INT_IF, 58),
        Out::Bytes(hex(concat!(
            "0200000000110200000002020800",
            "4500002c1234400040063c58c6336401c000020b",
            "9c40005001020304000000006002faf0105f0000020405b4",
        ))),
    ));
    rows.push(row(
        "NAT reply SYN-ACK: src RS1:80 -> VIP:80, back to the client's router",
        INT_IF,
        hex(concat!(
            "0200000002020200000000110800",
            "4500002c0000400040064e8cc000020bc6336401",
            "00509c40a0b0c0d0010203056012faf0aecc0000020405b4",
        )),
        tx(EXT_IF, 58),
        Out::Bytes(hex(concat!(
            "0200000000c10200000001010800",
            "4500002c000040004006d48ccb00710ac6336401",
            "00509c40a0b0c0d0010203056012faf034cd0000020405b4",
        ))),
    ));
    rows.push(row(
        "NAT with port translation: VIP:443 -> RS2:8443",
        EXT_IF,
        hex(concat!(
            "0200000001010200000000c10800",
            "4500002c123440004006c257c6336402cb00710a",
            "9c4101bb00000007000000006002faf098f10000020405b4",
        )),
        tx(INT_IF, 58),
        Out::Bytes(hex(concat!(
            "0200000000120200000002020800",
            "4500002c1234400040063c56c6336402c000020c",
            "9c4120fb00000007000000006002faf0f3af0000020405b4",
        ))),
    ));
    rows.push(row(
        "DR inbound: only the MACs change",
        EXT_IF,
        hex(concat!(
            "0200000001010200000000c10800",
            "4500002c123440004006c24cc6336403cb007114",
            "9c42005000000009000000006002faf09a4e0000020405b4",
        )),
        tx(INT_IF, 58),
        Out::Bytes(hex(concat!(
            "0200000000130200000002020800",
            "4500002c123440004006c24cc6336403cb007114",
            "9c42005000000009000000006002faf09a4e0000020405b4",
        ))),
    ));
    rows.push(row(
        "UDP NAT inbound: VIP:53 -> RS1:1053",
        EXT_IF,
        hex(concat!(
            "0200000001010200000000c10800",
            "45000021123440004011c255c6336404cb00710a",
            "14e90035000d348b7175657279",
        )),
        tx(INT_IF, 47),
        Out::Bytes(hex(concat!(
            "0200000000110200000002020800",
            "450000211234400040113c55c6336404c000020b",
            "14e9041d000daaa27175657279",
        ))),
    ));
    rows.push(row(
        "UDP NAT reply: RS1:1053 -> VIP:53",
        INT_IF,
        hex(concat!(
            "0200000002020200000000110800",
            "450000234321400040110b66c000020bc6336404",
            "041d14e9000f9f2e616e7377657221",
        )),
        tx(EXT_IF, 49),
        Out::Bytes(hex(concat!(
            "0200000000c10200000001010800",
            "450000234321400040119166cb00710ac6336404",
            "003514e9000f2917616e7377657221",
        ))),
    ));

    // --- Built expectations. ---
    let c5 = client(5, 5353);
    rows.push(row(
        "UDP zero checksum stays zero through NAT",
        EXT_IF,
        zero_l4_checksum(FrameSpec::udp(GW_MAC, EXT_MAC, c5, sa(VIP, 53), b"zero").to_vec()),
        tx(INT_IF, 14 + 20 + 8 + 4),
        Out::Bytes(zero_l4_checksum(
            FrameSpec::udp(INT_MAC, RS1_MAC, c5, sa(RS1, 1053), b"zero").to_vec(),
        )),
    ));
    let c6 = client(6, 40010);
    let data = b"partial checksum payload";
    rows.push(Row {
        csum_partial: true,
        ..row(
            "CHECKSUM_PARTIAL TCP inbound: only the address enters the partial sum",
            EXT_IF,
            partial(
                FrameSpec::tcp(GW_MAC, EXT_MAC, c6, vip80, syn)
                    .with_payload(data)
                    .to_vec(),
            ),
            tx(INT_IF, 14 + 40 + data.len()),
            Out::Partial(
                partial(
                    FrameSpec::tcp(INT_MAC, RS1_MAC, c6, sa(RS1, 80), syn)
                        .with_payload(data)
                        .to_vec(),
                ),
                Protocol::Tcp,
            ),
        )
    });
    let c4 = client(4, 5353);
    rows.push(Row {
        csum_partial: true,
        ..row(
            "CHECKSUM_PARTIAL UDP reply: src rewritten, partial sum follows the address",
            INT_IF,
            partial(FrameSpec::udp(RS1_MAC, INT_MAC, sa(RS1, 1053), c4, b"offloaded").to_vec()),
            tx(EXT_IF, 14 + 28 + 9),
            Out::Partial(
                partial(FrameSpec::udp(EXT_MAC, GW_MAC, sa(VIP, 53), c4, b"offloaded").to_vec()),
                Protocol::Udp,
            ),
        )
    });
    let c7 = client(7, 1000);
    rows.push(row(
        "IP options are kept and skipped",
        EXT_IF,
        with_ip_options(&tcp_in(c7, vip80, syn)),
        tx(INT_IF, 14 + 24 + 20),
        Out::Bytes(with_ip_options(
            &FrameSpec::tcp(INT_MAC, RS1_MAC, c7, sa(RS1, 80), syn).to_vec(),
        )),
    ));
    rows.push(row(
        "IP options on a NAT reply: kept, the source rewritten at the IHL offset",
        INT_IF,
        with_ip_options(&tcp_reply(
            sa(RS1, 80),
            RS1_MAC,
            c7,
            TcpControl::SYN | TcpControl::ACK,
        )),
        tx(EXT_IF, 14 + 24 + 20),
        Out::Bytes(with_ip_options(
            &FrameSpec::tcp(
                EXT_MAC,
                GW_MAC,
                vip80,
                c7,
                TcpControl::SYN | TcpControl::ACK,
            )
            .to_vec(),
        )),
    ));
    let c8 = client(8, 1000);
    let mut padded = FrameSpec::udp(GW_MAC, EXT_MAC, c8, sa(VIP, 53), b"x").to_vec();
    padded.resize(60, 0);
    rows.push(row(
        "Ethernet padding is not forwarded",
        EXT_IF,
        padded,
        tx(INT_IF, 14 + 29),
        Out::Bytes(FrameSpec::udp(INT_MAC, RS1_MAC, c8, sa(RS1, 1053), b"x").to_vec()),
    ));
    let big = vec![0xa5; 1461];
    let c9 = client(9, 1000);
    rows.push(drop(
        "IP packet of MTU + 1 without GSO",
        FrameSpec::tcp(GW_MAC, EXT_MAC, c9, vip80, syn)
            .with_payload(&big)
            .to_vec(),
        R::TooBig,
    ));
    rows.push(Row {
        gso: true,
        ..row(
            "the same as a GSO frame is forwarded",
            EXT_IF,
            FrameSpec::tcp(GW_MAC, EXT_MAC, c9, vip80, syn)
                .with_payload(&big)
                .to_vec(),
            tx(INT_IF, 14 + 40 + 1461),
            Out::Bytes(
                FrameSpec::tcp(INT_MAC, RS1_MAC, c9, sa(RS1, 80), syn)
                    .with_payload(&big)
                    .to_vec(),
            ),
        )
    });

    // --- Not ours. ---
    rows.push(pass(
        "TCP to a non-VIP address",
        EXT_IF,
        tcp_in(client(1, 1), sa(Ipv4Addr::new(203, 0, 113, 99), 80), syn),
    ));
    rows.push(pass(
        "TCP to a VIP on a port without a service",
        EXT_IF,
        tcp_in(client(1, 1), sa(VIP, 8080), syn),
    ));
    rows.push(pass(
        "ICMP to a VIP",
        EXT_IF,
        ip_edit(
            FrameSpec::udp(GW_MAC, EXT_MAC, client(1, 1), sa(VIP, 53), b"ping").to_vec(),
            |ip| {
                ip.set_protocol(IpProtocol(1));
            },
        ),
    ));
    let mut v6 = tcp_in(client(1, 1), vip80, syn);
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    // An IPv4 packet behind the IPv6 EtherType: its version nibble says 4.
    rows.push(drop("IPv6 EtherType, IPv4 header", v6, R::BadIpHeader));
    let mut vlan = tcp_in(client(1, 1), vip80, syn);
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    rows.push(pass("802.1Q tagged frame", EXT_IF, vlan));
    rows.push(pass(
        "TCP from RS1:80 to the director itself (a health-check reply)",
        INT_IF,
        tcp_reply(
            sa(RS1, 80),
            RS1_MAC,
            sa(DIP, 33000),
            TcpControl::SYN | TcpControl::ACK,
        ),
    ));
    rows.push(pass(
        "UDP from RS1 on a port that is no NAT destination",
        INT_IF,
        FrameSpec::udp(RS1_MAC, INT_MAC, sa(RS1, 9999), client(1, 1), b"x").to_vec(),
    ));
    rows.push(pass(
        "ARP from an untracked host",
        INT_IF,
        arp_reply(Ipv4Addr::new(192, 0, 2, 99), [2, 0, 0, 0, 0, 0x99]),
    ));

    // --- Malformed. ---
    let good = tcp_in(client(1, 2000), vip80, syn);
    rows.push(drop(
        "Ethernet header cut at 10 bytes",
        good[..10].to_vec(),
        R::Truncated,
    ));
    rows.push(drop(
        "IPv4 header cut at 12 bytes",
        good[..14 + 12].to_vec(),
        R::Truncated,
    ));
    rows.push(drop(
        "TCP header of 10 bytes",
        ip_edit(good[..14 + 30].to_vec(), |ip| ip.set_total_len(30)),
        R::Truncated,
    ));
    let mut ihl4 = good.clone();
    ihl4[14] = 0x44;
    rows.push(drop("IHL 4", ihl4, R::BadIpHeader));
    let mut v5 = good.clone();
    v5[14] = 0x55;
    rows.push(drop("IP version 5", v5, R::BadIpHeader));
    rows.push(drop(
        "total length 40 > 36 captured",
        good[..14 + 36].to_vec(),
        R::BadIpHeader,
    ));
    rows.push(drop(
        "total length 19 < header",
        ip_edit(good.clone(), |ip| ip.set_total_len(19)),
        R::BadIpHeader,
    ));
    let mut bad_ck = good.clone();
    bad_ck[24] ^= 0xff;
    rows.push(drop("IPv4 header checksum wrong", bad_ck, R::BadChecksum));
    let mut doff4 = good.clone();
    doff4[34 + 12] = 0x40;
    rows.push(drop("TCP data offset 4", doff4, R::BadL4Header));
    let mut doff15 = good.clone();
    doff15[34 + 12] = 0xf0;
    rows.push(drop(
        "TCP data offset past the packet",
        doff15,
        R::BadL4Header,
    ));
    let udp = FrameSpec::udp(GW_MAC, EXT_MAC, client(1, 2000), sa(VIP, 53), b"abcd").to_vec();
    let mut ulen7 = udp.clone();
    ulen7[34 + 5] = 7;
    rows.push(drop("UDP length 7", ulen7, R::BadL4Header));
    let mut ulen_big = udp.clone();
    ulen_big[34 + 5] = 13;
    rows.push(drop("UDP length past the packet", ulen_big, R::BadL4Header));
    rows.push(drop(
        "UDP header of 6 bytes",
        ip_edit(udp[..14 + 26].to_vec(), |ip| ip.set_total_len(26)),
        R::Truncated,
    ));

    // --- Fragments. ---
    rows.push(drop(
        "first fragment to VIP:80",
        ip_edit(good.clone(), |ip| ip.set_flags_and_offset(false, true, 0)),
        R::Fragment,
    ));
    rows.push(drop(
        "non-first fragment to a VIP",
        ip_edit(good.clone(), |ip| {
            ip.set_flags_and_offset(false, false, 1480)
        }),
        R::Fragment,
    ));
    rows.push(pass(
        "non-first fragment from a NAT real server: the kernel's (no ports to match)",
        INT_IF,
        ip_edit(
            tcp_reply(sa(RS1, 80), RS1_MAC, client(1, 1), TcpControl::ACK),
            |ip| ip.set_flags_and_offset(false, false, 1480),
        ),
    ));
    rows.push(pass(
        "first fragment to a VIP port without a service",
        EXT_IF,
        ip_edit(tcp_in(client(1, 1), sa(VIP, 8080), syn), |ip| {
            ip.set_flags_and_offset(false, true, 0)
        }),
    ));

    // --- Policy drops. ---
    rows.push(drop(
        "ACK without a connection",
        tcp_in(client(1, 3000), vip80, TcpControl::ACK),
        R::NoConnection,
    ));
    rows.push(row(
        "reply from RS1:80 without a connection",
        INT_IF,
        tcp_reply(
            sa(RS1, 80),
            RS1_MAC,
            client(1, 3000),
            TcpControl::SYN | TcpControl::ACK,
        ),
        Verdict::Drop(R::NoConnection),
        Out::Nothing,
    ));
    rows.push(drop(
        "next hop RS4 unresolved",
        tcp_in(client(1, 3001), sa(VIP_UNRES, 80), syn),
        R::NeighbourUnresolved,
    ));
    rows.push(drop(
        "service whose only real server has weight 0",
        tcp_in(client(1, 3002), sa(VIP_ZERO, 80), syn),
        R::NoDestination,
    ));
    rows
}

#[test]
fn golden_fixtures() {
    let rows = rows();
    let mut lab = Lab::new(lab_config());
    for (i, r) in rows.iter().enumerate() {
        let rx = RxFrame {
            ifindex: r.ifindex,
            data: &r.input,
            csum_partial: r.csum_partial,
            gso: r.gso,
            gso_size: 0,
        };
        let (verdict, out) = lab.rx_frame(rx);
        assert_eq!(verdict, r.verdict, "row {i}: {}", r.desc);
        match &r.out {
            Out::Nothing => assert!(out.is_empty(), "row {i}: {}", r.desc),
            Out::Bytes(expect) => {
                assert_eq!(hexdump(&out), hexdump(expect), "row {i}: {}", r.desc);
                assert!(checksums_valid(&out), "row {i}: {}", r.desc);
            }
            Out::Partial(expect, protocol) => {
                assert_eq!(hexdump(&out), hexdump(expect), "row {i}: {}", r.desc);
                let mut finished = out.clone();
                device_finish(&mut finished, *protocol);
                assert!(checksums_valid(&finished), "row {i}: {}", r.desc);
            }
        }
    }
    // Every row is counted exactly once, under its verdict.
    let s = lab.dp.stats();
    assert_invariant(&s);
    assert_eq!(s.received, rows.len() as u64);
    let count = |f: &dyn Fn(&Verdict) -> bool| rows.iter().filter(|r| f(&r.verdict)).count() as u64;
    assert_eq!(
        s.forwarded,
        count(&|v| matches!(v, Verdict::Transmit { .. }))
    );
    assert_eq!(s.passed, count(&|v| *v == Verdict::Pass));
    for reason in DropReason::ALL {
        assert_eq!(
            s.dropped[reason],
            count(&|v| *v == Verdict::Drop(reason)),
            "{reason}"
        );
    }
    assert_eq!(s.unresolved_neighbours, 1, "RS4");
    // S1: connections from the NAT SYN, partial, options and MTU rows (the TooBig SYN
    // made its connection and was counted in, as IPVS counts before transmit); the GSO
    // retransmission reused it.
    let s1 = &s.services[0];
    assert_eq!(
        (s1.counters.conns, s1.counters.inpkts, s1.counters.outpkts),
        (4, 5, 2)
    );
    // The SYN-ACK (44 bytes with its MSS option) and the reply with 4 bytes of IP options
    // (20 + 4 + 20).
    assert_eq!(s1.counters.outbytes, 44 + 44);
    assert_eq!(s1.dests[0].neighbour_mac, Some(RS1_MAC));
    // S6 made a connection even though its next hop is unresolved.
    assert_eq!(s.services[5].counters.conns, 1);
    assert_eq!(s.services[4].counters.conns, 0);
}

fn hexdump(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
