//! Tests of the io module: pure ones for `VnetHdr` and timeouts, and a privileged one on a
//! veth pair in a throw-away network namespace.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use lvs_proto::Protocol;

use super::filter::tests::{arp_frame, icmp6, ipv4_frame, ipv6_frame, ndp6};
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
            ..FilterSpec::default()
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
            ..FilterSpec::default()
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

// ---- TPACKET_V2 rings (ring.rs) ----

use super::ring::{self, Geometry, RxRing, TxRing};

/// Small slots (4 KiB, 4 per block, 2 blocks: 8 slots): copied frames, full rings and
/// wraparound come quickly.
const SMALL: Geometry = Geometry {
    frame_size: 4096,
    block_size: 16384,
    frames_per_block: 4,
    block_nr: 2,
};

#[test]
fn ring_geometry_holds_a_gso_frame_per_slot() {
    const { assert!(ring::SLOT_NEED >= 76 + MAX_FRAME_LEN) };
    let g = Geometry::for_frames(256, 4096);
    assert_eq!(g.frame_size, 17 * 4096);
    assert_eq!((g.block_size, g.frames_per_block), (1 << 20, 15));
    assert_eq!((g.block_nr, g.frame_nr(), g.bytes()), (18, 270, 18 << 20));
    let one = Geometry::for_frames(1, 4096);
    assert_eq!((one.block_nr, one.frame_nr()), (1, 15));
    assert_eq!(Geometry::for_frames(0, 4096).frame_nr(), 15);
    let big_pages = Geometry::for_frames(16, 65536);
    assert_eq!(big_pages.frame_size, 131072);
    assert_eq!((big_pages.frames_per_block, big_pages.block_nr), (8, 2));
    assert_eq!(SMALL.frame_nr(), 8);
    assert_eq!(ring::TX_FRAMES, 256);

    // RX slots: one frame of the MTU (90 + MTU + a VLAN tag, rounded up to 1 KiB).
    assert_eq!(ring::RX_NET_OFFSET, 90);
    let rx = Geometry::for_mtu(4096, 1500, 4096);
    assert_eq!(
        (rx.frame_size, rx.block_size, rx.frames_per_block),
        (2048, 65536, 32)
    );
    assert_eq!(
        (rx.block_nr, rx.frame_nr(), rx.bytes()),
        (128, 4096, 8 << 20)
    );
    // The largest frame of the MTU fits, whatever the link header (netoff is 90).
    assert!(ring::RX_NET_OFFSET + 1500 + 4 <= rx.frame_size);
    let jumbo = Geometry::for_mtu(16, 9000, 4096);
    assert_eq!((jumbo.frame_size, jumbo.frames_per_block), (9216, 7));
    assert_eq!((jumbo.block_nr, jumbo.frame_nr()), (3, 21));
    assert_eq!(Geometry::for_mtu(0, 1500, 4096).frame_nr(), 32);
    let big_pages = Geometry::for_mtu(16, 1500, 65536);
    assert_eq!((big_pages.block_size, big_pages.frame_nr()), (65536, 32));
    let huge = Geometry::for_mtu(16, u32::MAX, 4096);
    assert!(huge.frame_size >= ring::RX_NET_OFFSET + 65_535);
    assert!(huge.frames_per_block >= 1);
}

/// The next `n` frames from the RX ring (fewer if 5 s pass first).
fn take_ring(rx: &mut RxRing, n: usize) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.len() < n && Instant::now() < deadline {
        while out.len() < n {
            let Some(slot) = rx.next_slot() else { break };
            out.push((slot.vnet, slot.data.to_vec()));
        }
        let mut ready = [false];
        poll_readable(&[rx.as_fd()], Some(Duration::from_millis(50)), &mut ready).expect("poll");
    }
    out
}

/// Every frame the RX ring yields until `quiet` passes without one (bounded: 5 s).
fn collect_ring(rx: &mut RxRing, quiet: Duration) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(slot) = rx.next_slot() {
            out.push((slot.vnet, slot.data.to_vec()));
        }
        let mut ready = [false];
        poll_readable(&[rx.as_fd()], Some(quiet), &mut ready).expect("poll");
        if !ready[0] || Instant::now() > deadline {
            return out;
        }
    }
}

