//! Validation of `[[vrrp_instance]]` and `[[vrrp_sync_group]]` tables (keepalived's nouns).
//!
//! Every error names the key (`vrrp_instance[0].priority`) and its line. What the file
//! alone can decide is decided here: VRID 1..=255, priority 1..=255 (0 is the resigning
//! priority of RFC 9568 §5.2.4, never configurable), the interval's range for the version
//! (v2: whole seconds 1..=255, RFC 3768 §5.3.7; v3: 10 ms steps, 10 ms..=40.95 s, RFC 9568
//! §5.2.7), unique names, one VRID per interface, sync-group membership, and — when any
//! instance exists — that every `virtual_server` VIP is held by some instance (VRRP then
//! owns every VIP: lvsd adds none at startup). What needs the host (the interface, its
//! primary address, a VIP that is already local) is checked when the driver starts.
//!
//! IPv6 (VRRPv3 over IPv6, RFC 9568 §5.1.2): an instance whose `virtual_ipaddress` are
//! IPv6 runs over IPv6 (ff02::12, link-local source). One family per instance, as
//! keepalived ≥ 1.2.20 ("mixing IPv4 and IPv6 addresses in one VRRP instance ... violates
//! the VRRP standard"; keepalived's way out, `virtual_ipaddress_excluded`, is not
//! supported): a second family in `virtual_ipaddress`, a `unicast_peer` or `unicast_src`
//! of the other family, and `version = 2` with IPv6 (RFC 3768 is IPv4 only) are errors.
//! An IPv4 and an IPv6 instance may share a VRID on one interface (independent virtual
//! routers, as in keepalived).
//!
//! ```toml
//! [[vrrp_instance]]
//! name = "VI_1"                   # unique
//! interface = "ext0"              # adverts and VIPs
//! virtual_router_id = 51          # 1..=255
//! priority = 150                  # 1..=255, 255 = address owner (default 100)
//! advert_interval = "1s"          # v3: 10 ms steps up to 40.95 s; v2: whole seconds
//! version = 3                     # 2 | 3 (default 3)
//! preempt = true                  # false = keepalived nopreempt
//! preempt_delay = "0s"            # up to 1000 s
//! virtual_ipaddress = ["203.0.113.10/24"]   # or IPv6: ["2001:db8:f::10"] (bare = /128)
//! unicast_peer = []               # empty = multicast 224.0.0.18 / ff02::12
//! # unicast_src = "203.0.113.2"   # advert source (default: the interface's first address)
//! track_interface = []            # more interfaces whose loss means FAULT
//! # notify = "/usr/local/bin/vrrp-notify"  # run as: notify INSTANCE NAME STATE PRIORITY
//! garp_master_repeat = 5          # GARPs per VIP on becoming master (1..=255)
//! garp_master_delay = "5s"        # a second round this long after; 0 = none
//! garp_master_refresh = "0s"      # periodic GARP while master; 0 = off
//! v3_checksum_as_v2 = false       # true = RFC 9568's checksum (no pseudo-header)
//!
//! [[vrrp_sync_group]]
//! name = "VG_1"
//! group = ["VI_1", "VI_2"]
//! ```

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lvs_proto::IpPrefix;
use serde::Deserialize;
use toml::Spanned;

use super::raw::Seconds;
use super::{ConfigError, Source, VirtualService};

/// Longest `preempt_delay` (keepalived's limit).
pub const MAX_PREEMPT_DELAY: Duration = Duration::from_secs(1000);
/// Longest `garp_master_delay` / `garp_master_refresh`.
pub const MAX_GARP_TIME: Duration = Duration::from_secs(3600);

