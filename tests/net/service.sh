#!/usr/bin/env bash
# xborderd as xborderd.service runs it: an unprivileged user with only
# CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE, talking systemd's
# notification protocol to a socket this test listens on (xb-sdnotify).
#
#   test ── NOTIFY_SOCKET ($XB_TMP/notify, xb-sdnotify) ◀── READY=1, WATCHDOG=1, …
#                                                         │
#   gw namespace: xborderd -f as uid $RUN_UID, ambient caps net_admin,net_raw,net_bind_service
#                 device interface xg<pid> (userspace WireGuard: this kernel has none)
#                 /run/wireguard: a tmpfs of its own, owned by $RUN_UID (the unit
#                 gets the directory from tmpfiles.d; see deploy/systemd/)
#                 /dev/net/tun: a node of its own, mode 0600 root:root as on a
#                 freshly booted host without udev, whatever the host's is; first
#                 without, then with the ACL entry the shipped tmpfiles.d line adds
#
# The user is `xborder' when it exists (after make install), else nobody
# (65534); no user is created. systemd need not be PID 1: this is the
# protocol, not systemd.
. "$(dirname "$0")/../lib/netns.sh"
xb_begin
command -v setpriv >/dev/null || { echo "setpriv (util-linux) is missing"; exit 77; }
command -v systemd-tmpfiles >/dev/null || { echo "systemd-tmpfiles is missing (it applies the shipped tmpfiles.d line)"; exit 77; }
[ -x "$XB_BIN/xb-sdnotify" ] || { echo "xb-sdnotify is not built"; exit 77; }
xb_ns gw
nq gw sysctl -qw net.ipv4.ip_forward=0

if id xborder >/dev/null 2>&1; then
	RUN_UID=$(id -u xborder) RUN_GID=$(id -g xborder)
else
	RUN_UID=65534 RUN_GID=65534
