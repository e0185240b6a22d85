//! `lvsd realserver`: prepares this host as a real server for DR or TUN forwarding, and
//! for TUN runs a userspace decapsulator, until SIGINT/SIGTERM; then undoes everything.
//!
//! What it changes (the seed notes' recipe; [`plan`] computes it from a snapshot of the
//! host, without root, so it is unit-tested):
//! - each VIP as `/32` on the non-ARPing interface (`--dev`, default `lo`), unless the host
//!   already has it (then it is left alone, and left there);
//! - `net.ipv4.conf.{all,DEV}.arp_ignore` raised to 1 and `arp_announce` raised to 2, so
//!   the host never answers or announces the VIP in ARP (the kernel uses the maximum of
//!   `all` and the interface's value);
//! - TUN only: a TUN device `lvstunN` (up, MTU 65535), `rp_filter` 0 on it and on `all`
//!   (the kernel uses max(all, interface); the inner packets arrive on the TUN device,
//!   which has no address, and the kernel's reverse-path check refuses every packet on an
//!   address-less interface in strict *and* loose mode). Other interfaces keep their own
//!   `rp_filter`; `all` = 0 only stops overriding them. And a raw `IPPROTO_IPIP` socket.
//!
//! Decapsulation (TUN): a datagram is taken apart with [`crate::wire::ipip::decapsulate`];
//! its outer destination must be one of this host's addresses (snapshot at start) and the
//! inner destination one of the VIPs, else it is dropped and counted by reason. The inner
//! packet is written unchanged to the TUN device; the kernel delivers it to the local
//! service, whose reply leaves from the VIP straight to the client.
//!
//! Invariants: every change is recorded the moment it is made; on exit (signal, or a
//! failure part-way) the recorded changes are undone in reverse order and each is
//! printed; a value is restored only if it still holds what this helper wrote (an
//! administrator's later edit is kept, and said so).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::io::tun::{IpipSocket, TunDevice};
use crate::kernel::Kernel;
use crate::wire::ipip;
use crate::wire::ipv4::Ipv4Packet;

/// Name pattern of the TUN device.
pub const TUN_PATTERN: &str = "lvstun%d";
/// MTU of the TUN device (inner packets are reassembled, so they may be large).
pub const TUN_MTU: u32 = 65535;
/// Receive buffer of the raw IPIP socket.
const RCVBUF: usize = 8 << 20;

/// Forwarding method the host is prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Direct routing.
    Dr,
    /// IPIP tunnelling.
    Tun,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dr" => Ok(Mode::Dr),
            "tun" => Ok(Mode::Tun),
            o => Err(format!("unknown mode `{o}`: expected dr or tun")),
        }
    }
}

/// What the helper was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The virtual addresses this host serves.
    pub vips: Vec<Ipv4Addr>,
    /// DR or TUN.
    pub mode: Mode,
    /// The non-ARPing interface for the VIPs.
    pub dev: String,
}

/// The parts of the host [`plan`] looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    /// Current values of the sysctls [`sysctl_keys`] names (missing = unreadable).
    pub sysctls: BTreeMap<String, i64>,
    /// IPv4 addresses the host holds, on any interface.
    pub addresses: BTreeSet<Ipv4Addr>,
}

/// One change to the host, with what undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add `addr/32` to `dev`; undo: remove it.
    AddAddress {
        /// Interface.
        dev: String,
        /// The VIP.
        addr: Ipv4Addr,
    },
    /// Write `new` to the sysctl `key` (dotted name); undo: write `old` back.
    Sysctl {
        /// e.g. `net.ipv4.conf.all.arp_ignore`.
        key: String,
        /// Value before.
        old: i64,
        /// Value written.
        new: i64,
    },
    /// Create the TUN device and the raw IPIP socket; set `rp_filter` 0 on the device.
    /// Undo: close both (the device disappears, with its settings).
    Decapsulator,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddAddress { dev, addr } => write!(f, "add {addr}/32 to {dev}"),
            Change::Sysctl { key, old, new } => write!(f, "set {key} {old} -> {new}"),
            Change::Decapsulator => write!(
                f,
                "create TUN device {TUN_PATTERN} (rp_filter 0) and a raw IPIP socket \
                 (userspace decapsulation)"
            ),
        }
    }
}

