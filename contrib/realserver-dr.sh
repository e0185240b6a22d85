#!/bin/sh
# Prepare (or, with "stop", undo) a real server for lvsd's direct routing (DR) forwarding,
# with plain ip/sysctl — what `lvsd realserver --vip VIP --mode dr` does and undoes itself.
#
#   sudo contrib/realserver-dr.sh start 203.0.113.10 [203.0.113.11 ...]
#   sudo contrib/realserver-dr.sh stop  203.0.113.10 [203.0.113.11 ...]
#
# The director rewrites only the MAC addresses, so the packet still says "to VIP": this host
# must hold the VIP, yet never answer or announce it in ARP (else the router would send the
# clients straight here, past the director). Replies go from the VIP directly to the client
# through this host's default gateway (not through the director).
#
# "stop" sets the sysctls back to the kernel defaults (0); note the values first if this
# host had others (`sysctl net.ipv4.conf.all.arp_ignore ...`). lvsd realserver restores the
# exact previous values instead.
set -eu

action=${1:-}
[ $# -ge 2 ] || { echo "usage: $0 start|stop VIP [VIP...]" >&2; exit 2; }
shift

case "$action" in
start)
    # arp_ignore=1: answer ARP only for addresses configured on the interface the request
    # came in on (the VIP lives on lo, so requests on eth0 for it go unanswered).
    # arp_announce=2: in our own ARP requests, use the best address of the outgoing
    # interface as the sender, never the VIP. The kernel uses max(all, interface).
    sysctl -q -w net.ipv4.conf.all.arp_ignore=1
    sysctl -q -w net.ipv4.conf.all.arp_announce=2
    sysctl -q -w net.ipv4.conf.lo.arp_ignore=1
    sysctl -q -w net.ipv4.conf.lo.arp_announce=2
    for vip in "$@"; do
        # /32 on lo: local to this host, reachable by no one through ARP.
        ip addr add "$vip/32" dev lo
    done
    ;;
stop)
    for vip in "$@"; do
        ip addr del "$vip/32" dev lo || true
    done
    sysctl -q -w net.ipv4.conf.lo.arp_announce=0
    sysctl -q -w net.ipv4.conf.lo.arp_ignore=0
    sysctl -q -w net.ipv4.conf.all.arp_announce=0
    sysctl -q -w net.ipv4.conf.all.arp_ignore=0
    ;;
*)
    echo "usage: $0 start|stop VIP [VIP...]" >&2
    exit 2
    ;;
esac
