//! Privileged tests of the kernel module, each in its own throw-away network namespace(s).
//! Without root they print a loud SKIP line and pass.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
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
            ..GuardDevice::default()
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
            ..GuardDevice::default()
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
fn try_connect(ns: &Netns, dst: impl Into<IpAddr>, port: u16) -> std::io::Result<()> {
    let dst = dst.into();
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
                ..GuardDevice::default()
            }],
        })
        .expect("install");
        let filter = crate::io::Filter::build(&crate::io::FilterSpec {
            inbound: vec![(Protocol::Tcp, VIP, 80)],
            replies: vec![],
            arp: false,
            ..crate::io::FilterSpec::default()
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

// ---------------------------------------------------------------------------------------
// IPv6 (address plan: front 2001:db8:f::/64, back 2001:db8:b::/64, client 2001:db8:c::/64).

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
const RTR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0xfe);
const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);

/// Sets a sysctl inside the namespace (tests may run tools; lvsd never does).
fn sysctl(ns: &Netns, key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = ns.exec(&["sh", "-c", &format!("echo {value} > {path}")]);
    assert!(
        out.status.success(),
        "{key}={value}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip6_addr_show(ns: &Netns, dev: &str) -> String {
    let out = ns.exec(&["ip", "-6", "addr", "show", "dev", dev]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ipv6_routes_addresses_and_vips() {
    if !root_or_skip("kernel::tests::ipv6_routes_addresses_and_vips") {
        return;
    }
    let ns = Netns::new("k-v6");
    // No DAD in this namespace: link-local addresses are usable at once, so the test
    // does not depend on timing.
    sysctl(&ns, "net.ipv6.conf.default.accept_dad", "0");
    ns.ip("link add d0 type veth peer name d0p");
    ns.ip("link add d1 type veth peer name d1p");
    for d in ["d0", "d0p", "d1", "d1p"] {
        ns.ip(&format!("link set {d} up"));
    }
    ns.ip(&format!("addr add {DIP6}/64 dev d0"));
    ns.ip("addr add 2001:db8:f::2/64 dev d1");
    ns.run(|| {
        let k = Kernel::connect().expect("connect");
        let (d0, d1) = (ifindex("d0"), ifindex("d1"));
        let links = k.interfaces().expect("interfaces");
        let by = |i: u32| links.iter().find(|l| l.ifindex == i).expect("link").clone();
        assert_eq!(by(1).ipv6, vec![(Ipv6Addr::LOCALHOST, 128)]);
        let l = by(d0);
        assert!(l.ipv6.contains(&(DIP6, 64)), "{l:?}");
        let ll = l.link_local6().expect("link-local address");
        assert!(is_link_local6(ll), "{ll}");
        assert!(l.ipv6.contains(&(ll, 64)), "{l:?}");
        assert_eq!(l.global6(), Some(DIP6));
        assert!(l.contains6(RIP6) && !l.contains6(VIP6) && !l.contains6(ll));
        assert!(by(d1).contains6(VIP6));
        // IPv4 is untouched by all this.
        assert!(l.ipv4.is_empty());

        // On-link: the real server itself is the next hop; our source is the DIP.
        let r = k.route_to6(RIP6).expect("route");
        assert_eq!(
            r,
            RouteInfo6 {
                ifindex: d0,
                gateway: None,
                next_hop: RIP6,
                prefsrc: Some(DIP6),
                source: Some(DIP6),
                link_local: Some(ll),
                local: false,
            }
        );
        // Through a router, global or link-local.
        ns.ip(&format!("-6 route add 2001:db8:c::/64 via {RTR6}"));
        let r = k.route_to6(CIP6).expect("route");
        assert_eq!((r.ifindex, r.gateway, r.next_hop), (d0, Some(RTR6), RTR6));
        assert_eq!((r.source, r.link_local), (Some(DIP6), Some(ll)));
        let router_ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xfe);
        ns.ip(&format!(
            "-6 route add 2001:db8:d::/64 via {router_ll} dev d0"
        ));
        let r = k
            .route_to6(Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, 0, 1))
            .expect("route");
        assert_eq!((r.gateway, r.next_hop), (Some(router_ll), router_ll));
        assert_eq!(r.source, Some(DIP6));
        // Local, unreachable.
        assert!(k.route_to6(DIP6).expect("route").local);
        let err = k
            .route_to6(Ipv6Addr::new(0x2001, 0xdb8, 0xeeee, 0, 0, 0, 0, 1))
            .expect_err("unreachable");
        assert!(
            err.to_string()
                .starts_with("looking up the route to 2001:db8:eeee::1: "),
            "{err}"
        );

        // VIP placement: on the interface whose prefix contains it...
        assert_eq!(k.vip_interface(VIP6.into(), &links).expect("place"), d1);
        // ... a VIP next to the real servers, placed on d0 and added there as a
        // deprecated /128: still the DIP is our source towards a neighbour whose address
        // shares 127 bits with the VIP.
        let vip_b = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x10);
        assert_eq!(k.vip_interface(vip_b.into(), &links).expect("place"), d0);
        assert_eq!(k.has_address6(vip_b).expect("has"), None);
        k.add_vip(d0, vip_b.into()).expect("add vip");
        assert_eq!(k.has_address6(vip_b).expect("has"), Some(d0));
        assert_eq!(k.has_ip(vip_b.into()).expect("has"), Some(d0));
        let shown = ip6_addr_show(&ns, "d0");
        let line = shown
            .lines()
            .find(|l| l.contains("2001:db8:b::10/128"))
            .unwrap_or_else(|| panic!("VIP not listed:\n{shown}"));
        assert!(
            line.contains("nodad") && line.contains("deprecated"),
            "{line}"
        );
        assert!(!line.contains("tentative"), "{line}");
        let r = k.route_to6(RIP6).expect("route");
        assert_eq!((r.prefsrc, r.source), (Some(DIP6), Some(DIP6)), "{r:?}");
        let links = k.interfaces().expect("interfaces");
        // Where it already is wins.
        assert_eq!(k.vip_interface(vip_b.into(), &links).expect("place"), d0);
        let l = links.iter().find(|l| l.ifindex == d0).expect("d0");
        assert!(l.ipv6.contains(&(vip_b, 128)), "{l:?}");
        assert_eq!(l.global6(), Some(DIP6), "the VIP came first: {l:?}");
        let err = k.add_vip(d0, vip_b.into()).expect_err("exists");
        assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
        assert!(
            err.to_string()
                .starts_with("adding 2001:db8:b::10/128 to d0: File exists"),
            "{err}"
        );
        // Through the route's interface when no prefix contains it; none without a route.
        assert_eq!(k.vip_interface(CIP6.into(), &links).expect("place"), d0);
        let nowhere = Ipv6Addr::new(0x2001, 0xdb8, 0xeeee, 0, 0, 0, 0, 1);
        let err = k
            .vip_interface(nowhere.into(), &links)
            .expect_err("nowhere");
        assert!(
            err.to_string()
                .starts_with("placing VIP 2001:db8:eeee::1: "),
            "{err}"
        );
        // Removal.
        k.del_vip(d0, vip_b.into()).expect("del");
        assert_eq!(k.has_address6(vip_b).expect("has"), None);
        let err = k.del_vip(d0, vip_b.into()).expect_err("gone");
        assert_eq!(err.errno(), Some(libc::EADDRNOTAVAIL), "{err}");
        // Plain IPv6 addresses (e.g. VRRP's): NODAD, not deprecated.
        let extra = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x99);
        k.add_address6(d1, extra, 64).expect("add");
        let shown = ip6_addr_show(&ns, "d1");
        let line = shown
            .lines()
            .find(|l| l.contains("2001:db8:f::99/64"))
            .unwrap_or_else(|| panic!("not listed:\n{shown}"));
        assert!(
            line.contains("nodad") && !line.contains("deprecated"),
            "{line}"
        );
        k.del_address6(d1, extra, 64).expect("del");
        let err = k.add_address6(d1, extra, 129).expect_err("bad prefix");
        assert!(matches!(err, KernelError::Invalid { .. }), "{err}");
        // An IPv4 VIP through the same calls: /32 as before.
        k.add_vip(d1, IpAddr::V4(VIP)).expect("add v4 vip");
        assert_eq!(k.has_address(VIP).expect("has"), Some(d1));
        k.del_vip(d1, IpAddr::V4(VIP)).expect("del v4 vip");
        assert_eq!(k.has_ip(IpAddr::V4(VIP)).expect("has"), None);
    });
}