/// A veth pair `va`/`vb` in a fresh namespace.
fn veth_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip("link add va type veth peer name vb");
    ns.ip("link set va up");
    ns.ip("link set vb up");
    ns
}

fn spec() -> Filter {
    Filter::build(&FilterSpec {
        inbound: vec![(Protocol::Tcp, VIP, 80)],
        replies: vec![(Protocol::Tcp, RIP, 8080)],
        arp: false,
        ..FilterSpec::default()
    })
    .expect("filter")
}

fn gso_hdr() -> VnetHdr {
    VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    }
}

#[test]
fn ring_filter_gso_and_batches_on_veth() {
    if !root_or_skip("io::tests::ring_filter_gso_and_batches_on_veth") {
        return;
    }
    let ns = veth_ns("ring");
    ns.run(|| {
        let (va, vb) = (ifindex("va"), ifindex("vb"));
        let filter = spec();
        let (mut rx, mut tx) = ring::open(vb, &filter, 256).expect("open rings");
        assert_eq!((rx.ifindex(), tx.ifindex()), (vb, vb));
        assert_eq!(rx.geometry().frame_nr(), 256);
        assert_eq!(rx.geometry().frame_size, 2048);
        assert_eq!(tx.geometry().frame_nr(), 270);
        let peer = PacketSocket::open(va, &filter).expect("open peer");
        peer.set_buffer_sizes(Some(8 << 20), Some(8 << 20))
            .expect("buffers");
        assert!(!rx.ready());

        // The filter admits exactly what it should.
        let to_vip80 = ipv4_frame(6, CIP, 40000, VIP, 80, 0, 0);
        let to_vip80_opts = ipv4_frame(6, CIP, 40001, VIP, 80, 8, 0);
        let reply = ipv4_frame(6, RIP, 8080, CIP, 40000, 0, 0);
        let frag = ipv4_frame(6, CIP, 0, VIP, 0, 0, 185);
        for f in [
            &to_vip80,
            &ipv4_frame(6, CIP, 40000, VIP, 81, 0, 0),
            &ipv4_frame(17, CIP, 40000, VIP, 80, 0, 0),
            &reply,
            &ipv4_frame(6, RIP, 8081, CIP, 40000, 0, 0),
            &frag,
            &ipv4_frame(6, CIP, 40000, Ipv4Addr::new(203, 0, 113, 99), 80, 0, 0),
            &arp_frame(),
            &to_vip80_opts,
        ] {
            peer.send(&VnetHdr::NONE, f).expect("send");
        }
        let got = collect_ring(&mut rx, Duration::from_millis(300));
        let frames: Vec<&Vec<u8>> = got.iter().map(|(_, f)| f).collect();
        assert_eq!(frames, vec![&to_vip80, &reply, &frag, &to_vip80_opts]);
        assert!(got.iter().all(|(h, _)| !h.gso()));
        assert_eq!(rx.statistics().expect("stats").packets, 4);

        // A GSO super-frame of almost 64 KiB arrives whole, with its vnet header (through
        // the copy path: it is longer than a slot).
        let gso = tcp_frame(CIP, VIP, 80, 60_000, true);
        peer.send(&gso_hdr(), &gso).expect("send gso");
        let got = collect_ring(&mut rx, Duration::from_millis(300));
        assert_eq!(got.len(), 1);
        let (rh, rf) = &got[0];
        assert_eq!(rf, &gso);
        assert!(rh.gso() && rh.csum_partial(), "{rh:?}");
        assert_eq!(rh.gso_type & !VnetHdr::GSO_ECN, VnetHdr::GSO_TCPV4);
        assert_eq!((rh.gso_size, rh.csum_start, rh.csum_offset), (1448, 34, 16));
        assert_eq!(rx.counters().copied, 1);

        // ... and leaves whole through the TX ring with it (veth keeps it one frame).
        let slot = tx.reserve().expect("free slot");
        slot[..rf.len()].copy_from_slice(rf);
        assert!(tx.commit(rf.len(), &rh.for_transmit()));
        assert_eq!(tx.queued(), 1);
        tx.kick().expect("kick");
        let back = collect(&peer, Duration::from_millis(300));
        assert_eq!(back.len(), 1);
        assert_eq!(&back[0].1, rf);
        assert!(
            back[0].0.gso() && back[0].0.csum_partial(),
            "{:?}",
            back[0].0
        );
        assert_eq!(back[0].0.gso_size, 1448);
        // veth takes GSO frames: the bypass stays on.
        assert!(tx.bypass());

        // A batch of 200 frames: all, in order, one kick for the way back.
        let batch: Vec<Vec<u8>> = (0..200u16)
            .map(|i| ipv4_frame(6, CIP, 10_000 + i, VIP, 80, 0, 0))
            .collect();
        for f in &batch {
            peer.send(&VnetHdr::NONE, f).expect("send");
        }
        let got: Vec<Vec<u8>> = collect_ring(&mut rx, Duration::from_millis(300))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(got, batch);
        for f in &got {
            assert!(tx.send(&VnetHdr::NONE, f));
        }
        assert_eq!(tx.queued(), 200);
        tx.kick().expect("kick");
        assert_eq!(tx.queued(), 0);
        let back: Vec<Vec<u8>> = collect(&peer, Duration::from_millis(300))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(back, batch);
        let st = rx.statistics().expect("stats");
        assert_eq!((st.packets, st.drops), (201, 0));
        assert_eq!(rx.counters().frames, 205);
        let c = rx.counters();
        assert_eq!(
            (c.copied, c.copy_lost, c.copy_errors, c.malformed),
            (1, 0, 0, 0)
        );
        assert_eq!(tx.counters().frames, 201);
        assert_eq!((tx.counters().ring_full, tx.counters().too_big), (0, 0));
    });
}

