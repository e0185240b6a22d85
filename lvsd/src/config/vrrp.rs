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
//! virtual_ipaddress = ["203.0.113.10/24"]
//! unicast_peer = []               # empty = multicast 224.0.0.18
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
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use lvs_proto::Ipv4Prefix;
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
/// `virtual_ipaddress` holds 1..=255 unicast addresses; `notify` is absolute.
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
    /// `virtual_ipaddress`.
    pub virtual_ipaddress: Vec<Ipv4Prefix>,
    /// `unicast_peer` (empty = multicast).
    pub unicast_peer: Vec<Ipv4Addr>,
    /// `unicast_src`.
    pub unicast_src: Option<Ipv4Addr>,
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

fn ipv4(src: &Source<'_>, key: &str, v: &Spanned<String>) -> Result<Ipv4Addr, ConfigError> {
    let text = v.get_ref().trim();
    match text.parse::<Ipv4Addr>() {
        Ok(ip) if !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()) => Ok(ip),
        Ok(ip) => Err(src.error(&v.span(), key, format!("`{ip}` is not a unicast address"))),
        Err(_) => Err(src.error(&v.span(), key, format!("`{text}` is not an IPv4 address"))),
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
    let mut virtual_ipaddress: Vec<Ipv4Prefix> = Vec::with_capacity(vips.len());
    for v in vips {
        let p: Ipv4Prefix = v
            .get_ref()
            .parse()
            .map_err(|m| src.error(&v.span(), &k("virtual_ipaddress"), m))?;
        if p.addr.is_unspecified() || p.addr.is_multicast() || p.addr.is_broadcast() {
            return Err(src.error(
                &v.span(),
                &k("virtual_ipaddress"),
                format!("`{}` is not a unicast address", p.addr),
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
    let mut unicast_peer = Vec::new();
    if let Some(peers) = &r.unicast_peer {
        for p in peers.get_ref() {
            unicast_peer.push(ipv4(src, &k("unicast_peer"), p)?);
        }
    }
    let unicast_src = r
        .unicast_src
        .as_ref()
        .map(|v| ipv4(src, &k("unicast_src"), v))
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
        if let Some(o) = instances
            .iter()
            .find(|o| o.interface == inst.interface && o.vrid == inst.vrid)
        {
            return Err(src.error(
                &vrid_span,
                &format!("{key}.virtual_router_id"),
                format!(
                    "VRID {} is already used on {} by {}",
                    inst.vrid, inst.interface, o.name
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
