//! `lvsd realserver`: prepares this host as a real server for DR or TUN forwarding, and
//! for TUN runs a userspace decapsulator, until SIGINT/SIGTERM; then undoes everything.
//!
//! What it changes (the seed notes' recipe; [`plan`] computes it from a snapshot of the
//! host, without root, so it is unit-tested):
//! - each VIP on the non-ARPing interface (`--dev`, default `lo`), unless the host already
//!   has it (then it is left alone, and left there): an IPv4 VIP as `/32`, an IPv6 VIP as
//!   `/128` with `nodad` (usable at once) and deprecated (never picked as the source of the
//!   host's own connections; replies from it are unaffected);
//! - with an IPv4 VIP: `net.ipv4.conf.{all,DEV}.arp_ignore` raised to 1 and `arp_announce`
//!   raised to 2, so the host never answers or announces the VIP in ARP (the kernel uses
//!   the maximum of `all` and the interface's value). IPv6 needs no counterpart: Linux
//!   answers a Neighbor Solicitation only for an address of the interface it arrived on
//!   (`ndisc_recv_ns` looks the target up strictly on that device), the multicast one for
//!   the VIP is not even delivered on another interface (the solicited-node group is joined
//!   on `DEV` only), and its own solicitations take their source from the outgoing
//!   interface, never from the VIP on `DEV` (the lab test
//!   `dr6_real_server_does_not_answer_neighbor_solicitations_for_its_vip` checks it);
//! - TUN only: a TUN device `lvstunN` (up, MTU 65535); with an IPv4 VIP `rp_filter` 0 on it
//!   and on `all` (the kernel uses max(all, interface); the inner packets arrive on the TUN
//!   device, which has no address, and the kernel's reverse-path check refuses every packet
//!   on an address-less interface in strict *and* loose mode; IPv6 has no such check). Other
//!   interfaces keep their own `rp_filter`; `all` = 0 only stops overriding them. With an
//!   IPv6 VIP, IPv6 on the TUN device (`disable_ipv6` 0 if the host's default disabled it).
//!   And one raw socket per tunnel kind ([`TunnelKind`]: IPv4 or IPv6 inside IPv4 or IPv6;
//!   the IPv6-outer ones only if the kernel has IPv6).
//!
//! Decapsulation (TUN): a datagram is taken apart by [`decide`]: its outer destination must
//! be one of this host's addresses (snapshot at start, VIPs included), the inner packet
//! must be a well-formed packet of the family the outer protocol announces (4: IPv4, 41:
//! IPv6), and its destination one of the VIPs; else it is dropped and counted by reason.
//! The inner packet is written unchanged to the TUN device; the kernel delivers it to the
//! local service, whose reply leaves from the VIP straight to the client. While the helper
//! runs, the kernel answers no tunnel packet with ICMP protocol unreachable or ICMPv6
//! parameter problem (a raw socket took it).
//!
//! Invariants: every change is recorded the moment it is made; on exit (signal, or a
//! failure part-way) the recorded changes are undone in reverse order and each is
//! printed; a value is restored only if it still holds what this helper wrote (an
//! administrator's later edit is kept, and said so).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::io::tun::{TunDevice, TunnelKind, TunnelSocket};
use crate::kernel::Kernel;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet};

/// Name pattern of the TUN device.
pub const TUN_PATTERN: &str = "lvstun%d";
/// MTU of the TUN device (inner packets are reassembled, so they may be large).
pub const TUN_MTU: u32 = 65535;
/// Receive buffer of each raw tunnel socket.
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
    /// The virtual addresses this host serves (IPv4 and/or IPv6).
    pub vips: Vec<IpAddr>,
    /// DR or TUN.
    pub mode: Mode,
    /// The non-ARPing interface for the VIPs.
    pub dev: String,
}

impl Options {
    /// Whether any VIP is IPv4 (then the ARP and reverse-path sysctls matter).
    pub fn has_v4_vip(&self) -> bool {
        self.vips.iter().any(IpAddr::is_ipv4)
    }

    /// Whether any VIP is IPv6.
    pub fn has_v6_vip(&self) -> bool {
        self.vips.iter().any(IpAddr::is_ipv6)
    }
}

