#!/usr/bin/env python3
"""Splits a `perf record -g` of xborderd (bench/gateway.sh PERF=FILE) per
thread into where its CPU goes: crypto, its own code, UDP, the TUN copies,
and the kernel's forwarding between its two TUNs (routing, nft,
conntrack, NAT), which runs in the thread that writes the packet.

    perf script -i FILE -F comm,tid,ip,sym,dso | bench/perf_split.py [COMM]

COMM (default xborderd): the threads of which command to report. A sample
goes to the first category that its call chain fits, in the order below;
the shares are of that thread's samples. Needs kernel call chains (perf
record -g); user frames may be cut short (no frame pointers), which moves
nothing between categories: these go by the kernel's part of the chain.
"""
import collections
import re
import sys

FWD = "fwd: "


def category(stack):
    syms = {s for s, _ in stack}
    leaf = stack[0][1] if stack else ""
    if "libcrypto" in leaf or "libsodium" in leaf:
        return "crypto (libcrypto, libsodium)"
    if "kernel" not in leaf:
        return "user: own code, libc"
    if "tun_get_user" in syms:	# a TUN write: the forwarding runs in it
        if "nf_hook_slow" in syms:
            if any(s.startswith("nft_") for s in syms):
                return FWD + "nft rules"
            if any(s.startswith(("nf_conntrack", "__nf_conntrack", "nf_ct_", "ipv4_conntrack"))
                   for s in syms):
                return FWD + "conntrack"
            if any(s.startswith("nf_nat") for s in syms):
                return FWD + "NAT"
            return FWD + "other netfilter"
        if syms & {"ip_route_input_noref", "ip_route_input_slow", "fib_table_lookup"}:
            return FWD + "routing lookup"
        if syms & {"ip_rcv", "ip_forward", "ip_output", "__dev_queue_xmit"}:
            return FWD + "ip receive, forward, transmit"
        return "TUN write: copy in, skb"
    if "tun_chr_read_iter" in syms:
        return "TUN read: copy out"
    if syms & {"__sys_sendmmsg", "udp_sendmsg"}:
        return "UDP send"
    if syms & {"__sys_recvmmsg", "udp_recvmsg"}:
        return "UDP receive"
    if syms & {"do_epoll_wait", "__schedule", "schedule"}:
        return "epoll, scheduling"
    if syms & {"handle_softirqs", "net_rx_action"}:
        return "softirq, other"
    return "kernel, other"


def main():
    comm = sys.argv[1] if len(sys.argv) > 1 else "xborderd"
    total = collections.Counter()
    cats = collections.defaultdict(collections.Counter)
    tid, stack = None, []

    def flush():
        if tid is not None:
            total[tid] += 1
            cats[tid][category(stack)] += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            tid, stack = None, []
        elif not line[0].isspace():
            f = line.split()
            tid = f[1] if len(f) > 1 and f[0] == comm else None
            stack = []
        elif tid is not None:
            m = re.match(r"\s*[0-9a-f]+\s+(\S+)\s+\((.*)\)", line)
            if m:
                stack.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    flush()
    if not total:
        sys.exit("perf_split: no samples of %s (perf script -F comm,tid,ip,sym,dso?)" % comm)
    for t in sorted(total, key=total.get, reverse=True):
        n = total[t]
        fwd = sum(v for k, v in cats[t].items() if k.startswith(FWD))
        print("%s thread %s: %d samples; kernel forwarding %.1f %%" % (comm, t, n, 100 * fwd / n))
        for k, v in cats[t].most_common():
            print("  %-34s %5.1f %%" % (k, 100 * v / n))


if __name__ == "__main__":
    main()