/// One `[[vrrp_instance]]`, validated.
///
/// Invariants: `1 <= vrid`, `1 <= priority`; `advert_interval` is in the version's range;
/// `virtual_ipaddress` holds 1..=255 unicast addresses of one family, and
/// `unicast_peer` / `unicast_src` are of that family; IPv6 means version 3; `notify` is
/// absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    /// `name`.
    pub name: String,
    /// `interface`.
    pub interface: String,
    /// `virtual_router_id`.
    pub vrid: u8,
    /// `priority` (default 100).
    pub priority: u8,
    /// `version`: 2 or 3 (default 3).
    pub version: u8,
    /// `advert_interval` (default 1 s).
    pub advert_interval: Duration,
    /// `preempt` (default true).
    pub preempt: bool,
    /// `preempt_delay` (default 0).
    pub preempt_delay: Duration,
    /// `virtual_ipaddress` (one family; a bare address is /32 or /128).
    pub virtual_ipaddress: Vec<IpPrefix>,
    /// `unicast_peer` (empty = multicast).
    pub unicast_peer: Vec<IpAddr>,
    /// `unicast_src`.
    pub unicast_src: Option<IpAddr>,
    /// `track_interface`.
    pub track_interface: Vec<String>,
    /// `notify`.
    pub notify: Option<PathBuf>,
    /// `garp_master_repeat` (default 5).
    pub garp_master_repeat: u32,
    /// `garp_master_delay` (default 5 s; zero = no second round).
    pub garp_master_delay: Duration,
    /// `garp_master_refresh` (default off).
    pub garp_master_refresh: Option<Duration>,
    /// `v3_checksum_as_v2` (default false: keepalived's pseudo-header checksum).
    pub v3_checksum_as_v2: bool,
}

impl VrrpInstance {
    /// Whether the instance runs over IPv6 (its addresses are IPv6).
    pub fn is_ipv6(&self) -> bool {
        self.virtual_ipaddress
            .first()
            .is_some_and(|p| p.addr.is_ipv6())
    }
}

/// One `[[vrrp_sync_group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    /// `name`.
    pub name: String,
    /// `group`: member instance names.
    pub group: Vec<String>,
}

/// The tables as serde reads them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub name: Spanned<String>,
    pub interface: Spanned<String>,
    pub virtual_router_id: Spanned<i64>,
    pub priority: Option<Spanned<i64>>,
    pub advert_interval: Option<Spanned<Seconds>>,
    pub version: Option<Spanned<i64>>,
    pub preempt: Option<Spanned<bool>>,
    pub preempt_delay: Option<Spanned<Seconds>>,
    pub virtual_ipaddress: Spanned<Vec<Spanned<String>>>,
    pub unicast_peer: Option<Spanned<Vec<Spanned<String>>>>,
    pub unicast_src: Option<Spanned<String>>,
    pub track_interface: Option<Spanned<Vec<Spanned<String>>>>,
    pub notify: Option<Spanned<String>>,
    pub garp_master_repeat: Option<Spanned<i64>>,
    pub garp_master_delay: Option<Spanned<Seconds>>,
    pub garp_master_refresh: Option<Spanned<Seconds>>,
    pub v3_checksum_as_v2: Option<Spanned<bool>>,
}

/// `[[vrrp_sync_group]]` as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSyncGroup {
    pub name: Spanned<String>,
    pub group: Spanned<Vec<Spanned<String>>>,
}

fn int_in(
    src: &Source<'_>,
    key: &str,
    v: &Spanned<i64>,
    lo: i64,
    hi: i64,
    why: &str,
) -> Result<i64, ConfigError> {
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(src.error(
            &v.span(),
            key,
            format!("{n} is out of range {lo}..={hi}{why}"),
        ))
    }
}

fn time(
    src: &Source<'_>,
    key: &str,
    v: &Option<Spanned<Seconds>>,
    max: Duration,
) -> Result<Option<Duration>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let d = v
        .get_ref()
        .to_duration()
        .map_err(|m| src.error(&v.span(), key, m))?;
    if d > max {
        return Err(src.error(&v.span(), key, format!("{d:?} is longer than {max:?}")));
    }
    Ok(Some(d))
}

fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv6() { "IPv6" } else { "IPv4" }
}

/// A unicast address of the family of `want` (the instance's first VIP).
fn unicast_ip(
    src: &Source<'_>,
    key: &str,
    v: &Spanned<String>,
    want: IpAddr,
) -> Result<IpAddr, ConfigError> {
    let text = v.get_ref().trim();
    match text.parse::<IpAddr>() {
        Ok(ip) if ip.is_ipv6() != want.is_ipv6() => Err(src.error(
            &v.span(),
            key,
            format!(
                "`{ip}` is {} but the instance's virtual_ipaddress are {}: one family per \
                 instance",
                family(ip),
                family(want)
            ),
        )),
        Ok(ip) if is_unicast(ip) => Ok(ip),
        Ok(ip) => Err(src.error(&v.span(), key, format!("`{ip}` is not a unicast address"))),
        Err(_) => Err(src.error(&v.span(), key, format!("`{text}` is not an IP address"))),
    }
}

