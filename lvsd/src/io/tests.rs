//! Tests of the io module: pure ones for `VnetHdr` and timeouts, and a privileged one on a
//! veth pair in a throw-away network namespace.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use lvs_proto::Protocol;

use super::filter::tests::{arp_frame, ipv4_frame};
use super::testutil::{Netns, ifindex, root_or_skip};
use super::*;

#[test]
fn vnet_hdr_round_trip_native_endian() {
    let h = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM | VnetHdr::F_DATA_VALID,
        gso_type: VnetHdr::GSO_TCPV4 | VnetHdr::GSO_ECN,
        hdr_len: 66,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    let b = h.to_bytes();
    assert_eq!(b.len(), VnetHdr::LEN);
    assert_eq!(b[0], 3);
    assert_eq!(b[1], 0x81);
    assert_eq!(&b[4..6], &1448u16.to_ne_bytes());
    assert_eq!(VnetHdr::parse(&b), Some(h));
    assert_eq!(VnetHdr::parse(&b[..9]), None);
    assert!(h.csum_partial());
    assert!(h.gso());
    let t = h.for_transmit();
    assert_eq!(t.flags, VnetHdr::F_NEEDS_CSUM);
    assert_eq!(t.gso_type, h.gso_type);
    assert_eq!((t.hdr_len, t.gso_size), (66, 1448));
    assert_eq!((t.csum_start, t.csum_offset), (34, 16));

    let valid_only = VnetHdr {
        flags: VnetHdr::F_DATA_VALID,
        ..VnetHdr::NONE
    };
    assert!(!valid_only.csum_partial());
    assert!(!valid_only.gso());
    assert_eq!(valid_only.for_transmit(), VnetHdr::NONE);
    assert_eq!(VnetHdr::NONE.to_bytes(), [0; 10]);
    // ECN alone is not GSO.
    let ecn = VnetHdr {
        gso_type: VnetHdr::GSO_ECN,
        ..VnetHdr::NONE
    };
    assert!(!ecn.gso());
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PacketSocket>();
    send_sync::<Filter>();
    send_sync::<crate::kernel::Kernel>();
    fn send<T: Send>() {}
    send::<crate::kernel::NftGuard>();
}

#[test]
fn poll_readable_many_fds() {
    use std::os::unix::net::UnixDatagram;
    let pairs: Vec<(UnixDatagram, UnixDatagram)> = (0..20)
        .map(|_| UnixDatagram::pair().expect("pair"))
        .collect();
    pairs[17].0.send(b"x").expect("send");
    let fds: Vec<BorrowedFd<'_>> = pairs.iter().map(|(_, b)| b.as_fd()).collect();
    let mut ready = vec![false; fds.len()];
    let n = poll_readable(&fds, Some(Duration::from_secs(1)), &mut ready).expect("poll");
    assert_eq!(n, 1);
    assert!(ready[17]);
}

#[test]
fn poll_timeouts_round_up() {
    assert_eq!(poll_timeout_ms(None), -1);
    assert_eq!(poll_timeout_ms(Some(Duration::ZERO)), 0);
    assert_eq!(poll_timeout_ms(Some(Duration::from_micros(1))), 1);
    assert_eq!(poll_timeout_ms(Some(Duration::from_millis(5))), 5);
    assert_eq!(poll_timeout_ms(Some(Duration::from_micros(5001))), 6);
    assert_eq!(
        poll_timeout_ms(Some(Duration::from_secs(u64::MAX))),
        i32::MAX
    );
}

#[test]
fn poll_readable_on_plain_fds() {
    use std::os::unix::net::UnixDatagram;
    let (a, b) = UnixDatagram::pair().expect("pair");
    let mut ready = [true; 2];
    let n = poll_readable(
        &[a.as_fd(), b.as_fd()],
        Some(Duration::from_millis(1)),
        &mut ready,
    )
    .expect("poll");
    assert_eq!((n, ready), (0, [false, false]));
    a.send(b"x").expect("send");
    let n = poll_readable(&[a.as_fd(), b.as_fd()], None, &mut ready).expect("poll");
    assert_eq!((n, ready), (1, [false, true]));
    assert!(poll_readable(&[a.as_fd(), b.as_fd()], None, &mut [false; 1]).is_err());
}

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const RIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn csum_add(mut sum: u32, bytes: &[u8]) -> u32 {
    for c in bytes.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A well-formed Ethernet/IPv4/TCP frame with `payload` bytes of payload. With
/// `partial`, the TCP checksum holds only the pseudo-header sum (CHECKSUM_PARTIAL style),
/// otherwise the full checksum.
fn tcp_frame(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: usize, partial: bool) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa, 0x08, 0x00];
    let tcp_len = 20 + payload;
    let total = 20 + tcp_len;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = !fold(csum_add(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend((0..payload).map(|i| (i % 251) as u8));
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    let c = if partial {
        fold(csum_add(0, &pseudo))
    } else {
        !fold(csum_add(csum_add(0, &pseudo), &tcp))
    };
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&tcp);
    f
}

/// Collects every frame that arrives on `sock` until `quiet` passes without one.
fn collect(sock: &PacketSocket, quiet: Duration) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sock.recv(&mut buf).expect("recv") {
            Some((h, n)) => out.push((h, buf[..n].to_vec())),
            None => {
                let ready = wait_readable(&[sock], Some(quiet)).expect("wait");
                if !ready[0] || Instant::now() > deadline {
                    return out;
                }
            }
        }
    }
}