fn spec6(dev: &str) -> GuardSpec {
    GuardSpec {
        devices: vec![GuardDevice {
            name: dev.to_string(),
            drop_dst6: vec![(Protocol::Tcp, VIP6, 80), (Protocol::Udp, VIP6, 53)],
            drop_src6: vec![(Protocol::Tcp, RIP6, 8080)],
            accept_local6: vec![DIP6],
            ..GuardDevice::default()
        }],
    }
}

#[test]
fn guard_ipv6_rules_are_what_nft_compiles() {
    if !root_or_skip("kernel::tests::guard_ipv6_rules_are_what_nft_compiles") {
        return;
    }
    let ns = Netns::new("k-guard6");
    ns.ip("link add d0 type veth peer name d0p");
    // Both families on one device: IPv4 rules first, exactly as before.
    let mut spec = spec6("d0");
    let v4 = spec_ext("d0").devices.remove(0);
    spec.devices[0].drop_dst = v4.drop_dst;
    spec.devices[0].drop_src = v4.drop_src;
    spec.devices[0].accept_local = vec![Ipv4Addr::new(192, 0, 2, 1)];
    let guard = ns.run(|| NftGuard::install(&spec)).expect("install");
    let rs = ruleset(&ns);
    eprintln!("{rs}");
    for rule in [
        "ip6 daddr 2001:db8:f::10 tcp dport 80 drop",
        "ip6 daddr 2001:db8:f::10 udp dport 53 drop",
        "ip6 saddr 2001:db8:b::11 tcp sport 8080 drop",
        "ip6 daddr 2001:db8:b::1 accept",
        "ip6 daddr 2001:db8:f::10 icmpv6 type destination-unreachable drop",
        "ip6 daddr 2001:db8:f::10 icmpv6 type packet-too-big drop",
        "ip6 daddr 2001:db8:f::10 icmpv6 type time-exceeded drop",
        "ip6 daddr 2001:db8:f::10 icmpv6 type parameter-problem drop",
        "ip6 saddr 2001:db8:b::11 icmpv6 type destination-unreachable drop",
        "ip6 saddr 2001:db8:b::11 icmpv6 type parameter-problem drop",
    ] {
        assert!(rs.contains(rule), "missing `{rule}` in\n{rs}");
    }
    assert!(!rs.contains("nd-"), "an NDP type is matched:\n{rs}");
    // 9 IPv4 drops, 3 + 8 IPv6 ones.
    assert_eq!(rs.matches(" drop\n").count(), 20, "{rs}");
    let v4_rules = "\
        meta protocol ip ip daddr 203.0.113.10 meta l4proto tcp th dport 80 drop; \
        meta protocol ip ip daddr 203.0.113.10 meta l4proto udp th dport 53 drop; \
        meta protocol ip ip daddr 203.0.113.10 meta l4proto icmp icmp type 3 drop; \
        meta protocol ip ip daddr 203.0.113.10 meta l4proto icmp icmp type 4 drop; \
        meta protocol ip ip daddr 203.0.113.10 meta l4proto icmp icmp type 11 drop; \
        meta protocol ip ip daddr 192.0.2.1 accept; \
        meta protocol ip ip saddr 192.0.2.21 meta l4proto tcp th sport 8080 drop; \
        meta protocol ip ip saddr 192.0.2.21 meta l4proto icmp icmp type 3 drop; \
        meta protocol ip ip saddr 192.0.2.21 meta l4proto icmp icmp type 4 drop; \
        meta protocol ip ip saddr 192.0.2.21 meta l4proto icmp icmp type 11 drop; ";
    let mut v6_rules = String::from(
        "meta protocol ip6 ip6 daddr 2001:db8:f::10 meta l4proto tcp th dport 80 drop; \
         meta protocol ip6 ip6 daddr 2001:db8:f::10 meta l4proto udp th dport 53 drop; ",
    );
    for t in 1..=4 {
        v6_rules.push_str(&format!(
            "meta protocol ip6 ip6 daddr 2001:db8:f::10 meta l4proto ipv6-icmp icmpv6 type {t} \
             drop; "
        ));
    }
    v6_rules.push_str(
        "meta protocol ip6 ip6 daddr 2001:db8:b::1 accept; \
         meta protocol ip6 ip6 saddr 2001:db8:b::11 meta l4proto tcp th sport 8080 drop; ",
    );
    for t in 1..=4 {
        v6_rules.push_str(&format!(
            "meta protocol ip6 ip6 saddr 2001:db8:b::11 meta l4proto ipv6-icmp icmpv6 type {t} \
             drop; "
        ));
    }
    nft(
        &ns,
        &[&format!(
            "add table netdev reference {{ chain c {{ type filter hook ingress device d0 \
             priority 0; policy accept; {v4_rules}{v6_rules}}}; }}"
        )],
    );
    let bytecode = |table: &str| -> Vec<String> {
        nft(&ns, &["--debug=netlink", "list", "table", "netdev", table])
            .lines()
            .filter(|l| l.trim_start().starts_with('['))
            .map(str::to_string)
            .collect()
    };
    let ours = bytecode("lvsd");
    assert_eq!(ours, bytecode("reference"));
    assert!(ours.len() > 81, "{ours:#?}");
    drop(guard);
    assert!(!ruleset(&ns).contains("table netdev lvsd"));
}

