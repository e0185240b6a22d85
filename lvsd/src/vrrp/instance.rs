//! One virtual router: the RFC 9568 §6.4 / RFC 3768 §6.4 state machine, time injected.
//!
//! Invariants (checked by the tests in `vrrp::tests`):
//! - VIPs are held exactly while the state is `Master`: every entry into `Master` emits
//!   `AddVips` and every exit emits `RemoveVips`, in the same call.
//! - In `Master` the advert timer is armed and the master-down timer is not; in `Backup`
//!   the reverse; in `Init` and `Fault` no protocol timer is armed.
//! - A rejected packet only bumps its counter (and, for an owner conflict, lowers the
//!   effective priority to 254 like keepalived): no action, no transition.
//! - Every state change emits exactly one `Action::Transition` and bumps `transitions`.
//! - One address family per instance: an IPv6 instance (`InstanceConfig::ipv6`) reads
//!   and writes IPv6 adverts only (16-byte addresses, the IPv6 pseudo-header checksum,
//!   hop limit 255) and emits `AddVips6` / `RemoveVips6`; an IPv4 one as before.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use lvs_proto::{IpPrefix, VrrpInstanceInfo, VrrpState};

use super::config::{ConfigError, InstanceConfig, V3Checksum};
use super::counters::{Counters, Reject};
use super::{Action, Reason};
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::vrrp::{
    ChecksumMode, IP_PROTOCOL, MULTICAST_ADDR, MULTICAST_ADDR_V6, TTL, TYPE_ADVERTISEMENT, Version,
    VrrpAddr, VrrpPacket, VrrpRepr,
};

/// The IP header fields the receive checks need, and the VRRP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The IP payload (the VRRP message), trimmed to the IP total length.
    pub payload: &'a [u8],
}

impl<'a> Received<'a> {
    /// Reads an IPv4 packet as a raw protocol-112 socket hands it over (header included).
    pub fn from_ipv4(packet: &'a [u8]) -> Result<Self, Reject> {
        let ip = Ipv4Packet::new_checked(packet).map_err(|_| Reject::IpHeader)?;
        let repr = Ipv4Repr::parse(&ip).map_err(|_| Reject::IpHeader)?;
        if repr.protocol != IP_PROTOCOL {
            return Err(Reject::IpHeader);
        }
        let start = ip.header_len();
        let end = usize::from(ip.total_len());
        let payload = packet.get(start..end).ok_or(Reject::IpHeader)?;
        Ok(Received {
            src: IpAddr::V4(repr.src_addr),
            dst: IpAddr::V4(repr.dst_addr),
            ttl: repr.ttl,
            payload,
        })
    }

    /// Reads a whole IPv6 packet whose next header is VRRP (no extension headers; the
    /// simulator and tests use this — the driver's raw socket hands over the fields).
    pub fn from_ipv6(packet: &'a [u8]) -> Result<Self, Reject> {
        let ip = Ipv6Packet::new_checked(packet).map_err(|_| Reject::IpHeader)?;
        if ip.next_header() != IP_PROTOCOL.0 {
            return Err(Reject::IpHeader);
        }
        let end = 40 + usize::from(ip.payload_len());
        let payload = packet.get(40..end).ok_or(Reject::IpHeader)?;
        Ok(Received {
            src: IpAddr::V6(ip.src_addr()),
            dst: IpAddr::V6(ip.dst_addr()),
            ttl: ip.hop_limit(),
            payload,
        })
    }
}

/// What the state machine needs of an accepted advert, either family.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Advert {
    priority: u8,
    adver_int: u16,
    addrs: Vec<IpAddr>,
}

impl<A: VrrpAddr + Into<IpAddr>> From<VrrpRepr<A>> for Advert {
    fn from(r: VrrpRepr<A>) -> Self {
        Advert {
            priority: r.priority,
            adver_int: r.adver_int,
            addrs: r.addrs.into_iter().map(Into::into).collect(),
        }
    }
}