fn names(
    src: &Source<'_>,
    key: &str,
    v: &Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<String>, ConfigError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    v.get_ref()
        .iter()
        .map(|n| {
            let t = n.get_ref().trim();
            if t.is_empty() || t.len() > 15 || t.contains(['/', ' ']) {
                Err(src.error(&n.span(), key, format!("`{t}` is not an interface name")))
            } else {
                Ok(t.to_string())
            }
        })
        .collect()
}

pub(super) fn instance(
    src: &Source<'_>,
    key: &str,
    r: RawInstance,
) -> Result<VrrpInstance, ConfigError> {
    let k = |field: &str| format!("{key}.{field}");
    let name = r.name.get_ref().trim().to_string();
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(src.error(
            &r.name.span(),
            &k("name"),
            "must be a word (no spaces)".into(),
        ));
    }
    let interface = r.interface.get_ref().trim().to_string();
    if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']) {
        return Err(src.error(
            &r.interface.span(),
            &k("interface"),
            format!("`{interface}` is not an interface name"),
        ));
    }
    let vrid = int_in(
        src,
        &k("virtual_router_id"),
        &r.virtual_router_id,
        1,
        255,
        "",
    )?;
    let priority = match &r.priority {
        Some(p) => int_in(
            src,
            &k("priority"),
            p,
            1,
            255,
            " (0 is reserved for a master resigning; 255 = address owner)",
        )?,
        None => 100,
    };
    let version = match &r.version {
        Some(v) => int_in(src, &k("version"), v, 2, 3, "")?,
        None => 3,
    };
    let advert_interval = match &r.advert_interval {
        Some(v) => {
            let d = v
                .get_ref()
                .to_duration()
                .map_err(|m| src.error(&v.span(), &k("advert_interval"), m))?;
            let ok = if version == 2 {
                d.subsec_nanos() == 0 && (1..=255).contains(&d.as_secs())
            } else {
                d.as_nanos() % 10_000_000 == 0
                    && d >= Duration::from_millis(10)
                    && d <= Duration::from_millis(40_950)
            };
            if !ok {
                let why = if version == 2 {
                    "VRRPv2 advertises whole seconds, 1..=255 s"
                } else {
                    "VRRPv3 advertises centiseconds: 10 ms steps, 10 ms..=40.95 s"
                };
                return Err(src.error(
                    &v.span(),
                    &k("advert_interval"),
                    format!("{d:?} is invalid: {why}"),
                ));
            }
            d
        }
        None => Duration::from_secs(1),
    };
    let preempt_delay = time(
        src,
        &k("preempt_delay"),
        &r.preempt_delay,
        MAX_PREEMPT_DELAY,
    )?
    .unwrap_or_default();
    let vips = r.virtual_ipaddress.get_ref();
    if vips.is_empty() || vips.len() > 255 {
        return Err(src.error(
            &r.virtual_ipaddress.span(),
            &k("virtual_ipaddress"),
            "needs 1..=255 addresses".into(),
        ));
    }
    let mut virtual_ipaddress: Vec<IpPrefix> = Vec::with_capacity(vips.len());
    for v in vips {
        let p: IpPrefix = v
            .get_ref()
            .parse()
            .map_err(|m| src.error(&v.span(), &k("virtual_ipaddress"), m))?;
        if !is_unicast(p.addr) {
            return Err(src.error(
                &v.span(),
                &k("virtual_ipaddress"),
                format!("`{}` is not a unicast address", p.addr),
            ));
        }
        if let Some(first) = virtual_ipaddress.first()
            && first.addr.is_ipv6() != p.addr.is_ipv6()
        {
            // keepalived ≥ 1.2.20 refuses this too: an advert carries one family.
            return Err(src.error(
                &v.span(),
                &k("virtual_ipaddress"),
                format!(
                    "`{}` is {} but `{}` is {}: IPv4 and IPv6 cannot be mixed in one \
                     vrrp_instance (one family per advert); use a second instance",
                    p.addr,
                    family(p.addr),
                    first.addr,
                    family(first.addr)
                ),
            ));
        }
        if virtual_ipaddress.iter().any(|q| q.addr == p.addr) {
            return Err(src.error(
                &v.span(),
                &k("virtual_ipaddress"),
                format!("{} is listed twice", p.addr),
            ));
        }
        virtual_ipaddress.push(p);
    }
    // Non-empty (checked above).
    let want = virtual_ipaddress
        .first()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.addr);
    if want.is_ipv6() && version == 2 {
        let (span, key) = match &r.version {
            Some(v) => (v.span(), k("version")),
            None => (r.virtual_ipaddress.span(), k("virtual_ipaddress")),
        };
        return Err(src.error(
            &span,
            &key,
            "IPv6 virtual addresses need version 3 (VRRPv2, RFC 3768, is IPv4 only)".into(),
        ));
    }
    let mut unicast_peer = Vec::new();
    if let Some(peers) = &r.unicast_peer {
        for p in peers.get_ref() {
            unicast_peer.push(unicast_ip(src, &k("unicast_peer"), p, want)?);
        }
    }
    let unicast_src = r
        .unicast_src
        .as_ref()
        .map(|v| unicast_ip(src, &k("unicast_src"), v, want))
        .transpose()?;
    let notify = match &r.notify {
        Some(n) => {
            let p = PathBuf::from(n.get_ref().trim());
            if !p.is_absolute() {
                return Err(src.error(
                    &n.span(),
                    &k("notify"),
                    format!("`{}` must be an absolute path", p.display()),
                ));
            }
            Some(p)
        }
        None => None,
    };
    let garp_master_repeat = match &r.garp_master_repeat {
        Some(v) => int_in(src, &k("garp_master_repeat"), v, 1, 255, "")?,
        None => 5,
    };
    let garp_master_delay = time(
        src,
        &k("garp_master_delay"),
        &r.garp_master_delay,
        MAX_GARP_TIME,
    )?
    .unwrap_or(Duration::from_secs(5));
    let garp_master_refresh = time(
        src,
        &k("garp_master_refresh"),
        &r.garp_master_refresh,
        MAX_GARP_TIME,
    )?
    .filter(|d| !d.is_zero());
    // The ranges above make these conversions exact.
    Ok(VrrpInstance {
        name,
        interface,
        vrid: u8::try_from(vrid).unwrap_or(u8::MAX),
        priority: u8::try_from(priority).unwrap_or(u8::MAX),
        version: u8::try_from(version).unwrap_or(3),
        advert_interval,
        preempt: r.preempt.as_ref().is_none_or(|p| *p.get_ref()),
        preempt_delay,
        virtual_ipaddress,
        unicast_peer,
        unicast_src,
        track_interface: names(src, &k("track_interface"), &r.track_interface)?,
        notify,
        garp_master_repeat: u32::try_from(garp_master_repeat).unwrap_or(5),
        garp_master_delay,
        garp_master_refresh,
        v3_checksum_as_v2: r.v3_checksum_as_v2.as_ref().is_some_and(|v| *v.get_ref()),
    })
}

