#!/usr/bin/env bash
# The kernel backends, on Debian's kernel booted under QEMU (tests/vm/vm.sh):
# this host's kernel has neither WireGuard nor GRE. Runs inside the VM, each
# printing its own lines:
#   test_greif                      kernel gre/ip6gre links, backend choice
#   test_takeover_kernel            the takeover's handshakes on kernel WireGuard
#   tests/kernel/gateway_kernel.sh  xborderd on kernel WireGuard and GRE: reload, restart, stop
#   tests/kernel/failover_kernel.sh a device through kernel WireGuard, failover to kernel GRE and back
# Interoperability with Linux's WireGuard and GRE: tests/net/kernel_interop.sh
# (a boot of its own: each has the whole of a test's time limit).
# Skipped, with the reason, when no VM can be had (no qemu, no kernel
# package); a failure instead with XB_VM_REQUIRE=1, as in CI.
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
exec "$(dirname "$0")/../vm/vm.sh" test_greif test_takeover_kernel tests/kernel/gateway_kernel.sh tests/kernel/failover_kernel.sh