/// The sysctls [`plan`] reads, for `opts`.
pub fn sysctl_keys(opts: &Options) -> Vec<String> {
    let mut keys = Vec::new();
    for dev in ["all", opts.dev.as_str()] {
        keys.push(format!("net.ipv4.conf.{dev}.arp_ignore"));
        keys.push(format!("net.ipv4.conf.{dev}.arp_announce"));
    }
    if opts.mode == Mode::Tun {
        keys.push("net.ipv4.conf.all.rp_filter".to_string());
    }
    keys
}

/// The changes that make the host a real server for `opts` (module doc), in the order
/// they are made. Pure: depends only on its arguments.
pub fn plan(opts: &Options, state: &HostState) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    let mut seen = BTreeSet::new();
    for &vip in &opts.vips {
        if !seen.insert(vip) {
            continue;
        }
        if !state.addresses.contains(&vip) {
            changes.push(Change::AddAddress {
                dev: opts.dev.clone(),
                addr: vip,
            });
        }
    }
    let at_least = |key: String, want: i64, changes: &mut Vec<Change>| {
        let old = *state
            .sysctls
            .get(&key)
            .ok_or_else(|| format!("cannot read {key}"))?;
        if old < want {
            changes.push(Change::Sysctl {
                key,
                old,
                new: want,
            });
        }
        Ok::<(), String>(())
    };
    let mut devs = vec!["all"];
    if opts.dev != "all" {
        devs.push(opts.dev.as_str());
    }
    for dev in &devs {
        at_least(format!("net.ipv4.conf.{dev}.arp_ignore"), 1, &mut changes)?;
        at_least(format!("net.ipv4.conf.{dev}.arp_announce"), 2, &mut changes)?;
    }
    if opts.mode == Mode::Tun {
        let key = "net.ipv4.conf.all.rp_filter".to_string();
        let old = *state
            .sysctls
            .get(&key)
            .ok_or_else(|| format!("cannot read {key}"))?;
        if old != 0 {
            changes.push(Change::Sysctl { key, old, new: 0 });
        }
        changes.push(Change::Decapsulator);
    }
    Ok(changes)
}

/// Why a decapsulated packet was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapDrop {
    /// Not a well-formed IPIP datagram with an IPv4 inner packet.
    Malformed,
    /// The outer destination is not one of this host's addresses.
    NotLocal,
    /// The inner destination is not one of the VIPs.
    NotVip,
}

/// Counters of the decapsulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecapStats {
    /// Inner packets written to the TUN device.
    pub delivered: u64,
    /// Dropped: malformed.
    pub malformed: u64,
    /// Dropped: outer destination not local.
    pub not_local: u64,
    /// Dropped: inner destination not a VIP.
    pub not_vip: u64,
    /// Writes to the TUN device that failed.
    pub write_errors: u64,
}

impl fmt::Display for DecapStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered={} drop.malformed={} drop.not_local={} drop.not_vip={} write_errors={}",
            self.delivered, self.malformed, self.not_local, self.not_vip, self.write_errors
        )
    }
}

