#!/usr/bin/env bash
# Run tests inside Debian's own kernel, booted under QEMU (no KVM needed),
# for what this host's kernel lacks: WireGuard and GRE.
#
#   tests/vm/vm.sh TEST...     boot once, run each TEST inside, in order; print
#                              their output (TAP lines "ok - …") and exit 0 when
#                              every one passed, 1 when one failed, 77 when no
#                              VM could be had (the reason on the last line)
#   tests/vm/vm.sh --build     only fetch the kernel and build the images
#
# A TEST is a script under tests/ (run with bash) or a unit test binary name
# under $XB_BUILD/tests (test_greif). Inside, the tree sits at the same
# absolute path as here, so scripts find their libraries and $XB_BUILD as
# they do on the host.
#
#   host                                   guest (qemu-system-x86_64 -cpu max, TCG)
#   apt-get download linux-image-cloud-amd64 ─▶ vmlinuz, modules (net, crypto, lib)
#   base.cpio: busybox-free — the host's own bash, iproute2, wg, nft, …
#              and every library they need (ldd); cached per kernel + host
#   tree.cpio: this tree's build/ and tests/; rebuilt each run
#   /init: mounts, loads tun/wireguard/ip_gre/ip6_gre/veth, runs the tests,
#          prints "xb-vm-exit N", powers off
#
# Nothing is installed on the host: the kernel package is unpacked under
# build/vm with dpkg-deb -x. Bounded: the whole boot is under timeout
# $XB_VM_TIMEOUT (s, default 540, inside tests/run.sh's 600 per test).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
XB_BUILD=${XB_BUILD:-$root/build}
# The kernel and the base image are shared by the plain and SAN builds.
vm=${XB_VM_DIR:-$root/build/vm}
timeout_s=${XB_VM_TIMEOUT:-540}
mem=${XB_VM_MEM:-2048}

say() { printf '# vm: %s\n' "$*"; }
# No VM: a skip with the reason, or a failure where one is required
# (XB_VM_REQUIRE=1, as .ci/run sets: the kernel tests must not vanish).
noway() {
	if [ -n "${XB_VM_REQUIRE:-}" ]; then echo "not ok - vm/setup: $*"; exit 1; fi
	echo "no VM: $*"; exit 77
}

# Host tools the kernel tests use, by package (dpkg -L lists their files).
PKGS="bash dash coreutils grep sed mawk gawk findutils util-linux mount procps kmod iproute2 iputils-ping
      wireguard-tools wireguard-go nftables conntrack tcpdump jq libc-bin diffutils ethtool iperf3 libiperf0"

