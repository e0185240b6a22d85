//! TUN forwarding (IPVS `ip_vs_tunnel_xmit`, IPv4 in IPv4): the client's packet, unchanged,
//! behind an outer IPv4 header from the DIP (the director's address towards the real
//! server) to the RIP, sent to the next hop's MAC. Replies go from the real server straight
//! to the client, as in DR.
//!
//! Policy (the tunnel MTU is the egress interface's MTU − 20):
//! - Fits: one frame, [`Verdict::TransmitPlain`]. A `NEEDS_CSUM` frame's L4 checksum is
//!   completed here (the device cannot: the vnet offsets would point into the outer
//!   header, and virtio has no IPIP GSO type).
//! - TCP GSO super-frame: cut into segments of `gso_size` payload bytes (or what fits,
//!   if unknown) with [`TcpSegmenter`]; the first is the verdict's frame, the others come
//!   from [`Dataplane::next_frame`]. If a segment of `gso_size` would not fit and the
//!   packet has DF: as below (PMTU). Without DF it is cut smaller to fit. A UDP GSO
//!   super-frame is `Drop(TooBig)`.
//! - DF and too big: `Reject(NeedFrag)` with ICMP "fragmentation needed", next-hop MTU =
//!   tunnel MTU, from the VIP to the client, out of the interface and to the MAC the packet
//!   came from; at most [`ICMP_BURST`] at once and [`ICMP_PER_SEC`] per second on average
//!   (Linux's `icmp_msgs_burst` / `icmp_msgs_per_sec`), beyond that `Drop(NeedFrag)`.
//! - No DF and too big: the outer packet is fragmented (as the kernel's stack does after
//!   IPVS); the real server's kernel reassembles it before decapsulating.
//! - Outer header: TTL [`OUTER_TTL`], DSCP/ECN and DF copied from the inner packet, an
//!   identification from a per-core counter; the inner packet is never modified except
//!   for completing a partial checksum.
//!
//! Invariants: no allocation per packet once the frame queue has grown to its largest
//! size; frames queued by one `process` call are cleared by the next; nothing here panics
//! on any input (every slice access is checked).

use std::time::Instant;

use lvs_proto::Protocol;

use super::{Dataplane, DropReason, Parsed, RxFrame, Verdict};
use crate::wire::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use crate::wire::gso::TcpSegmenter;
use crate::wire::icmp;
use crate::wire::ipip::{self, Outer};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;

/// TTL of the outer header (IPVS copies the inner TTL; see docs/ipvs-differences.md).
pub const OUTER_TTL: u8 = 64;
/// ICMP errors allowed at once.
pub const ICMP_BURST: u32 = 50;
/// ICMP errors per second, on average.
pub const ICMP_PER_SEC: u32 = 1000;

/// Where an encapsulated packet goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Path {
    pub ifindex: u32,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub mtu: u32,
    pub dip: std::net::Ipv4Addr,
    pub rip: std::net::Ipv4Addr,
}

/// Frames waiting for [`Dataplane::next_frame`], the ICMP token bucket and the outer id.
#[derive(Debug, Default)]
pub(super) struct TunnelState {
    /// Frames back to back.
    buf: Vec<u8>,
    /// `(start, len)` in `buf`.
    frames: Vec<(usize, usize)>,
    /// The next frame to hand out.
    next: usize,
    /// Their interface.
    ifindex: u32,
    /// Scratch copy of an inner packet (completed checksum before fragmenting).
    scratch: Vec<u8>,
    /// Identification of the next outer header or ICMP error.
    ident: u16,
    /// ICMP tokens (× 1000, so that a millisecond adds a whole number) and their time.
    icmp_tokens: u64,
    icmp_at: Option<Instant>,
}