#[test]
fn ring_wraps_around_copies_long_frames_and_counts_full() {
    if !root_or_skip("io::tests::ring_wraps_around_copies_long_frames_and_counts_full") {
        return;
    }
    let ns = veth_ns("ring-small");
    ns.run(|| {
        let (va, vb) = (ifindex("va"), ifindex("vb"));
        let filter = spec();
        let (mut rx, mut tx) = ring::open_with(vb, &filter, SMALL, SMALL).expect("open rings");
        let peer = PacketSocket::open(va, &filter).expect("open peer");
        peer.set_buffer_sizes(Some(8 << 20), Some(8 << 20))
            .expect("buffers");

        // Wraparound: 5 rounds of 6 frames through 8 slots, each round whole and in order.
        for round in 0..5u16 {
            let frames: Vec<Vec<u8>> = (0..6u16)
                .map(|i| ipv4_frame(6, CIP, 20_000 + round * 10 + i, VIP, 80, 0, 0))
                .collect();
            for f in &frames {
                peer.send(&VnetHdr::NONE, f).expect("send");
            }
            let got: Vec<Vec<u8>> = collect_ring(&mut rx, Duration::from_millis(200))
                .into_iter()
                .map(|(_, f)| f)
                .collect();
            assert_eq!(got, frames, "round {round}");
        }
        assert_eq!(rx.counters().frames, 30);

        // A frame longer than a slot arrives whole through the copy path, before the next.
        let big = tcp_frame(CIP, VIP, 80, 5000, true);
        let small = tcp_frame(CIP, VIP, 80, 100, false);
        peer.send(&gso_hdr(), &big).expect("send big");
        peer.send(&VnetHdr::NONE, &small).expect("send small");
        let got = collect_ring(&mut rx, Duration::from_millis(200));
        assert_eq!(got.len(), 2);
        assert_eq!((&got[0].1, &got[1].1), (&big, &small));
        assert!(got[0].0.gso() && !got[1].0.gso());
        assert_eq!((rx.counters().copied, rx.counters().copy_lost), (1, 0));
        assert!(tx.max_frame_len() < big.len());
        assert!(!tx.send(&gso_hdr(), &big));
        assert_eq!(tx.counters().too_big, 1);

        // TX ring full: 8 committed without a kick; a commit into the full ring is dropped
        // and counted ...
        let out: Vec<Vec<u8>> = (0..10u16)
            .map(|i| ipv4_frame(6, RIP, 8080, CIP, 30_000 + i, 0, 0))
            .collect();
        for f in &out[..8] {
            assert!(tx.send(&VnetHdr::NONE, f));
        }
        assert_eq!(tx.queued(), 8);
        assert!(tx.reserve().is_none());
        assert!(tx.pending());
        assert!(!tx.commit(out[8].len(), &VnetHdr::NONE));
        assert_eq!(tx.counters().ring_full, 1);
        // ... while `send` (reserve_or_kick) kicks the full ring first and gets a slot.
        assert!(tx.send(&VnetHdr::NONE, &out[8]));
        assert_eq!(tx.counters().ring_full, 1);
        tx.kick().expect("kick");
        let back: Vec<Vec<u8>> = collect(&peer, Duration::from_millis(300))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(back, out[..9].to_vec());
        // The slots come back once the kernel is done with them (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(2);
        while tx.pending() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!tx.pending());
        assert!(tx.reserve().is_some());
        assert!(tx.send(&VnetHdr::NONE, &out[9]));
        tx.kick().expect("kick");
        let back = collect(&peer, Duration::from_millis(300));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, out[9]);
    });
}