/// Decides what to do with one received IPIP datagram: the inner packet to deliver, or
/// why not. Pure.
pub fn decide<'a>(
    datagram: &'a [u8],
    local: &BTreeSet<Ipv4Addr>,
    vips: &BTreeSet<Ipv4Addr>,
) -> Result<&'a [u8], DecapDrop> {
    let d = ipip::decapsulate(datagram).map_err(|_| DecapDrop::Malformed)?;
    if !local.contains(&d.outer_dst) {
        return Err(DecapDrop::NotLocal);
    }
    let inner = Ipv4Packet::new_checked(d.inner).map_err(|_| DecapDrop::Malformed)?;
    if !vips.contains(&inner.dst_addr()) {
        return Err(DecapDrop::NotVip);
    }
    Ok(d.inner)
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn read_sysctl(key: &str) -> Option<i64> {
    std::fs::read_to_string(sysctl_path(key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write_sysctl(key: &str, value: i64) -> Result<(), String> {
    std::fs::write(sysctl_path(key), format!("{value}\n"))
        .map_err(|e| format!("writing {key}: {e}"))
}

/// Reads what [`plan`] needs from the running host.
pub fn snapshot(opts: &Options, kernel: &Kernel) -> Result<HostState, String> {
    let mut state = HostState::default();
    for key in sysctl_keys(opts) {
        if let Some(v) = read_sysctl(&key) {
            state.sysctls.insert(key, v);
        }
    }
    let links = kernel.interfaces().map_err(|e| e.to_string())?;
    for l in &links {
        for (a, _) in &l.ipv4 {
            state.addresses.insert(*a);
        }
    }
    Ok(state)
}

/// What has been done so far, to undo.
struct Applied {
    kernel: Kernel,
    done: Vec<Change>,
    decap: Option<(TunDevice, IpipSocket)>,
}

impl Applied {
    fn apply(&mut self, c: &Change) -> Result<(), String> {
        match c {
            Change::AddAddress { dev, addr } => {
                let ifindex = self.ifindex(dev)?;
                self.kernel
                    .add_address(ifindex, *addr, 32)
                    .map_err(|e| e.to_string())?;
            }
            Change::Sysctl { key, new, .. } => write_sysctl(key, *new)?,
            Change::Decapsulator => {
                let tun = TunDevice::create(TUN_PATTERN)
                    .map_err(|e| format!("creating the TUN device: {e}"))?;
                let sock = IpipSocket::open(RCVBUF)
                    .map_err(|e| format!("opening the raw IPIP socket: {e}"))?;
                let name = tun.name().to_string();
                // Recorded before anything else can fail, so that it is undone.
                self.decap = Some((tun, sock));
                self.done.push(c.clone());
                if let Some((tun, _)) = &self.decap {
                    tun.set_up(TUN_MTU)
                        .map_err(|e| format!("setting {name} up: {e}"))?;
                }
                write_sysctl(&format!("net.ipv4.conf.{name}.rp_filter"), 0)?;
                println!("lvsd realserver: created {name} (rp_filter 0) and a raw IPIP socket");
                return Ok(());
            }
        }
        println!("lvsd realserver: {c}");
        self.done.push(c.clone());
        Ok(())
    }

    fn ifindex(&self, dev: &str) -> Result<u32, String> {
        let links = self.kernel.interfaces().map_err(|e| e.to_string())?;
        links
            .iter()
            .find(|l| l.name == dev)
            .map(|l| l.ifindex)
            .ok_or_else(|| format!("no interface {dev}"))
    }

    /// Undoes everything recorded, newest first; returns false if something failed.
    fn undo(&mut self) -> bool {
        let mut ok = true;
        while let Some(c) = self.done.pop() {
            match &c {
                Change::AddAddress { dev, addr } => {
                    let r = self.ifindex(dev).and_then(|i| {
                        self.kernel
                            .del_address(i, *addr, 32)
                            .map_err(|e| e.to_string())
                    });
                    match r {
                        Ok(()) => println!("lvsd realserver: removed {addr}/32 from {dev}"),
                        Err(e) => {
                            ok = false;
                            eprintln!("lvsd realserver: removing {addr}/32 from {dev}: {e}");
                        }
                    }
                }
                Change::Sysctl { key, old, new } => match read_sysctl(key) {
                    Some(v) if v == *new => match write_sysctl(key, *old) {
                        Ok(()) => println!("lvsd realserver: restored {key} {new} -> {old}"),
                        Err(e) => {
                            ok = false;
                            eprintln!("lvsd realserver: {e}");
                        }
                    },
                    other => println!(
                        "lvsd realserver: left {key} at {} (changed by someone else since)",
                        other.map_or_else(|| "?".to_string(), |v| v.to_string())
                    ),
                },
                Change::Decapsulator => {
                    if let Some((tun, sock)) = self.decap.take() {
                        let name = tun.name().to_string();
                        drop(sock);
                        drop(tun);
                        println!("lvsd realserver: removed {name} and the raw IPIP socket");
                    }
                }
            }
        }
        ok
    }
}

/// Runs the helper (the `lvsd realserver` subcommand): with `check`, prints the plan and
/// exits; else applies it, decapsulates (TUN) until SIGINT/SIGTERM, and undoes it.
pub fn run(opts: &Options, check: bool) -> ExitCode {
    match run_inner(opts, check) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lvsd realserver: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_inner(opts: &Options, check: bool) -> Result<ExitCode, String> {
    if opts.vips.is_empty() {
        return Err("give at least one --vip".into());
    }
    let kernel = Kernel::connect().map_err(|e| e.to_string())?;
    let state = snapshot(opts, &kernel)?;
    let changes = plan(opts, &state)?;
    if check {
        if changes.is_empty() {
            println!("lvsd realserver: nothing to change");
        }
        for c in &changes {
            println!("would {c}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("installing signal handlers: {e}"))?;
    }
    let mut applied = Applied {
        kernel,
        done: Vec::new(),
        decap: None,
    };
    let mut result = Ok(());
    for c in &changes {
        if let Err(e) = applied.apply(c) {
            result = Err(e);
            break;
        }
    }
    let mut stats = DecapStats::default();
    if result.is_ok() {
        println!("lvsd realserver: ready");
        result = serve(&applied, opts, &state, &stop, &mut stats);
    }
    if applied.decap.is_some() {
        println!("lvsd realserver: decapsulator {stats}");
    }
    let undone = applied.undo();
    match result {
        Err(e) => Err(e),
        Ok(()) if undone => Ok(ExitCode::SUCCESS),
        Ok(()) => Ok(ExitCode::from(1)),
    }
}

/// Waits for a signal; with a decapsulator, moves packets meanwhile.
fn serve(
    applied: &Applied,
    opts: &Options,
    state: &HostState,
    stop: &AtomicBool,
    stats: &mut DecapStats,
) -> Result<(), String> {
    let tick = Duration::from_millis(200);
    let Some((tun, sock)) = &applied.decap else {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
        }
        return Ok(());
    };
    let vips: BTreeSet<Ipv4Addr> = opts.vips.iter().copied().collect();
    let mut local = state.addresses.clone();
    local.extend(vips.iter().copied());
    let mut buf = vec![0u8; 65536];
    let mut ready = [false];
    while !stop.load(Ordering::Relaxed) {
        crate::io::poll_readable(&[sock.as_fd()], Some(tick), &mut ready)
            .map_err(|e| format!("waiting for IPIP packets: {e}"))?;
        // Bounded per wake-up, so a flood cannot hide a signal.
        for _ in 0..256 {
            let Some(n) = sock.recv(&mut buf).map_err(|e| format!("receiving: {e}"))? else {
                break;
            };
            let Some(datagram) = buf.get(..n) else { break };
            match decide(datagram, &local, &vips) {
                Ok(inner) => match tun.write(inner) {
                    Ok(_) => stats.delivered += 1,
                    Err(_) => stats.write_errors += 1,
                },
                Err(DecapDrop::Malformed) => stats.malformed += 1,
                Err(DecapDrop::NotLocal) => stats.not_local += 1,
                Err(DecapDrop::NotVip) => stats.not_vip += 1,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipip::{Outer, encapsulate};

    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

    fn opts(mode: Mode) -> Options {
        Options {
            vips: vec![VIP, Ipv4Addr::new(203, 0, 113, 11), VIP],
            mode,
            dev: "lo".into(),
        }
    }

    fn fresh(mode: Mode) -> HostState {
        let mut s = HostState::default();
        for k in sysctl_keys(&opts(mode)) {
            s.sysctls.insert(k, 0);
        }
        s.sysctls.insert("net.ipv4.conf.all.rp_filter".into(), 1);
        s.addresses.insert(Ipv4Addr::new(192, 0, 2, 11));
        s
    }

    fn sysctl(key: &str, old: i64, new: i64) -> Change {
        Change::Sysctl {
            key: key.into(),
            old,
            new,
        }
    }

    #[test]
    fn dr_plan_on_a_fresh_host() {
        let p = plan(&opts(Mode::Dr), &fresh(Mode::Dr)).unwrap();
        assert_eq!(
            p,
            vec![
                Change::AddAddress {
                    dev: "lo".into(),
                    addr: VIP
                },
                Change::AddAddress {
                    dev: "lo".into(),
                    addr: Ipv4Addr::new(203, 0, 113, 11)
                },
                sysctl("net.ipv4.conf.all.arp_ignore", 0, 1),
                sysctl("net.ipv4.conf.all.arp_announce", 0, 2),
                sysctl("net.ipv4.conf.lo.arp_ignore", 0, 1),
                sysctl("net.ipv4.conf.lo.arp_announce", 0, 2),
            ]
        );
        assert_eq!(p[2].to_string(), "set net.ipv4.conf.all.arp_ignore 0 -> 1");
    }

    #[test]
    fn tun_plan_turns_off_all_rp_filter_and_adds_the_decapsulator() {
        let p = plan(&opts(Mode::Tun), &fresh(Mode::Tun)).unwrap();
        assert_eq!(p.len(), 8);
        assert_eq!(p[6], sysctl("net.ipv4.conf.all.rp_filter", 1, 0));
        assert_eq!(p[7], Change::Decapsulator);
        // Loose mode refuses address-less interfaces too.
        let mut s = fresh(Mode::Tun);
        s.sysctls.insert("net.ipv4.conf.all.rp_filter".into(), 2);
        let p = plan(&opts(Mode::Tun), &s).unwrap();
        assert_eq!(p[6], sysctl("net.ipv4.conf.all.rp_filter", 2, 0));
        // Off already: left alone.
        s.sysctls.insert("net.ipv4.conf.all.rp_filter".into(), 0);
        let p = plan(&opts(Mode::Tun), &s).unwrap();
        assert!(
            !p.iter()
                .any(|c| matches!(c, Change::Sysctl { key, .. } if key.ends_with("rp_filter")))
        );
    }

    #[test]
    fn a_prepared_host_needs_nothing_but_what_is_missing() {
        let mut s = fresh(Mode::Dr);
        for (k, v) in s.sysctls.iter_mut() {
            *v = if k.ends_with("arp_ignore") { 1 } else { 2 };
        }
        s.addresses.insert(VIP);
        let p = plan(&opts(Mode::Dr), &s).unwrap();
        assert_eq!(
            p,
            vec![Change::AddAddress {
                dev: "lo".into(),
                addr: Ipv4Addr::new(203, 0, 113, 11)
            }]
        );
        // Higher values than needed are kept.
        s.sysctls.insert("net.ipv4.conf.all.arp_ignore".into(), 8);
        assert_eq!(plan(&opts(Mode::Dr), &s).unwrap().len(), 1);
        // An unreadable sysctl stops the plan.
        s.sysctls.remove("net.ipv4.conf.lo.arp_announce");
        assert!(plan(&opts(Mode::Dr), &s).is_err());
    }

    #[test]
    fn decide_checks_outer_and_inner_destinations() {
        let local: BTreeSet<_> = [Ipv4Addr::new(192, 0, 2, 11)].into();
        let vips: BTreeSet<_> = [VIP].into();
        let mut inner = [
            0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 1, 203, 0, 113, 10,
        ];
        Ipv4Packet::new_unchecked(&mut inner[..]).fill_checksum();
        let packet = |dst: Ipv4Addr, inner: &[u8]| {
            let mut buf = [0u8; 64];
            let o = Outer {
                src: Ipv4Addr::new(192, 0, 2, 1),
                dst,
                ttl: 64,
                ident: 1,
                dscp_ecn: 0,
                dont_frag: true,
            };
            let n = encapsulate(&mut buf, &o, inner).unwrap();
            buf[..n].to_vec()
        };
        let good = packet(Ipv4Addr::new(192, 0, 2, 11), &inner);
        assert_eq!(decide(&good, &local, &vips), Ok(&inner[..]));
        let elsewhere = packet(Ipv4Addr::new(192, 0, 2, 99), &inner);
        assert_eq!(decide(&elsewhere, &local, &vips), Err(DecapDrop::NotLocal));
        let mut other = inner;
        other[19] = 99;
        Ipv4Packet::new_unchecked(&mut other[..]).fill_checksum();
        let not_vip = packet(Ipv4Addr::new(192, 0, 2, 11), &other);
        assert_eq!(decide(&not_vip, &local, &vips), Err(DecapDrop::NotVip));
        for n in 0..good.len() {
            assert_eq!(decide(&good[..n], &local, &vips), Err(DecapDrop::Malformed));
        }
    }
}
