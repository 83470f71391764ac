#!/usr/bin/env bash
# xborderd's DNS service end to end: overrides, names resolved by a mainland
# resolver reachable only through the partner tunnel (their addresses in the
# rule's set before the answer leaves), blocks, forwarding with failover,
# TCP for large answers, posture-aware answers, refusal outside the pools,
# the query log, and learned destinations across a restart.
#
#   alice (finance) ─┐ 192.0.2.1/30 ↔ .2                          partner            origin
#     198.51.100.10  ├──WG── gw: xborderd ───── WG (tunnel) ────── 192.0.2.10 ── 203.0.113.1 ── 203.0.113.10 (erp, http)
#   bob (staff)     ─┘ 192.0.2.5/30 ↔ .6       192.0.2.9/30         inner .14                  203.0.113.53 (mainland DNS)
#     198.51.100.11   DNS on 198.51.100.1       inner 192.0.2.13/30
#                      └─ 192.0.2.17/30 ── pub 192.0.2.18: public resolver; 192.0.2.21 routed there and dropped (dead upstream)
#
# DNS_TAP=false: the same with gateway dns_tap = false (queries through the
# kernel's stack, as before the tap).
#
# The gateway has no route to 203.0.113.0/24: the mainland resolver answers
# only queries that came through the tunnel.
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/xborderd.sh"
. "$(dirname "$0")/../lib/wg.sh"
xb_begin
for t in dnsmasq dig curl busybox; do
	command -v "$t" >/dev/null || { xb_skip "dns" "$t is not installed (deploy/deps.sh)"; exit 77; }
done
xb_ns alice bob gw par org pub
xb_veth alice eth0 gw ea
xb_veth bob eth0 gw eb
xb_veth gw ep par eg
xb_veth par eo org eth0
xb_veth gw eu pub eth0
xb_addr alice eth0 192.0.2.1/30
xb_addr bob eth0 192.0.2.5/30
xb_addr gw ea 192.0.2.2/30
xb_addr gw eb 192.0.2.6/30
xb_addr gw ep 192.0.2.9/30
xb_addr gw eu 192.0.2.17/30
xb_addr pub eth0 192.0.2.18/30
xb_addr par eg 192.0.2.10/30
xb_addr par eo 203.0.113.1/24
xb_addr org eth0 203.0.113.10/24 203.0.113.53/24
nq org ip route add default via 203.0.113.1
nq pub ip route add default via 192.0.2.17
nq gw ip route add 192.0.2.21/32 via 192.0.2.18
nq pub ip addr add 192.0.2.21/32 dev lo
nq pub nft add table ip dead '{ chain in { type filter hook input priority 0; ip daddr 192.0.2.21 drop; } }'
xb_router par

