#!/usr/bin/env bash
# Enrolment and expiry end to end: `xborderctl device add' enrols a device,
# the device comes up from nothing but the wg-quick file printed (and the
# QR code decodes to the same text), reaches the origin through the gateway
# and a partner tunnel; remove and a refused add leave the files right; a
# device whose expiry comes while it streams loses its peer and its flows.
#
#   phone ─┐ 192.0.2.1/30 ↔ .2        192.0.2.9/30 ↔ .10
#   tab   ─┘ 192.0.2.5/30 ↔ .6   gw ──WG (tunnel)── par ── org 203.0.113.10
#          pool 198.51.100.0/24       inner 192.0.2.13/30 ↔ .14
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/xborderd.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
for t in zbarimg conntrack wireguard-go; do
	command -v "$t" >/dev/null || { echo "skip: $t is not installed (deploy/deps.sh installs it)"; exit 77; }
done
xb_ns phone tab gw par org
xb_veth phone eth0 gw ea
xb_veth tab eth0 gw eb
xb_veth gw ep par eg
xb_veth par eo org eth0
xb_addr phone eth0 192.0.2.1/30
xb_addr tab eth0 192.0.2.5/30
xb_addr gw ea 192.0.2.2/30
xb_addr gw eb 192.0.2.6/30
xb_addr gw ep 192.0.2.9/30
xb_addr par eg 192.0.2.10/30
xb_addr par eo 203.0.113.1/24
xb_addr org eth0 203.0.113.10/24
nq org ip route add default via 203.0.113.1
xb_router par

