#!/usr/bin/env bash
# Kernel WireGuard against ours, inside Debian's kernel under QEMU
# (tests/vm/vm.sh, tests/kernel/bench_wg.sh): the one place this host can
# run the kernel's WireGuard. The CPU is emulated, so the ratio is the figure.
exec "$(dirname "$0")/../tests/vm/vm.sh" tests/kernel/bench_wg.sh