impl TunnelState {
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.frames.clear();
        self.next = 0;
    }

    pub(super) fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// Takes one ICMP token if there is one.
    pub(super) fn icmp_allow(&mut self, now: Instant) -> bool {
        let cap = u64::from(ICMP_BURST) * 1000;
        self.icmp_tokens = match self.icmp_at {
            None => cap,
            Some(at) => {
                let ms = u64::try_from(now.saturating_duration_since(at).as_millis())
                    .unwrap_or(u64::MAX);
                self.icmp_tokens
                    .saturating_add(ms.saturating_mul(u64::from(ICMP_PER_SEC)))
                    .min(cap)
            }
        };
        self.icmp_at = Some(now);
        if self.icmp_tokens >= 1000 {
            self.icmp_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// Appends a frame built by `f` into a region of `max` bytes; `f` returns its length.
    fn push(&mut self, max: usize, f: impl FnOnce(&mut [u8]) -> Option<usize>) -> Option<()> {
        let start = self.buf.len();
        self.buf.resize(start + max, 0);
        let len = self.buf.get_mut(start..).and_then(f);
        match len {
            Some(len) if len <= max => {
                self.buf.truncate(start + len);
                self.frames.push((start, len));
                Some(())
            }
            _ => {
                self.buf.truncate(start);
                None
            }
        }
    }
}

/// Writes the Ethernet header; the rest of the frame is `f`'s (returns the IP length).
pub(super) fn frame(
    buf: &mut [u8],
    src: MacAddr,
    dst: MacAddr,
    f: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<usize> {
    let eth = buf.get_mut(..ethernet::HEADER_LEN)?;
    let mut e = EthernetFrame::new_unchecked(eth);
    e.set_src_addr(src);
    e.set_dst_addr(dst);
    e.set_ethertype(EtherType::IPV4);
    let ip_len = f(buf.get_mut(ethernet::HEADER_LEN..)?)?;
    Some(ethernet::HEADER_LEN + ip_len)
}

/// Completes the L4 checksum of the IPv4 packet `ip` (a `NEEDS_CSUM` partial sum).
fn complete_checksum(ip: &mut [u8], protocol: Protocol) -> Option<()> {
    let p = Ipv4Packet::new_checked(&*ip).ok()?;
    let (src, dst, hl, total) = (
        p.src_addr(),
        p.dst_addr(),
        p.header_len(),
        usize::from(p.total_len()),
    );
    let l4 = ip.get_mut(hl..total)?;
    match protocol {
        Protocol::Tcp => TcpPacket::new_checked(l4).ok()?.fill_checksum(src, dst),
        Protocol::Udp => UdpPacket::new_checked(l4).ok()?.fill_checksum(src, dst),
    }
    Some(())
}

impl Dataplane {
    /// The next frame of the packet the last [`Dataplane::process`] call answered with
    /// [`Verdict::TransmitPlain`], written to `out`: `(ifindex, len)`, plain like the first.
    pub fn next_frame(&mut self, out: &mut [u8]) -> Option<(u32, usize)> {
        let t = &mut self.tunnel;
        let &(start, len) = t.frames.get(t.next)?;
        t.next += 1;
        let src = t.buf.get(start..start + len)?;
        out.get_mut(..len)?.copy_from_slice(src);
        Some((t.ifindex, len))
    }

    /// Encapsulates the inbound packet `p` (already counted and bound to its connection)
    /// for `path` (module doc).
    pub(super) fn tunnel_out(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        p: &Parsed,
        path: Path,
        out: &mut [u8],
    ) -> Verdict {
        use DropReason as R;
        let eth = ethernet::HEADER_LEN;
        let Some(inner) = rx.data.get(eth..eth + p.ip_len) else {
            return Verdict::Drop(R::Truncated);
        };
        let Ok(ip) = Ipv4Packet::new_checked(inner) else {
            return Verdict::Drop(R::BadIpHeader);
        };
        let room = usize::try_from(path.mtu)
            .unwrap_or(usize::MAX)
            .saturating_sub(ipip::OVERHEAD);
        if room < ipip::MIN_MTU {
            return Verdict::Drop(R::TooBig);
        }
        let df = ip.dont_frag();
        let outer = |ident| Outer::for_inner(path.dip, path.rip, OUTER_TTL, ident, &ip);
        let (smac, dmac) = (path.src_mac, path.dst_mac);
        self.tunnel.ifindex = path.ifindex;

        if rx.gso {
            if p.protocol != Protocol::Tcp {
                return Verdict::Drop(R::TooBig);
            }
            let Ok(probe) = TcpSegmenter::new(inner, 1) else {
                return Verdict::Drop(R::BadL4Header);
            };
            let headers = probe.header_len();
            let Some(fit) = room.checked_sub(headers).filter(|&m| m > 0) else {
                return Verdict::Drop(R::TooBig);
            };
            let mss = match usize::from(rx.gso_size) {
                0 => fit,
                m if m <= fit => m,
                _ if df => return self.frag_needed(now, rx, p, inner, room, out),
                _ => fit,
            };
            let Ok(seg) = TcpSegmenter::new(inner, mss) else {
                return Verdict::Drop(R::BadL4Header);
            };
            let max = eth + ipip::OVERHEAD + headers + mss;
            let mut first = None;
            for i in 0..seg.count() {
                let ident = self.tunnel.next_ident();
                let o = outer(ident);
                let build = |buf: &mut [u8]| {
                    frame(buf, smac, dmac, |ipb| {
                        let len = seg.emit(i, ipb.get_mut(ipip::OVERHEAD..)?)?;
                        o.emit(ipb, len, false, 0)?;
                        Some(ipip::OVERHEAD + len)
                    })
                };
                if i == 0 {
                    let Some(len) = build(out) else {
                        return Verdict::Drop(R::TooBig);
                    };
                    first = Some(len);
                } else if self.tunnel.push(max, build).is_none() {
                    self.tunnel.clear();
                    return Verdict::Drop(R::TooBig);
                }
            }
            return match first {
                Some(len) => Verdict::TransmitPlain {
                    ifindex: path.ifindex,
                    len,
                },
                None => Verdict::Drop(R::TooBig),
            };
        }

        if p.ip_len > room {
            if df {
                return self.frag_needed(now, rx, p, inner, room, out);
            }
            // Fragment the outer packet (inner checksum completed first).
            let mut scratch = std::mem::take(&mut self.tunnel.scratch);
            scratch.clear();
            scratch.extend_from_slice(inner);
            if rx.csum_partial && complete_checksum(&mut scratch, p.protocol).is_none() {
                self.tunnel.scratch = scratch;
                return Verdict::Drop(R::BadL4Header);
            }
            let mtu = room + ipip::OVERHEAD;
            let o = outer(self.tunnel.next_ident());
            let n = ipip::fragment_count(scratch.len(), mtu).unwrap_or(0);
            let mut verdict = Verdict::Drop(R::TooBig);
            for i in 0..n {
                let build = |buf: &mut [u8]| {
                    frame(buf, smac, dmac, |ipb| {
                        ipip::emit_fragment(ipb, &o, &scratch, mtu, i)
                    })
                };
                if i == 0 {
                    match build(out) {
                        Some(len) => {
                            verdict = Verdict::TransmitPlain {
                                ifindex: path.ifindex,
                                len,
                            };
                        }
                        None => break,
                    }
                } else if self.tunnel.push(eth + mtu, build).is_none() {
                    self.tunnel.clear();
                    verdict = Verdict::Drop(R::TooBig);
                    break;
                }
            }
            self.tunnel.scratch = scratch;
            return verdict;
        }

        let o = outer(self.tunnel.next_ident());
        let Some(len) = frame(out, smac, dmac, |ipb| ipip::encapsulate(ipb, &o, inner)) else {
            return Verdict::Drop(R::TooBig);
        };
        if rx.csum_partial {
            let inner_out = out.get_mut(eth + ipip::OVERHEAD..len);
            if inner_out
                .and_then(|b| complete_checksum(b, p.protocol))
                .is_none()
            {
                return Verdict::Drop(R::BadL4Header);
            }
        }
        Verdict::TransmitPlain {
            ifindex: path.ifindex,
            len,
        }
    }

    /// ICMP "fragmentation needed" (MTU `room`) for the packet `inner` back to its client.
    fn frag_needed(
        &mut self,
        now: Instant,
        rx: RxFrame<'_>,
        p: &Parsed,
        inner: &[u8],
        room: usize,
        out: &mut [u8],
    ) -> Verdict {
        let reason = DropReason::NeedFrag;
        if !self.tunnel.icmp_allow(now) {
            return Verdict::Drop(reason);
        }
        let Some(mac) = self.interface(rx.ifindex).map(|i| i.mac) else {
            return Verdict::Drop(reason);
        };
        let ident = self.tunnel.next_ident();
        let mtu = u16::try_from(room).unwrap_or(u16::MAX);
        let built = frame(out, mac, p.src_mac, |ipb| {
            icmp::emit_frag_needed(ipb, p.dst, p.src, ident, mtu, inner)
        });
        match built {
            Some(len) => Verdict::Reject {
                reason,
                ifindex: rx.ifindex,
                len,
            },
            None => Verdict::Drop(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn icmp_rate_limit() {
        let mut t = TunnelState::default();
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| t.icmp_allow(t0)).count();
        assert_eq!(allowed, ICMP_BURST as usize);
        // 5 ms later: 5 more.
        let t1 = t0 + Duration::from_millis(5);
        let allowed = (0..100).filter(|_| t.icmp_allow(t1)).count();
        assert_eq!(allowed, 5);
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        let allowed = (0..100).filter(|_| t.icmp_allow(t2)).count();
        assert_eq!(allowed, ICMP_BURST as usize);
    }
}