#[test]
fn packet_socket_on_veth() {
    if !root_or_skip("io::tests::packet_socket_on_veth") {
        return;
    }
    let ns = Netns::new("io");
    ns.ip("link add va type veth peer name vb");
    ns.ip("link set va up");
    ns.ip("link set vb up");
    ns.run(|| {
        let (va, vb) = (ifindex("va"), ifindex("vb"));
        let spec = FilterSpec {
            inbound: vec![(Protocol::Tcp, VIP, 80)],
            replies: vec![(Protocol::Tcp, RIP, 8080)],
            arp: false,
        };
        let filter = Filter::build(&spec).expect("filter");
        let rx = PacketSocket::open(vb, &filter).expect("open rx");
        // The sending side has a filter that would match its own frames: with
        // PACKET_IGNORE_OUTGOING it must still see none of them.
        let tx = PacketSocket::open(va, &filter).expect("open tx");
        assert_eq!((rx.ifindex(), tx.ifindex()), (vb, va));
        let (r, s) = rx
            .set_buffer_sizes(Some(4 << 20), Some(1 << 20))
            .expect("buffers");
        assert!(r >= 4 << 20 && s >= 1 << 20, "buffers {r} {s}");

        let to_vip80 = ipv4_frame(6, CIP, 40000, VIP, 80, 0, 0);
        let to_vip80_opts = ipv4_frame(6, CIP, 40001, VIP, 80, 8, 0);
        let to_vip81 = ipv4_frame(6, CIP, 40000, VIP, 81, 0, 0);
        let udp_vip80 = ipv4_frame(17, CIP, 40000, VIP, 80, 0, 0);
        let reply = ipv4_frame(6, RIP, 8080, CIP, 40000, 0, 0);
        let other_reply = ipv4_frame(6, RIP, 8081, CIP, 40000, 0, 0);
        let frag = ipv4_frame(6, CIP, 0, VIP, 0, 0, 185);
        let other_ip = ipv4_frame(6, CIP, 40000, Ipv4Addr::new(203, 0, 113, 99), 80, 0, 0);
        let arp = arp_frame();
        for f in [
            &to_vip80,
            &to_vip81,
            &udp_vip80,
            &reply,
            &other_reply,
            &frag,
            &other_ip,
            &arp,
            &to_vip80_opts,
        ] {
            tx.send(&VnetHdr::NONE, f).expect("send");
        }
        let got = collect(&rx, Duration::from_millis(300));
        let frames: Vec<&Vec<u8>> = got.iter().map(|(_, f)| f).collect();
        assert_eq!(frames, vec![&to_vip80, &reply, &frag, &to_vip80_opts]);
        assert!(got.iter().all(|(h, _)| !h.gso()));
        assert!(
            collect(&tx, Duration::from_millis(50)).is_empty(),
            "saw own frames"
        );
        let st = rx.statistics().expect("stats");
        assert_eq!(st.packets, 4, "{st:?}");
        assert_eq!(st.drops, 0);

        // set_filter: now port 81 and ARP, nothing else.
        let f81 = Filter::build(&FilterSpec {
            inbound: vec![(Protocol::Tcp, VIP, 81)],
            replies: vec![],
            arp: true,
        })
        .expect("filter");
        rx.set_filter(&f81).expect("set_filter");
        for f in [&to_vip80, &to_vip81, &arp] {
            tx.send(&VnetHdr::NONE, f).expect("send");
        }
        let got: Vec<Vec<u8>> = collect(&rx, Duration::from_millis(300))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(got, vec![to_vip81.clone(), arp.clone()]);

        // The other direction: rx can send, tx receives.
        rx.send(&VnetHdr::NONE, &reply).expect("send back");
        let got = collect(&tx, Duration::from_millis(300));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, reply);

        // A frame above the MTU without GSO is refused...
        let big = tcp_frame(CIP, VIP, 80, 3000, false);
        let err = tx.send(&VnetHdr::NONE, &big).expect_err("oversized");
        assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE), "{err}");
        // ... but goes through as a GSO super-frame with a partial checksum, and arrives
        // on the peer still as one GSO frame described by the vnet header.
        let gso = tcp_frame(CIP, VIP, 80, 3000, true);
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        rx.set_filter(&filter).expect("set_filter");
        tx.send(&h, &gso).expect("send gso");
        let got = collect(&rx, Duration::from_millis(300));
        assert_eq!(
            got.len(),
            1,
            "{:?}",
            got.iter().map(|g| g.0).collect::<Vec<_>>()
        );
        let (rh, rf) = &got[0];
        eprintln!("received GSO frame: {} bytes, {rh:?}", rf.len());
        assert_eq!(rf, &gso);
        assert!(rh.gso() && rh.csum_partial(), "{rh:?}");
        assert_eq!(rh.gso_type & !VnetHdr::GSO_ECN, VnetHdr::GSO_TCPV4);
        assert_eq!(rh.gso_size, 1448);
        assert_eq!((rh.csum_start, rh.csum_offset), (34, 16));
        // Forwarding it unchanged with for_transmit() works too.
        rx.send(&rh.for_transmit(), rf).expect("forward gso");
        let back = collect(&tx, Duration::from_millis(300));
        assert_eq!(back.len(), 1);
        assert_eq!(&back[0].1, rf);
        assert!(back[0].0.gso());

        // A too-small buffer reports truncation and the socket stays usable.
        tx.send(&VnetHdr::NONE, &to_vip80).expect("send");
        std::thread::sleep(Duration::from_millis(50));
        let mut small = [0u8; 20];
        let err = rx.recv(&mut small).expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(rx.recv(&mut small).expect("recv").is_none());
    });
}

#[test]
fn open_fails_on_unknown_interface() {
    if !root_or_skip("io::tests::open_fails_on_unknown_interface") {
        return;
    }
    let ns = Netns::new("io-enodev");
    ns.run(|| {
        let err = PacketSocket::open(4242, &Filter::reject_all()).expect_err("no such ifindex");
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
    });
}