/// A GSO frame to VIP:80 whose length tells it apart (`n` bytes less than ~60 KiB).
fn big_frame(n: usize) -> Vec<u8> {
    tcp_frame(CIP, VIP, 80, 60_000 - n, true)
}

#[test]
fn ring_copy_path_keeps_order_and_wraps_around() {
    if !root_or_skip("io::tests::ring_copy_path_keeps_order_and_wraps_around") {
        return;
    }
    let ns = veth_ns("ring-copy");
    ns.run(|| {
        let (va, vb) = (ifindex("va"), ifindex("vb"));
        let filter = spec();
        // 64 slots of 2 KiB.
        let (mut rx, _tx) = ring::open(vb, &filter, 64).expect("open rings");
        assert_eq!(
            (rx.geometry().frame_nr(), rx.geometry().frame_size),
            (64, 2048)
        );
        let peer = PacketSocket::open(va, &filter).expect("open peer");
        peer.set_buffer_sizes(Some(16 << 20), Some(16 << 20))
            .expect("buffers");

        // small, big, small, big, ...: all whole, in order, each with its own vnet header.
        let sent: Vec<(bool, Vec<u8>)> = (0..40usize)
            .map(|i| {
                if i % 2 == 0 {
                    (false, ipv4_frame(6, CIP, 1_000 + i as u16, VIP, 80, 0, 0))
                } else {
                    (true, big_frame(i))
                }
            })
            .collect();
        for (gso, f) in &sent {
            let h = if *gso { gso_hdr() } else { VnetHdr::NONE };
            peer.send(&h, f).expect("send");
        }
        let got = take_ring(&mut rx, sent.len());
        assert_eq!(got.len(), sent.len());
        for (i, ((gso, f), (h, g))) in sent.iter().zip(&got).enumerate() {
            assert_eq!((f.len(), f), (g.len(), g), "frame {i}");
            assert_eq!(h.gso(), *gso, "frame {i}: {h:?}");
            if *gso {
                assert!(h.csum_partial(), "frame {i}: {h:?}");
                assert_eq!(h.gso_size, 1448, "frame {i}");
            }
        }
        let c = rx.counters();
        assert_eq!(
            (c.frames, c.copied, c.copy_lost, c.copy_errors),
            (40, 20, 0, 0)
        );

        // Wraparound: 100 rounds of 50 small frames and 1 big one through 64 slots
        // (5,100 frames, the ring goes round ~80 times), each round whole and in order.
        let mut total = 0u64;
        for round in 0..100u16 {
            // Rounds told apart by the source port.
            let mut frames: Vec<Vec<u8>> = (0..50u16)
                .map(|i| ipv4_frame(6, CIP, 2_000 + round * 50 + i, VIP, 80, 0, 0))
                .collect();
            frames.insert(usize::from(round % 50), big_frame(usize::from(round)));
            for f in &frames {
                let h = if f.len() > 2048 {
                    gso_hdr()
                } else {
                    VnetHdr::NONE
                };
                peer.send(&h, f).expect("send");
            }
            let got: Vec<Vec<u8>> = take_ring(&mut rx, frames.len())
                .into_iter()
                .map(|(_, f)| f)
                .collect();
            assert!(
                got == frames,
                "round {round}: {} of {} frames",
                got.len(),
                frames.len()
            );
            total += frames.len() as u64;
        }
        let c = rx.counters();
        assert_eq!((c.frames, c.copied), (40 + total, 20 + 100));
        assert_eq!((c.copy_lost, c.copy_errors, c.malformed), (0, 0, 0));
        assert_eq!(rx.statistics().expect("stats").drops, 0);
    });
}