/// The parts of the host [`plan`] looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    /// Current values of the sysctls [`sysctl_keys`] names (missing = unreadable).
    pub sysctls: BTreeMap<String, i64>,
    /// IPv4 and IPv6 addresses the host holds, on any interface.
    pub addresses: BTreeSet<IpAddr>,
}

/// One change to the host, with what undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add `addr` (`/32` or `/128`) to `dev`; undo: remove it.
    AddAddress {
        /// Interface.
        dev: String,
        /// The VIP.
        addr: IpAddr,
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
    /// Create the TUN device and the raw tunnel sockets; set `rp_filter` 0 on the device
    /// (and enable IPv6 on it for IPv6 VIPs). Undo: close them all (the device
    /// disappears, with its settings).
    Decapsulator,
}

/// Prefix length a VIP is added with: 32 or 128.
pub fn vip_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddAddress { dev, addr } => {
                write!(f, "add {addr}/{} to {dev}", vip_prefix(*addr))
            }
            Change::Sysctl { key, old, new } => write!(f, "set {key} {old} -> {new}"),
            Change::Decapsulator => write!(
                f,
                "create TUN device {TUN_PATTERN} (rp_filter 0) and raw sockets for IPv4 and \
                 IPv6 in IPv4 and IPv6 (userspace decapsulation)"
            ),
        }
    }
}

/// The sysctls [`plan`] reads, for `opts`.
pub fn sysctl_keys(opts: &Options) -> Vec<String> {
    let mut keys = Vec::new();
    if !opts.has_v4_vip() {
        return keys;
    }
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
    let read = |key: &str| {
        state
            .sysctls
            .get(key)
            .copied()
            .ok_or_else(|| format!("cannot read {key}"))
    };
    if opts.has_v4_vip() {
        let mut devs = vec!["all"];
        if opts.dev != "all" {
            devs.push(opts.dev.as_str());
        }
        for dev in &devs {
            for (knob, want) in [("arp_ignore", 1), ("arp_announce", 2)] {
                let key = format!("net.ipv4.conf.{dev}.{knob}");
                let old = read(&key)?;
                if old < want {
                    changes.push(Change::Sysctl {
                        key,
                        old,
                        new: want,
                    });
                }
            }
        }
    }
    if opts.mode == Mode::Tun {
        if opts.has_v4_vip() {
            let key = "net.ipv4.conf.all.rp_filter".to_string();
            let old = read(&key)?;
            if old != 0 {
                changes.push(Change::Sysctl { key, old, new: 0 });
            }
        }
        changes.push(Change::Decapsulator);
    }
    Ok(changes)
}

/// Why a decapsulated packet was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapDrop {
    /// Not a well-formed tunnel packet with an inner packet of the announced family.
    Malformed,
    /// The outer destination is not one of this host's addresses (or unknown).
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
    /// Delivered, per [`TunnelKind`] (in [`TunnelKind::ALL`] order).
    pub by_kind: [u64; 4],
}

impl DecapStats {
    fn count(&mut self, kind: TunnelKind, outcome: Result<(), DecapDrop>) {
        match outcome {
            Ok(()) => {
                self.delivered += 1;
                if let Some(i) = TunnelKind::ALL.iter().position(|k| *k == kind) {
                    self.by_kind[i] += 1;
                }
            }
            Err(DecapDrop::Malformed) => self.malformed += 1,
            Err(DecapDrop::NotLocal) => self.not_local += 1,
            Err(DecapDrop::NotVip) => self.not_vip += 1,
        }
    }
}

impl fmt::Display for DecapStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered={} drop.malformed={} drop.not_local={} drop.not_vip={} write_errors={}",
            self.delivered, self.malformed, self.not_local, self.not_vip, self.write_errors
        )?;
        for (kind, n) in TunnelKind::ALL.iter().zip(self.by_kind) {
            write!(f, " {}={n}", kind.name())?;
        }
        Ok(())
    }
}

