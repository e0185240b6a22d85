//! dh — destination hashing (kernel `net/netfilter/ipvs/ip_vs_dh.c`, spec b.10).
//!
//! Invariants:
//! - A table of [`DH_TAB_SIZE`] = 256 buckets. Filling (`ip_vs_dh_reassign`) assigns the
//!   destinations to buckets 0..255 cyclically in list order, one bucket per destination
//!   per cycle: bucket `i` holds destination `i mod n`. Weight does not affect the share,
//!   and with more than 256 destinations only the first 256 get a bucket. An empty list
//!   leaves every bucket empty.
//! - The table is rebuilt on add and delete only: dh registers no `upd_dest` hook, and
//!   since the fill ignores weights an edit could not change it anyway.
//! - Lookup keys on the packet's **destination** address: bucket
//!   `hash_32(ntohl(fold(daddr)), 8)`, `fold` being the address for IPv4 and the XOR of
//!   the four 32-bit words for IPv6 (`hash.rs`). The bucket's destination is used only if it has
//!   weight > 0 and no OVERLOAD flag (AVAILABLE is implied: the list holds only live
//!   destinations). There is no fallback: otherwise the result is None.
//! - The port is never hashed.

use std::net::IpAddr;
use std::time::Instant;

use lvs_proto::SchedulerKind;

use super::hash::{fold, hash_32};
use super::{Dest, Explain, Flow, ListChange, Scheduler};

/// `IP_VS_DH_TAB_BITS` (`CONFIG_IP_VS_DH_TAB_BITS`, default 8).
pub const DH_TAB_BITS: u32 = 8;
/// Number of buckets: 2⁸.
pub const DH_TAB_SIZE: usize = 1 << DH_TAB_BITS;

/// The dh bucket table: bucket → index into the destination list.
pub type DhTable = [Option<u8>; DH_TAB_SIZE];

/// `ip_vs_dh_reassign` for a list of `n` destinations: bucket `i` → `i mod n`.
pub fn dh_fill(n: usize) -> DhTable {
    let mut table = [None; DH_TAB_SIZE];
    if n == 0 {
        return table;
    }
    for (i, slot) in table.iter_mut().enumerate() {
        // i < 256, so i mod n < 256 and always fits in a u8.
        *slot = u8::try_from(i % n).ok();
    }
    table
}

/// `ip_vs_dh_hashkey`: the bucket of destination address `addr` (IPv4 or IPv6).
pub fn dh_bucket(addr: impl Into<IpAddr>) -> usize {
    hash_32(fold(addr.into()), DH_TAB_BITS) as usize
}

/// Destination-hashing scheduler: the bucket table built from the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationHashing {
    table: DhTable,
}

impl DestinationHashing {
    /// The kernel's `ip_vs_dh_init_svc`: fills the table from `dests`.
    pub fn new(dests: &[Dest]) -> Self {
        DestinationHashing {
            table: dh_fill(dests.len()),
        }
    }

    /// The current table (for tests and inspection).
    pub fn table(&self) -> &DhTable {
        &self.table
    }
}

/// Why a destination in a bucket cannot be used (`None` if it can).
fn unusable(d: &Dest) -> Option<&'static str> {
    if d.weight == 0 {
        Some("weight 0")
    } else if d.overloaded {
        Some("overloaded")
    } else {
        None
    }
}