#[test]
fn ring_copy_loss_when_the_receive_buffer_is_full() {
    if !root_or_skip("io::tests::ring_copy_loss_when_the_receive_buffer_is_full") {
        return;
    }
    let ns = veth_ns("ring-rmem");
    ns.run(|| {
        let (va, vb) = (ifindex("va"), ifindex("vb"));
        let filter = spec();
        let (mut rx, _tx) = ring::open(vb, &filter, 64).expect("open rings");
        // The smallest receive buffer: one queued copy fills it.
        let rcvbuf = rx.set_receive_buffer(1).expect("rcvbuf");
        assert!(rcvbuf < 16 << 10, "{rcvbuf}");
        let peer = PacketSocket::open(va, &filter).expect("open peer");
        peer.set_buffer_sizes(Some(16 << 20), Some(16 << 20))
            .expect("buffers");
        let small = ipv4_frame(6, CIP, 3_000, VIP, 80, 0, 0);
        let (b1, b2, b3) = (big_frame(1), big_frame(2), big_frame(3));
        // Nothing is read meanwhile: b1 is copied, b2 and b3 find the buffer full.
        for f in [&b1, &b2, &b3] {
            peer.send(&gso_hdr(), f).expect("send big");
        }
        peer.send(&VnetHdr::NONE, &small).expect("send small");
        let got = take_ring(&mut rx, 2);
        assert_eq!(got.len(), 2);
        assert_eq!((&got[0].1, &got[1].1), (&b1, &small));
        assert!(got[0].0.gso());
        let c = rx.counters();
        assert_eq!(
            (c.frames, c.copied, c.copy_lost, c.copy_errors),
            (2, 1, 2, 0)
        );
        // Nothing more waits in the ring or on the queue.
        assert!(rx.next_slot().is_none());
        assert_eq!(rx.counters().copy_lost, 2);

        // Read, the copy freed the buffer: the next big frame is copied again.
        let b4 = big_frame(4);
        peer.send(&gso_hdr(), &b4).expect("send big");
        let got = take_ring(&mut rx, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b4);
        let c = rx.counters();
        assert_eq!(
            (c.frames, c.copied, c.copy_lost, c.copy_errors),
            (3, 2, 2, 0)
        );
        // The kernel dropped nothing: the lost ones had their (truncated) slots.
        assert_eq!(rx.statistics().expect("stats").drops, 0);
    });
}

#[test]
fn ring_pending_error_is_read_once() {
    if !root_or_skip("io::tests::ring_pending_error_is_read_once") {
        return;
    }
    let ns = veth_ns("ring-down");
    ns.run(|| {
        let vb = ifindex("vb");
        let (rx, _tx) = ring::open(vb, &spec(), 16).expect("open rings");
        let readable = |rx: &RxRing| {
            let mut ready = [false];
            poll_readable(&[rx.as_fd()], Some(Duration::from_millis(50)), &mut ready)
                .expect("poll");
            ready[0]
        };
        assert!(!readable(&rx));
        assert!(rx.take_error().is_none());
        // The interface goes down: poll reports the socket's error with an empty ring,
        // until the error is read; then it blocks again.
        ns.ip("link set vb down");
        assert!(readable(&rx));
        assert!(!rx.ready());
        let err = rx.take_error().expect("pending error");
        assert_eq!(err.raw_os_error(), Some(libc::ENETDOWN), "{err}");
        assert!(!readable(&rx));
    });
}