ID=$$
GWIF=xg$ID TUN=p$ID PIF=xp$ID AIF=xa$ID BIF=xq$ID
CTL=$XB_TMP/ctl.sock QLOG=$XB_TMP/queries.log
kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey) ka=$(wg genkey) kb=$(wg genkey)
pub() { echo "$1" | wg pubkey; }
(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")

cat >"$XB_TMP/xborder.conf" <<EOF
gateway = {
  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
  pool4 = "198.51.100.0/24";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state"; dns_tap = ${DNS_TAP:-true};
};
groups = [ "finance", "staff" ];
devices = (
  { name = "alice"; public_key = "$(pub "$ka")"; groups = [ "finance" ]; address4 = "198.51.100.10"; },
  { name = "bob"; public_key = "$(pub "$kb")"; groups = [ "staff" ]; address4 = "198.51.100.11"; }
);
tunnels = (
  { name = "$TUN"; endpoint = "192.0.2.10:51900"; private_key_file = "tun.key";
    public_key = "$(pub "$kp")"; address4 = "192.0.2.13/30"; peer4 = "192.0.2.14"; }
);
profiles = ( { name = "managed"; } );
rules = (
  { name = "erp"; groups = [ "finance" ]; domains = [ "*.acme.cn" ]; protocols = [ "tcp", "icmp" ];
    action = "allow"; via = [ "$TUN" ]; },
  { name = "staffcn"; groups = [ "staff" ]; posture = [ "managed" ]; domains = [ "*.acme.cn" ];
    action = "allow"; via = [ "$TUN" ]; }
);
dns = {
  upstreams = [ "192.0.2.21", "192.0.2.18" ];
  timeout = 300; tries = 1; grace = 60;
  query_log = "queries.log";
  rules = (
    { name = "portal"; domains = [ "portal.acme.cn" ]; action = "override"; answer = [ "203.0.113.20" ]; ttl = 30; },
    { name = "mainland"; domains = [ "*.acme.cn" ]; action = "tunnel"; tunnel = "$TUN";
      servers = [ "203.0.113.53" ]; block = "refused"; },
    { name = "ads"; domains = [ ".ads.example" ]; action = "block"; },
    { name = "sink"; domains = [ "sink.example" ]; action = "block"; block = "0.0.0.0"; }
  );
};
EOF

# The mainland resolver and the public one; the origin's web server.
big=$(printf 'x%.0s' $(seq 250))
xb_bg org dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --user=root --pid-file= --local-ttl=300 \
	--listen-address=203.0.113.53 --bind-interfaces --port=53 \
	--address=/erp.acme.cn/203.0.113.10 --address=/portal.acme.cn/203.0.113.99 \
	--txt-record=big.acme.cn,"$big","$big","$big","$big","$big","$big"
xb_bg pub dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --user=root --pid-file= --local-ttl=300 \
	--listen-address=192.0.2.18 --bind-interfaces --port=53 --address=/corp.example/198.51.100.200
mkdir -p "$XB_TMP/www" && echo "erp origin" >"$XB_TMP/www/index.html"
xb_bg org busybox httpd -f -p 203.0.113.10:80 -h "$XB_TMP/www"

partner_up() {
	xb_wg_up par "$PIF" ours "$kp" 51900 192.0.2.14/30 || return 1
	n par wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.13/32
}
device_up() {	# device_up NS IF KEY ADDR GWADDR
	xb_wg_up "$1" "$2" ours "$3" 0 "$4/24" || return 1
	n "$1" wg set "$2" peer "$(pub "$kg")" endpoint "${5}:51820" allowed-ips 198.51.100.0/24,203.0.113.0/24
	nq "$1" ip route add 203.0.113.0/24 dev "$2"
}
q() {	# q NS NAME [TYPE] [dig options] — the answer section, short
	local ns=$1 name=$2 type=${3:-A}; shift 3 2>/dev/null || shift $#
	nq "$ns" dig +time=2 +tries=1 +short @198.51.100.1 "$name" "$type" "$@"
}
status() {	# status NS NAME [TYPE] — the rcode
	nq "$1" dig +time=2 +tries=1 @198.51.100.1 "$2" "${3:-A}" | sed -n 's/.*status: \([A-Z]*\),.*/\1/p'
}
in_set() { nq gw nft list set inet xborder "$1" | grep -q "$2"; }

partner_up || { xb_fail "partner bring-up"; xb_end; }
if ! xb_gw_start; then
	xb_fail "xborderd starts with a dns section" "$(cat "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts with a dns section"
device_up alice "$AIF" "$ka" 198.51.100.10 192.0.2.2
device_up bob "$BIF" "$kb" 198.51.100.11 192.0.2.6
xb_wait 5000 nq alice ping -c 1 -W 1 198.51.100.1 >/dev/null

xb_check "the service listens on the gateway's pool address" grep -q "dns: listening on 198.51.100.1:53 " "$GWLOG"
xb_check "override: portal.acme.cn answers the configured address" \
	test "$(q alice portal.acme.cn)" = 203.0.113.20
xb_check "override: other types for the name get an empty answer" \
	sh -c "test -z \"\$(ip netns exec $XB_RUN-alice dig +short @198.51.100.1 portal.acme.cn MX)\""
xb_check "TCP: two queries on one connection are both answered" \
	sh -c "ip netns exec $XB_RUN-alice dig +tcp +keepopen +time=2 +tries=1 +short @198.51.100.1 portal.acme.cn portal.acme.cn | grep -cx 203.0.113.20 | grep -qx 2"

xb_check "before any query, alice cannot reach the origin" \
	sh -c "! ip netns exec $XB_RUN-alice curl -s --max-time 1 http://203.0.113.10/ >/dev/null"
xb_check "tunnel: erp.acme.cn is resolved by the mainland resolver through the tunnel" \
	test "$(q alice erp.acme.cn)" = 203.0.113.10
xb_check "tunnel: the answered address is in the rule's set" in_set r_erp_dns4 203.0.113.10
# The first SYN must already take the tunnel: a SYN retransmit takes 1 s.
first_syn() {
	nq alice sh -c 'a=$(dig +short +time=2 +tries=1 @198.51.100.1 erp.acme.cn) &&
		curl -s --connect-timeout 0.9 "http://$a/"' | grep -q "erp origin"
}
xb_check "tunnel: right after the answer, the device's first TCP SYN reaches the origin" first_syn
xb_check "tunnel: the set entry has a timeout (TTL + grace)" \
	sh -c "ip netns exec $XB_RUN-gw nft list set inet xborder r_erp_dns4 | grep -q '203.0.113.10 timeout'"
xb_check "tunnel: a large TXT answer comes whole (UDP truncated, then TCP)" \
	sh -c "ip netns exec $XB_RUN-alice dig +time=3 +tries=1 @198.51.100.1 big.acme.cn TXT | grep -c '\"x' | grep -qx 1"
xb_check "tunnel: bob (posture not met) gets the rule's block answer (REFUSED)" \
	test "$(status bob erp.acme.cn)" = REFUSED
# bob reports (profile managed has no checks: any fresh report passes) and
# the same name now resolves for him: answers follow posture both ways.
bnonce=$(nq bob curl -s -m 2 http://198.51.100.1:8443/v1/nonce | sed -n 's/.*"nonce":"\([0-9a-f]*\)".*/\1/p')
xb_check "bob's posture report is accepted (200)" test "$(nq bob curl -s -m 2 -o /dev/null -w '%{http_code}' \
	-H 'Content-Type: application/json' http://198.51.100.1:8443/v1/report \
	-d "{\"seq\":1,\"nonce\":\"$bnonce\",\"time\":0,\"os\":{\"family\":\"linux\",\"version\":\"12\"}}")" = 200
xb_check "tunnel: with his posture met bob gets the answer" test "$(q bob erp.acme.cn)" = 203.0.113.10

xb_check "block: ads.example and names below it are NXDOMAIN" \
	sh -c "test \"\$(ip netns exec $XB_RUN-alice dig +time=2 +tries=1 @198.51.100.1 x.ads.example | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')\" = NXDOMAIN"
xb_check "block: sink.example answers 0.0.0.0" test "$(q alice sink.example)" = 0.0.0.0

xb_check "forward: corp.example is answered although the first upstream is dead" \
	test "$(q alice corp.example)" = 198.51.100.200
xb_check "forward: the dead upstream is logged and skipped" \
	grep -q "dns upstream upstreams: server 192.0.2.21:53: .*skipped" "$GWLOG"
xb_check "a query that did not come through a device's tunnel gets no answer" \
	sh -c "! ip netns exec $XB_RUN-gw dig +time=1 +tries=1 -b 192.0.2.2 @198.51.100.1 portal.acme.cn"
xb_check "malformed queries do not stop the service" \
	sh -c "head -c 7 /dev/urandom | ip netns exec $XB_RUN-alice busybox nc -u -w 1 198.51.100.1 53 >/dev/null; true"
xb_check "... which still answers" test "$(q alice portal.acme.cn)" = 203.0.113.20

xb_check "query log: a JSON line for alice's tunnel answer" \
	sh -c "jq -se 'any(.[]; .device == \"alice\" and .name == \"erp.acme.cn\" and .action == \"tunnel\" and any(.answer[]; . == \"203.0.113.10\"))' '$QLOG' >/dev/null"
xb_check "query log: bob's refusal says deny" \
	sh -c "jq -se 'any(.[]; .device == \"bob\" and .action == \"deny\")' '$QLOG' >/dev/null"
# logrotate's way: move the log, SIGHUP; the next line goes to a new file.
mv "$QLOG" "$QLOG.old"
kill -HUP "$GWPID"
xb_wait 3000 grep -q "reloaded: " "$GWLOG"
q alice portal.acme.cn >/dev/null
xb_check "query log: reopened on SIGHUP (a new file after the old one was moved)" \
	sh -c "jq -se 'any(.[]; .name == \"portal.acme.cn\")' '$QLOG' >/dev/null && test -s '$QLOG.old'"
shows_rules() { ctl dns | grep -qE '^mainland +tunnel +[0-9]'; }
xb_check "xborderctl dns shows the rules and their counters" shows_rules
ctl dns | sed 's/^/# /'
# UDP queries came through the device interface's tap, past the kernel
# (docs/dns.md, "The tap"); DNS_TAP=false runs all of the above without it.
tap_json() { ctl -j dns | jq -e "$1" >/dev/null; }
if [ "${DNS_TAP:-true}" = true ]; then
	xb_check "tap: the UDP queries came through the device interface's tap" \
		tap_json '.tap.on and .tap.queries >= 10 and .tap.answers >= 10'
	xb_check "... counted by the data thread too, none dropped" \
		tap_json '.tap.device.queries >= 10 and .tap.device.answers >= 10 and .tap.device.dropped == 0 and .tap.device.bad_reply == 0'
	tap_text() { ctl dns | grep -qE '^  tap, device: [0-9]+ queries, [0-9]+ answers, 0 dropped \(socketpair full\), 0 bad replies$'; }
	xb_check "... which xborderctl dns shows, with its drops and bad replies" tap_text
	# An answer the service waited for (an upstream's) is not one of the
	# tap read's batch: it leaves alone, in a sendmsg of its own
	# (dns_service.c, udp_send). A name nobody asked before, forwarded.
	j0=$(ctl -j dns)
	xb_check "tap, an upstream's answer (sent alone, not in a batch): it arrives" \
		test "$(q alice "u$ID.corp.example")" = 198.51.100.200
	one_more() { ctl -j dns | jq -e --argjson a "$j0" '.tap.queries - $a.tap.queries == 1 and
		.tap.answers - $a.tap.answers == 1 and .tap.device.queries - $a.tap.device.queries == 1 and
		.tap.device.answers - $a.tap.device.answers == 1 and .tap.device.dropped == 0' >/dev/null; }
	xb_check "... counted once as a query and once as an answer, by the service and the data thread" one_more
	# A reload switches it off and on again.
	sed -i 's/dns_tap = true;/dns_tap = false;/' "$XB_TMP/xborder.conf"
	ctl reload >/dev/null
	n0=$(ctl -j dns | jq .tap.queries)
	xb_check "dns_tap = false by reload: the tap is off" tap_json '.tap.on | not'
	xb_check "... queries are answered through the kernel" test "$(q alice portal.acme.cn)" = 203.0.113.20
	xb_check "... and none came through the tap" tap_json ".tap.queries == $n0"
	sed -i 's/dns_tap = false;/dns_tap = true;/' "$XB_TMP/xborder.conf"
	ctl reload >/dev/null
	xb_check "dns_tap = true by reload: answered through the tap again" \
		sh -c "test \"\$(ip netns exec $XB_RUN-alice dig +time=2 +tries=1 +short @198.51.100.1 portal.acme.cn)\" = 203.0.113.20"
	xb_check "... which counted it" tap_json ".tap.on and .tap.queries > $n0"
	# A reload that changes nothing keeps the socketpair (each new one is
	# logged): the queries in flight through it are not lost.
	made() { grep -c 'answered through the tap, past the kernel' "$GWLOG"; }
	m0=$(made)
	ctl reload >/dev/null
	xb_check "a reload that changes nothing keeps the tap's socketpair" test "$(made)" = "$m0"
	xb_check "... and answers through it" \
		sh -c "test \"\$(ip netns exec $XB_RUN-alice dig +time=2 +tries=1 +short @198.51.100.1 portal.acme.cn)\" = 203.0.113.20"
	xb_check "... counted" tap_json ".tap.device.queries > 0 and .tap.queries > $n0"
	# The device interface deleted by hand: xborderd makes it again (its
	# 1 s tick) and gives the new one a tap of its own (gateway/apply.c,
	# xb_apply_revive). Alice's session died with it: she forgets the
	# peer and adds it again, so her next packet starts a handshake.
	gone="$GWIF: the userspace WireGuard interface went away; re-creating it"
	r0=$(grep -c "$gone" "$GWLOG") m0=$(made)
	nq gw ip link del "$GWIF"
	xb_check "device interface deleted by hand: xborderd re-creates it" \
		xb_wait 10000 sh -c "[ \$(grep -c '$gone' '$GWLOG') -gt $r0 ] &&
			ip netns exec $XB_RUN-gw wg show $GWIF >/dev/null 2>&1"
	xb_check "... with a new tap's socketpair" xb_wait 5000 sh -c "[ \$(grep -c 'answered through the tap, past the kernel' '$GWLOG') -gt $m0 ]"
	n alice wg set "$AIF" peer "$(pub "$kg")" remove
	n alice wg set "$AIF" peer "$(pub "$kg")" endpoint 192.0.2.2:51820 allowed-ips 198.51.100.0/24,203.0.113.0/24
	xb_check "... alice reaches the gateway through it again" xb_wait 10000 nq alice ping -c 1 -W 1 198.51.100.1
	n0=$(ctl -j dns | jq .tap.queries)
	xb_check "... and her queries are answered" test "$(q alice portal.acme.cn)" = 203.0.113.20
	xb_check "... through the new interface's tap" tap_json ".tap.on and .tap.queries > $n0 and .tap.device.queries > 0 and .tap.device.answers > 0"
	# TCP takes the kernel's path to the service's sockets, bound to the
	# interface by index: bound again to the new one (xb_dns_service_rebind).
	xb_check "... and over TCP, to the service's sockets bound to the new interface" \
		sh -c "test \"\$(ip netns exec $XB_RUN-alice dig +tcp +time=2 +tries=1 +short @198.51.100.1 portal.acme.cn)\" = 203.0.113.20"
	# A reload that fails (a policy that does not parse) changes nothing:
	# the tap stays and carries the queries.
	cp "$XB_TMP/xborder.conf" "$XB_TMP/xborder.conf.good"
	echo 'gateway = { interface = ; };' >"$XB_TMP/xborder.conf"
	xb_check "an invalid policy: the reload fails" sh -c "! ip netns exec $XB_RUN-gw '$XB_BIN/xborderctl' -s '$CTL' reload >/dev/null 2>&1"
	mv "$XB_TMP/xborder.conf.good" "$XB_TMP/xborder.conf"
	n0=$(ctl -j dns | jq .tap.queries)
	xb_check "... queries are still answered" test "$(q alice portal.acme.cn)" = 203.0.113.20
	xb_check "... through the tap" tap_json ".tap.on and .tap.queries > $n0"
	# A reload that renames the device interface and fails after the new
	# one was made (step 7: a new tunnel's IPv6 route refused, new
	# interfaces being without IPv6, as in tests/net/reload.sh): the switch
	# back destroys the new interface and makes the old one again, which
	# gets a new tap, and the service's and the posture endpoint's sockets
	# are bound to it (gateway/daemon.c, devif_remade).
	kq=$(wg genkey); (umask 077; echo "$kq" >"$XB_TMP/tun3.key")
	cp "$XB_TMP/xborder.conf" "$XB_TMP/xborder.conf.good"
	sed -e "s/interface = \"$GWIF\";/interface = \"xh$ID\";/" \
		-e "/^tunnels = (/a\\  { name = \"q$ID\"; endpoint = \"192.0.2.10:51901\"; private_key_file = \"tun3.key\"; public_key = \"$(pub "$kp")\"; address4 = \"192.0.2.25/30\"; }," \
		-e "/^rules = (/a\\  { name = \"extra\"; groups = [ \"staff\" ]; to = [ \"203.0.113.20/32\" ]; action = \"allow\"; via = [ \"q$ID\" ]; }," \
		"$XB_TMP/xborder.conf.good" >"$XB_TMP/xborder.conf"
	m0=$(made) l0=$(wc -l <"$GWLOG")
	n gw sysctl -qw net.ipv6.conf.default.disable_ipv6=1
	out=$(ctl reload 2>&1); rc=$?
	n gw sysctl -qw net.ipv6.conf.default.disable_ipv6=0
	mv "$XB_TMP/xborder.conf.good" "$XB_TMP/xborder.conf"
	echo "# $out"
	tail -n +"$((l0 + 1))" "$GWLOG" | sed 's/^/# log: /'
	xb_check "interface renamed, routes refused: the reload fails at the routes and is switched back" \
		sh -c '[ "$1" = 1 ] && echo "$2" | grep -q "step \"routes and rules\".*switched back: the running policy stays"' _ "$rc" "$out"
	xb_check "... the new interface is gone, the old one is back" \
		sh -c "! ip netns exec $XB_RUN-gw ip link show xh$ID >/dev/null 2>&1 && ip netns exec $XB_RUN-gw wg show $GWIF >/dev/null"
	xb_check "... the log says the old interface got a new tap" \
		sh -c "tail -n +$((l0 + 1)) '$GWLOG' | grep -q '^.*$GWIF: DNS over UDP to the gateway.s port 53 answered through the tap, past the kernel' && [ \$(grep -c 'answered through the tap, past the kernel' '$GWLOG') -gt $m0 ]"
	xb_check "... and no tap, DNS or posture warning" \
		sh -c "! tail -n +$((l0 + 1)) '$GWLOG' | grep -E 'DNS tap: |DNS goes through the kernel|dns: listening on .*: |dns: watching|posture: (epoll|endpoint.*fail)'"
	n alice wg set "$AIF" peer "$(pub "$kg")" remove
	n alice wg set "$AIF" peer "$(pub "$kg")" endpoint 192.0.2.2:51820 allowed-ips 198.51.100.0/24,203.0.113.0/24
	xb_check "... alice reaches the gateway through the old interface again" xb_wait 10000 nq alice ping -c 1 -W 1 198.51.100.1
	n0=$(ctl -j dns | jq .tap.queries)
	xb_check "... her UDP queries are answered" test "$(q alice portal.acme.cn)" = 203.0.113.20
	xb_check "... through the restored interface's tap" tap_json ".tap.on and .tap.queries > $n0 and .tap.device.queries > 0 and .tap.device.answers > 0"
	xb_check "... over TCP too (the service's sockets bound to the restored interface)" \
		sh -c "test \"\$(ip netns exec $XB_RUN-alice dig +tcp +time=2 +tries=1 +short @198.51.100.1 portal.acme.cn)\" = 203.0.113.20"
	anonce() { nq alice curl -s -m 2 http://198.51.100.1:8443/v1/nonce | grep -qE '"nonce":"[0-9a-f]{16,}"'; }
	xb_check "... and the posture endpoint on it gives alice a nonce" anonce
else
	xb_check "tap off (dns_tap = false): no query came through a tap" \
		tap_json '(.tap.on | not) and .tap.queries == 0'
fi

# A reload replaces the table (its sets start empty): the service refills.
ctl reload >/dev/null
xb_check "after a reload the learned destination is back in the set" xb_wait 3000 in_set r_erp_dns4 203.0.113.10
xb_check "... and alice still reaches the origin without asking again" \
	sh -c "ip netns exec $XB_RUN-alice curl -s --max-time 2 http://203.0.113.10/ | grep -q 'erp origin'"

# A restart keeps learned destinations with their expiry.
xb_check "SIGTERM: xborderd stops" xb_gw_stop
xb_check "the learned destinations were saved" grep -q "r_erp_dns4 203.0.113.10 " "$XB_TMP/state/dns-learned"
xb_gw_start || xb_fail "restart" "$(tail -5 "$GWLOG")"
xb_check "after a restart the set holds the destination before any query" in_set r_erp_dns4 203.0.113.10
xb_check "... and alice reaches the origin with the answer she holds" \
	xb_wait 20000 sh -c "ip netns exec $XB_RUN-alice curl -s --max-time 1 http://203.0.113.10/ | grep -q 'erp origin'"
xb_gw_stop
xb_end