ID=$$
GWIF=xg$ID TUN=p$ID PIF=xp$ID
CTL=$XB_TMP/ctl.sock
kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")
cat >"$XB_TMP/xborder.conf" <<EOF
gateway = {
  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
  enrol_file = "enrolled.conf"; enrol_endpoint = "192.0.2.2:51820";
};
groups = [ "finance" ];
tunnels = (
  { name = "$TUN"; endpoint = "192.0.2.10:51900"; private_key_file = "tun.key";
    public_key = "$(pub "$kp")"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14"; }
);
rules = (
  { name = "erp"; groups = [ "finance" ]; to = [ "203.0.113.0/24" ]; action = "allow"; via = [ "$TUN" ]; }
);
EOF
main_sum=$(sha256sum <"$XB_TMP/xborder.conf")

xb_wg_up par "$PIF" wireguard-go "$kp" 51900 192.0.2.14/30 || { xb_fail "partner bring-up"; xb_end; }
n par wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.13/32
xb_gw_start || { xb_fail "xborderd starts" "$(cat "$GWLOG")"; xb_end; }
xb_ok "xborderd starts with an enrolment file that does not exist yet"

# device_up NS IFNAME CONF — the device from its wg-quick file alone: the
# userspace driver takes the file (it ignores DNS), `ip' the Address and a
# route per AllowedIPs prefix.
device_up() {
	local a
	XB_WG_ARGS="-c $3" xb_wg_up "$1" "$2" ours "$(sed -n 's/^PrivateKey = //p' "$3")" 0 || return 1
	for a in $(sed -n 's/^Address = //p' "$3" | tr -d ','); do xb_addr "$1" "$2" "$a" || return 1; done
	for a in $(sed -n 's/^AllowedIPs = //p' "$3" | tr -d ','); do nq "$1" ip route add "$a" dev "$2" || return 1; done
}
reaches() { nq "$1" ping -c 1 -W 1 "$2" >/dev/null || nq "$1" ping -c 3 -i 0.3 -W 2 "$2" >/dev/null; }

# --- enrol the phone ---
t0=$(date +%s%3N)
ctl device add phone --group finance --allowed-ips 203.0.113.0/24 -o "$XB_TMP/phone.png" \
	>"$XB_TMP/phone.conf" 2>"$XB_TMP/add.err"
echo "# device add (key pair, file written, reload, QR PNG) took $(( $(date +%s%3N) - t0 )) ms"
xb_check "device add prints a wg-quick file with a private key" grep -qE '^PrivateKey = [A-Za-z0-9+/]{43}=$' "$XB_TMP/phone.conf"
cat "$XB_TMP/phone.conf" | sed 's/^PrivateKey = .*/PrivateKey = (hidden)/'
pk=$(sed -n 's/^PrivateKey = //p' "$XB_TMP/phone.conf")
xb_check "the enrolment file holds the phone with the public key of that private key" \
	grep -q "name = \"phone\"; public_key = \"$(pub "$pk")\"; groups = \\[ \"finance\" \\];" "$XB_TMP/enrolled.conf"
xb_check "the private key is in no file xborderd has" eval "! grep -rqF '$pk' $XB_TMP/enrolled.conf $XB_TMP/state $GWLOG"
xb_check "the operator's main file is untouched" test "$(sha256sum <"$XB_TMP/xborder.conf")" = "$main_sum"
xb_check "AllowedIPs: the pool and the prefix asked for" grep -qx 'AllowedIPs = 198.51.100.0/24, 203.0.113.0/24' "$XB_TMP/phone.conf"
xb_check "DNS is the gateway; Endpoint the policy's enrol_endpoint" \
	sh -c "grep -qx 'DNS = 198.51.100.1' $XB_TMP/phone.conf && grep -qx 'Endpoint = 192.0.2.2:51820' $XB_TMP/phone.conf"
xb_check "the QR code (PNG) decodes to the same text" \
	sh -c 'test "$(zbarimg --raw -q "$1")" = "$(cat "$2")"' _ "$XB_TMP/phone.png" "$XB_TMP/phone.conf"
xb_check "the PNG is mode 0600 (it holds a private key)" test "$(stat -c %a "$XB_TMP/phone.png")" = 600

device_up phone xa$ID "$XB_TMP/phone.conf" || xb_fail "phone bring-up" "$(cat "$XB_LAST_LOG")"
xb_check "the phone, from its file alone, reaches the origin through the gateway" reaches phone 203.0.113.10
same_config() {	# device show --config gives the file printed at enrolment, key aside
	ctl device show phone --config --allowed-ips 203.0.113.0/24 >"$XB_TMP/show.conf" || return 1
	sed 's/^PrivateKey = .*/PrivateKey = (not stored by xborder: the device'"'"'s own, or the one printed at enrolment)/' \
		"$XB_TMP/phone.conf" | diff - "$XB_TMP/show.conf"
}
ctl_has() { ctl "$@" >"$XB_TMP/ctl.out" && grep -q "$CTL_WANT" "$XB_TMP/ctl.out"; }
xb_check "device show --config: the same file with a placeholder for the key" same_config
CTL_WANT='^phone ' xb_check "devices lists the phone" ctl_has devices

# --- a refused add changes nothing ---
before=$(sha256sum <"$XB_TMP/enrolled.conf")
out=$(ctl device add x1 --group nosuchgroup 2>&1); rc=$?
xb_check "an add the policy refuses fails (exit 1) naming FILE:LINE ($(echo "$out" | tail -n 1))" \
	sh -c '[ "$1" = 1 ] && echo "$2" | grep -q "enrolled.conf:[0-9]*: .*nosuchgroup"' _ "$rc" "$out"
xb_check "... and the enrolment file is as it was" test "$(sha256sum <"$XB_TMP/enrolled.conf")" = "$before"
xb_check "... and no temporary file is left" eval "! ls $XB_TMP | grep -q 'enrolled.conf.tmp'"
xb_check "an add with a taken name fails" eval "! ctl device add phone --group finance >/dev/null 2>&1"
xb_check "the phone still reaches the origin" reaches phone 203.0.113.10

# --- expiry: the tablet's flow is cut when its time comes ---
exp_s=$(( $(date +%s) + 8 ))
exp=$(date -u -d "@$exp_s" +%Y-%m-%dT%H:%M:%SZ)
ctl device add tab --group finance --expires "$exp" --allowed-ips 203.0.113.0/24 --endpoint 192.0.2.6:51820 --no-qr >"$XB_TMP/tab.conf"
device_up tab xb$ID "$XB_TMP/tab.conf" || xb_fail "tab bring-up" "$(cat "$XB_LAST_LOG")"
xb_check "the tablet reaches the origin before its expiry" reaches tab 203.0.113.10
taddr=$(sed -n 's/^Address = \([0-9.]*\).*/\1/p' "$XB_TMP/tab.conf")
port=$((20000 + RANDOM % 20000))
xb_bg org "$XB_BIN/xb-pkt" tcp-recv -t 20000 "$port"; rlog=$XB_LAST_LOG
xb_wait 3000 grep -q ready "$rlog"
xb_bg tab timeout 30 "$XB_BIN/xb-pkt" tcp-send -n 400000 -r 200 203.0.113.10 "$port"; spid=$XB_LAST_PID
flows() { nq gw conntrack -L -s "$taddr" 2>/dev/null | grep -c tcp; }
flowing() { [ "$(flows)" -ge 1 ]; }
xb_check "the tablet (expires $exp) streams to the origin: a conntrack entry" xb_wait 3000 flowing
nq gw conntrack -L -s "$taddr" 2>&1 | head -3
xb_check "its expiry comes while running: the daemon says so" xb_wait 12000 grep -q 'device "tab" expired' "$GWLOG"
echo "# the expiry was acted on $(( $(date +%s%3N) - exp_s * 1000 )) ms after its second began (tick: 1 s)"
xb_check "... its peer is gone from the device interface" eval "! nq gw wg show $GWIF peers | grep -q '$(pub "$(sed -n 's/^PrivateKey = //p' "$XB_TMP/tab.conf")")'"
sleep 1
xb_check "... its open flow is cut (no conntrack entry from $taddr)" test "$(flows)" = 0
CTL_WANT='^tab (expired)' xb_check "devices shows it expired" ctl_has devices
CTL_WANT='expired: refused' xb_check "device show says it is refused" ctl_has device show tab
xb_check "the phone still reaches the origin" reaches phone 203.0.113.10
kill "$spid" 2>/dev/null

# An expiry moved by an edit of the file and a reload: later lets the
# tablet back in, earlier cuts it at the reload.
tpub=$(pub "$(sed -n 's/^PrivateKey = //p' "$XB_TMP/tab.conf")")
sed -i "s/expires = \"$exp\"/expires = \"2099-01-01T00:00:00Z\"/" "$XB_TMP/enrolled.conf"
ctl reload >/dev/null
xb_check "expiry moved later and reloaded: the tablet's peer is back" sh -c "ip netns exec $XB_RUN-gw wg show $GWIF peers | grep -q '$tpub'"
# The tablet's client still holds the session the gateway dropped: it
# handshakes again once its data goes unanswered (keepalive + rekey
# timeout, about 15 s), as after a gateway restart.
t0=$(date +%s%3N)
xb_check "... and it reaches the origin again, by itself" xb_wait 30000 nq tab ping -c 1 -W 1 203.0.113.10
echo "# the tablet was back after $(( $(date +%s%3N) - t0 )) ms"
CTL_WANT='expires: 2099-01-01T00:00:00Z$' xb_check "device show gives the new expiry" ctl_has device show tab
xb_bg tab ping -i 0.2 -c 100 203.0.113.10; ppid=$XB_LAST_PID
pinging() { nq gw conntrack -L -s "$taddr" 2>/dev/null | grep -q icmp; }
xb_wait 3000 pinging
sed -i 's/expires = "2099-01-01T00:00:00Z"/expires = "2020-01-01T00:00:00Z"/' "$XB_TMP/enrolled.conf"
ctl reload >/dev/null
xb_check "expiry moved into the past and reloaded: the peer goes at the reload" eval "! nq gw wg show $GWIF peers | grep -q '$tpub'"
xb_check "... and the reload cut its flows" grep -qE 'reload: [1-9][0-9]* flows of 1 expired devices cut' "$GWLOG"
xb_check "... none is left from $taddr" eval "! nq gw conntrack -L -s $taddr 2>/dev/null | grep -q ."
kill "$ppid" 2>/dev/null

# --- remove ---
xb_check "device remove phone" ctl device remove phone
xb_check "... its peer is gone" eval "! nq gw wg show $GWIF peers | grep -q '$(pub "$pk")'"
xb_check "... and it is out of the enrolment file" eval "! grep -q '\"phone\"' $XB_TMP/enrolled.conf"
xb_check "... and cannot reach the origin" eval "! nq phone ping -c 2 -i 0.2 -W 1 203.0.113.10"
xb_check "removing a device of the operator's files is refused" eval "! ctl device remove nosuch 2>/dev/null"
xb_check "the operator's main file is still untouched" test "$(sha256sum <"$XB_TMP/xborder.conf")" = "$main_sum"
xb_check "xborderd stops" xb_gw_stop
# Under `make test SAN=1' the daemon reports leaks and errors on its stderr at exit.
xb_check "xborderd's log has no sanitizer report" eval "! grep -q 'Sanitizer' '$GWLOG'"
xb_end