#[test]
fn ring_never_reads_unfiltered_frames() {
    if !root_or_skip("io::tests::ring_never_reads_unfiltered_frames") {
        return;
    }
    let ns = veth_ns("ring-filter");
    ns.run(|| {
        let (va, vb) = (ifindex("va"), ifindex("vb"));
        let filter = spec();
        let peer = PacketSocket::open(va, &filter).expect("open peer");
        let noise = ipv4_frame(6, CIP, 40000, VIP, 81, 0, 0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            // Frames the filter rejects, sent all the time the rings are opened (bounded).
            s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(5);
                for _ in 0..200_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() > deadline
                    {
                        break;
                    }
                    let _ = peer.send(&VnetHdr::NONE, &noise);
                }
            });
            for _ in 0..20 {
                let (mut rx, _tx) = ring::open(vb, &filter, 16).expect("open rings");
                std::thread::sleep(Duration::from_millis(5));
                assert!(rx.next_slot().is_none(), "an unfiltered frame was read");
                assert_eq!(rx.statistics().expect("stats").packets, 0);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
}

/// A tap device (no offloads unless asked): what the kernel sends on it is read from `fd`.
fn open_tap(name: &str) -> std::fs::File {
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        pad: [u8; 22],
    }
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    let mut req = IfReq {
        name: [0; 16],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads (and may write) one `struct ifreq`, which `req` is laid out
    // as and outlives the call.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
    assert_eq!(ret, 0, "TUNSETIFF: {}", io::Error::last_os_error());
    file
}

#[test]
fn ring_tx_gso_is_segmented_by_the_kernel() {
    if !root_or_skip("io::tests::ring_tx_gso_is_segmented_by_the_kernel") {
        return;
    }
    use std::io::Read as _;
    let ns = Netns::new("ring-tap");
    ns.run(|| {
        let mut tap = open_tap("tap0");
        let out = std::process::Command::new("ip")
            .args(["link", "set", "tap0", "up"])
            .output()
            .expect("ip");
        assert!(out.status.success(), "{out:?}");
        let idx = ifindex("tap0");
        let (_rx, mut tx) = ring::open(idx, &Filter::reject_all(), 16).expect("open rings");
        assert!(tx.bypass());
        let gso = tcp_frame(CIP, VIP, 80, 3000, true);
        assert!(tx.send(&gso_hdr(), &gso));
        tx.kick().expect("kick");
        let mut segments = Vec::new();
        let mut buf = vec![0u8; 70_000];
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut payload = Vec::new();
        while payload.len() < 3000 && Instant::now() < deadline {
            let mut ready = [false];
            poll_readable(&[tap.as_fd()], Some(Duration::from_millis(200)), &mut ready)
                .expect("poll");
            if !ready[0] {
                continue;
            }
            let n = tap.read(&mut buf).expect("read tap");
            let f = &buf[..n];
            // Only our TCP/IPv4 segments to VIP:80.
            if n < 54 || f[12..14] != [8, 0] || f[23] != 6 || f[30..34] != VIP.octets() {
                continue;
            }
            segments.push(f.to_vec());
            payload.extend_from_slice(&f[54..]);
        }
        assert_eq!(
            segments.iter().map(|s| s.len() - 54).collect::<Vec<_>>(),
            vec![1448, 1448, 104]
        );
        assert_eq!(payload, gso[54..].to_vec());
        // The bypass cannot segment: the ring turned it off once and sent through the qdisc.
        assert!(!tx.bypass());
        assert_eq!(tx.counters().bypass_off, 1);
        assert_eq!(tx.counters().kick_errors, 0);
        for s in &segments {
            assert!(s.len() <= 1514);
            // Complete checksums: IPv4 header and TCP (with pseudo-header) fold to 0xffff.
            assert_eq!(fold(csum_add(0, &s[14..34])), 0xffff);
            let tcp = &s[34..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&s[26..34]);
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            assert_eq!(fold(csum_add(csum_add(0, &pseudo), tcp)), 0xffff);
        }
    });
}

#[test]
fn ring_open_fails_on_unknown_interface() {
    if !root_or_skip("io::tests::ring_open_fails_on_unknown_interface") {
        return;
    }
    let ns = Netns::new("ring-enodev");
    ns.run(|| {
        let err = ring::open(4242, &Filter::reject_all(), 16).expect_err("no such ifindex");
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
    });
}

#[test]
fn ring_halves_are_send() {
    fn send<T: Send>() {}
    send::<RxRing>();
    send::<TxRing>();
}

/// The IPv6 part of the socket filter, attached for real (the kernel validates the
/// program) and fed real frames over a veth pair whose own IPv6 stack is off (no DAD,
/// MLD or router solicitations to get in the way).
#[test]
fn packet_socket_filters_ipv6_on_veth() {
    if !root_or_skip("io::tests::packet_socket_filters_ipv6_on_veth") {
        return;
    }
    let ns = Netns::new("io6");
    for key in ["all", "default"] {
        let out = ns.exec(&[
            "sh",
            "-c",
            &format!("echo 1 > /proc/sys/net/ipv6/conf/{key}/disable_ipv6"),
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    ns.ip("link add va type veth peer name vb");
    ns.ip("link set va up");
    ns.ip("link set vb up");
    let vip = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
    let rip = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
    let dip = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
    let cip = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
    let rs_ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11);
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let ports = |s: u16, d: u16| [s.to_be_bytes(), d.to_be_bytes()].concat();
    ns.run(|| {
        let (va, vb) = (ifindex("va"), ifindex("vb"));
        let spec = FilterSpec {
            inbound6: vec![(Protocol::Tcp, vip, 80)],
            replies6: vec![(Protocol::Tcp, rip, 8080)],
            ndp: true,
            ..FilterSpec::default()
        };
        let rx = PacketSocket::open(vb, &Filter::build(&spec).expect("filter")).expect("rx");
        let tx = PacketSocket::open(va, &Filter::reject_all()).expect("tx");

        let to_vip80 = ipv6_frame(&[], 6, cip, vip, 64, &ports(40000, 80));
        let to_vip81 = ipv6_frame(&[], 6, cip, vip, 64, &ports(40000, 81));
        let udp_vip80 = ipv6_frame(&[], 17, cip, vip, 64, &ports(40000, 80));
        let reply = ipv6_frame(&[], 6, rip, cip, 64, &ports(8080, 40000));
        let other_reply = ipv6_frame(&[], 6, rip, cip, 64, &ports(8081, 40000));
        let hbh_vip = ipv6_frame(&[0], 6, cip, vip, 64, &ports(40000, 22));
        let frag_vip = ipv6_frame(&[44], 6, cip, vip, 64, &ports(0, 0));
        let frag_other = ipv6_frame(&[44], 6, cip, dip, 64, &ports(0, 0));
        let error_vip = icmp6(1, dip, vip, 6);
        let error_tunnel = icmp6(2, rip, dip, 41);
        let echo_vip = icmp6(128, cip, vip, 0);
        let na = ndp6(136, rs_ll, all_nodes, 255);
        let na_routed = ndp6(136, rs_ll, all_nodes, 64);
        let ns_sol = ndp6(
            135,
            rs_ll,
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1),
            255,
        );
        let ra = ndp6(134, rs_ll, all_nodes, 255);
        let v4 = ipv4_frame(6, CIP, 40000, VIP, 80, 0, 0);
        let arp = arp_frame();
        let all = [
            &to_vip80,
            &to_vip81,
            &udp_vip80,
            &reply,
            &other_reply,
            &hbh_vip,
            &frag_vip,
            &frag_other,
            &error_vip,
            &error_tunnel,
            &echo_vip,
            &na,
            &na_routed,
            &ns_sol,
            &ra,
            &v4,
            &arp,
        ];
        for f in all {
            tx.send(&VnetHdr::NONE, f).expect("send");
        }
        let got: Vec<Vec<u8>> = collect(&rx, Duration::from_millis(300))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        let want = vec![
            to_vip80.clone(),
            reply.clone(),
            hbh_vip.clone(),
            frag_vip.clone(),
            error_vip.clone(),
            error_tunnel.clone(),
            na.clone(),
            ns_sol.clone(),
        ];
        assert_eq!(got.len(), want.len(), "{got:02x?}");
        assert_eq!(got, want);

        // The IPv4-only program on the same socket: every IPv6 frame rejected, the IPv4
        // one accepted.
        rx.set_filter(
            &Filter::build(&FilterSpec {
                inbound: vec![(Protocol::Tcp, VIP, 80)],
                ..FilterSpec::default()
            })
            .expect("filter"),
        )
        .expect("set_filter");
        for f in all {
            tx.send(&VnetHdr::NONE, f).expect("send");
        }
        let got: Vec<Vec<u8>> = collect(&rx, Duration::from_millis(300))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(got, vec![v4.clone()]);
    });
}
