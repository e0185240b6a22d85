#!/bin/sh
# Prepare (or, with "stop", undo) a real server for lvsd's direct routing (DR) forwarding,
# with plain ip/sysctl — what `lvsd realserver --vip VIP --mode dr` does and undoes itself.
# VIPs may be IPv4 or IPv6 (or both).
#
#   sudo contrib/realserver-dr.sh start 203.0.113.10 [2001:db8:f::10 ...]
#   sudo contrib/realserver-dr.sh stop  203.0.113.10 [2001:db8:f::10 ...]
#
# The director rewrites only the MAC addresses, so the packet still says "to VIP": this host
# must hold the VIP, yet never answer or announce it in ARP / NDP (else the router would send
# the clients straight here, past the director). Replies go from the VIP directly to the
# client through this host's default gateway (not through the director).
#
# IPv6 needs no sysctl: Linux answers a Neighbor Solicitation only for an address of the
# interface it arrived on (the VIP lives on lo; the multicast solicitation for it is not
# even delivered on eth0, whose solicited-node groups are those of eth0's own addresses),
# and its own solicitations take their source from the outgoing interface, never from lo.
#
# "stop" sets the sysctls back to the kernel defaults (0); note the values first if this
# host had others (`sysctl net.ipv4.conf.all.arp_ignore ...`). lvsd realserver restores the
# exact previous values instead.
set -eu

action=${1:-}
[ $# -ge 2 ] || { echo "usage: $0 start|stop VIP [VIP...]" >&2; exit 2; }
shift

has_v4=no
for vip in "$@"; do
    case "$vip" in
    *:*) ;;
    *) has_v4=yes ;;
    esac
done

case "$action" in
start)
    if [ "$has_v4" = yes ]; then
        # arp_ignore=1: answer ARP only for addresses configured on the interface the
        # request came in on (the VIP lives on lo, so requests on eth0 for it go
        # unanswered). arp_announce=2: in our own ARP requests, use the best address of the
        # outgoing interface as the sender, never the VIP. The kernel uses max(all, iface).
        sysctl -q -w net.ipv4.conf.all.arp_ignore=1
        sysctl -q -w net.ipv4.conf.all.arp_announce=2
        sysctl -q -w net.ipv4.conf.lo.arp_ignore=1
        sysctl -q -w net.ipv4.conf.lo.arp_announce=2
    fi
    for vip in "$@"; do
        case "$vip" in
        # /128 on lo, usable at once (nodad), never a source for this host's own
        # connections (preferred_lft 0: deprecated; replies from it are unaffected).
        *:*) ip -6 addr add "$vip/128" dev lo nodad preferred_lft 0 ;;
        # /32 on lo: local to this host, reachable by no one through ARP.
        *) ip addr add "$vip/32" dev lo ;;
        esac
    done
    ;;
stop)
    for vip in "$@"; do
        case "$vip" in
        *:*) ip -6 addr del "$vip/128" dev lo || true ;;
        *) ip addr del "$vip/32" dev lo || true ;;
        esac
    done
    if [ "$has_v4" = yes ]; then
        sysctl -q -w net.ipv4.conf.lo.arp_announce=0
        sysctl -q -w net.ipv4.conf.lo.arp_ignore=0
        sysctl -q -w net.ipv4.conf.all.arp_announce=0
        sysctl -q -w net.ipv4.conf.all.arp_ignore=0
    fi
    ;;
*)
    echo "usage: $0 start|stop VIP [VIP...]" >&2
    exit 2
    ;;
esac
