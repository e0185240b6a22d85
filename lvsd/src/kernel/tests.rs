//! Privileged tests of the kernel module, each in its own throw-away network namespace(s).
//! Without root they print a loud SKIP line and pass.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use lvs_proto::Protocol;

use super::*;
use crate::io::testutil::{Netns, drop_cap_net_admin_in_this_thread, ifindex, root_or_skip};

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const RIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);

fn nft(ns: &Netns, args: &[&str]) -> String {
    let mut argv = vec!["nft"];
    argv.extend_from_slice(args);
    let out = ns.exec(&argv);
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ruleset(ns: &Netns) -> String {
    nft(ns, &["list", "ruleset"])
}

fn spec_ext(dev: &str) -> GuardSpec {
    GuardSpec {
        devices: vec![GuardDevice {
            name: dev.to_string(),
            drop_dst: vec![(Protocol::Tcp, VIP, 80), (Protocol::Udp, VIP, 53)],
            drop_src: vec![(Protocol::Tcp, RIP, 8080)],
            accept_local: vec![],
        }],
    }
}

#[test]
fn links_addresses_and_routes() {
    if !root_or_skip("kernel::tests::links_addresses_and_routes") {
        return;
    }
    let ns = Netns::new("k-links");
    ns.ip("link add va type veth peer name vb");
    ns.ip("link set va address 02:00:00:00:00:0a mtu 1400 up");
    ns.ip("link add d0 type veth peer name d0p");
    ns.ip("link set d0 up");
    ns.ip("link set d0p up");
    ns.run(|| {
        let k = Kernel::connect().expect("connect");
        let (va, vb, d0) = (ifindex("va"), ifindex("vb"), ifindex("d0"));
        let links = k.interfaces().expect("interfaces");
        let by = |i: u32| links.iter().find(|l| l.ifindex == i).expect("link").clone();
        let lo = by(1);
        assert_eq!(lo.name, "lo");
        assert!(lo.up && lo.running);
        assert_eq!(lo.ipv4, vec![(Ipv4Addr::LOCALHOST, 8)]);
        let l = by(va);
        assert_eq!(l.name, "va");
        assert_eq!(l.mac, [2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(l.mtu, 1400);
        assert!(l.up && !l.running, "peer is down, so no carrier: {l:?}");
        assert!(!by(vb).up);
        assert!(by(d0).up && by(d0).running);

        // Addresses.
        assert_eq!(
            k.has_address(Ipv4Addr::new(192, 0, 2, 1)).expect("has"),
            None
        );
        k.add_address(d0, Ipv4Addr::new(192, 0, 2, 1), 24)
            .expect("add");
        k.add_address(d0, VIP, 32).expect("add vip");
        assert_eq!(k.has_address(VIP).expect("has"), Some(d0));
        let l = k
            .interfaces()
            .expect("interfaces")
            .into_iter()
            .find(|l| l.ifindex == d0)
            .expect("d0");
        assert_eq!(l.ipv4, vec![(Ipv4Addr::new(192, 0, 2, 1), 24), (VIP, 32)]);
        let err = k.add_address(d0, VIP, 32).expect_err("exists");
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert!(
            err.to_string()
                .starts_with("adding 203.0.113.10/32 to d0: File exists"),
            "{err}"
        );
        let err = k.add_address(4242, VIP, 32).expect_err("no such link");
        assert!(err.to_string().contains("to ifindex 4242"), "{err}");
        let err = k.add_address(d0, VIP, 33).expect_err("bad prefix");
        assert!(matches!(err, KernelError::Invalid { .. }), "{err}");

        // Routes: on-link, via a gateway, local, unreachable.
        let r = k.route_to(Ipv4Addr::new(192, 0, 2, 5)).expect("route");
        assert_eq!(
            r,
            RouteInfo {
                ifindex: d0,
                gateway: None,
                prefsrc: Some(Ipv4Addr::new(192, 0, 2, 1)),
                local: false
            }
        );
        ns.ip("route add 198.51.100.0/24 via 192.0.2.254");
        let r = k.route_to(Ipv4Addr::new(198, 51, 100, 7)).expect("route");
        assert_eq!(r.ifindex, d0);
        assert_eq!(r.gateway, Some(Ipv4Addr::new(192, 0, 2, 254)));
        let r = k.route_to(VIP).expect("route");
        assert!(r.local, "{r:?}");
        let err = k
            .route_to(Ipv4Addr::new(233, 252, 0, 1))
            .expect_err("unreachable");
        assert!(
            err.to_string()
                .starts_with("looking up the route to 233.252.0.1: "),
            "{err}"
        );
        eprintln!("unreachable route error: {err}");

        k.del_address(d0, VIP, 32).expect("del");
        assert_eq!(k.has_address(VIP).expect("has"), None);
        let err = k.del_address(d0, VIP, 32).expect_err("gone");
        assert_eq!(err.errno(), Some(libc::EADDRNOTAVAIL), "{err}");
        assert!(
            err.to_string()
                .starts_with("removing 203.0.113.10/32 from d0: "),
            "{err}"
        );
    });
}

#[test]
fn without_cap_net_admin_errors_say_so() {
    if !root_or_skip("kernel::tests::without_cap_net_admin_errors_say_so") {
        return;
    }
    let ns = Netns::new("k-eperm");
    ns.ip("link add d0 type veth peer name d0p");
    ns.run(|| {
        let d0 = ifindex("d0");
        drop_cap_net_admin_in_this_thread();
        let k = Kernel::connect().expect("connect");
        // Reading works unprivileged.
        assert!(k.interfaces().expect("interfaces").len() >= 2);
        let err = k.add_address(d0, VIP, 32).expect_err("EPERM");
        assert!(
            matches!(err, KernelError::PermissionDenied { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("adding 203.0.113.10/32 to d0: Operation not permitted"),
            "{msg}"
        );
        assert!(msg.ends_with("needs root or CAP_NET_ADMIN"), "{msg}");
        let err = NftGuard::install(&spec_ext("d0")).expect_err("EPERM");
        assert!(
            matches!(err, KernelError::PermissionDenied { .. }),
            "{err:?}"
        );
        eprintln!("unprivileged guard: {err}");
    });
}

#[test]
fn guard_install_replace_remove() {
    if !root_or_skip("kernel::tests::guard_install_replace_remove") {
        return;
    }
    let ns = Netns::new("k-guard");
    ns.ip("link add d0 type veth peer name d0p");
    ns.ip("link add d1 type veth peer name d1p");
    let mut guard = ns
        .run(|| NftGuard::install(&spec_ext("d0")))
        .expect("install");
    let rs = ruleset(&ns);
    eprintln!("{rs}");
    assert!(rs.contains("table netdev lvsd"), "{rs}");
    assert!(rs.contains("flags owner"), "{rs}");
    assert!(rs.contains("chain in_d0"), "{rs}");
    assert!(
        rs.contains("type filter hook ingress device \"d0\" priority filter; policy accept;"),
        "{rs}"
    );
    for rule in [
        "ip daddr 203.0.113.10 tcp dport 80 drop",
        "ip daddr 203.0.113.10 udp dport 53 drop",
        "ip saddr 192.0.2.21 tcp sport 8080 drop",
        "ip daddr 203.0.113.10 icmp type destination-unreachable drop",
        "ip daddr 203.0.113.10 icmp type source-quench drop",
        "ip daddr 203.0.113.10 icmp type time-exceeded drop",
        "ip saddr 192.0.2.21 icmp type destination-unreachable drop",
        "ip saddr 192.0.2.21 icmp type source-quench drop",
        "ip saddr 192.0.2.21 icmp type time-exceeded drop",
    ] {
        assert!(rs.contains(rule), "missing `{rule}` in\n{rs}");
    }
    assert_eq!(rs.matches(" drop\n").count(), 9, "{rs}");
    // Byte for byte the rules nft itself compiles from the documented rule text.
    nft(
        &ns,
        &[
            "add table netdev reference { chain c { type filter hook ingress device d0 \
             priority 0; policy accept; \
             meta protocol ip ip daddr 203.0.113.10 meta l4proto tcp th dport 80 drop; \
             meta protocol ip ip daddr 203.0.113.10 meta l4proto udp th dport 53 drop; \
             meta protocol ip ip daddr 203.0.113.10 meta l4proto icmp icmp type 3 drop; \
             meta protocol ip ip daddr 203.0.113.10 meta l4proto icmp icmp type 4 drop; \
             meta protocol ip ip daddr 203.0.113.10 meta l4proto icmp icmp type 11 drop; \
             meta protocol ip ip saddr 192.0.2.21 meta l4proto tcp th sport 8080 drop; \
             meta protocol ip ip saddr 192.0.2.21 meta l4proto icmp icmp type 3 drop; \
             meta protocol ip ip saddr 192.0.2.21 meta l4proto icmp icmp type 4 drop; \
             meta protocol ip ip saddr 192.0.2.21 meta l4proto icmp icmp type 11 drop; }; }",
        ],
    );
    let bytecode = |table: &str| -> Vec<String> {
        nft(&ns, &["--debug=netlink", "list", "table", "netdev", table])
            .lines()
            .filter(|l| l.trim_start().starts_with('['))
            .map(str::to_string)
            .collect()
    };
    let ours = bytecode("lvsd");
    assert_eq!(ours.len(), 81, "{ours:#?}");
    assert_eq!(ours, bytecode("reference"));
    nft(&ns, &["delete", "table", "netdev", "reference"]);

    // A second guard in the same namespace is refused, and the first is untouched.
    let err = ns
        .run(|| NftGuard::install(&spec_ext("d1")))
        .expect_err("busy");
    assert!(matches!(err, KernelError::TableBusy { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("another lvsd owns this network namespace's nftables table `lvsd`"),
        "{msg}"
    );
    eprintln!("second install: {msg}");
    assert_eq!(ruleset(&ns), rs);
    // Nobody else can change or delete it.
    let out = ns.exec(&["nft", "delete", "table", "netdev", "lvsd"]);
    assert!(
        !out.status.success(),
        "a foreign process deleted the owned table"
    );

    // Replace: other device, other tuples, all at once.
    let spec2 = GuardSpec {
        devices: vec![GuardDevice {
            name: "d1".into(),
            drop_dst: vec![(Protocol::Tcp, VIP, 443)],
            drop_src: vec![],
            accept_local: vec![],
        }],
    };
    guard.replace(&spec2).expect("replace");
    assert_eq!(guard.spec(), &spec2);
    let rs = ruleset(&ns);
    assert!(!rs.contains("in_d0"), "{rs}");
    assert!(rs.contains("chain in_d1"), "{rs}");
    assert!(
        rs.contains("ip daddr 203.0.113.10 tcp dport 443 drop"),
        "{rs}"
    );
    // The TCP rule and the VIP's three ICMP error rules.
    assert_eq!(rs.matches(" drop\n").count(), 4, "{rs}");

    // A failing replace (unknown device) changes nothing.
    let err = guard.replace(&spec_ext("nosuchdev0")).map(|_| ());
    eprintln!("replace with a missing device: {err:?}");
    if err.is_err() {
        assert_eq!(guard.spec(), &spec2);
        let after = ruleset(&ns);
        assert_eq!(after, rs, "a failed replace changed the rules");
        assert!(
            err.as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("nosuchdev0")),
            "{err:?}"
        );
    } else {
        guard.replace(&spec2).expect("replace back");
    }

    // An empty spec keeps just the table.
    guard.replace(&GuardSpec::default()).expect("replace empty");
    let rs = ruleset(&ns);
    assert!(
        rs.contains("table netdev lvsd") && !rs.contains("chain"),
        "{rs}"
    );

    guard.remove().expect("remove");
    assert!(!ruleset(&ns).contains("lvsd"));

    // Drop removes it too.
    let guard = ns
        .run(|| NftGuard::install(&spec_ext("d0")))
        .expect("install again");
    assert!(ruleset(&ns).contains("table netdev lvsd"));
    drop(guard);
    assert!(!ruleset(&ns).contains("lvsd"));
}

#[test]
fn guard_refuses_a_hand_made_table() {
    if !root_or_skip("kernel::tests::guard_refuses_a_hand_made_table") {
        return;
    }
    let ns = Netns::new("k-hand");
    ns.ip("link add d0 type veth peer name d0p");
    nft(&ns, &["add", "table", "netdev", "lvsd"]);
    let err = ns
        .run(|| NftGuard::install(&spec_ext("d0")))
        .expect_err("busy");
    let msg = err.to_string();
    assert!(matches!(err, KernelError::TableBusy { .. }), "{msg}");
    assert!(msg.contains("nft delete table netdev lvsd"), "{msg}");
    // The hand-made table is left alone.
    let rs = ruleset(&ns);
    assert!(
        rs.contains("table netdev lvsd") && !rs.contains("chain"),
        "{rs}"
    );
}

// That the kernel deletes the guard table when lvsd is SIGKILLed (NFT_TABLE_F_OWNER) is
// tested end to end with the real binary: tests/tests/forwarding.rs,
// `nothing_remains_after_lvsd_exits`.

/// Connects from the client namespace; returns the error kind (or Ok).
fn try_connect(ns: &Netns, dst: Ipv4Addr, port: u16) -> std::io::Result<()> {
    ns.run(|| {
        TcpStream::connect_timeout(&SocketAddr::from((dst, port)), Duration::from_millis(1500))
            .map(drop)
    })
}

#[test]
fn guard_stops_the_kernel_answering_but_not_the_tap() {
    if !root_or_skip("kernel::tests::guard_stops_the_kernel_answering_but_not_the_tap") {
        return;
    }
    let a = Netns::new("k-cli");
    let b = Netns::new("k-dir");
    a.ip(&format!(
        "link add va type veth peer name vb netns {}",
        b.name
    ));
    a.ip("addr add 203.0.113.2/24 dev va");
    a.ip("link set va up");
    b.ip("addr add 203.0.113.10/24 dev vb");
    b.ip("link set vb up");

    // No listener and no guard: the director's stack answers the SYN with a RST.
    let r = try_connect(&a, VIP, 80);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );

    let (guard, tap) = b.run(|| {
        let guard = NftGuard::install(&GuardSpec {
            devices: vec![GuardDevice {
                name: "vb".into(),
                drop_dst: vec![(Protocol::Tcp, VIP, 80)],
                drop_src: vec![],
                accept_local: vec![],
            }],
        })
        .expect("install");
        let filter = crate::io::Filter::build(&crate::io::FilterSpec {
            inbound: vec![(Protocol::Tcp, VIP, 80)],
            replies: vec![],
            arp: false,
        })
        .expect("filter");
        let tap = crate::io::PacketSocket::open(ifindex("vb"), &filter).expect("tap");
        (guard, tap)
    });

    // With the guard: no RST, the connect times out...
    let r = try_connect(&a, VIP, 80);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::TimedOut),
        "{r:?}"
    );
    // ... while a packet socket on the same device still saw the SYNs.
    let mut buf = vec![0u8; crate::io::MAX_FRAME_LEN];
    let mut syns = 0;
    while let Some((_, n)) = tap.recv(&mut buf).expect("recv") {
        let f = &buf[..n];
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(&f[30..34], &VIP.octets());
        assert_eq!(&f[36..38], &80u16.to_be_bytes());
        assert_eq!(f[47] & 0x02, 0x02, "not a SYN");
        syns += 1;
    }
    assert!(syns >= 1, "the tap saw nothing");
    // Other ports are not affected.
    let r = try_connect(&a, VIP, 81);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );

    // Without the guard, the RST is back.
    drop(guard);
    let r = try_connect(&a, VIP, 80);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );
}
