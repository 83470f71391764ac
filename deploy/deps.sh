#!/bin/sh
# Install the Debian packages xborder needs to build, test and run its demo.
#
#   deploy/deps.sh          install whatever is missing (root), saying what
#   deploy/deps.sh --check  exit 0 if nothing is missing, else list it and exit 1
#   deploy/deps.sh --auto   as --check, but install when run as root (used by make)
#
# Idempotent: installed packages are left alone. Recommends are not pulled in
# (wireguard-tools would otherwise bring a kernel image and an initramfs run).
set -eu

# package:probe — the probe is a pkg-config module (pc:NAME) or a command.
PKGS="
build-essential:cmd:cc
pkg-config:cmd:pkg-config
libmnl-dev:pc:libmnl
libsodium-dev:pc:libsodium
libconfig-dev:pc:libconfig
iproute2:cmd:ip
iputils-ping:cmd:ping
nftables:cmd:nft
conntrack:cmd:conntrack
wireguard-tools:cmd:wg
wireguard-go:cmd:wireguard-go
iperf3:cmd:iperf3
"

missing() {
	for entry in $PKGS; do
		pkg=${entry%%:*}
		rest=${entry#*:}
		kind=${rest%%:*}
		what=${rest#*:}
		case $kind in
		pc)  pkg-config --exists "$what" 2>/dev/null || echo "$pkg" ;;
		cmd) command -v "$what" >/dev/null 2>&1 || echo "$pkg" ;;
		esac
	done
}

mode=${1:-install}
need=$(missing | tr '\n' ' ')
need=${need% }

if [ -z "$need" ]; then
	[ "$mode" = install ] && echo "deps: everything is installed"
	exit 0
fi

case $mode in
--check)
	echo "deps: missing: $need" >&2
	exit 1 ;;
--auto)
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing: $need" >&2
		echo "deps: run 'sudo make deps' (or make as root) to install them" >&2
		exit 1
	fi ;;
install) ;;
*)
	echo "usage: $0 [--check|--auto]" >&2
	exit 2 ;;
esac

if [ "$(id -u)" != 0 ]; then
	echo "deps: installing needs root: sudo $0" >&2
	exit 1
fi

echo "deps: installing: $need"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing or an install fails.
if [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]; then
	apt-get update -q
fi
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $need; then
	apt-get update -q
	apt-get install -y -q --no-install-recommends $need
fi
left=$(missing | tr '\n' ' ')
if [ -n "$left" ]; then
	echo "deps: still missing after install: $left" >&2
	exit 1
fi
echo "deps: done"