/// One `vrrp_instance`.
#[derive(Debug, Clone)]
pub struct Instance {
    config: InstanceConfig,
    state: VrrpState,
    /// Priority in effect: the configured one, 254 after an owner conflict.
    priority: u8,
    /// Stopped gracefully (reported priority 0).
    stopped: bool,
    /// Master_Adver_Interval (RFC 9568 §6.1): v3 adopts the master's; v2 keeps ours.
    master_adver_interval: Duration,
    /// The master we last heard (address, priority), or ourselves while master.
    master: Option<(IpAddr, u8)>,
    adver_timer: Option<Instant>,
    down_timer: Option<Instant>,
    /// keepalived preempt_delay: when a waiting backup may preempt.
    preempt_at: Option<Instant>,
    /// The down timer was cut to Skew_Time by this sender's priority-0 advert.
    resigned_by: Option<IpAddr>,
    garp_delay_at: Option<Instant>,
    garp_refresh_at: Option<Instant>,
    links_down: BTreeSet<String>,
    /// Held in FAULT by its sync group (a sibling is faulty).
    group_fault: bool,
    sync_group: Option<String>,
    counters: Counters,
    last_transition: Option<Instant>,
    last_reason: String,
}

impl Instance {
    /// A stopped instance (state `Init`); [`Instance::start`] runs it.
    pub fn new(config: InstanceConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Instance {
            priority: config.priority,
            master_adver_interval: config.advert_interval,
            config,
            state: VrrpState::Init,
            stopped: false,
            master: None,
            adver_timer: None,
            down_timer: None,
            preempt_at: None,
            resigned_by: None,
            garp_delay_at: None,
            garp_refresh_at: None,
            links_down: BTreeSet::new(),
            group_fault: false,
            sync_group: None,
            counters: Counters::default(),
            last_transition: None,
            last_reason: String::new(),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// State now.
    pub fn state(&self) -> VrrpState {
        self.state
    }

    /// Priority in effect: configured, 254 after an owner conflict, 0 once stopped.
    pub fn effective_priority(&self) -> u8 {
        if self.stopped { 0 } else { self.priority }
    }

    /// Master_Adver_Interval in effect.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// The IPv4 master last heard from (ourselves while master), and its priority;
    /// `None` for an IPv6 instance ([`Instance::master_ip`]).
    pub fn master(&self) -> Option<(Ipv4Addr, u8)> {
        match self.master {
            Some((IpAddr::V4(a), p)) => Some((a, p)),
            _ => None,
        }
    }

    /// The master last heard from (ourselves while master), and its priority.
    pub fn master_ip(&self) -> Option<(IpAddr, u8)> {
        self.master
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether the VIPs are held (exactly while master).
    pub fn holds_vips(&self) -> bool {
        self.state == VrrpState::Master
    }

    /// Records the sync group it belongs to (set by [`super::Router`]).
    pub(crate) fn set_sync_group(&mut self, name: Option<String>) {
        self.sync_group = name;
    }

    /// Whether one of its own or tracked interfaces is down.
    pub fn link_fault(&self) -> bool {
        !self.links_down.is_empty()
    }

    /// Skew_Time: v2 `(256 − Priority) / 256` s (RFC 3768 §6.1); v3
    /// `((256 − Priority) × Master_Adver_Interval) / 256` (RFC 9568 §6.1).
    pub fn skew_time(&self) -> Duration {
        let weight = 256 - u64::from(self.priority);
        let base = match self.config.version {
            Version::V2 => Duration::from_secs(1),
            Version::V3 => self.master_adver_interval,
        };
        let us = u64::try_from(base.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(weight.saturating_mul(us) / 256)
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time (RFC 9568 §6.1;
    /// RFC 3768 §6.1 with the configured interval).
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval * 3 + self.skew_time()
    }

    fn preempts(&self) -> bool {
        // RFC 9568 §6.1 Preempt_Mode: the address owner always preempts.
        self.config.preempt || self.priority == 255
    }

    /// The earliest instant [`Instance::handle_timeout`] has work; `None` = none armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.adver_timer,
            self.down_timer,
            self.preempt_at,
            self.garp_delay_at,
            self.garp_refresh_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts (or restarts) the instance: RFC 9568 §6.4.1. The owner becomes master at
    /// once; others become backup with the master-down timer armed; a tracked interface
    /// that is down means FAULT. No-op unless in `Init`.
    pub fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != VrrpState::Init {
            return;
        }
        self.stopped = false;
        self.priority = self.config.priority;
        self.master_adver_interval = self.config.advert_interval;
        self.master = None;
        if let Some(iface) = self.links_down.iter().next().cloned() {
            self.go_fault(now, Reason::InterfaceDown(iface), out);
        } else if self.group_fault {
            let reason = Reason::SyncGroup {
                group: self.sync_group.clone().unwrap_or_default(),
                instance: "a member with a faulty interface".to_string(),
            };
            self.go_fault(now, reason, out);
        } else if self.priority == 255 {
            self.go_master(now, Reason::Owner, out);
        } else {
            self.go_backup(now, Reason::Startup, out);
        }
    }

    /// Graceful stop (RFC 9568 §6.4.2/§6.4.3 "Shutdown"): a master sends a priority-0
    /// advert so a backup takes over after Skew_Time, then releases the VIPs. Ends in
    /// `Init` with every timer cancelled.
    pub fn stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state == VrrpState::Master {
            self.send_advert(0, out);
        }
        self.set_state(now, VrrpState::Init, Reason::Shutdown, out);
        self.stopped = true;
    }

    /// Feeds a whole IPv6 packet (fixed header, then VRRP).
    pub fn handle_packet6(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        match Received::from_ipv6(packet) {
            Ok(rx) => self.handle_advert(now, &rx, out),
            Err(r) => {
                self.counters.reject(r);
                Err(r)
            }
        }
    }

    /// Feeds a whole IPv4 packet (raw protocol-112 socket, header included).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        match Received::from_ipv4(packet) {
            Ok(rx) => self.handle_advert(now, &rx, out),
            Err(r) => {
                self.counters.reject(r);
                Err(r)
            }
        }
    }

    /// Feeds a received advert. Every check of RFC 9568 §7.1 / RFC 3768 §7.1 (and the
    /// unicast, loop and owner checks) runs first; a failure is counted and changes
    /// nothing else (module invariants).
    pub fn handle_advert(
        &mut self,
        now: Instant,
        rx: &Received<'_>,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let advert = match self.check(rx) {
            Ok(a) => a,
            Err(r) => {
                self.counters.reject(r);
                if r == Reject::OwnerConflict {
                    // keepalived: "CONFIGURATION ERROR ... both configured as address
                    // owner ... reducing local priority".
                    tracing::error!(
                        instance = %self.config.name,
                        peer = %rx.src,
                        "VRRP configuration error: both routers are the address owner \
                         (priority 255); reducing local priority to 254"
                    );
                    self.priority = 254;
                } else {
                    tracing::debug!(instance = %self.config.name, src = %rx.src, reason = %r,
                        "VRRP advert dropped");
                }
                return Err(r);
            }
        };
        self.counters.advert_rcvd += 1;
        if advert.priority == 0 {
            self.counters.pri_zero_rcvd += 1;
        }
        if !self.same_addresses(&advert.addrs) {
            self.counters.addr_list_err += 1;
            tracing::warn!(instance = %self.config.name, src = %rx.src,
                "VRRP advert address list differs from ours");
        }
        match self.state {
            VrrpState::Backup => self.backup_rx(now, rx.src, &advert),
            VrrpState::Master => self.master_rx(now, rx.src, &advert, out),
            VrrpState::Init | VrrpState::Fault => {}
        }
        Ok(())
    }