fi
RUN_GROUP=$(getent group "$RUN_GID" | cut -d: -f1)
xb_log "running as uid $RUN_UID gid $RUN_GID ($RUN_GROUP)"
ID=$$ GWIF=xg$$
CTL=$XB_TMP/run/control.sock NOTIFY=$XB_TMP/notify
chmod 755 "$XB_TMP"
mkdir -p "$XB_TMP/run" "$XB_TMP/state" /run/wireguard
chown "$RUN_UID:$RUN_GID" "$XB_TMP/run" "$XB_TMP/state"
(umask 077; wg genkey >"$XB_TMP/gw.key")
chown "$RUN_UID:$RUN_GID" "$XB_TMP/gw.key"
policy() {	# policy EXTRA_RULE
	cat >"$XB_TMP/xborder.conf" <<CONF
gateway = { interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24"; control_socket = "$CTL"; state_dir = "$XB_TMP/state"; };
groups = [ "staff" ];
devices = ( { name = "bob"; public_key = "$(wg genkey | wg pubkey)"; groups = [ "staff" ]; } );
rules = ( $1{ name = "rest"; action = "deny"; } );
CONF
}
policy ""

xb_bg gw "$XB_BIN/xb-sdnotify" "$NOTIFY"; NLOG=$XB_LAST_LOG
xb_wait 3000 grep -q listening "$NLOG" || { xb_fail "xb-sdnotify listens"; xb_end; }
chmod 666 "$NOTIFY"	# as systemd's: any process of the unit may write
msgs() { grep -c "$1" "$NLOG"; }
# The messages other than the watchdog's, which may come between any two.
events() { grep -v WATCHDOG=1 "$NLOG"; }
# last_event_after A B — the event after the last A is B (fixed strings).
last_event_after() { events | grep -F -A1 "$1" | tail -n 1 | grep -qF "$2"; }

# The TUN node the daemon sees: 0600 root:root, as a fresh host without udev
# has it (/dev/net/tun itself is left alone; it is bound over in the
# daemon's own mount namespace).
TUNROOT=$XB_TMP/root
mkdir -p "$TUNROOT/dev/net"
mknod -m 0600 "$TUNROOT/dev/net/tun" c 10 200
# start_gw — in the namespace's own mount namespace (ip netns exec makes
# one): a /run/wireguard the user may write and our TUN node, then drop to
# the user with the caps.
caps=+net_admin,+net_raw,+net_bind_service
start_gw() {
	xb_bg gw env NOTIFY_SOCKET="$NOTIFY" WATCHDOG_USEC=1000000 sh -c '
		uid=$1 gid=$2 caps=$3 tun=$4; shift 4
		mount -t tmpfs -o mode=0755,uid=$uid,gid=$gid xb-wireguard /run/wireguard || exit 1
		mount --bind "$tun" /dev/net/tun || exit 1
		exec setpriv --reuid="$uid" --regid="$gid" --clear-groups \
			--inh-caps="$caps" --ambient-caps="$caps" "$@"
	' sh "$RUN_UID" "$RUN_GID" "$caps" "$TUNROOT/dev/net/tun" "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"
	GWPID=$XB_LAST_PID GWLOG=$XB_LAST_LOG
}

# Without the ACL entry: it stops, and its log says what to change.
start_gw
if xb_wait 10000 sh -c "! kill -0 $GWPID"; then
	xb_ok "TUN node 0600 root:root, no ACL: xborderd stops"
else
	xb_fail "TUN node 0600 root:root, no ACL: xborderd stops"; kill "$GWPID"
fi
wait "$GWPID"
xb_check "... its log names the node's mode and the command that mends it" \
	grep -qF "mode 0600, owner 0:0, and this process runs as uid $RUN_UID gid $RUN_GID (CAP_NET_ADMIN does not open it); give the group access with \`setfacl -m g:$RUN_GROUP:rw /dev/net/tun'" "$GWLOG"
xb_check "... and READY=1 never came" sh -c "! grep -q READY=1 '$NLOG'"

# The shipped /run/wireguard line, for this test's uid and gid (numeric:
# --root resolves names in the root's own /etc/passwd): the
# daemon's user owns the directory and no group may write it — a member of
# the control group who could would delete the UAPI sockets, and every
# userspace interface would be torn down and rebuilt without its sessions.
RUN_USER=$(getent passwd "$RUN_UID" | cut -d: -f1)
sed -n 's|^d /run/wireguard \([0-7]*\) xborder xborder -$|d /run/wireguard \1 '"$RUN_UID $RUN_GID"' -|p' \
	"$XB_ROOT/deploy/systemd/tmpfiles.conf.in" >"$XB_TMP/wgdir.conf"
xb_check "tmpfiles.d/xborder.conf makes /run/wireguard the daemon user's" test -s "$XB_TMP/wgdir.conf"
mkdir -p "$XB_TMP/wgroot/run"
systemd-tmpfiles --root="$XB_TMP/wgroot" --create "$XB_TMP/wgdir.conf"
xb_check "... owned by $RUN_USER, writable by no group or other" \
	sh -c 'd=$1/run/wireguard; [ "$(stat -c %u "$d")" = "$2" ] && [ $((0$(stat -c %a "$d") & 022)) = 0 ]' \
	_ "$XB_TMP/wgroot" "$RUN_UID"

# The shipped tmpfiles.d line, for this test's group, applied to our node.
sed -n 's|^\(a+ /dev/net/tun .*group:\)xborder\(:rw\)$|\1'"$RUN_GROUP"'\2|p' \
	"$XB_ROOT/deploy/systemd/tmpfiles.conf.in" >"$XB_TMP/tmpfiles.conf"
xb_check "tmpfiles.d/xborder.conf has the ACL line for /dev/net/tun" test -s "$XB_TMP/tmpfiles.conf"
systemd-tmpfiles --root="$TUNROOT" --create "$XB_TMP/tmpfiles.conf"
xb_check "... which leaves the mode 0600 for everyone else" \
	sh -c "getfacl -cn '$TUNROOT/dev/net/tun' | grep -qx 'other::---'"
start_gw

if ! xb_wait 10000 grep -q 'READY=1' "$NLOG"; then
	xb_fail "READY=1 arrives" "$(cat "$GWLOG")"
	xb_end
fi
# The moment READY=1 is seen, the control socket answers — at the first try.
xb_check "READY=1, and at once the control socket answers" \
	nq gw "$XB_BIN/xborderctl" -s "$CTL" status
xb_check "READY=1 came after the gateway was up" grep -q "gateway up" "$GWLOG"
xb_check "STATUS= with the summary" grep -q 'READY=1|STATUS=up: 1 devices, 0 tunnels, 1 rules' "$NLOG"
# The xborderd in this test's namespace (pgrep alone sees every namespace's).
pid=
for p in $(ip netns pids "$XB_RUN-gw"); do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = xborderd ] && { pid=$p; break; }
done
xb_check "xborderd runs as uid $RUN_UID" \
	sh -c "grep -qE '^Uid:[[:space:]]+$RUN_UID[[:space:]]+$RUN_UID' /proc/$pid/status"