/// A checked inner packet of IP `version`: the packet cut to its own length and its
/// destination.
fn inner_packet(bytes: &[u8], version: u8) -> Result<(&[u8], IpAddr), DecapDrop> {
    match version {
        4 => {
            let p = Ipv4Packet::new_checked(bytes).map_err(|_| DecapDrop::Malformed)?;
            let len = usize::from(p.total_len());
            if len < p.header_len() {
                return Err(DecapDrop::Malformed);
            }
            let cut = bytes.get(..len).ok_or(DecapDrop::Malformed)?;
            Ok((cut, IpAddr::V4(p.dst_addr())))
        }
        6 => {
            let p = Ipv6Packet::new_checked(bytes).map_err(|_| DecapDrop::Malformed)?;
            if p.version() != 6 {
                return Err(DecapDrop::Malformed);
            }
            let len = ipv6::HEADER_LEN + usize::from(p.payload_len());
            let cut = bytes.get(..len).ok_or(DecapDrop::Malformed)?;
            Ok((cut, IpAddr::V6(p.dst_addr())))
        }
        _ => Err(DecapDrop::Malformed),
    }
}

/// Decides what to do with one datagram received by the [`TunnelSocket`] of `kind`: the
/// inner packet to deliver, or why not. `datagram` is what the socket returned (IPv4
/// outer: the whole outer packet; IPv6 outer: its payload, the outer destination in
/// `outer_dst6`). Pure.
pub fn decide<'a>(
    kind: TunnelKind,
    datagram: &'a [u8],
    outer_dst6: Option<Ipv6Addr>,
    local: &BTreeSet<IpAddr>,
    vips: &BTreeSet<IpAddr>,
) -> Result<&'a [u8], DecapDrop> {
    let (outer_dst, payload) = if kind.outer_is_v6() {
        let dst = outer_dst6.ok_or(DecapDrop::NotLocal)?;
        (IpAddr::V6(dst), datagram)
    } else {
        let outer = Ipv4Packet::new_checked(datagram).map_err(|_| DecapDrop::Malformed)?;
        // The kernel reassembles before a raw socket sees the packet.
        if outer.is_fragment() || outer.protocol().0 != kind.protocol() {
            return Err(DecapDrop::Malformed);
        }
        let payload = datagram
            .get(outer.header_len()..usize::from(outer.total_len()))
            .ok_or(DecapDrop::Malformed)?;
        (IpAddr::V4(outer.dst_addr()), payload)
    };
    if !local.contains(&outer_dst) {
        return Err(DecapDrop::NotLocal);
    }
    let (inner, dst) = inner_packet(payload, kind.inner_version())?;
    if !vips.contains(&dst) {
        return Err(DecapDrop::NotVip);
    }
    Ok(inner)
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
        state
            .addresses
            .extend(l.ipv4.iter().map(|(a, _)| IpAddr::V4(*a)));
        state
            .addresses
            .extend(l.ipv6.iter().map(|(a, _)| IpAddr::V6(*a)));
    }
    Ok(state)
}

/// The TUN device and the raw sockets of a running decapsulator.
struct Decapsulator {
    tun: TunDevice,
    sockets: Vec<TunnelSocket>,
}

/// What has been done so far, to undo.
struct Applied {
    kernel: Kernel,
    done: Vec<Change>,
    decap: Option<Decapsulator>,
    /// Whether the TUN device must accept IPv6 (an IPv6 VIP).
    ipv6: bool,
}

impl Applied {
    fn apply(&mut self, c: &Change) -> Result<(), String> {
        match c {
            Change::AddAddress { dev, addr } => {
                let ifindex = self.ifindex(dev)?;
                self.kernel
                    .add_vip(ifindex, *addr)
                    .map_err(|e| e.to_string())?;
            }
            Change::Sysctl { key, new, .. } => write_sysctl(key, *new)?,
            Change::Decapsulator => return self.start_decapsulator(c),
        }
        println!("lvsd realserver: {c}");
        self.done.push(c.clone());
        Ok(())
    }