    fn check(&self, rx: &Received<'_>) -> Result<Advert, Reject> {
        match (rx.src, rx.dst, self.config.is_ipv6()) {
            (IpAddr::V4(s), IpAddr::V4(d), false) => self.check_as::<Ipv4Addr>(rx, s, d),
            (IpAddr::V6(s), IpAddr::V6(d), true) => self.check_as::<Ipv6Addr>(rx, s, d),
            // The other family's packet (the router demultiplexes by family).
            _ => Err(Reject::IpHeader),
        }
    }

    fn check_as<A: VrrpAddr + Into<IpAddr>>(
        &self,
        rx: &Received<'_>,
        src: A,
        dst: A,
    ) -> Result<Advert, Reject> {
        let c = &self.config;
        // RFC 9568 §7.1: "MUST verify that the IPv4 TTL [IPv6 Hop Limit] is 255";
        // unicast per config.
        let multicast = rx.dst.is_multicast() || !c.is_unicast();
        let ttl_ok = if multicast {
            rx.ttl == TTL
        } else {
            c.accept.unicast_ttl.is_none_or(|t| rx.ttl == t)
        };
        if !ttl_ok {
            return Err(Reject::IpTtl);
        }
        // "MUST verify the VRRP version".
        let first = rx.payload.first().ok_or(Reject::PacketLen)?;
        if first >> 4 != c.version.number() {
            return Err(Reject::Version);
        }
        // "MUST verify that the received packet contains the complete VRRP packet
        // (including fixed fields, and IPvX address(es))".
        let p = VrrpPacket::<_, A>::new_checked_as(rx.payload).map_err(|_| Reject::PacketLen)?;
        if p.msg_type() != TYPE_ADVERTISEMENT {
            return Err(Reject::InvalidType);
        }
        // "MUST verify the VRRP checksum" (RFC 9568 §7.1; §5.2.8 for the IPv4 form, or
        // the pseudo-header compatibility flavour).
        let mode = self.checksum_mode();
        if !p.verify_checksum(mode, src, dst) {
            return Err(Reject::Checksum);
        }
        // "MUST verify that the VRID is configured on the receiving interface".
        if p.vrid() != c.vrid {
            return Err(Reject::Vrid);
        }
        if rx.src == c.primary() {
            return Err(Reject::OwnPacket);
        }
        if c.is_unicast() && !c.peers().contains(&rx.src) {
            return Err(Reject::UnicastPeer);
        }
        match c.version {
            Version::V2 => {
                // RFC 3768 §7.1: auth type and Adver Int MUST match ours.
                if p.auth_type() != c.auth_type {
                    return Err(Reject::AuthType);
                }
                if p.adver_int() != c.adver_int_field() {
                    return Err(Reject::AdvertInterval);
                }
            }
            Version::V3 => {
                // RFC 9568 §7.1 (erratum 8301): "MUST verify that the Max Advertise
                // Interval is non zero".
                if p.adver_int() == 0 {
                    return Err(Reject::AdvertInterval);
                }
            }
        }
        // RFC 9568 §7.1: "the local router is not the IPvX address owner"; a second
        // owner is a configuration error (handled by the caller). Other adverts reach an
        // owner's state machine like keepalived's, where nothing can demote it (no
        // priority is above 255): it only answers priority 0 at once and heals a
        // second, lower master (re-advert and GARP).
        if self.priority == 255 && p.priority() == 255 {
            return Err(Reject::OwnerConflict);
        }
        VrrpRepr::parse(&p)
            .map(Advert::from)
            .map_err(|_| Reject::PacketLen)
    }

