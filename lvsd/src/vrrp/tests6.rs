//! VRRPv3 over IPv6 in the core: adverts built and accepted with the IPv6 pseudo-header,
//! the receive checks that differ (hop limit, checksum, family), the VIP actions, the
//! family-aware demultiplexer, config refusals, and an election on the simulator.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use lvs_proto::{Ipv4Prefix, VrrpState};

use super::sim::{Sim, ipv4_packet, ipv6_packet};
use super::*;
use crate::wire::vrrp::{MULTICAST_ADDR, MULTICAST_ADDR_V6, Version};

const ME: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const PEER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3);

fn vip6() -> Ipv6Prefix {
    Ipv6Prefix {
        addr: Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10),
        len: 128,
    }
}

fn cfg6(priority: u8, me: Ipv6Addr) -> InstanceConfig {
    InstanceConfig::new_v6("VI_6", "ext0", 51, priority, me, vec![vip6()])
}

fn started(c: InstanceConfig, now: Instant) -> Instance {
    let mut i = Instance::new(c).unwrap();
    let mut out = Vec::new();
    i.start(now, &mut out);
    i
}

/// The advert `src` with `priority` sends (through a real instance), in an IPv6 packet
/// with hop limit `hops`.
fn advert6(src: Ipv6Addr, priority: u8, hops: u8) -> Vec<u8> {
    let i = Instance::new(cfg6(priority.max(1), src)).unwrap();
    let mut buf = [0u8; 1100];
    let n = i
        .emit_advert_to(priority, IpAddr::V6(MULTICAST_ADDR_V6), &mut buf)
        .unwrap();
    ipv6_packet(src, MULTICAST_ADDR_V6, hops, &buf[..n])
}

#[test]
fn an_ipv6_advert_has_the_pseudo_header_checksum_and_16_byte_addresses() {
    let i = Instance::new(cfg6(100, ME)).unwrap();
    assert_eq!(
        i.destinations_ip(),
        vec![IpAddr::V6(MULTICAST_ADDR_V6)],
        "ff02::12"
    );
    assert!(i.destinations().is_empty(), "no IPv4 destination");
    let mut buf = [0u8; 64];
    let n = i
        .emit_advert_to(100, IpAddr::V6(MULTICAST_ADDR_V6), &mut buf)
        .unwrap();
    assert_eq!(n, 8 + 16);
    assert_eq!(&buf[..4], &[0x31, 51, 100, 1]);
    assert_eq!(&buf[8..24], &vip6().addr.octets());
    let p = crate::wire::vrrp::VrrpPacket::new_checked_v6(&buf[..n]).unwrap();
    assert!(p.verify_checksum(i.checksum_mode(), ME, MULTICAST_ADDR_V6));
    // Not to an IPv4 destination.
    assert_eq!(
        i.emit_advert_to(100, IpAddr::V4(MULTICAST_ADDR), &mut buf),
        None
    );
}

#[test]
fn a_v6_backup_takes_over_adds_v6_vips_and_announces_them() {
    let t = Instant::now();
    let mut i = started(cfg6(100, ME), t);
    assert_eq!(i.state(), VrrpState::Backup);
    let mut out = Vec::new();
    // A higher master's adverts hold it in Backup and name the master.
    i.handle_packet6(t, &advert6(PEER, 200, 255), &mut out)
        .unwrap();
    assert_eq!(i.master_ip(), Some((IpAddr::V6(PEER), 200)));
    assert_eq!(i.master(), None, "the IPv4 view names no IPv6 master");
    assert_eq!(i.info(t, 0).master, Some(IpAddr::V6(PEER)));
    // Priority 0: Skew_Time later it is master, with the IPv6 VIPs and an NA round.
    i.handle_packet6(t, &advert6(PEER, 0, 255), &mut out)
        .unwrap();
    out.clear();
    let fire = t + i.skew_time();
    i.handle_timeout(fire, &mut out);
    assert_eq!(i.state(), VrrpState::Master);
    assert_eq!(
        out,
        vec![
            Action::Transition {
                from: VrrpState::Backup,
                to: VrrpState::Master,
                reason: Reason::PriorityZero {
                    from: IpAddr::V6(PEER)
                },
            },
            Action::AddVips6(vec![vip6()]),
            Action::SendAdvert { priority: 100 },
            Action::SendGarp { repeat: 5 },
        ]
    );
    let info = i.info(fire, 0);
    assert_eq!(info.vips.len(), 1);
    assert_eq!(info.vips[0].addr, IpAddr::V6(vip6().addr));
    // A higher priority takes it back: RemoveVips6.
    out.clear();
    i.handle_packet6(fire, &advert6(PEER, 200, 255), &mut out)
        .unwrap();
    assert_eq!(i.state(), VrrpState::Backup);
    assert!(out.contains(&Action::RemoveVips6(vec![vip6()])), "{out:?}");
    assert!(!out.iter().any(|a| matches!(a, Action::RemoveVips(_))));
}