/// Validates the instances and groups together, and the services against them.
pub(super) fn all(
    src: &Source<'_>,
    raw_instances: Vec<RawInstance>,
    raw_groups: Vec<RawSyncGroup>,
    services: &[VirtualService],
    service_spans: &[std::ops::Range<usize>],
) -> Result<(Vec<VrrpInstance>, Vec<VrrpSyncGroup>), ConfigError> {
    let mut instances: Vec<VrrpInstance> = Vec::with_capacity(raw_instances.len());
    for (i, r) in raw_instances.into_iter().enumerate() {
        let key = format!("vrrp_instance[{i}]");
        let name_span = r.name.span();
        let vrid_span = r.virtual_router_id.span();
        let vips_span = r.virtual_ipaddress.span();
        let inst = instance(src, &key, r)?;
        if instances.iter().any(|o| o.name == inst.name) {
            return Err(src.error(
                &name_span,
                &format!("{key}.name"),
                format!("a vrrp_instance named {} already exists", inst.name),
            ));
        }
        if let Some(o) = instances.iter().find(|o| {
            o.interface == inst.interface && o.vrid == inst.vrid && o.is_ipv6() == inst.is_ipv6()
        }) {
            return Err(src.error(
                &vrid_span,
                &format!("{key}.virtual_router_id"),
                format!(
                    "VRID {} is already used on {} by {} ({})",
                    inst.vrid,
                    inst.interface,
                    o.name,
                    if inst.is_ipv6() { "IPv6" } else { "IPv4" }
                ),
            ));
        }
        for p in &inst.virtual_ipaddress {
            if let Some(o) = instances
                .iter()
                .find(|o| o.virtual_ipaddress.iter().any(|q| q.addr == p.addr))
            {
                return Err(src.error(
                    &vips_span,
                    &format!("{key}.virtual_ipaddress"),
                    format!("{} is already a VIP of {}", p.addr, o.name),
                ));
            }
        }
        instances.push(inst);
    }
    let mut groups: Vec<VrrpSyncGroup> = Vec::with_capacity(raw_groups.len());
    let mut grouped: HashSet<String> = HashSet::new();
    for (i, g) in raw_groups.into_iter().enumerate() {
        let key = format!("vrrp_sync_group[{i}]");
        let name = g.name.get_ref().trim().to_string();
        if name.is_empty() || groups.iter().any(|o| o.name == name) {
            return Err(src.error(
                &g.name.span(),
                &format!("{key}.name"),
                format!("`{name}` is empty or already a group's name"),
            ));
        }
        let mut members = Vec::new();
        for m in g.group.get_ref() {
            let n = m.get_ref().trim().to_string();
            if !instances.iter().any(|i| i.name == n) {
                return Err(src.error(
                    &m.span(),
                    &format!("{key}.group"),
                    format!("no vrrp_instance is named {n}"),
                ));
            }
            if !grouped.insert(n.clone()) {
                return Err(src.error(
                    &m.span(),
                    &format!("{key}.group"),
                    format!("{n} is already in a sync group"),
                ));
            }
            members.push(n);
        }
        if members.is_empty() {
            return Err(src.error(
                &g.group.span(),
                &format!("{key}.group"),
                "a sync group needs at least one instance".into(),
            ));
        }
        groups.push(VrrpSyncGroup {
            name,
            group: members,
        });
    }
    if !instances.is_empty() {
        for (i, vs) in services.iter().enumerate() {
            let held = instances
                .iter()
                .any(|inst| inst.virtual_ipaddress.iter().any(|p| p.addr == vs.vip));
            if !held {
                let span = service_spans.get(i).cloned().unwrap_or(0..0);
                return Err(src.error(
                    &span,
                    &format!("virtual_server[{i}].address"),
                    format!(
                        "VIP {} is in no vrrp_instance's virtual_ipaddress: with VRRP \
                         configured, VRRP adds and removes every VIP",
                        vs.vip
                    ),
                ));
            }
        }
    }
    Ok((instances, groups))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    const SERVICE: &str = "[[virtual_server]]\naddress = \"203.0.113.10:80\"\n\
        [[virtual_server.real_server]]\naddress = \"192.0.2.11\"\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("lvsd.toml"), text)
    }

    /// A service, then one instance with `extra` keys (line 11 is the first extra line).
    fn one(extra: &str) -> String {
        format!(
            "{SERVICE}\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"ext0\"\n\
             virtual_router_id = 51\nvirtual_ipaddress = [\"203.0.113.10/24\"]\n{extra}"
        )
    }

    fn err(text: &str) -> ConfigError {
        match parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_are_keepalived_s_and_the_file_round_trips() {
        let c = parse(&one("")).unwrap_or_else(|e| panic!("{e}"));
        let v = &c.vrrp_instances[0];
        assert_eq!((v.vrid, v.priority, v.version), (51, 100, 3));
        assert_eq!(v.advert_interval, Duration::from_secs(1));
        assert!(v.preempt && !v.v3_checksum_as_v2);
        assert_eq!(v.garp_master_repeat, 5);
        assert_eq!(v.garp_master_delay, Duration::from_secs(5));
        assert_eq!(v.garp_master_refresh, None);
        assert_eq!(v.virtual_ipaddress[0].to_string(), "203.0.113.10/24");

        let full = format!(
            "{}\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"int0\"\n\
             virtual_router_id = 52\npriority = 255\nversion = 2\nadvert_interval = 3\n\
             preempt = false\npreempt_delay = \"10s\"\nvirtual_ipaddress = [\"192.0.2.100\"]\n\
             unicast_peer = [\"192.0.2.2\"]\nunicast_src = \"192.0.2.1\"\n\
             track_interface = [\"ext0\"]\nnotify = \"/usr/local/bin/n\"\n\
             garp_master_repeat = 2\ngarp_master_delay = \"0s\"\ngarp_master_refresh = \"60s\"\n\
             v3_checksum_as_v2 = true\n\
             [[vrrp_sync_group]]\nname = \"VG\"\ngroup = [\"VI_1\", \"VI_2\"]\n",
            one("priority = 150\nadvert_interval = \"100ms\"\n")
        );
        let c = parse(&full).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.vrrp_instances.len(), 2);
        assert_eq!(c.vrrp_sync_groups[0].group, vec!["VI_1", "VI_2"]);
        let v = &c.vrrp_instances[1];
        assert_eq!(v.virtual_ipaddress[0].len, 32);
        assert_eq!(v.garp_master_refresh, Some(Duration::from_secs(60)));
        assert_eq!(v.notify.as_deref(), Some(Path::new("/usr/local/bin/n")));
        // save_config writes what it read.
        let again = parse(&c.to_toml()).unwrap_or_else(|e| panic!("{e}\n{}", c.to_toml()));
        assert_eq!(again, c);
    }

    #[test]
    fn bad_instances_name_the_key_and_the_line() {
        let cases: &[(&str, &str)] = &[
            (
                "virtual_router_id = 0\n",
                "vrrp_instance[0].virtual_router_id",
            ),
            ("priority = 0\n", "vrrp_instance[0].priority"),
            ("priority = 256\n", "vrrp_instance[0].priority"),
            ("version = 4\n", "vrrp_instance[0].version"),
            (
                "version = 2\nadvert_interval = \"500ms\"\n",
                "vrrp_instance[0].advert_interval",
            ),
            (
                "advert_interval = \"15ms\"\n",
                "vrrp_instance[0].advert_interval",
            ),
            (
                "advert_interval = \"41s\"\n",
                "vrrp_instance[0].advert_interval",
            ),
            ("notify = \"notify.sh\"\n", "vrrp_instance[0].notify"),
            (
                "unicast_peer = [\"224.0.0.18\"]\n",
                "vrrp_instance[0].unicast_peer",
            ),
            (
                "garp_master_repeat = 0\n",
                "vrrp_instance[0].garp_master_repeat",
            ),
            ("preempt_delay = \"2h\"\n", "vrrp_instance[0].preempt_delay"),
        ];
        for (extra, key) in cases {
            // A second virtual_router_id would be a TOML error: replace the line instead.
            let text = if extra.starts_with("virtual_router_id") {
                one("").replace("virtual_router_id = 51\n", extra)
            } else {
                one(extra)
            };
            let e = err(&text);
            assert_eq!(e.key, *key, "{extra}: {e}");
            assert!(e.line >= 7, "{extra}: {e}");
        }
        let e = err(&one("wobble = 1\n"));
        assert_eq!((e.line, e.key.as_str()), (11, "wobble"), "{e}");
    }

    /// `one("")` and an IPv6 instance on the same interface with `extra` keys; its
    /// `virtual_ipaddress` is on line 15.
    fn with_v6(vips: &str, extra: &str) -> String {
        format!(
            "{}[[vrrp_instance]]\nname = \"VI_6\"\ninterface = \"ext0\"\n\
             virtual_router_id = 51\nvirtual_ipaddress = [{vips}]\n{extra}",
            one("")
        )
    }

    #[test]
    fn ipv6_instances_one_family_each() {
        let c = parse(&with_v6(
            "\"2001:db8:f::10\", \"2001:db8:f::11/64\"",
            "unicast_peer = [\"fe80::2\"]\nunicast_src = \"fe80::1\"\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let v = &c.vrrp_instances[1];
        assert!(v.is_ipv6() && !c.vrrp_instances[0].is_ipv6());
        // The same VRID as the IPv4 instance on ext0: independent routers.
        assert_eq!((v.vrid, v.version), (51, 3));
        assert_eq!(v.virtual_ipaddress[0].to_string(), "2001:db8:f::10/128");
        assert_eq!(v.virtual_ipaddress[1].len, 64);
        assert_eq!(v.unicast_peer, vec!["fe80::2".parse::<IpAddr>().unwrap()]);
        let again = parse(&c.to_toml()).unwrap_or_else(|e| panic!("{e}\n{}", c.to_toml()));
        assert_eq!(again, c);

        let cases: &[(&str, &str, &str, usize)] = &[
            // Mixing families in one instance (keepalived >= 1.2.20 refuses it too).
            (
                "\"2001:db8:f::10\", \"203.0.113.11\"",
                "",
                "vrrp_instance[1].virtual_ipaddress",
                15,
            ),
            (
                "\"203.0.113.11\", \"2001:db8:f::10\"",
                "",
                "vrrp_instance[1].virtual_ipaddress",
                15,
            ),
            // VRRPv2 is IPv4 only.
            (
                "\"2001:db8:f::10\"",
                "version = 2\nadvert_interval = 1\n",
                "vrrp_instance[1].version",
                16,
            ),
            // A peer or source of the other family.
            (
                "\"2001:db8:f::10\"",
                "unicast_peer = [\"203.0.113.3\"]\n",
                "vrrp_instance[1].unicast_peer",
                16,
            ),
            (
                "\"2001:db8:f::10\"",
                "unicast_src = \"203.0.113.2\"\n",
                "vrrp_instance[1].unicast_src",
                16,
            ),
            ("\"ff02::12\"", "", "vrrp_instance[1].virtual_ipaddress", 15),
            (
                "\"2001:db8:f::10/129\"",
                "",
                "vrrp_instance[1].virtual_ipaddress",
                15,
            ),
        ];
        for (vips, extra, key, line) in cases {
            let e = err(&with_v6(vips, extra));
            assert_eq!(
                (e.key.as_str(), e.line),
                (*key, *line),
                "{vips} {extra}: {e}"
            );
        }
        let e = err(&with_v6("\"2001:db8:f::10\", \"203.0.113.11\"", ""));
        assert!(e.message.contains("cannot be mixed"), "{e}");
        // Two IPv6 instances with one VRID on one interface.
        let e = err(&format!(
            "{}[[vrrp_instance]]\nname = \"VI_7\"\ninterface = \"ext0\"\n\
             virtual_router_id = 51\nvirtual_ipaddress = [\"2001:db8:f::12\"]\n",
            with_v6("\"2001:db8:f::10\"", "")
        ));
        assert_eq!(e.key, "vrrp_instance[2].virtual_router_id", "{e}");
    }

    #[test]
    fn instances_and_groups_are_checked_together() {
        let second = |name: &str, vrid: u8, vip: &str| {
            format!(
                "[[vrrp_instance]]\nname = \"{name}\"\ninterface = \"ext0\"\n\
                 virtual_router_id = {vrid}\nvirtual_ipaddress = [\"{vip}\"]\n"
            )
        };
        let e = err(&format!(
            "{}{}",
            one(""),
            second("VI_1", 52, "203.0.113.11")
        ));
        assert_eq!(e.key, "vrrp_instance[1].name", "{e}");
        let e = err(&format!(
            "{}{}",
            one(""),
            second("VI_2", 51, "203.0.113.11")
        ));
        assert_eq!(e.key, "vrrp_instance[1].virtual_router_id", "{e}");
        let e = err(&format!(
            "{}{}",
            one(""),
            second("VI_2", 52, "203.0.113.10/32")
        ));
        assert_eq!(e.key, "vrrp_instance[1].virtual_ipaddress", "{e}");
        let two = format!("{}{}", one(""), second("VI_2", 52, "203.0.113.11"));
        let e = err(&format!(
            "{two}[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"VI_1\", \"VI_9\"]\n"
        ));
        assert_eq!(e.key, "vrrp_sync_group[0].group", "{e}");
        assert!(e.message.contains("VI_9"), "{e}");
        let e = err(&format!(
            "{two}[[vrrp_sync_group]]\nname = \"G\"\ngroup = [\"VI_1\"]\n\
             [[vrrp_sync_group]]\nname = \"H\"\ngroup = [\"VI_1\", \"VI_2\"]\n"
        ));
        assert_eq!(e.key, "vrrp_sync_group[1].group", "{e}");
        // With VRRP, every service VIP belongs to an instance.
        let e = err(&format!(
            "{SERVICE}[[virtual_server]]\naddress = \"203.0.113.99:80\"\n{}",
            &one("")[SERVICE.len()..]
        ));
        assert_eq!(
            (e.key.as_str(), e.line),
            ("virtual_server[1].address", 6),
            "{e}"
        );
        assert!(e.message.contains("203.0.113.99"), "{e}");
        // Without VRRP nothing changes.
        assert!(
            parse(SERVICE)
                .is_ok_and(|c| c.vrrp_instances.is_empty() && c.vrrp_sync_groups.is_empty())
        );
    }
}
