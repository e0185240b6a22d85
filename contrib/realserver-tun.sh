#!/bin/sh
# Prepare (or, with "stop", undo) a real server for lvsd's tunnelling (TUN) forwarding with
# the kernel's tunnel modules, with plain ip/sysctl. On a host without them use
# `lvsd realserver --vip VIP --mode tun` instead: it decapsulates in userspace (raw sockets
# in, a TUN device out) and undoes everything on exit.
#
#   sudo contrib/realserver-tun.sh start 203.0.113.10 [2001:db8:f::10 ...]
#   sudo contrib/realserver-tun.sh stop  203.0.113.10 [2001:db8:f::10 ...]
#
# The director wraps each client packet in an outer header from its address towards this
# host (DIP) to this host's real-server address (RIP); this host may be on any network the
# director can route to. The outer header has the real server's family, the inner one the
# VIP's (IPVS allows mixing families for tunnels only):
#   IPv4 in IPv4 (protocol 4)      -> ipip module, fallback device tunl0
#   IPv6 in IPv4 (protocol 41)     -> sit module, fallback device sit0
#   IPv4 or IPv6 in IPv6 (4 / 41)  -> ip6_tunnel module, fallback device ip6tnl0
# Each fallback device, once up, takes every such packet to a local address from anyone,
# strips the outer header and delivers the inner packet, addressed to the VIP. Replies go
# from the VIP directly to the client. This script brings up all three.
#
# "stop" sets the sysctls back to the kernel defaults; note the values first if this host
# had others.
set -eu

action=${1:-}
[ $# -ge 2 ] || { echo "usage: $0 start|stop VIP [VIP...]" >&2; exit 2; }
shift

case "$action" in
start)
    # Loads the modules and creates tunl0, sit0 and ip6tnl0 (no remote: they accept
    # tunnelled packets from anyone).
    modprobe ipip
    modprobe sit
    modprobe ip6_tunnel
    for dev in tunl0 sit0 ip6tnl0; do
        ip link set "$dev" up
    done
    for vip in "$@"; do
        case "$vip" in
        # IPv6 VIPs on lo (tunl0 carries no IPv6); NDP needs no sysctl (realserver-dr.sh).
        *:*) ip -6 addr add "$vip/128" dev lo nodad preferred_lft 0 ;;
        # The VIP on the tunnel device (as the LVS HOWTO does; lo works as well).
        *) ip addr add "$vip/32" dev tunl0 ;;
        esac
    done
    # Never answer or announce an IPv4 VIP in ARP (see realserver-dr.sh).
    sysctl -q -w net.ipv4.conf.all.arp_ignore=1
    sysctl -q -w net.ipv4.conf.all.arp_announce=2
    sysctl -q -w net.ipv4.conf.tunl0.arp_ignore=1
    sysctl -q -w net.ipv4.conf.tunl0.arp_announce=2
    # Inner IPv4 packets arrive on tunl0 (or ip6tnl0, 4in6) while the route back to the
    # client leaves through another interface: strict reverse-path filtering would drop
    # them. The kernel uses max(all, interface), so both must be relaxed (0 = off; 2 =
    # loose also works). IPv6 has no reverse-path filter.
    sysctl -q -w net.ipv4.conf.tunl0.rp_filter=0
    sysctl -q -w net.ipv4.conf.ip6tnl0.rp_filter=0
    sysctl -q -w net.ipv4.conf.all.rp_filter=0
    ;;
stop)
    for vip in "$@"; do
        case "$vip" in
        *:*) ip -6 addr del "$vip/128" dev lo || true ;;
        *) ip addr del "$vip/32" dev tunl0 || true ;;
        esac
    done
    for dev in tunl0 sit0 ip6tnl0; do
        ip link set "$dev" down || true
    done
    sysctl -q -w net.ipv4.conf.all.arp_announce=0
    sysctl -q -w net.ipv4.conf.all.arp_ignore=0
    # Distribution default; set what this host had before.
    sysctl -q -w net.ipv4.conf.all.rp_filter=1
    # `modprobe -r ipip sit ip6_tunnel` removes the devices too, if nothing else uses them.
    ;;
*)
    echo "usage: $0 start|stop VIP [VIP...]" >&2
    exit 2
    ;;
esac