impl Scheduler for DestinationHashing {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Dh
    }

    fn schedule(
        &mut self,
        _now: Instant,
        dests: &[Dest],
        flow: &Flow,
        explain: Option<&mut Explain>,
    ) -> Option<usize> {
        let addr = flow.dst.ip();
        let bucket = dh_bucket(addr);
        let index = self.table[bucket].map(usize::from);
        let Some((i, d)) = index.and_then(|i| Some((i, dests.get(i)?))) else {
            if let Some(e) = explain {
                e.note(format_args!(
                    "dh: {addr} bucket {bucket} empty -> no destination available"
                ));
            }
            return None;
        };
        match unusable(d) {
            None => {
                if let Some(e) = explain {
                    e.note(format_args!(
                        "dh: {addr} bucket {bucket} -> {}",
                        d.endpoint()
                    ));
                }
                Some(i)
            }
            Some(why) => {
                if let Some(e) = explain {
                    e.note(format_args!(
                        "dh: {addr} bucket {bucket} -> {} unavailable ({why}), no fallback -> no destination available",
                        d.endpoint()
                    ));
                }
                None
            }
        }
    }

    fn update(&mut self, dests: &[Dest], change: ListChange) {
        match change {
            // ip_vs_dh_dest_changed is the add_dest and del_dest hook.
            ListChange::Added { .. } | ListChange::Removed { .. } => {
                self.table = dh_fill(dests.len());
            }
            // No upd_dest hook in ip_vs_dh.c.
            ListChange::Edited => {}
        }
    }

    fn clone_box(&self) -> Box<dyn Scheduler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use lvs_proto::Protocol;

    use super::super::tests::{flow, load, t0, w};
    use super::*;

    /// A TCP flow to `dst:80` from 198.51.100.7:40000, or from [2001:db8:c::10]:40000
    /// for an IPv6 `dst`.
    fn to(dst: impl Into<IpAddr>) -> Flow {
        let dst = dst.into();
        let client: IpAddr = match dst {
            IpAddr::V4(_) => Ipv4Addr::new(198, 51, 100, 7).into(),
            IpAddr::V6(_) => Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10).into(),
        };
        Flow {
            protocol: Protocol::Tcp,
            src: SocketAddr::new(client, 40000),
            dst: SocketAddr::new(dst, 80),
        }
    }

    fn pick(s: &mut DestinationHashing, dests: &[Dest], dst: impl Into<IpAddr>) -> Option<usize> {
        s.schedule(t0(), dests, &to(dst), None)
    }

    #[test]
    fn fill_is_cyclic_one_bucket_per_destination() {
        // 3 destinations: 0,1,2,0,1,2,...; bucket 255 = 255 mod 3 = 0.
        let t = dh_fill(3);
        assert_eq!(
            &t[..7],
            &[
                Some(0),
                Some(1),
                Some(2),
                Some(0),
                Some(1),
                Some(2),
                Some(0)
            ]
        );
        assert_eq!(t[255], Some(0));
        // Each of 3 destinations gets 86, 85, 85 buckets (256 = 3 × 85 + 1).
        let count = |k: u8| t.iter().filter(|&&s| s == Some(k)).count();
        assert_eq!((count(0), count(1), count(2)), (86, 85, 85));
        // 300 destinations: only the first 256 get a bucket, bucket i = i.
        let t = dh_fill(300);
        assert!(
            t.iter()
                .enumerate()
                .all(|(i, &s)| s.map(usize::from) == Some(i))
        );
        // Empty list: every bucket empty.
        assert!(dh_fill(0).iter().all(Option::is_none));
    }

    #[test]
    fn weight_does_not_affect_the_table() {
        let a = DestinationHashing::new(&w(&[1, 100, 7]));
        let b = DestinationHashing::new(&w(&[1, 1, 1]));
        assert_eq!(a.table(), b.table());
    }

    #[test]
    fn bucket_is_hash_32_of_the_destination_address() {
        // 192.0.2.1 = 0xC0000201; × 0x61C88647 mod 2³² = 0x32D51447 (see hash.rs) → top
        // byte 0x32 = 50.
        assert_eq!(dh_bucket(Ipv4Addr::new(192, 0, 2, 1)), 50);
        // 203.0.113.10 = 0xCB00710A → bucket 162 (independent Python model of hash_32).
        assert_eq!(dh_bucket(Ipv4Addr::new(203, 0, 113, 10)), 162);
    }

    #[test]
    fn picks_the_bucket_of_the_packet_destination() {
        let list = w(&[1, 1, 1]);
        let mut s = DestinationHashing::new(&list);
        // Bucket 50 → destination 50 mod 3 = 2.
        assert_eq!(pick(&mut s, &list, Ipv4Addr::new(192, 0, 2, 1)), Some(2));
        // Bucket 162 → destination 162 mod 3 = 0.
        assert_eq!(pick(&mut s, &list, Ipv4Addr::new(203, 0, 113, 10)), Some(0));
        // The client address and ports play no part.
        let mut f = to(Ipv4Addr::new(192, 0, 2, 1));
        f.src = SocketAddr::new(Ipv4Addr::new(10, 9, 8, 7).into(), 1);
        assert_eq!(s.schedule(t0(), &list, &f, None), Some(2));
    }

    #[test]
    fn unavailable_bucket_gives_none_without_fallback() {
        let vip = Ipv4Addr::new(192, 0, 2, 1); // bucket 50 → destination 2 of 3
        let mut list = w(&[1, 1, 0]);
        let mut s = DestinationHashing::new(&list);
        // Destination 2 has weight 0: no fallback, so None even though 0 and 1 are idle.
        assert_eq!(pick(&mut s, &list, vip), None);
        list[2].weight = 1;
        list[2].overloaded = true;
        assert_eq!(pick(&mut s, &list, vip), None);
        list[2].overloaded = false;
        assert_eq!(pick(&mut s, &list, vip), Some(2));
        // Load on the bucket's destination does not matter.
        let busy = load(&[(1, 0, 0), (1, 0, 0), (1, 1000, 1000)]);
        assert_eq!(pick(&mut s, &busy, vip), Some(2));
    }

    #[test]
    fn rebuilt_on_add_and_delete_not_on_edit() {
        let vip = Ipv4Addr::new(192, 0, 2, 1); // bucket 50
        let mut list = w(&[1, 1, 1]);
        let mut s = DestinationHashing::new(&list);
        // A 4th destination inserted at the head: 4 destinations, 50 mod 4 = 2.
        list.insert(0, w(&[1])[0]);
        s.update(&list, ListChange::Added { index: 0 });
        assert_eq!(pick(&mut s, &list, vip), Some(2));
        assert_eq!(s.table(), &dh_fill(4));
        // Removing one: back to 3, 50 mod 3 = 2.
        list.remove(0);
        s.update(&list, ListChange::Removed { index: 0 });
        assert_eq!(s.table(), &dh_fill(3));
        // An edit leaves the table alone.
        list[1].weight = 9;
        s.update(&list, ListChange::Edited);
        assert_eq!(s.table(), &dh_fill(3));
    }

    #[test]
    fn empty_list_and_stale_index_give_none() {
        let mut s = DestinationHashing::new(&[]);
        assert_eq!(s.schedule(t0(), &[], &flow(), None), None);
        // A table built for 3 used with a shorter slice (a caller bug) never panics.
        let mut s = DestinationHashing::new(&w(&[1, 1, 1]));
        assert_eq!(pick(&mut s, &w(&[1]), Ipv4Addr::new(192, 0, 2, 1)), None);
    }

    #[test]
    fn explains_bucket_and_pick() {
        let mut list = w(&[1, 1, 1]);
        let mut s = DestinationHashing::new(&list);
        let vip = Ipv4Addr::new(192, 0, 2, 1);
        let mut e = Explain::new();
        s.schedule(t0(), &list, &to(vip), Some(&mut e));
        assert_eq!(e.as_str(), "dh: 192.0.2.1 bucket 50 -> 192.0.2.13:80");
        list[2].weight = 0;
        let mut e = Explain::new();
        s.schedule(t0(), &list, &to(vip), Some(&mut e));
        assert_eq!(
            e.as_str(),
            "dh: 192.0.2.1 bucket 50 -> 192.0.2.13:80 unavailable (weight 0), no fallback -> \
             no destination available"
        );
    }

    const V6_VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

    /// The kernel's IPv6 bucket, written out: XOR of the four big-endian words, then
    /// `hash_32(fold, 8)` = top 8 bits of `fold × 0x61C88647 mod 2³²`.
    fn formula_v6(addr: Ipv6Addr) -> usize {
        let o = addr.octets();
        let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
        let folded = u64::from(word(0) ^ word(4) ^ word(8) ^ word(12));
        (((folded * 0x61C8_8647) & 0xffff_ffff) >> 24) as usize
    }

    #[test]
    fn v6_bucket_is_hash_32_of_the_word_xor() {
        // 2001:db8:f::10: 0x20010db8 ^ 0x000f0000 ^ 0 ^ 0x10 = 0x200e0da8 → bucket 146
        // (the formula here and an independent Python model of ip_vs_dh.c agree).
        assert_eq!(dh_bucket(V6_VIP), formula_v6(V6_VIP));
        assert_eq!(dh_bucket(V6_VIP), 146);
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x11);
        assert_eq!(dh_bucket(a), 244);
        let b = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
        assert_eq!(dh_bucket(b), 218);
        for last in 0..=255u16 {
            let a = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, last, 1);
            assert_eq!(dh_bucket(a), formula_v6(a), "{a}");
        }
        // The IPv4 buckets are unchanged, also through IpAddr.
        assert_eq!(dh_bucket(IpAddr::from(Ipv4Addr::new(192, 0, 2, 1))), 50);
    }

    #[test]
    fn v6_destination_picks_its_bucket() {
        // Bucket 146 → destination 146 mod 3 = 2; 244 → 1 (244 mod 3); real servers of
        // either family (the table holds list positions only).
        let mut mixed = w(&[1, 1, 1]);
        mixed[0].addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11).into();
        let mut s = DestinationHashing::new(&mixed);
        assert_eq!(pick(&mut s, &mixed, V6_VIP), Some(2));
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x11);
        assert_eq!(pick(&mut s, &mixed, a), Some(1));
        // 2001:db8:b::11 hashes to bucket 218 → 218 mod 3 = 2.
        let b = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11);
        assert_eq!(pick(&mut s, &mixed, b), Some(2));
        // 4 destinations: 146 mod 4 = 2; the explanation names it the IPv6 way.
        mixed.insert(0, w(&[1])[0]);
        s.update(&mixed, ListChange::Added { index: 0 });
        mixed[2].weight = 0;
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &mixed, &to(V6_VIP), Some(&mut e)), None);
        assert_eq!(
            e.as_str(),
            "dh: 2001:db8:f::10 bucket 146 -> 192.0.2.12:80 unavailable (weight 0), no \
             fallback -> no destination available"
        );
        mixed[2].weight = 1;
        mixed[2].addr = b.into();
        let mut e = Explain::new();
        assert_eq!(s.schedule(t0(), &mixed, &to(V6_VIP), Some(&mut e)), Some(2));
        assert_eq!(
            e.as_str(),
            "dh: 2001:db8:f::10 bucket 146 -> [2001:db8:b::11]:80"
        );
    }
}
