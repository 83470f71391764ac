#!/usr/bin/env bash
# make install / make uninstall into a DESTDIR (no root needed):
#   the file list and modes, no @VAR@ left, PREFIX honoured, the unit passes
#   `systemd-analyze verify', the installed starter policy and examples pass
#   `xborderd --check', an existing xborder.conf is never overwritten, and
#   uninstall removes exactly what install added.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
XB_BUILD=${XB_BUILD:-$root/build}
failed=0
ok() { echo "ok - install/$1"; }
fail() { echo "not ok - install/$1${2:+: $2}"; failed=$((failed + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name" "command failed: $*"; fi; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# mk TARGET DESTDIR [VAR=VALUE...] — make install/uninstall with the tree's build.
mk() {
	local t=$1 d=$2; shift 2
	make -s -C "$root" --no-print-directory BUILD="$XB_BUILD" DESTDIR="$d" "$@" "$t" >"$tmp/make.out" 2>&1 ||
		{ cat "$tmp/make.out"; return 1; }
}
files() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./|/|' | sort); }
mode() { stat -c %a "$1"; }

d=$tmp/d1
mkdir -p "$d"
mk install "$d" || { fail "make install" "failed"; exit 1; }
ok "make install DESTDIR=..."

want=(/usr/local/sbin/xborderd /usr/local/sbin/xborder-wg /usr/local/bin/xborderctl
      /lib/systemd/system/xborderd.service /usr/lib/sysusers.d/xborder.conf
      /usr/lib/tmpfiles.d/xborder.conf /etc/xborder/xborder.conf
      /etc/xborder/examples/small.conf /etc/xborder/examples/keys/gateway.key)
for m in "$root"/deploy/man/*.[1-8] "$root"/man/*.[1-8]; do
	[ -f "$m" ] && want+=("/usr/local/share/man/man${m##*.}/$(basename "$m")")
done
[ -x "$XB_BUILD/bin/xborder-posture" ] && want+=(/usr/local/sbin/xborder-posture)
for f in "${want[@]}"; do
	[ -f "$d$f" ] || fail "installs $f" "missing"
done
[ "$failed" = 0 ] && ok "installs the ${#want[@]} expected files"
( cd "$root/deploy/examples" && find . -type f | sed 's|^\./|/etc/xborder/examples/|' ) | sort >"$tmp/examples"
files "$d" | grep '^/etc/xborder/examples/' >"$tmp/got-examples"
check "every file of deploy/examples under /etc/xborder/examples" cmp -s "$tmp/examples" "$tmp/got-examples"
files "$d" >"$tmp/all"
extra=$(grep -vE '^/(usr/local/(s?bin|share/man/man[1-8])|lib/systemd/system|usr/lib/(sysusers|tmpfiles)\.d|etc/xborder)/' "$tmp/all")
check "nothing outside those directories${extra:+: $extra}" test -z "$extra"
check "binaries 0755" test "$(mode "$d/usr/local/sbin/xborderd")" = 755
check "example keys 0600" test "$(mode "$d/etc/xborder/examples/keys/gateway.key")" = 600
check "no @VAR@ left" sh -c "! grep -rl '@[A-Z]*@' '$d/lib' '$d/usr/lib'"
check "the unit runs PREFIX's xborderd as xborder" sh -c \
	"grep -qx 'ExecStart=/usr/local/sbin/xborderd -f -c /etc/xborder/xborder.conf' '$d/lib/systemd/system/xborderd.service' &&
	 grep -qx 'User=xborder' '$d/lib/systemd/system/xborderd.service'"
check "the unit's capabilities are exactly the three" sh -c \
	"grep -qx 'AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE' '$d/lib/systemd/system/xborderd.service' &&
	 grep -qx 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE' '$d/lib/systemd/system/xborderd.service'"
check "tmpfiles.d names the key directory" grep -q '^d /etc/xborder/keys 0700 xborder xborder' "$d/usr/lib/tmpfiles.d/xborder.conf"

# systemd-analyze verify looks for the commands on this machine: a copy of
# the unit whose commands point into DESTDIR; man pages from DESTDIR too.
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$tmp/verify"
	sed "s|^\(Exec[A-Za-z]*=\)/|\1$d/|" "$d/lib/systemd/system/xborderd.service" >"$tmp/verify/xborderd.service"
	out=$(MANPATH=$d/usr/local/share/man systemd-analyze verify "$tmp/verify/xborderd.service" 2>&1); rc=$?
	check "systemd-analyze verify: clean${out:+: $out}" test "$rc" = 0 -a -z "$out"
else
	echo "skip - install/systemd-analyze verify: systemd-analyze is missing (apt-get install systemd)"
fi

# The installed policies check: the starter once it has a key; the examples.
mkdir -p "$d/etc/xborder/keys"
(umask 077; printf 'YNqHbfBQKaGvzefSsI2GzL6Ve/Gyq5qdk1ZxAtR6i2Q=\n' >"$d/etc/xborder/keys/gateway.key")
check "the installed xborder.conf passes --check once keys/gateway.key exists" \
	"$XB_BUILD/bin/xborderd" --check -c "$d/etc/xborder/xborder.conf"
rm -rf "$d/etc/xborder/keys"
for f in "$d"/etc/xborder/examples/*.conf; do
	check "installed example $(basename "$f") passes --check" \
		sh -c "cd '$d/etc/xborder/examples' && '$XB_BUILD/bin/xborderd' --check -c '$(basename "$f")' >/dev/null"
done

# Uninstall removes exactly what install added (and our directories).
mk uninstall "$d" || fail "make uninstall" "failed"
left=$(files "$d")
check "uninstall leaves no file${left:+: $left}" test -z "$left"
check "uninstall removes /etc/xborder" test ! -e "$d/etc/xborder"

# An operator's xborder.conf: never overwritten, never removed.
d=$tmp/d2
mkdir -p "$d/etc/xborder"
echo '# mine' >"$d/etc/xborder/xborder.conf"
echo 'other' >"$d/etc/xborder/notes"
mk install "$d" || fail "make install over an existing /etc/xborder" "failed"
check "an existing xborder.conf is left as it is" grep -qx '# mine' "$d/etc/xborder/xborder.conf"
mk uninstall "$d" || fail "make uninstall" "failed"
check "uninstall keeps the operator's files" \
	test "$(files "$d" | tr '\n' ' ')" = "/etc/xborder/notes /etc/xborder/xborder.conf "
check "... unchanged" grep -qx '# mine' "$d/etc/xborder/xborder.conf"

# PREFIX=/usr: binaries, man pages and the unit's commands follow.
d=$tmp/d3
mk install "$d" PREFIX=/usr || fail "make install PREFIX=/usr" "failed"
check "PREFIX=/usr: /usr/sbin/xborderd, /usr/share/man" \
	test -x "$d/usr/sbin/xborderd" -a -f "$d/usr/share/man/man8/xborderd.8"
check "PREFIX=/usr: the unit runs /usr/sbin/xborderd" \
	grep -q '^ExecStart=/usr/sbin/xborderd ' "$d/lib/systemd/system/xborderd.service"
check "PREFIX=/usr: ExecReload=/usr/bin/xborderctl reload" \
	grep -qx 'ExecReload=/usr/bin/xborderctl reload' "$d/lib/systemd/system/xborderd.service"
mk uninstall "$d" PREFIX=/usr
left=$(files "$d")
check "PREFIX=/usr: uninstall leaves no file${left:+: $left}" test -z "$left"

exit $((failed > 0))