# CAP_NET_BIND_SERVICE 10, CAP_NET_RAW 13, CAP_NET_ADMIN 12: 0x3400.
xb_check "with exactly net_admin, net_raw and net_bind_service" \
	sh -c "grep -qE '^CapEff:[[:space:]]+0*3400$' /proc/$pid/status"
xb_check "the device interface exists" nq gw ip link show "$GWIF"
xb_check "it turned IPv4 forwarding on without root" \
	sh -c "[ \$(ip netns exec $XB_RUN-gw sysctl -n net.ipv4.ip_forward) = 1 ]"
xb_check "no warning about privileges" sh -c "! grep -qiE 'CAP_NET_ADMIN|denied|not permitted' '$GWLOG'"

# The watchdog: WATCHDOG_USEC=1 s, so WATCHDOG=1 every 0.5 s.
n0=$(msgs WATCHDOG=1)
sleep 2
n1=$(msgs WATCHDOG=1)
xb_within "WATCHDOG=1 repeats (in 2 s)" $((n1 - n0)) 3 5
gap=$(grep 'WATCHDOG=1' "$NLOG" | awk '{ if (p != "") { g = $1 - p; if (g > m) m = g } p = $1 } END { print m + 0 }')
xb_within "longest gap between WATCHDOG=1" "$gap" 1 600 ms

# Reload: RELOADING=1 with its monotonic time, then READY=1.
policy "{ name = \"more\"; groups = [ \"staff\" ]; to = [ \"203.0.113.0/24\" ]; action = \"deny\"; }, "
nq gw "$XB_BIN/xborderctl" -s "$CTL" reload >/dev/null
xb_check "reload: RELOADING=1 with MONOTONIC_USEC" grep -qE 'RELOADING=1\|MONOTONIC_USEC=[0-9]+$' "$NLOG"
xb_check "reload: READY=1 after it, with the new summary" \
	last_event_after RELOADING=1 'READY=1|STATUS=up: 1 devices, 0 tunnels, 2 rules'
echo 'rules = ( { name = "x"; action = "nonsense"; } );' >>"$XB_TMP/xborder.conf"
nq gw "$XB_BIN/xborderctl" -s "$CTL" reload >/dev/null 2>&1
xb_check "a failed reload: READY=1 all the same, STATUS says so" \
	last_event_after RELOADING=1 'READY=1|STATUS=last reload failed: 1 devices, 0 tunnels, 2 rules'

kill -TERM "$GWPID"
for _ in $(seq 300); do kill -0 "$GWPID" 2>/dev/null || break; sleep 0.01; done
xb_check "SIGTERM: STOPPING=1" grep -q 'STOPPING=1' "$NLOG"
xb_check "SIGTERM: it exits" sh -c "! kill -0 $GWPID 2>/dev/null"
wait "$GWPID"; rc=$?
xb_check "exit status 0 (was $rc)" test "$rc" = 0
xb_check "the device interface is gone" sh -c "! ip -n $XB_RUN-gw link show $GWIF 2>/dev/null"
xb_check "IPv4 forwarding is back off" \
	sh -c "[ \$(ip netns exec $XB_RUN-gw sysctl -n net.ipv4.ip_forward) = 0 ]"
echo "# notifications:"; sed 's/^/#   /' "$NLOG"
xb_end