    fn same_addresses(&self, addrs: &[IpAddr]) -> bool {
        let mut ours = self.config.vip_addrs();
        let mut theirs = addrs.to_vec();
        ours.sort_unstable();
        theirs.sort_unstable();
        ours == theirs
    }

    /// RFC 9568 §6.4.2 (RFC 3768 §6.4.2): an advert received in Backup.
    fn backup_rx(&mut self, now: Instant, src: IpAddr, a: &Advert) {
        if a.priority == 0 {
            // "If the Priority in the ADVERTISEMENT is zero, then: Set the
            // Active_Down_Timer to Skew_Time".
            self.master = None;
            self.resigned_by = Some(src);
            self.down_timer = Some(now + self.skew_time());
            return;
        }
        self.master = Some((src, a.priority));
        self.resigned_by = None;
        let lower = a.priority < self.priority;
        let hold_for_delay = lower && self.preempts() && self.preempt_delay_holds(now);
        if !self.preempts() || !lower || hold_for_delay {
            if !lower {
                self.preempt_at = None;
            }
            // "Set Active_Adver_Interval to Adver Interval contained in the
            // ADVERTISEMENT, Recompute the Skew_Time, Recompute the
            // Active_Down_Interval, Reset the Active_Down_Timer".
            self.adopt_interval(a);
            self.down_timer = Some(now + self.master_down_interval());
        }
        // Otherwise (preempting, higher local priority): discard; the down timer runs
        // out and we take over.
    }