#[test]
fn ipv6_receive_checks_hop_limit_checksum_and_family() {
    let t = Instant::now();
    let mut i = started(cfg6(100, ME), t);
    let mut out = Vec::new();
    // Hop limit 254 (a routed packet): dropped, counted, nothing changes.
    assert_eq!(
        i.handle_packet6(t, &advert6(PEER, 200, 254), &mut out),
        Err(Reject::IpTtl)
    );
    // A bad checksum.
    let mut bad = advert6(PEER, 200, 255);
    bad[40 + 7] ^= 0x01;
    assert_eq!(i.handle_packet6(t, &bad, &mut out), Err(Reject::Checksum));
    // The right bytes from another source fail the pseudo-header.
    let mut spoofed = advert6(PEER, 200, 255);
    spoofed[8 + 15] = 9;
    assert_eq!(
        i.handle_packet6(t, &spoofed, &mut out),
        Err(Reject::Checksum)
    );
    // v2 over IPv6 does not exist.
    let mut v2 = advert6(PEER, 200, 255);
    v2[40] = 0x21;
    assert_eq!(i.handle_packet6(t, &v2, &mut out), Err(Reject::Version));
    // Truncated address.
    let short = {
        let full = advert6(PEER, 200, 255);
        let payload = &full[40..full.len() - 4];
        ipv6_packet(PEER, MULTICAST_ADDR_V6, 255, payload)
    };
    assert_eq!(
        i.handle_packet6(t, &short, &mut out),
        Err(Reject::PacketLen)
    );
    // Our own advert.
    assert_eq!(
        i.handle_packet6(t, &advert6(ME, 200, 255), &mut out),
        Err(Reject::OwnPacket)
    );
    // An IPv4 advert reaching an IPv6 instance.
    let v4 = ipv4_packet(Ipv4Addr::new(203, 0, 113, 3), MULTICAST_ADDR, 255, &[0; 12]);
    assert_eq!(i.handle_packet(t, &v4, &mut out), Err(Reject::IpHeader));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(i.state(), VrrpState::Backup);
    assert_eq!(i.master_ip(), None);
    let c = i.counters();
    assert_eq!(c.advert_rcvd, 0);
    let rejected = c.rejected_by_name();
    for name in [
        "ip_ttl_err",
        "checksum_err",
        "version_err",
        "packet_len_err",
    ] {
        assert!(
            rejected.iter().any(|(n, v)| n == name && *v > 0),
            "{name}: {rejected:?}"
        );
    }
    // And a good one is accepted.
    assert_eq!(
        i.handle_packet6(t, &advert6(PEER, 200, 255), &mut out),
        Ok(())
    );
    assert_eq!(i.counters().advert_rcvd, 1);
}