kernel() {	# fetch and unpack the newest linux-image-cloud-amd64; sets KVER, KDIR
	local meta dep deb
	mkdir -p "$vm/pkg"
	KDIR=$vm/kernel
	if [ -s "$KDIR/version" ] && [ -n "${XB_VM_OFFLINE:-}" ]; then
		KVER=$(cat "$KDIR/version"); return 0
	fi
	# Package lists may be missing or stale on a new machine: update once.
	( cd "$vm/pkg" && { apt-get download -q linux-image-cloud-amd64 >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get download -q linux-image-cloud-amd64 >/dev/null 2>&1; }; } ) ||
		{ [ -s "$KDIR/version" ] && { KVER=$(cat "$KDIR/version"); return 0; }
		  noway "apt-get download linux-image-cloud-amd64 failed"; }
	meta=$(ls -t "$vm"/pkg/linux-image-cloud-amd64_*.deb | head -n 1)
	dep=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | grep -o 'linux-image-[0-9][^ (]*' | head -n 1)
	[ -n "$dep" ] || noway "cannot read the kernel package's name from $meta"
	KVER=${dep#linux-image-}
	if [ "$(cat "$KDIR/version" 2>/dev/null)" = "$KVER" ] && [ -f "$KDIR/vmlinuz" ]; then
		return 0
	fi
	( cd "$vm/pkg" && apt-get download -q "$dep" >/dev/null 2>&1 ) || noway "apt-get download $dep failed"
	deb=$(ls -t "$vm"/pkg/"$dep"_*.deb | head -n 1)
	rm -rf "$KDIR" "$vm/x"
	mkdir -p "$KDIR"
	dpkg-deb -x "$deb" "$vm/x" || noway "dpkg-deb -x $deb failed"
	cp "$vm/x/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
	mkdir -p "$KDIR/modules/lib/modules/$KVER/kernel/drivers"
	local m=$vm/x/lib/modules/$KVER
	cp -a "$m"/modules.order "$m"/modules.builtin* "$KDIR/modules/lib/modules/$KVER/"
	# What the tests need: networking, crypto, and the drivers for veth/tun.
	cp -a "$m/kernel/net" "$m/kernel/lib" "$m/kernel/crypto" "$m/kernel/arch" \
		"$KDIR/modules/lib/modules/$KVER/kernel/"
	cp -a "$m/kernel/drivers/net" "$KDIR/modules/lib/modules/$KVER/kernel/drivers/"
	depmod -b "$KDIR/modules" "$KVER" || noway "depmod failed"
	rm -rf "$vm/x" "$vm"/pkg/*.deb
	echo "$KVER" >"$KDIR/version"
}

# add_path DEST PATH — PATH under DEST, in its directory's real place (merged
# /usr: /lib/x goes to /usr/lib/x, reached through the stage's /lib link);
# a symlink is copied as one, and what it points to as well.
add_path() {
	local dest=$1 p=$2 d
	d=$(readlink -f "$(dirname "$p")") || return 0
	p=$d/$(basename "$p")
	[ -d "$dest$d" ] || mkdir -p "$dest$d"
	[ -e "$dest$p" ] || [ -L "$dest$p" ] || cp -a "$p" "$dest$p" 2>/dev/null
	if [ -L "$p" ]; then	# one hop at a time: every link on the way is copied
		local t; t=$(readlink "$p")
		case $t in /*) ;; *) t=$d/$t ;; esac
		[ -e "$dest$t" ] || add_path "$dest" "$t"
	fi
}

base() {	# the host tools image, cached by kernel version and tool versions
	local key stage list f
	key=$( { echo "$KVER"; dpkg-query -W $PKGS 2>/dev/null; } | sha256sum | cut -c1-16)
	BASE=$vm/base-$key.cpio
	[ -s "$BASE" ] && return 0
	rm -f "$vm"/base-*.cpio
	stage=$vm/base.d
	rm -rf "$stage"; mkdir -p "$stage"
	# Merged /usr: /bin, /sbin, /lib, /lib64 are links into /usr, as on the host.
	for l in bin sbin lib lib64; do [ -L "/$l" ] && cp -a "/$l" "$stage/$l"; done
	list=$vm/base.list
	dpkg -L $PKGS 2>/dev/null | grep -vE '^/usr/share/(doc|man|locale|info|lintian|bash-completion|zsh)' |
		while read -r f; do [ -f "$f" ] && echo "$f"; done >"$list"
	for f in /etc/protocols /etc/services /etc/nsswitch.conf /etc/passwd /etc/group \
		/etc/ld.so.cache /etc/iproute2 /lib64/ld-linux-x86-64.so.2 /usr/bin/awk; do
		[ -e "$f" ] && echo "$f" >>"$list"
	done
	while read -r f; do add_path "$stage" "$f"; done <"$list"
	# Libraries of every ELF file, and glibc's NSS modules (getent, id).
	{ cat "$list"; ls /usr/lib/x86_64-linux-gnu/libnss_files* 2>/dev/null; } |
		xargs -r file -L 2>/dev/null | grep -E 'ELF .*(executable|shared object)' | cut -d: -f1 |
		xargs -r ldd 2>/dev/null | grep -oE '/[^ ]+' | sort -u |
		while read -r f; do add_path "$stage" "$f"; done
	for f in /usr/lib/x86_64-linux-gnu/libnss_files*; do [ -e "$f" ] && add_path "$stage" "$f"; done
	cp -a "$KDIR/modules/lib/modules" "$stage/usr/lib/"
	mkdir -p "$stage"/{proc,sys,dev,tmp,run,var,etc,root}
	ln -sfn /run "$stage/var/run"
	( cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet ) >"$BASE.tmp" &&
		mv "$BASE.tmp" "$BASE" || noway "cpio of the base image failed"
	rm -rf "$stage"
}

tree() {	# this tree's build output and tests, and the /init that runs TESTS
	local stage=$run/tree.d f
	rm -rf "$stage"; mkdir -p "$stage$root" "$stage$XB_BUILD"
	cp -a "$root/tests" "$root/deploy" "$stage$root/"
	rm -rf "$stage$root/tests/data"	# the domain list: no kernel test reads it
	cp -a "$XB_BUILD/bin" "$XB_BUILD/tests" "$stage$XB_BUILD/"
	# Libraries of the project's own programs that the base lacks (libmnl, libsodium, …, libasan).
	{ ls "$XB_BUILD"/bin/* "$XB_BUILD"/tests/test_* 2>/dev/null; } | xargs -r ldd 2>/dev/null |
		grep -oE '/[^ ]+' | sort -u | while read -r f; do add_path "$stage" "$f"; done
	for f in /usr/lib/x86_64-linux-gnu/libnftables.so* /etc/nftables.conf; do
		[ -e "$f" ] && add_path "$stage" "$f"
	done
	{
		echo '#!/bin/bash'
		echo "XB_ROOT=$(printf %q "$root") XB_BUILD=$(printf %q "$XB_BUILD")"
		printf 'TESTS=('; printf ' %q' "$@"; echo ' )'
		cat "$root/tests/vm/init.sh"
	} >"$stage/init"
	chmod 755 "$stage/init"
	( cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet ) >"$run/tree.cpio" ||
		noway "cpio of the tree failed"
	rm -rf "$stage"
}

command -v qemu-system-x86_64 >/dev/null || noway "qemu-system-x86_64 is not installed (deploy/deps.sh)"
for t in cpio depmod dpkg-deb file; do command -v $t >/dev/null || noway "$t is not installed (deploy/deps.sh)"; done
mkdir -p "$vm"
# The cache (kernel, base image) is made by one run at a time.
exec 9>"$vm/lock"
flock -w 300 9 || noway "build/vm is locked by another run for 300 s"
kernel
base
flock -u 9
[ "${1:-}" = --build ] && { say "kernel $KVER, base image $(du -h "$BASE" | cut -f1)"; exit 0; }
[ $# -gt 0 ] || { echo "usage: tests/vm/vm.sh TEST..."; exit 2; }
# This run's own files: plain, SAN and bench runs may share build/vm.
run=$(mktemp -d "$vm/run.XXXXXX") || noway "mktemp in $vm failed"
trap 'rm -rf "$run"' EXIT
tree "$@"
cat "$BASE" "$run/tree.cpio" >"$run/initrd"
say "kernel $KVER; booting with $# test(s): $*"
t0=$(date +%s)
out=$run/console.log
# -cpu max: the emulated CPU offers what the host's binaries may use.
timeout -k 5 "$timeout_s" qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m "$mem" \
	-display none -monitor none -serial stdio -no-reboot -nodefaults \
	-kernel "$KDIR/vmlinuz" -initrd "$run/initrd" \
	-append "console=ttyS0 panic=-1 quiet loglevel=3 oops=panic" </dev/null 2>&1 |
	tr -d '\r' | tee "$out" | grep -vE '^xb-vm-exit '
rc=$(grep -oE '^xb-vm-exit [0-9]+' "$out" | tail -n 1 | cut -d' ' -f2)
cp "$out" "$vm/console.log" 2>/dev/null	# the last run's, to read after a failure
say "ran in $(( $(date +%s) - t0 )) s"
[ -n "$rc" ] || { echo "not ok - vm/boot: the VM ended without a result (timeout ${timeout_s} s, or a panic; $vm/console.log)"; exit 1; }
exit "$rc"