    /// keepalived preempt_delay: the first lower-priority advert arms the delay; until it
    /// expires, lower-priority adverts still hold us in Backup.
    fn preempt_delay_holds(&mut self, now: Instant) -> bool {
        if self.config.preempt_delay.is_zero() {
            return false;
        }
        let at = *self
            .preempt_at
            .get_or_insert(now + self.config.preempt_delay);
        now < at
    }

    fn adopt_interval(&mut self, a: &Advert) {
        // RFC 9568 §6.4.2/§6.4.3: v3 adopts the master's interval; v2 has checked that
        // it equals ours (RFC 3768 §7.1).
        if self.config.version == Version::V3 && a.adver_int > 0 {
            self.master_adver_interval = Duration::from_millis(u64::from(a.adver_int) * 10);
        }
    }

    /// RFC 9568 §6.4.3 (RFC 3768 §6.4.3): an advert received in Master, plus
    /// keepalived's split-brain healing.
    fn master_rx(&mut self, now: Instant, src: IpAddr, a: &Advert, out: &mut Vec<Action>) {
        if a.priority == 0 {
            // "If the Priority in the ADVERTISEMENT is zero, then: Send an
            // ADVERTISEMENT, Reset the Adver_Timer to Advertisement_Interval".
            self.send_advert(self.priority, out);
            self.adver_timer = Some(now + self.config.advert_interval);
            return;
        }
        let higher = a.priority > self.priority
            || (a.priority == self.priority && src > self.config.primary());
        if higher {
            if self.config.higher_prio_send_advert {
                self.send_advert(self.priority, out);
            }
            // "Cancel Adver_Timer, Set Active_Adver_Interval to Adver Interval ...,
            // Recompute Skew_Time and Active_Down_Interval, Set Active_Down_Timer to
            // Active_Down_Interval, Transition to the Backup state".
            self.adopt_interval(a);
            let reason = Reason::HigherPriority {
                from: src,
                priority: a.priority,
            };
            self.go_backup(now, reason, out);
            self.master = Some((src, a.priority));
            return;
        }
        // A second master with a lower priority (or equal from a lower address): RFC 9568
        // discards it; keepalived re-advertises and re-sends GARP so that a backup which
        // briefly took the VIPs (VM pause, lost adverts) gives them back everywhere
        // (keepalived #166, #1528).
        self.counters.lower_prio_rcvd += 1;
        tracing::info!(instance = %self.config.name, from = %src, priority = a.priority,
            "advert from a lower-priority master, forcing a new election");
        if !self.config.lower_prio_no_advert {
            self.send_advert(self.priority, out);
            self.adver_timer = Some(now + self.config.advert_interval);
        }
        self.send_garp(self.config.garp.lower_prio_repeat, out);
    }