#[test]
fn guard_ipv6_drops_vip_traffic_but_not_ndp() {
    if !root_or_skip("kernel::tests::guard_ipv6_drops_vip_traffic_but_not_ndp") {
        return;
    }
    let a = Netns::new("k-cli6");
    let b = Netns::new("k-dir6");
    for ns in [&a, &b] {
        sysctl(ns, "net.ipv6.conf.default.accept_dad", "0");
    }
    a.ip(&format!(
        "link add va type veth peer name vb netns {}",
        b.name
    ));
    a.ip("addr add 2001:db8:f::1/64 dev va nodad");
    a.ip("link set va up");
    b.ip("addr add 2001:db8:f::2/64 dev vb nodad");
    b.ip("link set vb up");
    let flush = || a.ip("-6 neigh flush dev va");
    let neigh = || {
        let out = a.exec(&["ip", "-6", "neigh", "show", "dev", "va"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // The VIP, added by lvsd: NODAD, so the kernel answers NS for it at once.
    b.run(|| {
        let k = Kernel::connect().expect("connect");
        k.add_vip(ifindex("vb"), VIP6.into()).expect("add vip");
    });
    let r = try_connect(&a, VIP6, 80);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );

    let (guard, tap) = b.run(|| {
        let guard = NftGuard::install(&GuardSpec {
            devices: vec![GuardDevice {
                name: "vb".into(),
                drop_dst6: vec![(Protocol::Tcp, VIP6, 80)],
                accept_local6: vec![Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2)],
                ..GuardDevice::default()
            }],
        })
        .expect("install");
        let filter = crate::io::Filter::build(&crate::io::FilterSpec {
            inbound6: vec![(Protocol::Tcp, VIP6, 80)],
            ndp: true,
            ..crate::io::FilterSpec::default()
        })
        .expect("filter");
        let tap = crate::io::PacketSocket::open(ifindex("vb"), &filter).expect("tap");
        (guard, tap)
    });

    // With the guard and a cold neighbour cache: the client resolves the VIP (NS in
    // through the guard, NA out), then its SYNs vanish: no RST, the connect times out.
    flush();
    let r = try_connect(&a, VIP6, 80);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::TimedOut),
        "{r:?}"
    );
    let n = neigh();
    assert!(n.contains("2001:db8:f::10 lladdr"), "VIP not resolved: {n}");
    // The tap saw the SYNs and the client's Neighbor Solicitation for the VIP.
    let mut buf = vec![0u8; crate::io::MAX_FRAME_LEN];
    let (mut syns, mut ns_for_vip) = (0, 0);
    while let Some((_, n)) = tap.recv(&mut buf).expect("recv") {
        let f = &buf[..n];
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        match f[20] {
            6 => {
                assert_eq!(&f[38..54], &VIP6.octets());
                assert_eq!(&f[56..58], &80u16.to_be_bytes());
                assert_eq!(f[67] & 0x02, 0x02, "not a SYN");
                syns += 1;
            }
            58 => {
                assert!(matches!(f[54], 135 | 136), "ICMPv6 type {}", f[54]);
                assert_eq!(f[21], 255, "NDP hop limit");
                if f[54] == 135 && f.get(62..78) == Some(&VIP6.octets()[..]) {
                    ns_for_vip += 1;
                }
            }
            other => panic!("unexpected next header {other}"),
        }
    }
    assert!(syns >= 1, "the tap saw no SYN");
    assert!(ns_for_vip >= 1, "the tap saw no NS for the VIP");
    // Other ports: still the kernel's, after a fresh resolution too.
    flush();
    let r = try_connect(&a, VIP6, 81);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );
    // The director's own address: NDP and TCP untouched by the guard.
    let r = try_connect(&a, Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 2), 80);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );

    // Without the guard, the RST is back.
    drop(guard);
    let r = try_connect(&a, VIP6, 80);
    assert_eq!(
        r.as_ref().map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );
}

