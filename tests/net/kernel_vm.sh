#!/usr/bin/env bash
# The kernel backends and interoperability with Linux's own WireGuard and
# GRE, on Debian's kernel booted under QEMU (tests/vm/vm.sh): this host's
# kernel has neither module. Runs inside the VM, each printing its own lines:
#   test_greif                     kernel gre/ip6gre links, backend choice
#   tests/kernel/gateway_kernel.sh xborderd on kernel WireGuard and GRE: reload, restart, stop
#   tests/kernel/failover_kernel.sh a device through kernel WireGuard, failover to kernel GRE and back
#   tests/kernel/wg_interop.sh     xborder-wg ↔ kernel WireGuard, configured with wg
#   tests/kernel/gre_interop.sh    xb-gre ↔ ip_gre / ip6_gre, keepalives
# Skipped, with the reason, when no VM can be had (no qemu, no kernel package).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
exec "$(dirname "$0")/../vm/vm.sh" test_greif tests/kernel/gateway_kernel.sh tests/kernel/failover_kernel.sh \
	tests/kernel/wg_interop.sh tests/kernel/gre_interop.sh
