#!/usr/bin/env bash
# Interoperability with Linux's own WireGuard and GRE, on Debian's kernel
# booted under QEMU (tests/vm/vm.sh):
#   tests/kernel/wg_interop.sh   xborder-wg ↔ kernel WireGuard, configured with wg
#   tests/kernel/gre_interop.sh  xb-gre ↔ ip_gre / ip6_gre, keepalives
# Skipped, with the reason, when no VM can be had; a failure instead with
# XB_VM_REQUIRE=1, as in CI.
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
exec "$(dirname "$0")/../vm/vm.sh" tests/kernel/wg_interop.sh tests/kernel/gre_interop.sh