    /// Runs the timers due at `now`. Call when [`Instance::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            VrrpState::Master => {
                if self.adver_timer.is_some_and(|t| t <= now) {
                    // RFC 9568 §6.4.3: "If the Adver_Timer fires, then: Send an
                    // ADVERTISEMENT, Reset the Adver_Timer". After a stall, restart the
                    // cadence from now rather than bursting.
                    self.send_advert(self.priority, out);
                    self.adver_timer = Some(now + self.config.advert_interval);
                }
                if self.garp_delay_at.is_some_and(|t| t <= now) {
                    self.garp_delay_at = None;
                    self.send_garp(self.config.garp.master_repeat, out);
                }
                if self.garp_refresh_at.is_some_and(|t| t <= now) {
                    self.send_garp(self.config.garp.master_refresh_repeat, out);
                    self.garp_refresh_at = self.config.garp.master_refresh.map(|r| now + r);
                }
            }
            VrrpState::Backup => {
                if self.down_timer.is_some_and(|t| t <= now) {
                    // RFC 9568 §6.4.2: "If the Active_Down_Timer fires, then: Send an
                    // ADVERTISEMENT, broadcast gratuitous ARP, Set the Adver_Timer,
                    // Transition to the Active state".
                    let reason = match self.resigned_by.take() {
                        Some(from) => Reason::PriorityZero { from },
                        None => Reason::MasterDown,
                    };
                    self.go_master(now, reason, out);
                } else if self.preempt_at.is_some_and(|t| t <= now) {
                    self.preempt_at = None;
                    let lower_master = self
                        .master
                        .filter(|&(_, prio)| prio < self.priority && self.preempts());
                    if let Some((addr, prio)) = lower_master {
                        self.go_master(
                            now,
                            Reason::PreemptDelay {
                                master: addr,
                                priority: prio,
                            },
                            out,
                        );
                    }
                }
            }
            VrrpState::Init | VrrpState::Fault => {}
        }
    }

    /// An interface went up or down. Only the instance's own interface and its tracked
    /// ones matter: one down → FAULT (a master first resigns with priority 0 if its own
    /// interface still works); all up again → Backup and a fresh election (unless its
    /// sync group still holds it in FAULT).
    pub fn set_link(&mut self, now: Instant, interface: &str, up: bool, out: &mut Vec<Action>) {
        if self.note_link(interface, up) {
            self.reconcile_links(now, interface, None, out);
        }
    }

    /// Records a link change; whether the interface concerns this instance.
    pub(crate) fn note_link(&mut self, interface: &str, up: bool) -> bool {
        let tracked = interface == self.config.interface
            || self.config.track_interfaces.iter().any(|t| t == interface);
        if tracked {
            if up {
                self.links_down.remove(interface);
            } else {
                self.links_down.insert(interface.to_string());
            }
        }
        tracked
    }

    /// Held in FAULT by the sync group (some member has a faulty interface).
    pub(crate) fn set_group_hold(&mut self, hold: bool) {
        self.group_fault = hold;
    }

    /// Enters or leaves FAULT to match the links and the group hold (idempotent).
    pub(crate) fn reconcile_links(
        &mut self,
        now: Instant,
        interface: &str,
        group: Option<Reason>,
        out: &mut Vec<Action>,
    ) {
        let own = self.link_fault();
        let faulty = own || self.group_fault;
        match self.state {
            VrrpState::Backup | VrrpState::Master if faulty => {
                let reason = match (own, group) {
                    (false, Some(g)) => g,
                    _ => Reason::InterfaceDown(
                        self.links_down
                            .iter()
                            .next()
                            .cloned()
                            .unwrap_or_else(|| interface.to_string()),
                    ),
                };
                self.go_fault(now, reason, out);
            }
            VrrpState::Fault if !faulty => {
                let reason = match group {
                    Some(g)
                        if !self.config.interface.eq(interface)
                            && !self.config.track_interfaces.iter().any(|t| t == interface) =>
                    {
                        g
                    }
                    _ => Reason::InterfaceUp(interface.to_string()),
                };
                self.go_backup(now, reason, out);
            }
            _ => {}
        }
    }

    /// Sync-group moves between Backup and Master (keepalived `vrrp_sync_group`),
    /// applied by [`super::Router`].
    pub(crate) fn sync_to(
        &mut self,
        now: Instant,
        to: VrrpState,
        reason: Reason,
        out: &mut Vec<Action>,
    ) {
        match (self.state, to) {
            (VrrpState::Backup, VrrpState::Master) => self.go_master(now, reason, out),
            (VrrpState::Master, VrrpState::Backup) => self.go_backup(now, reason, out),
            _ => {}
        }
    }

    fn go_master(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        self.set_state(now, VrrpState::Master, reason, out);
        self.counters.become_master += 1;
        self.master = Some((self.config.primary(), self.priority));
        self.master_adver_interval = self.config.advert_interval;
        out.push(self.vips_action(true));
        self.send_advert(self.priority, out);
        self.send_garp(self.config.garp.master_repeat, out);
        self.adver_timer = Some(now + self.config.advert_interval);
        let delay = self.config.garp.master_delay;
        self.garp_delay_at = (!delay.is_zero()).then(|| now + delay);
        self.garp_refresh_at = self.config.garp.master_refresh.map(|r| now + r);
    }

    fn go_backup(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        if self.state == VrrpState::Init || self.state == VrrpState::Fault {
            // RFC 9568 §6.4.1: "Set Active_Adver_Interval to Advertisement_Interval".
            self.master_adver_interval = self.config.advert_interval;
        }
        self.set_state(now, VrrpState::Backup, reason, out);
        self.master = None;
        self.down_timer = Some(now + self.master_down_interval());
    }

    fn go_fault(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        if self.state == VrrpState::Master && !self.links_down.contains(&self.config.interface) {
            // keepalived: a master entering FAULT resigns with priority 0 so a backup
            // takes over after Skew_Time.
            self.send_advert(0, out);
        }
        self.set_state(now, VrrpState::Fault, reason, out);
        self.master = None;
    }

    /// The one place that changes `state`: cancels the old state's timers, releases the
    /// VIPs when leaving Master, records and emits the transition.
    fn set_state(&mut self, now: Instant, to: VrrpState, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.adver_timer = None;
        self.down_timer = None;
        self.preempt_at = None;
        self.resigned_by = None;
        self.garp_delay_at = None;
        self.garp_refresh_at = None;
        self.state = to;
        self.counters.transitions += 1;
        self.last_transition = Some(now);
        self.last_reason = reason.to_string();
        tracing::info!(instance = %self.config.name, %from, %to, reason = %self.last_reason,
            "VRRP transition");
        out.push(Action::Transition { from, to, reason });
        if from == VrrpState::Master {
            self.counters.release_master += 1;
            out.push(self.vips_action(false));
        }
    }

    /// `AddVips` / `RemoveVips` (IPv4) or `AddVips6` / `RemoveVips6` (IPv6).
    fn vips_action(&self, add: bool) -> Action {
        match (&self.config.ipv6, add) {
            (Some(v6), true) => Action::AddVips6(v6.virtual_addresses.clone()),
            (Some(v6), false) => Action::RemoveVips6(v6.virtual_addresses.clone()),
            (None, true) => Action::AddVips(self.config.virtual_addresses.clone()),
            (None, false) => Action::RemoveVips(self.config.virtual_addresses.clone()),
        }
    }

    fn send_advert(&mut self, priority: u8, out: &mut Vec<Action>) {
        self.counters.advert_sent += 1;
        if priority == 0 {
            self.counters.pri_zero_sent += 1;
        }
        out.push(Action::SendAdvert { priority });
    }

    fn send_garp(&mut self, repeat: u32, out: &mut Vec<Action>) {
        if repeat > 0 {
            self.counters.garp_rounds += 1;
            out.push(Action::SendGarp { repeat });
        }
    }

    /// The checksum flavour sent and required (RFC 9568 §5.2.8, or the pseudo-header
    /// compatibility flavour for v3).
    pub fn checksum_mode(&self) -> ChecksumMode {
        // IPv6 always has the pseudo-header (RFC 9568 §5.2.8).
        let pseudo =
            self.config.is_ipv6() || self.config.accept.v3_checksum == V3Checksum::PseudoHeader;
        ChecksumMode::for_version(self.config.version, pseudo)
    }

    /// Where IPv4 adverts go: the unicast peers, or 224.0.0.18 (empty for an IPv6
    /// instance: [`Instance::destinations_ip`]).
    pub fn destinations(&self) -> Vec<Ipv4Addr> {
        if self.config.is_ipv6() {
            Vec::new()
        } else if self.config.is_unicast() {
            self.config.unicast_peers.clone()
        } else {
            vec![MULTICAST_ADDR]
        }
    }

    /// Where adverts go, either family: the unicast peers, or 224.0.0.18 / ff02::12.
    pub fn destinations_ip(&self) -> Vec<IpAddr> {
        if self.config.is_unicast() {
            self.config.peers()
        } else if self.config.is_ipv6() {
            vec![IpAddr::V6(MULTICAST_ADDR_V6)]
        } else {
            vec![IpAddr::V4(MULTICAST_ADDR)]
        }
    }

    /// The IPv6 advert this instance sends with `priority` (its IPv6 addresses; none for
    /// an IPv4 instance).
    pub fn advert6(&self, priority: u8) -> VrrpRepr<Ipv6Addr> {
        let v4 = self.advert(priority);
        VrrpRepr {
            version: v4.version,
            vrid: v4.vrid,
            priority,
            adver_int: v4.adver_int,
            auth_type: v4.auth_type,
            addrs: self
                .config
                .ipv6
                .iter()
                .flat_map(|v6| v6.virtual_addresses.iter().map(|p| p.addr))
                .collect(),
        }
    }

    /// The IPv4 advert this instance sends with `priority`.
    pub fn advert(&self, priority: u8) -> VrrpRepr {
        VrrpRepr {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            adver_int: self.config.adver_int_field(),
            auth_type: match self.config.version {
                Version::V2 => self.config.auth_type,
                Version::V3 => 0,
            },
            addrs: self
                .config
                .virtual_addresses
                .iter()
                .map(|p| p.addr)
                .collect(),
        }
    }

    /// Writes the VRRP message (the IP payload) for `priority` to `dst` into `buf`, with
    /// the configured checksum flavour; the IP layer must send it from the primary
    /// address with TTL 255 (RFC 9568 §5.1.1). Returns its length, or `None` if `buf`
    /// is too short.
    pub fn emit_advert(&self, priority: u8, dst: Ipv4Addr, buf: &mut [u8]) -> Option<usize> {
        self.emit_advert_to(priority, IpAddr::V4(dst), buf)
    }

    /// [`Instance::emit_advert`] for either family: `dst` must be of the instance's
    /// family (else `None`); an IPv6 advert goes out from the primary (link-local)
    /// address with hop limit 255 (RFC 9568 §5.1.2).
    pub fn emit_advert_to(&self, priority: u8, dst: IpAddr, buf: &mut [u8]) -> Option<usize> {
        let mode = self.checksum_mode();
        match (self.config.primary(), dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let repr = self.advert(priority);
                let len = repr.buffer_len();
                let b = buf.get_mut(..len)?;
                repr.emit(&mut VrrpPacket::new_unchecked(b), mode, src, dst);
                Some(len)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let repr = self.advert6(priority);
                let len = repr.buffer_len();
                let b = buf.get_mut(..len)?;
                repr.emit(&mut VrrpPacket::new_unchecked_v6(b), mode, src, dst);
                Some(len)
            }
            _ => None,
        }
    }

    /// The snapshot the control API serves. `now_unix_ms` is the wall clock at `now`
    /// (this core never reads clocks).
    pub fn info(&self, now: Instant, now_unix_ms: u64) -> VrrpInstanceInfo {
        let c = &self.config;
        VrrpInstanceInfo {
            name: c.name.clone(),
            interface: c.interface.clone(),
            vrid: c.vrid,
            version: c.version.number(),
            state: self.state,
            priority: c.priority,
            effective_priority: self.effective_priority(),
            advert_interval_ms: u64::try_from(self.master_adver_interval.as_millis())
                .unwrap_or(u64::MAX),
            preempt: c.preempt,
            master: self.master.map(|m| m.0),
            master_priority: self.master.map(|m| m.1),
            vips: match &c.ipv6 {
                Some(v6) => v6
                    .virtual_addresses
                    .iter()
                    .map(|p| IpPrefix {
                        addr: IpAddr::V6(p.addr),
                        len: p.len,
                    })
                    .collect(),
                None => c.virtual_addresses.iter().map(|&p| p.into()).collect(),
            },
            sync_group: self.sync_group.clone(),
            adverts_sent: self.counters.advert_sent,
            adverts_received: self.counters.advert_rcvd,
            became_master: self.counters.become_master,
            transitions: self.counters.transitions,
            last_transition_unix_ms: self.last_transition.map(|t| {
                let ago =
                    u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX);
                now_unix_ms.saturating_sub(ago)
            }),
            last_reason: self.last_reason.clone(),
            rejected: self.counters.rejected_by_name(),
        }
    }
}