#[test]
fn config_refuses_v2_over_ipv6_and_mixed_families() {
    let mut c = cfg6(100, ME);
    c.version = Version::V2;
    c.advert_interval = Duration::from_secs(1);
    assert_eq!(
        Instance::new(c).err(),
        Some(ConfigError::V2OverIpv6("VI_6".into()))
    );
    let mut c = cfg6(100, ME);
    c.virtual_addresses = vec![Ipv4Prefix {
        addr: Ipv4Addr::new(203, 0, 113, 10),
        len: 24,
    }];
    assert_eq!(
        Instance::new(c).err(),
        Some(ConfigError::MixedFamilies("VI_6".into()))
    );
    let mut c = cfg6(100, ME);
    if let Some(v6) = c.ipv6.as_mut() {
        v6.virtual_addresses.clear();
    }
    assert_eq!(
        Instance::new(c).err(),
        Some(ConfigError::Addresses("VI_6".into()))
    );
    assert!("2001:db8::1/129".parse::<Ipv6Prefix>().is_err());
    assert_eq!("2001:db8::1".parse::<Ipv6Prefix>().map(|p| p.len), Ok(128));
}

/// One VRID on one interface for both families: two independent routers, each packet
/// reaching its family's instance only.
#[test]
fn the_router_demultiplexes_by_family() {
    let t = Instant::now();
    let v4 = InstanceConfig::new(
        "VI_4",
        "ext0",
        51,
        100,
        Ipv4Addr::new(203, 0, 113, 2),
        vec![Ipv4Prefix {
            addr: Ipv4Addr::new(203, 0, 113, 10),
            len: 24,
        }],
    );
    let mut r = Router::new(vec![v4.clone(), cfg6(100, ME)], vec![]).unwrap();
    // Two IPv6 instances with one VRID on one interface are refused.
    let mut dup = cfg6(100, ME);
    dup.name = "VI_7".into();
    assert!(Router::new(vec![cfg6(100, ME), dup], vec![]).is_err());
    let mut out = Vec::new();
    r.start(t, &mut out);
    out.clear();
    let got = r.handle_packet6(t, "ext0", &advert6(PEER, 200, 255), &mut out);
    assert_eq!(got, Ok(InstanceId(1)));
    assert_eq!(r.instances()[1].master_ip(), Some((IpAddr::V6(PEER), 200)));
    assert_eq!(r.instances()[0].master_ip(), None);
    // Another interface: no instance.
    assert_eq!(
        r.handle_packet6(t, "int0", &advert6(PEER, 200, 255), &mut out),
        Err(Reject::Vrid)
    );
}

/// Two IPv6 routers on the simulated segment: the higher priority wins, the other takes
/// over when it dies, and hands back when it returns (preempt).
#[test]
fn two_ipv6_routers_elect_fail_over_and_hand_back() {
    for seed in 0..20 {
        let mut sim = Sim::new(seed);
        let addr = |i: usize| Ipv4Addr::new(203, 0, 113, 2 + u8::try_from(i).unwrap_or(0));
        let ll = |i: u16| Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2 + i);
        let mut a = cfg6(150, ll(0));
        let mut b = cfg6(100, ll(1));
        a.advert_interval = Duration::from_millis(100);
        b.advert_interval = Duration::from_millis(100);
        sim.add_node(addr(0), vec![a], vec![]);
        sim.add_node(addr(1), vec![b], vec![]);
        sim.boot(0);
        sim.boot_after(1, Duration::from_millis(seed * 7 % 300));
        sim.run_for(Duration::from_secs(2));
        assert_eq!(sim.masters("VI_6"), vec![0], "seed {seed}");
        assert_eq!(sim.vip_holders(0), vec![0], "seed {seed}");
        sim.kill(0);
        sim.run_for(Duration::from_secs(1));
        assert_eq!(sim.masters("VI_6"), vec![1], "seed {seed}");
        sim.boot(0);
        sim.run_for(Duration::from_secs(1));
        assert_eq!(sim.masters("VI_6"), vec![0], "seed {seed}");
        assert_eq!(sim.vip_holders(0), vec![0], "seed {seed}");
    }
}