    fn start_decapsulator(&mut self, c: &Change) -> Result<(), String> {
        let tun =
            TunDevice::create(TUN_PATTERN).map_err(|e| format!("creating the TUN device: {e}"))?;
        let mut sockets = Vec::new();
        let mut skipped = Vec::new();
        for kind in TunnelKind::ALL {
            match TunnelSocket::open(kind, RCVBUF) {
                Ok(s) => sockets.push(s),
                // A kernel without IPv6: no IPv6-outer tunnels can arrive.
                Err(e) if kind.outer_is_v6() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                    skipped.push(kind.name());
                }
                Err(e) => {
                    return Err(format!("opening the raw {} socket: {e}", kind.name()));
                }
            }
        }
        let name = tun.name().to_string();
        // Recorded before anything else can fail, so that it is undone.
        self.decap = Some(Decapsulator { tun, sockets });
        self.done.push(c.clone());
        if let Some(d) = &self.decap {
            d.tun
                .set_up(TUN_MTU)
                .map_err(|e| format!("setting {name} up: {e}"))?;
        }
        write_sysctl(&format!("net.ipv4.conf.{name}.rp_filter"), 0)?;
        if self.ipv6 {
            let key = format!("net.ipv6.conf.{name}.disable_ipv6");
            if read_sysctl(&key).is_some_and(|v| v != 0) {
                write_sysctl(&key, 0)?;
            }
        }
        let kinds: Vec<&str> = self
            .decap
            .iter()
            .flat_map(|d| d.sockets.iter().map(|s| s.kind().name()))
            .collect();
        println!(
            "lvsd realserver: created {name} (rp_filter 0) and raw sockets for {}{}",
            kinds.join(", "),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" (no IPv6 in this kernel: not {})", skipped.join(", "))
            }
        );
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
                    let len = vip_prefix(*addr);
                    let r = self
                        .ifindex(dev)
                        .and_then(|i| self.kernel.del_vip(i, *addr).map_err(|e| e.to_string()));
                    match r {
                        Ok(()) => println!("lvsd realserver: removed {addr}/{len} from {dev}"),
                        Err(e) => {
                            ok = false;
                            eprintln!("lvsd realserver: removing {addr}/{len} from {dev}: {e}");
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
                    if let Some(d) = self.decap.take() {
                        let name = d.tun.name().to_string();
                        drop(d.sockets);
                        drop(d.tun);
                        println!("lvsd realserver: removed {name} and the raw tunnel sockets");
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
        ipv6: opts.has_v6_vip(),
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
    let Some(decap) = &applied.decap else {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
        }
        return Ok(());
    };
    let vips: BTreeSet<IpAddr> = opts.vips.iter().copied().collect();
    let mut local = state.addresses.clone();
    local.extend(vips.iter().copied());
    let fds: Vec<BorrowedFd<'_>> = decap.sockets.iter().map(AsFd::as_fd).collect();
    let mut ready = vec![false; fds.len()];
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        crate::io::poll_readable(&fds, Some(tick), &mut ready)
            .map_err(|e| format!("waiting for tunnel packets: {e}"))?;
        for (sock, _) in decap.sockets.iter().zip(&ready).filter(|(_, r)| **r) {
            // Bounded per wake-up, so a flood cannot hide a signal.
            for _ in 0..256 {
                let Some(rx) = sock.recv(&mut buf).map_err(|e| format!("receiving: {e}"))? else {
                    break;
                };
                let Some(datagram) = buf.get(..rx.len) else {
                    break;
                };
                let kind = sock.kind();
                match decide(kind, datagram, rx.outer_dst6, &local, &vips) {
                    Ok(inner) => match decap.tun.write(inner) {
                        Ok(_) => stats.count(kind, Ok(())),
                        Err(_) => stats.write_errors += 1,
                    },
                    Err(why) => stats.count(kind, Err(why)),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipip::{Outer, encapsulate};
    use std::net::Ipv4Addr;

    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
    const RIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
    const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);

    fn opts(mode: Mode) -> Options {
        Options {
            vips: vec![
                IpAddr::V4(VIP),
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11)),
                IpAddr::V4(VIP),
            ],
            mode,
            dev: "lo".into(),
        }
    }

    fn opts6(mode: Mode) -> Options {
        Options {
            vips: vec![IpAddr::V6(VIP6)],
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
        s.addresses.insert(IpAddr::V4(RIP));
        s.addresses.insert(IpAddr::V6(RIP6));
        s
    }

    fn sysctl(key: &str, old: i64, new: i64) -> Change {
        Change::Sysctl {
            key: key.into(),
            old,
            new,
        }
    }

    fn add(addr: impl Into<IpAddr>) -> Change {
        Change::AddAddress {
            dev: "lo".into(),
            addr: addr.into(),
        }
    }

    #[test]
    fn dr_plan_on_a_fresh_host() {
        let p = plan(&opts(Mode::Dr), &fresh(Mode::Dr)).unwrap();
        assert_eq!(
            p,
            vec![
                add(VIP),
                add(Ipv4Addr::new(203, 0, 113, 11)),
                sysctl("net.ipv4.conf.all.arp_ignore", 0, 1),
                sysctl("net.ipv4.conf.all.arp_announce", 0, 2),
                sysctl("net.ipv4.conf.lo.arp_ignore", 0, 1),
                sysctl("net.ipv4.conf.lo.arp_announce", 0, 2),
            ]
        );
        assert_eq!(p[2].to_string(), "set net.ipv4.conf.all.arp_ignore 0 -> 1");
        assert_eq!(p[0].to_string(), "add 203.0.113.10/32 to lo");
    }

    #[test]
    fn ipv6_vips_need_no_arp_sysctls() {
        // DR: only the address; no sysctl is even read.
        assert!(sysctl_keys(&opts6(Mode::Dr)).is_empty());
        let p = plan(&opts6(Mode::Dr), &HostState::default()).unwrap();
        assert_eq!(p, vec![add(VIP6)]);
        assert_eq!(p[0].to_string(), "add 2001:db8:f::10/128 to lo");
        // TUN: the address and the decapsulator; rp_filter is an IPv4 matter.
        let p = plan(&opts6(Mode::Tun), &HostState::default()).unwrap();
        assert_eq!(p, vec![add(VIP6), Change::Decapsulator]);
        // Held already: nothing but the decapsulator.
        let mut s = HostState::default();
        s.addresses.insert(IpAddr::V6(VIP6));
        assert_eq!(
            plan(&opts6(Mode::Tun), &s).unwrap(),
            vec![Change::Decapsulator]
        );
        // Both families: the IPv4 VIP brings the ARP sysctls back.
        let mut both = opts6(Mode::Dr);
        both.vips.push(IpAddr::V4(VIP));
        assert_eq!(sysctl_keys(&both).len(), 4);
        let p = plan(&both, &fresh(Mode::Dr)).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p[..2], [add(VIP6), add(VIP)]);
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
        s.addresses.insert(IpAddr::V4(VIP));
        let p = plan(&opts(Mode::Dr), &s).unwrap();
        assert_eq!(p, vec![add(Ipv4Addr::new(203, 0, 113, 11))]);
        // Higher values than needed are kept.
        s.sysctls.insert("net.ipv4.conf.all.arp_ignore".into(), 8);
        assert_eq!(plan(&opts(Mode::Dr), &s).unwrap().len(), 1);
        // An unreadable sysctl stops the plan.
        s.sysctls.remove("net.ipv4.conf.lo.arp_announce");
        assert!(plan(&opts(Mode::Dr), &s).is_err());
    }

    /// A minimal inner IPv4 UDP header packet to `dst` (checksum filled).
    fn inner4(dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 1, 0, 0, 0, 0,
        ];
        p[16..20].copy_from_slice(&dst.octets());
        Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
        p
    }

    /// An inner IPv6 packet to `dst` with an 8-byte payload (no next header).
    fn inner6(dst: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 59, 64];
        p.extend(Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10).octets());
        p.extend(dst.octets());
        p.extend([0xab; 8]);
        p
    }

    /// `inner` in an outer IPv4 header to `dst` with protocol `proto`.
    fn outer4(dst: Ipv4Addr, proto: u8, inner: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 20 + inner.len()];
        let o = Outer {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst,
            ttl: 64,
            ident: 1,
            dscp_ecn: 0,
            dont_frag: true,
        };
        let n = encapsulate(&mut buf, &o, inner).unwrap();
        buf.truncate(n);
        buf[9] = proto;
        Ipv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        buf
    }

    #[test]
    fn decide_checks_outer_and_inner_destinations() {
        let local: BTreeSet<IpAddr> = [IpAddr::V4(RIP)].into();
        let vips: BTreeSet<IpAddr> = [IpAddr::V4(VIP)].into();
        let inner = inner4(VIP);
        let k = TunnelKind::Ipv4InIpv4;
        let good = outer4(RIP, 4, &inner);
        assert_eq!(decide(k, &good, None, &local, &vips), Ok(&inner[..]));
        // Trailing bytes beyond the outer total length are not part of the inner packet.
        let mut padded = good.clone();
        padded.extend([0; 6]);
        assert_eq!(decide(k, &padded, None, &local, &vips), Ok(&inner[..]));
        let elsewhere = outer4(Ipv4Addr::new(192, 0, 2, 99), 4, &inner);
        assert_eq!(
            decide(k, &elsewhere, None, &local, &vips),
            Err(DecapDrop::NotLocal)
        );
        let not_vip = outer4(RIP, 4, &inner4(Ipv4Addr::new(203, 0, 113, 99)));
        assert_eq!(
            decide(k, &not_vip, None, &local, &vips),
            Err(DecapDrop::NotVip)
        );
        // The protocol must match the socket's kind, the inner version the protocol.
        assert_eq!(
            decide(k, &outer4(RIP, 41, &inner), None, &local, &vips),
            Err(DecapDrop::Malformed)
        );
        assert_eq!(
            decide(
                TunnelKind::Ipv6InIpv4,
                &outer4(RIP, 41, &inner),
                None,
                &local,
                &vips
            ),
            Err(DecapDrop::Malformed)
        );
        for n in 0..good.len() {
            assert_eq!(
                decide(k, &good[..n], None, &local, &vips),
                Err(DecapDrop::Malformed),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn decide_handles_every_family_combination() {
        let local: BTreeSet<IpAddr> = [IpAddr::V4(RIP), IpAddr::V6(RIP6)].into();
        let vips: BTreeSet<IpAddr> = [IpAddr::V4(VIP), IpAddr::V6(VIP6)].into();
        let (i4, i6) = (inner4(VIP), inner6(VIP6));
        // What the decapsulator uses: the host's addresses and the VIPs.
        let mut with_vips = local.clone();
        with_vips.extend(vips.iter().copied());

        // IPv6 in IPv4 (protocol 41): the whole outer packet.
        let six_in_four = outer4(RIP, 41, &i6);
        assert_eq!(
            decide(TunnelKind::Ipv6InIpv4, &six_in_four, None, &local, &vips),
            Ok(&i6[..])
        );
        // IPv6 outer: the socket hands over the payload and the destination.
        for (kind, inner) in [(TunnelKind::Ipv6InIpv6, &i6), (TunnelKind::Ipv4InIpv6, &i4)] {
            assert_eq!(
                decide(kind, inner, Some(RIP6), &local, &vips),
                Ok(&inner[..]),
                "{kind:?}"
            );
            assert_eq!(
                decide(kind, inner, Some(VIP6), &with_vips, &vips),
                Ok(&inner[..]),
                "to the VIP itself"
            );
            assert_eq!(
                decide(kind, inner, None, &local, &vips),
                Err(DecapDrop::NotLocal),
                "no IPV6_PKTINFO"
            );
            let far = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x99);
            assert_eq!(
                decide(kind, inner, Some(far), &local, &vips),
                Err(DecapDrop::NotLocal)
            );
            for n in 0..inner.len() {
                assert_eq!(
                    decide(kind, &inner[..n], Some(RIP6), &local, &vips),
                    Err(DecapDrop::Malformed),
                    "{kind:?} {n} bytes"
                );
            }
        }
        // The inner version must be the announced one.
        assert_eq!(
            decide(TunnelKind::Ipv6InIpv6, &i4, Some(RIP6), &local, &vips),
            Err(DecapDrop::Malformed)
        );
        assert_eq!(
            decide(TunnelKind::Ipv4InIpv6, &i6, Some(RIP6), &local, &vips),
            Err(DecapDrop::Malformed)
        );
        // An inner IPv6 packet to another address.
        let other = inner6(Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x99));
        assert_eq!(
            decide(TunnelKind::Ipv6InIpv6, &other, Some(RIP6), &local, &vips),
            Err(DecapDrop::NotVip)
        );
    }

    #[test]
    fn stats_count_per_kind() {
        let mut s = DecapStats::default();
        s.count(TunnelKind::Ipv6InIpv6, Ok(()));
        s.count(TunnelKind::Ipv4InIpv4, Ok(()));
        s.count(TunnelKind::Ipv4InIpv6, Err(DecapDrop::NotVip));
        assert_eq!(
            s.to_string(),
            "delivered=2 drop.malformed=0 drop.not_local=0 drop.not_vip=1 write_errors=0 \
             ipip=1 6in4=0 4in6=0 ip6ip6=1"
        );
    }
}
