#!/bin/sh
# Prepare (or, with "stop", undo) a real server for lvsd's tunnelling (TUN) forwarding with
# the kernel's ipip module, with plain ip/sysctl. On a host without the ipip module use
# `lvsd realserver --vip VIP --mode tun` instead: it decapsulates in userspace (a raw
# IPPROTO_IPIP socket in, a TUN device out) and undoes everything on exit.
#
#   sudo contrib/realserver-tun.sh start 203.0.113.10 [203.0.113.11 ...]
#   sudo contrib/realserver-tun.sh stop  203.0.113.10 [203.0.113.11 ...]
#
# The director wraps each client packet in an outer IPv4 header (protocol 4, from the
# director's address towards this host (DIP) to this host's RIP); this host may be on any
# network the director can route to. The kernel's tunl0 (the fallback device of the ipip
# module) takes every IPIP packet to a local address, strips the outer header and delivers
# the inner packet, addressed to the VIP. Replies go from the VIP directly to the client.
#
# "stop" sets the sysctls back to the kernel defaults; note the values first if this host
# had others.
set -eu

action=${1:-}
[ $# -ge 2 ] || { echo "usage: $0 start|stop VIP [VIP...]" >&2; exit 2; }
shift

case "$action" in
start)
    # Loads ipip and creates tunl0 (no remote: it accepts IPIP from anyone).
    modprobe ipip
    ip link set tunl0 up
    for vip in "$@"; do
        # The VIP on the tunnel device (as the LVS HOWTO does; lo works as well).
        ip addr add "$vip/32" dev tunl0
    done
    # Never answer or announce the VIP in ARP (see realserver-dr.sh).
    sysctl -q -w net.ipv4.conf.all.arp_ignore=1
    sysctl -q -w net.ipv4.conf.all.arp_announce=2
    sysctl -q -w net.ipv4.conf.tunl0.arp_ignore=1
    sysctl -q -w net.ipv4.conf.tunl0.arp_announce=2
    # The inner packets arrive on tunl0 while the route back to the client leaves through
    # another interface: strict reverse-path filtering would drop them. The kernel uses
    # max(all, interface), so both must be relaxed (0 = off; 2 = loose also works).
    sysctl -q -w net.ipv4.conf.tunl0.rp_filter=0
    sysctl -q -w net.ipv4.conf.all.rp_filter=0
    ;;
stop)
    for vip in "$@"; do
        ip addr del "$vip/32" dev tunl0 || true
    done
    ip link set tunl0 down || true
    sysctl -q -w net.ipv4.conf.all.arp_announce=0
    sysctl -q -w net.ipv4.conf.all.arp_ignore=0
    # Distribution default; set what this host had before.
    sysctl -q -w net.ipv4.conf.all.rp_filter=1
    # `modprobe -r ipip` removes tunl0 too, if nothing else uses the module.
    ;;
*)
    echo "usage: $0 start|stop VIP [VIP...]" >&2
    exit 2
    ;;
esac
