//! Tests of the AF_XDP module: instruction encodings against known `bpf_insn` bytes (pure),
//! and privileged ones on a veth pair between two throw-away namespaces: the program loads
//! and attaches in both modes, matching frames reach the XSK, the XSK transmits, other
//! traffic (ARP, UDP to the host's own address) still reaches the kernel, and dropping the
//! program detaches it.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use super::ebpf::*;
use super::*;
use crate::io::poll_readable;
use crate::io::testutil::{Netns, ifindex, root_or_skip};

#[cfg(target_endian = "little")]
#[test]
fn xdp_insn_encodings_match_the_kernel_format() {
    let b = |i: Insn| i.to_bytes();
    // Encodings as emitted by clang / shown by `llvm-objdump -d` and bpftool.
    assert_eq!(b(mov64_reg(R6, R1)), [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
    assert_eq!(b(mov64_imm(R0, 2)), [0xb7, 0x00, 0, 0, 2, 0, 0, 0]);
    assert_eq!(
        b(add64_imm(R2, -4)),
        [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]
    );
    assert_eq!(b(ldx(W, R2, R1, 0)), [0x61, 0x12, 0, 0, 0, 0, 0, 0]);
    assert_eq!(b(ldx(W, R3, R1, 4)), [0x61, 0x13, 4, 0, 0, 0, 0, 0]);
    assert_eq!(b(ldx(H, R4, R2, 12)), [0x69, 0x24, 12, 0, 0, 0, 0, 0]);
    assert_eq!(b(ldx(B, R4, R2, 23)), [0x71, 0x24, 23, 0, 0, 0, 0, 0]);
    assert_eq!(b(ldx(DW, R0, R1, 8)), [0x79, 0x10, 8, 0, 0, 0, 0, 0]);
    assert_eq!(b(stx(W, R10, R4, -4)), [0x63, 0x4a, 0xfc, 0xff, 0, 0, 0, 0]);
    assert_eq!(b(jmp_reg(JGT, R4, R3, 5)), [0x2d, 0x34, 5, 0, 0, 0, 0, 0]);
    assert_eq!(b(jmp_imm(JNE, R4, 8, 3)), [0x55, 0x04, 3, 0, 8, 0, 0, 0]);
    assert_eq!(b(jmp_imm(JEQ, R0, 0, 1)), [0x15, 0x00, 1, 0, 0, 0, 0, 0]);
    assert_eq!(b(ja(-2)), [0x05, 0x00, 0xfe, 0xff, 0, 0, 0, 0]);
    assert_eq!(b(call(FN_MAP_LOOKUP_ELEM)), [0x85, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(b(call(FN_REDIRECT_MAP)), [0x85, 0, 0, 0, 51, 0, 0, 0]);
    assert_eq!(b(exit()), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    let [lo, hi] = ld_map_fd(R1, 7);
    assert_eq!(b(lo), [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
    assert_eq!(b(hi), [0; 8]);
    // Register nibbles round-trip and are masked to 4 bits.
    assert_eq!(mov64_reg(R10, R5).dst(), R10);
    assert_eq!(Insn::new(0, 0x1f, 0x2e, 0, 0).regs, 0xef);
    assert_eq!(std::mem::size_of::<Insn>(), 8);
}

/// Checks the shape of a program: it starts by saving the context, ends in `exit`, and
/// every conditional jump targets the `pass` tail (`r0 = XDP_PASS; exit`).
fn check_program(p: &[Insn], jumps: usize) {
    assert_eq!(p[0], mov64_reg(R6, R1));
    let n = p.len();
    assert_eq!(p[n - 1], exit());
    let mut seen = 0;
    for (i, insn) in p.iter().enumerate() {
        let class = insn.code & 0x07;
        let op = insn.code & 0xf0;
        if class == JMP && op != CALL && op != EXIT {
            seen += 1;
            let target = i as i64 + 1 + i64::from(insn.off);
            assert_eq!(target, (n - 2) as i64, "jump at {i} does not go to pass");
            assert_eq!(p[n - 2], mov64_imm(R0, XDP_PASS));
        }
        if insn.code == LD | DW | IMM {
            assert_eq!(
                insn.regs >> 4,
                PSEUDO_MAP_FD,
                "ld_imm64 at {i} is not a map fd"
            );
        }
    }
    assert_eq!(seen, jumps);
}

#[test]
fn xdp_redirect_program_shape() {
    let all = redirect_program(3, Match::All);
    check_program(&all, 0);
    // mov, ldx queue, ld_imm64 (2), mov r3, call, exit: no (unreachable) pass tail.
    assert_eq!(all.len(), 7);
    assert!(all.contains(&call(FN_REDIRECT_MAP)));
    assert!(!all.contains(&call(FN_MAP_LOOKUP_ELEM)));
    let filtered = redirect_program(3, Match::Ipv4Dst { map_fd: 4 });
    check_program(&filtered, 3);
    assert!(filtered.contains(&call(FN_MAP_LOOKUP_ELEM)));
    // The EtherType comparison is against 0x0800 as read from the wire.
    #[cfg(target_endian = "little")]
    assert!(filtered.contains(&jmp_imm(JNE, R4, 0x0008, 14)));
    // Both map fds are referenced.
    assert!(filtered.contains(&ld_map_fd(R1, 4)[0]));
    assert!(filtered.contains(&ld_map_fd(R1, 3)[0]));
}

#[test]
fn xdp_config_is_validated() {
    if !root_or_skip("xdp_config_is_validated") {
        return;
    }
    let bad = XskConfig {
        frame_size: 1000,
        ..XskConfig::default()
    };
    let err = XskSocket::open(1, 0, &bad).expect_err("bad frame size");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let bad = XskConfig {
        rx_frames: 100,
        ..XskConfig::default()
    };
    assert!(XskSocket::open(1, 0, &bad).is_err());
}

#[test]
fn xdp_programs_pass_the_verifier() {
    if !root_or_skip("xdp_programs_pass_the_verifier") {
        return;
    }
    let p = XdpProgram::load(Redirect::All, 4).expect("load redirect-all");
    assert!(p.add_ipv4_dst(Ipv4Addr::LOCALHOST).is_err());
    let p = XdpProgram::load(Redirect::Ipv4Dst { max: 16 }, 4).expect("load filtered");
    let vip = Ipv4Addr::new(192, 0, 2, 10);
    assert!(!p.has_ipv4_dst(vip).expect("lookup"));
    p.add_ipv4_dst(vip).expect("add");
    assert!(p.has_ipv4_dst(vip).expect("lookup"));
    p.remove_ipv4_dst(vip).expect("remove");
    p.remove_ipv4_dst(vip).expect("remove twice");
    assert!(!p.has_ipv4_dst(vip).expect("lookup"));
    assert!(p.unregister(0).is_ok());
}

// ---------------------------------------------------------------------------------------
// Privileged: a veth pair `xa` (ns1, 192.0.2.1) — `xb` (ns2, 192.0.2.2).

const A_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn mac_of(ns: &Netns, dev: &str) -> [u8; 6] {
    let out = ns.exec(&["cat", &format!("/sys/class/net/{dev}/address")]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut mac = [0u8; 6];
    for (m, part) in mac.iter_mut().zip(text.trim().split(':')) {
        *m = u8::from_str_radix(part, 16).expect("mac");
    }
    mac
}

fn ip_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/UDP frame (UDP checksum 0 = none).
fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn xdp_attached(ns: &Netns, dev: &str) -> bool {
    let out = ns.exec(&["ip", "-d", "link", "show", "dev", dev]);
    assert!(out.status.success(), "ip link show {dev}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("prog/xdp") || text.contains("xdpgeneric") || text.contains(" xdp ")
}

fn udp_socket(addr: SocketAddrV4) -> UdpSocket {
    let s = UdpSocket::bind(addr).expect("bind udp");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    s
}

fn recv_within(s: &UdpSocket, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// Receives from the XSK until `pred` holds for a frame or `limit` passes.
fn xsk_recv_within(
    xsk: &mut XskSocket,
    limit: Duration,
    pred: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut got = None;
        let ready = {
            let fds = [xsk.as_fd()];
            let mut r = [false];
            poll_readable(&fds, Some(Duration::from_millis(20)), &mut r).expect("poll")
        };
        if ready == 0 {
            continue;
        }
        xsk.recv_batch(64, |f| {
            if got.is_none() && pred(f) {
                got = Some(f.to_vec());
            }
        })
        .expect("recv_batch");
        if got.is_some() {
            return got;
        }
    }
    None
}

fn round_trip(mode: AttachMode) {
    let ns1 = Netns::new("xdp1");
    let ns2 = Netns::new("xdp2");
    ns1.ip(&format!(
        "link add name xa type veth peer name xb netns {}",
        ns2.name
    ));
    ns1.ip(&format!("addr add {A_ADDR}/24 dev xa"));
    ns2.ip(&format!("addr add {B_ADDR}/24 dev xb"));
    ns1.ip("link set xa up");
    ns2.ip("link set xb up");
    let a_mac = mac_of(&ns1, "xa");
    let b_mac = mac_of(&ns2, "xb");
    // The VIP is on-link for ns1 and resolves to xb without ARP (the VIP is not xb's).
    ns1.ip(&format!(
        "neigh replace {VIP} lladdr {} dev xa nud permanent",
        b_mac.map(|x| format!("{x:02x}")).join(":")
    ));
    assert!(!xdp_attached(&ns2, "xb"));

    ns2.run(|| {
        let b_idx = ifindex("xb");
        let mut prog = XdpProgram::load(Redirect::Ipv4Dst { max: 8 }, 1).expect("load");
        prog.add_ipv4_dst(VIP).expect("add vip");
        let mut xsk = XskSocket::open(b_idx, 0, &XskConfig::default()).expect("xsk open");
        prog.register(0, &xsk).expect("register");
        prog.attach(b_idx, mode).expect("attach");
        assert_eq!(prog.attached(), Some((b_idx, mode)));
        assert!(
            xdp_attached(&ns2, "xb"),
            "ip link shows no xdp after attach"
        );
        // Only one program per interface and mode.
        assert!(prog.attach(b_idx, mode).is_err());

        // 1. Not for the VIP: UDP to b's own address (after ARP, which must pass too).
        let sink = udp_socket(SocketAddrV4::new(B_ADDR, 4000));
        ns1.run(|| {
            let s = UdpSocket::bind(SocketAddrV4::new(A_ADDR, 0)).expect("bind");
            for _ in 0..3 {
                let _ = s.send_to(b"to-kernel", SocketAddrV4::new(B_ADDR, 4000));
                std::thread::sleep(Duration::from_millis(30));
            }
        });
        let got = recv_within(&sink, Duration::from_secs(2));
        assert_eq!(
            got.as_deref(),
            Some(&b"to-kernel"[..]),
            "XDP_PASS traffic lost"
        );

        // 2. For the VIP: the XSK gets it, the kernel does not.
        let vip_sock = udp_socket(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4001));
        ns1.run(|| {
            let s = UdpSocket::bind(SocketAddrV4::new(A_ADDR, 5555)).expect("bind");
            s.send_to(b"to-xsk", SocketAddrV4::new(VIP, 4001))
                .expect("send");
        });
        let frame = xsk_recv_within(&mut xsk, Duration::from_secs(2), |f| {
            f.len() >= 34 && f[30..34] == VIP.octets()
        })
        .expect("frame to the VIP did not reach the XSK");
        assert_eq!(&frame[0..6], &b_mac);
        assert_eq!(&frame[6..12], &a_mac);
        assert!(frame.ends_with(b"to-xsk"));
        assert!(recv_within(&vip_sock, Duration::from_millis(200)).is_none());

        // 3. Transmit from the XSK: a UDP datagram to a's address arrives in ns1.
        let reply = udp_frame(
            a_mac,
            b_mac,
            SocketAddrV4::new(B_ADDR, 4002),
            SocketAddrV4::new(A_ADDR, 6000),
            b"from-xsk",
        );
        let got = ns1.run(|| {
            let s = udp_socket(SocketAddrV4::new(A_ADDR, 6000));
            std::thread::scope(|sc| {
                let h = sc.spawn(|| recv_within(&s, Duration::from_secs(2)));
                std::thread::sleep(Duration::from_millis(50));
                assert!(xsk.send(&reply).expect("send"));
                xsk.flush().expect("flush");
                h.join().expect("join")
            })
        });
        assert_eq!(got.as_deref(), Some(&b"from-xsk"[..]));
        let deadline = Instant::now() + Duration::from_secs(1);
        while xsk.counters().tx_completed < 1 && Instant::now() < deadline {
            xsk.reap_completions();
            std::thread::sleep(Duration::from_millis(5));
        }
        let c = xsk.counters();
        assert_eq!((c.tx, c.tx_completed, c.bad_descs), (1, 1, 0));
        assert!(c.rx >= 1);
        let st = xsk.statistics().expect("stats");
        assert_eq!(st.rx_invalid_descs + st.tx_invalid_descs, 0);

        // 4. Removing the VIP sends its traffic to the kernel again.
        prog.remove_ipv4_dst(VIP).expect("remove");
        ns1.run(|| {
            let s = UdpSocket::bind(SocketAddrV4::new(A_ADDR, 0)).expect("bind");
            s.send_to(b"again", SocketAddrV4::new(VIP, 4001))
                .expect("send");
        });
        // Not for b's addresses and no forwarding: the kernel drops it, the XSK must not
        // see it.
        assert!(
            xsk_recv_within(&mut xsk, Duration::from_millis(300), |f| f
                .ends_with(b"again"))
            .is_none()
        );

        drop(prog);
        assert!(!xdp_attached(&ns2, "xb"), "xdp still attached after drop");
        drop(xsk);
    });
}

#[test]
fn xdp_xsk_round_trip_generic() {
    if !root_or_skip("xdp_xsk_round_trip_generic") {
        return;
    }
    round_trip(AttachMode::Generic);
}

#[test]
fn xdp_xsk_round_trip_native() {
    if !root_or_skip("xdp_xsk_round_trip_native") {
        return;
    }
    round_trip(AttachMode::Native);
}

#[test]
fn xdp_zero_copy_is_refused_on_veth() {
    if !root_or_skip("xdp_zero_copy_is_refused_on_veth") {
        return;
    }
    let ns = Netns::new("xdpzc");
    ns.ip("link add name xa type veth peer name xb");
    ns.ip("link set xa up");
    ns.ip("link set xb up");
    ns.run(|| {
        let cfg = XskConfig {
            zero_copy: true,
            ..XskConfig::default()
        };
        let err = XskSocket::open(ifindex("xa"), 0, &cfg).expect_err("zero-copy on veth");
        assert!(
            matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)),
            "{err}"
        );
        // Copy mode, TX only, with no program at all: binding works.
        let cfg = XskConfig {
            rx_frames: 0,
            ..XskConfig::default()
        };
        let x = XskSocket::open(ifindex("xa"), 0, &cfg).expect("tx-only copy mode");
        assert_eq!(x.bound_to().1, 0);
    });
}

#[test]
fn xdp_port_drop_detaches() {
    if !root_or_skip("xdp_port_drop_detaches") {
        return;
    }
    let ns = Netns::new("xdpport");
    ns.ip("link add name xa type veth peer name xb");
    ns.ip("link set xa up");
    ns.ip("link set xb up");
    for mode in [AttachMode::Generic, AttachMode::Native] {
        let port = ns.run(|| {
            XskPort::open(
                ifindex("xb"),
                0,
                Redirect::Ipv4Dst { max: 4 },
                mode,
                &XskConfig::default(),
            )
            .expect("open port")
        });
        port.program().add_ipv4_dst(VIP).expect("add");
        assert_eq!(port.program().attached().map(|a| a.1), Some(mode));
        assert!(xdp_attached(&ns, "xb"), "{mode:?}: not attached");
        drop(port);
        assert!(
            !xdp_attached(&ns, "xb"),
            "{mode:?}: still attached after drop"
        );
    }
}
