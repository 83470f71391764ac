#!/bin/sh
# Install the Debian packages xborder needs to build, test and run its demo.
#
#   deploy/deps.sh [GROUP...]          install whatever is missing (root), saying what
#   deploy/deps.sh --check [GROUP...]  exit 0 if nothing is missing, else list it and exit 1
#   deploy/deps.sh --auto [GROUP...]   as --check, but install when run as root (used by make)
#
# Groups: the base set (build, test, demo) always; "fuzz" adds clang and its
# sanitizer runtime for make fuzz; "bench" the references of make bench
# (dnsperf, unbound).
#
# Idempotent: installed packages are left alone. Recommends are not pulled in
# (wireguard-tools would otherwise bring a kernel image and an initramfs run).
#
# prometheus is here for promtool (tests/cli/deploy.sh checks the alerting
# rules); its server must not run on a build or test machine (it would
# listen on :9090 and keep a database). While installing, a policy-rc.d
# that refuses every start (exit 101, invoke-rc.d's "action forbidden")
# keeps its postinst from starting it, with or without systemd; under
# systemd, postinst still enables the unit for the next boot, so it is
# then disabled. chromium renders the status page headless (no service).
# etcd-server and keepalived are the cluster's engines (docs/ha.md); the
# tests start their own members in network namespaces, so the packaged
# services are treated as prometheus is: not started, disabled.
set -eu

# package:probe — the probe is a pkg-config module (pc:NAME) or a command.
PKGS="
build-essential:cmd:cc
pkg-config:cmd:pkg-config
libmnl-dev:pc:libmnl
libsodium-dev:pc:libsodium
libconfig-dev:pc:libconfig
libnftables-dev:pc:libnftables
libjansson-dev:pc:jansson
libsqlite3-dev:pc:sqlite3
libmicrohttpd-dev:pc:libmicrohttpd
libssl-dev:pc:libcrypto
libqrencode-dev:pc:libqrencode
libpng-dev:pc:libpng
zbar-tools:cmd:zbarimg
libcurl4-openssl-dev:pc:libcurl
iproute2:cmd:ip
iputils-ping:cmd:ping
nftables:cmd:nft
conntrack:cmd:conntrack
wireguard-tools:cmd:wg
wireguard-go:cmd:wireguard-go
iperf3:cmd:iperf3
tcpdump:cmd:tcpdump
jq:cmd:jq
dnsmasq-base:cmd:dnsmasq
bind9-dnsutils:cmd:dig
curl:cmd:curl
busybox:cmd:busybox
time:cmd:/usr/bin/time
sqlite3:cmd:sqlite3
openssl:cmd:openssl
python3:cmd:python3
acl:cmd:setfacl
prometheus:cmd:promtool
chromium:cmd:chromium
etcd-server:cmd:etcd
etcd-client:cmd:etcdctl
keepalived:cmd:keepalived
"
BENCH_PKGS="
dnsperf:cmd:dnsperf
unbound:cmd:unbound
"
FUZZ_PKGS="
clang:cmd:clang
libclang-rt-14-dev:file:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
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
		file) [ -e "$what" ] || echo "$pkg" ;;
		esac
	done
}

mode=install
case ${1:-} in --check|--auto) mode=$1; shift ;; esac
for group in "$@"; do
	case $group in
	fuzz) PKGS="$PKGS $FUZZ_PKGS" ;;
	bench) PKGS="$PKGS $BENCH_PKGS" ;;
	*) echo "deps: unknown group '$group' (groups: fuzz, bench)" >&2; exit 2 ;;
	esac
done
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
# No service of what is installed starts now (see the top); an existing
# policy-rc.d is the administrator's and is left alone.
rcd=/usr/sbin/policy-rc.d
if [ ! -e "$rcd" ]; then
	printf '#!/bin/sh\n# deploy/deps.sh: no service starts during this install\nexit 101\n' >"$rcd"
	chmod 755 "$rcd"
	trap 'rm -f "$rcd"' EXIT
fi
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $need; then
	apt-get update -q
	apt-get install -y -q --no-install-recommends $need
fi
for pair in prometheus:prometheus etcd-server:etcd keepalived:keepalived; do
	case " $need " in
	*" ${pair%%:*} "*)
		if [ -d /run/systemd/system ]; then
			systemctl disable --now "${pair#*:}.service" || true
		fi ;;
	esac
done
left=$(missing | tr '\n' ' ')
if [ -n "$left" ]; then
	echo "deps: still missing after install: $left" >&2
	exit 1
fi
echo "deps: done"