/// Internet checksum of `data` (big-endian 16-bit words), not complemented.
fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum()
}

/// An Ethernet frame carrying a TCP SYN from `src`:40000 to `dst`:`dport` behind a
/// hop-by-hop options header (PadN), with a correct TCP checksum.
fn syn_behind_hop_by_hop(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    dport: u16,
) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes()); // seq
    tcp.extend_from_slice(&0u32.to_be_bytes()); // ack
    tcp.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]); // SYN, window, csum, urg
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 6]);
    let mut sum = sum16(&pseudo) + sum16(&tcp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !(sum as u16);
    tcp[16..18].copy_from_slice(&csum.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&((8 + tcp.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 64]); // next header: hop-by-hop; hop limit
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // HBH: next TCP, PadN(4)
    f.extend_from_slice(&tcp);
    f
}

/// `meta l4proto`/`th dport` see through IPv6 extension headers: a SYN to the VIP behind
/// a hop-by-hop header is answered with a RST by the kernel without the guard and
/// silently dropped with it, while the socket filter still copies it to lvsd.
#[test]
fn guard_ipv6_sees_through_extension_headers() {
    if !root_or_skip("kernel::tests::guard_ipv6_sees_through_extension_headers") {
        return;
    }
    let a = Netns::new("k-cli6x");
    let b = Netns::new("k-dir6x");
    for ns in [&a, &b] {
        sysctl(ns, "net.ipv6.conf.default.accept_dad", "0");
    }
    a.ip(&format!(
        "link add va type veth peer name vb netns {}",
        b.name
    ));
    let client = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 1);
    a.ip(&format!("addr add {client}/64 dev va nodad"));
    a.ip("link set va up");
    b.ip("addr add 2001:db8:f::2/64 dev vb nodad");
    b.ip("link set vb up");
    let mac_of = |ns: &Netns, dev: &'static str| {
        ns.run(|| {
            let k = Kernel::connect().expect("connect");
            let i = ifindex(dev);
            let links = k.interfaces().expect("interfaces");
            links.iter().find(|l| l.ifindex == i).expect("link").mac
        })
    };
    let (va_mac, vb_mac) = (mac_of(&a, "va"), mac_of(&b, "vb"));
    b.run(|| {
        let k = Kernel::connect().expect("connect");
        k.add_vip(ifindex("vb"), VIP6.into()).expect("add vip");
    });
    // The client's tap: answers from VIP:80 (the kernel's RST).
    let client_tap = a.run(|| {
        let f = crate::io::Filter::build(&crate::io::FilterSpec {
            replies6: vec![(Protocol::Tcp, VIP6, 80)],
            ..crate::io::FilterSpec::default()
        })
        .expect("filter");
        crate::io::PacketSocket::open(ifindex("va"), &f).expect("tap")
    });
    let syn = syn_behind_hop_by_hop(vb_mac, va_mac, client, VIP6, 80);
    let answers = |n: usize| -> usize {
        for _ in 0..n {
            client_tap
                .send(&crate::io::VnetHdr::NONE, &syn)
                .expect("send");
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut buf = vec![0u8; crate::io::MAX_FRAME_LEN];
        let mut rsts = 0;
        while let Some((_, len)) = client_tap.recv(&mut buf).expect("recv") {
            let f = &buf[..len];
            // Plain TCP from VIP:80 to the client's port, RST set.
            if f.get(20) == Some(&6) && f.get(56..58) == Some(&40000u16.to_be_bytes()[..]) {
                assert_ne!(f[67] & 0x04, 0, "not a RST: {f:02x?}");
                rsts += 1;
            }
        }
        rsts
    };
    // The first answer waits for neighbour discovery of the client: retry for a while
    // (a loaded machine can take longer than one round).
    assert!(
        (0..10).any(|_| answers(2) >= 1),
        "no RST without the guard: the SYN itself is wrong"
    );

    let (guard, tap) = b.run(|| {
        let guard = NftGuard::install(&GuardSpec {
            devices: vec![GuardDevice {
                name: "vb".into(),
                drop_dst6: vec![(Protocol::Tcp, VIP6, 80)],
                ..GuardDevice::default()
            }],
        })
        .expect("install");
        let filter = crate::io::Filter::build(&crate::io::FilterSpec {
            inbound6: vec![(Protocol::Tcp, VIP6, 80)],
            ..crate::io::FilterSpec::default()
        })
        .expect("filter");
        let tap = crate::io::PacketSocket::open(ifindex("vb"), &filter).expect("tap");
        (guard, tap)
    });
    assert_eq!(
        answers(3),
        0,
        "the kernel answered a SYN the guard should drop"
    );
    let mut buf = vec![0u8; crate::io::MAX_FRAME_LEN];
    let mut seen = 0;
    while let Some((_, len)) = tap.recv(&mut buf).expect("recv") {
        assert_eq!(&buf[..len], &syn[..]);
        seen += 1;
    }
    assert_eq!(seen, 3, "the socket filter did not copy the SYNs");
    drop(guard);
    assert!(answers(1) >= 1, "no RST after the guard left");
}
