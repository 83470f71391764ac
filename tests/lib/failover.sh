# The failover topology, shared by tests/net/failover.sh and
# bench/failover.sh (sourced after netns.sh and wg.sh; sources xborderd.sh):
#
#                                       ra (xb-impair)          pa: WireGuard partner (xborder-wg)
#   dev ── WG ── gw: xborderd ─ ea ──── e0 ─── e1 ──────────── eth0  A$ID 192.0.2.26 ── eo ──┐
#   192.0.2.1    192.0.2.2     .9/30    .10    .13/30          .14   203.0.113.1/30          │
#   198.51.100.10              │                                                             org
#                              │        rb (xb-impair)          pb: GRE partner (xb-gre)      203.0.113.10 (lo)
#                              └ eb ─── e0 ─── e1 ──────────── eth0  B$ID 192.0.2.30 ── eo ──┘
#                                .17/30 .18    .21/30          .22   203.0.113.5/30
#
#   tunnel A (WireGuard): inner 192.0.2.25/30 ↔ .26; tunnel B (GRE, key 7): 192.0.2.29/30 ↔ .30
#   rule erp: 203.0.113.10, via = [ A, B ]  → its own path and table (not A's or B's)
#
# Both tunnels have snat = false: the origin sees the device's own address
# whichever tunnel carried it, so an open TCP stream can move between them
# (docs/probing.md). For that the partners route the device pool back into
# their tunnel, and the origin answers by the partner the connection's last
# packet came from (a conntrack mark set per ingress interface), as a site
# that learns the pool from both partners and keeps flows symmetric would.
#
#   fo_world              namespaces, links, impairment, origin (web on :80), keys
#   fo_policy             $XB_TMP/xborder.conf; FO_PROBE_A / FO_PROBE_B replace
#                         each tunnel's probe settings (empty: not probed);
#                         FO_B_FIRST=1 lists B before A
#   fo_partners           partner A (xborder-wg) and B (xb-gre)
#   xb_gw_start, ctl      xborderd in gw and xborderctl on it (tests/lib/xborderd.sh)
#   fo_device             the device's WireGuard
#   fo_tables             TABLE (the rule's), TA, TB
#   tstate T, both_up, on T, via_a, via_b, via_b_bytes
. "$(dirname "${BASH_SOURCE[0]}")/xborderd.sh"

ID=$$
A=a$ID B=b$ID GWIF=xg$ID PIF=xp$ID DIF=xd$ID
METRICS=127.0.0.1:9180 HOOKPORT=9181
pub() { echo "$1" | wg pubkey; }

fo_world() {
	# Here, not at source time: XB_TMP exists only after xb_begin (the
	# socket was "/ctl.sock", shared by every run on the machine).
	CTL=$XB_TMP/ctl.sock
	xb_ns dev gw ra rb pa pb org
	xb_veth dev eth0 gw ed
	xb_veth gw ea ra e0
	xb_veth ra e1 pa eth0
	xb_veth gw eb rb e0
	xb_veth rb e1 pb eth0
	xb_veth pa eo org e1
	xb_veth pb eo org e2
	xb_addr dev eth0 192.0.2.1/30
	xb_addr gw ed 192.0.2.2/30
	xb_addr gw ea 192.0.2.9/30
	xb_addr ra e0 192.0.2.10/30
	xb_addr ra e1 192.0.2.13/30
	xb_addr pa eth0 192.0.2.14/30
	xb_addr gw eb 192.0.2.17/30
	xb_addr rb e0 192.0.2.18/30
	xb_addr rb e1 192.0.2.21/30
	xb_addr pb eth0 192.0.2.22/30
	xb_addr pa eo 203.0.113.1/30
	xb_addr org e1 203.0.113.2/30
	xb_addr pb eo 203.0.113.5/30
	xb_addr org e2 203.0.113.6/30
	xb_addr org lo 203.0.113.10/32
	n gw ip route add 192.0.2.12/30 via 192.0.2.10
	n gw ip route add 192.0.2.20/30 via 192.0.2.18
	n pa ip route add 192.0.2.8/30 via 192.0.2.13
	n pb ip route add 192.0.2.16/30 via 192.0.2.21
	n pa ip route add 203.0.113.10 via 203.0.113.2
	n pb ip route add 203.0.113.10 via 203.0.113.6
	for ns in pa pb; do
		xb_router "$ns"
		# pb returns our GRE keepalives (their inner source is its own address).
		nq "$ns" sysctl -qw net.ipv4.conf.all.accept_local=1 net.ipv4.conf.default.accept_local=1
	done
	xb_impair_path ra e0 e1 || exit 1
	xb_impair_path rb e0 e1 || exit 1

	# The origin: replies leave by the partner the connection's last packet
	# arrived from.
	nq org nft -f - <<'EOF'
	table ip ret {
		chain pre {
			type filter hook prerouting priority mangle;
			iif "e1" ct mark set 1 counter
			iif "e2" ct mark set 2 counter
		}
		chain out {
			type route hook output priority mangle;
			ct mark != 0 meta mark set ct mark
		}
	}
EOF
	n org ip rule add fwmark 1 lookup 1 pref 100
	n org ip rule add fwmark 2 lookup 2 pref 101
	n org ip route add 198.51.100.0/24 via 203.0.113.1 table 1
	n org ip route add 198.51.100.0/24 via 203.0.113.5 table 2
	n org ip route add 198.51.100.0/24 via 203.0.113.1
	mkdir -p "$XB_TMP/www" && echo "erp origin" >"$XB_TMP/www/index.html"
	xb_bg org busybox httpd -f -p 203.0.113.10:80 -h "$XB_TMP/www"

	kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey) kd=$(wg genkey)
	(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")

	# The notification command: appends its stdin to a file.
	cat >"$XB_TMP/notify.sh" <<EOF
#!/bin/sh
	cat >>"$XB_TMP/notify.out"
EOF
	# The webhook: busybox nc runs this for each connection; it keeps the body
	# (Content-Length bytes) and answers 204. Every read has a timeout.
	cat >"$XB_TMP/hook.sh" <<EOF
#!/bin/bash
	len=0
	while IFS= read -r -t 5 line; do
		line=\${line%\$'\r'}
		[ -z "\$line" ] && break
		case \${line,,} in content-length:*) len=\${line#*:}; len=\${len// /} ;; esac
	done
	[ "\$len" -gt 0 ] 2>/dev/null && timeout 5 head -c "\$len" >>"$XB_TMP/hook.out" && echo >>"$XB_TMP/hook.out"
	printf 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
EOF
	chmod 755 "$XB_TMP/notify.sh" "$XB_TMP/hook.sh"
}

fo_policy() {
	local pa='peer4 = "192.0.2.26"; probe_interval = 100;' pb='peer4 = "192.0.2.30"; probe_interval = 100;'

	[ "${FO_PROBE_A+set}" ] && pa=$FO_PROBE_A
	[ "${FO_PROBE_B+set}" ] && pb=$FO_PROBE_B
	local ta="{ name = \"$A\"; endpoint = \"192.0.2.14:51900\"; private_key_file = \"tun.key\";
	    public_key = \"$(pub "$kp")\"; address4 = \"192.0.2.25/30\"; $pa snat = false; }"
	local tb="{ name = \"$B\"; type = \"gre\"; local = \"192.0.2.17\"; remote = \"192.0.2.22\"; key = 7;
	    address4 = \"192.0.2.29/30\"; snat = false; $pb }"
	cat >"$XB_TMP/xborder.conf" <<EOF
	gateway = {
	  interface = "$GWIF"; listen_port = 51820; private_key_file = "gw.key";
	  pool4 = "198.51.100.0/24";
	  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
	  metrics = "$METRICS";
	  notify_command = [ "$XB_TMP/notify.sh" ];
	  notify_webhook = "http://127.0.0.1:$HOOKPORT/hook";
	};
	groups = [ "finance" ];
	devices = (
	  { name = "dev"; public_key = "$(pub "$kd")"; groups = [ "finance" ]; address4 = "198.51.100.10"; }
	);
	tunnels = ( $([ "${FO_B_FIRST-}" ] && echo "$tb, $ta" || echo "$ta, $tb") );
	rules = (
	  { name = "erp"; groups = [ "finance" ]; to = [ "203.0.113.10/32" ]; protocols = [ "tcp", "icmp" ];
	    action = "allow"; via = [ "$A", "$B" ]; }
	);
EOF
}

fo_partners() {

	# Partner A: WireGuard; partner B: GRE. Each routes the device pool back
	# into its tunnel (snat = false).
	xb_wg_up pa "$PIF" ours "$kp" 51900 192.0.2.26/30 || { echo "partner A did not start"; return 1; }
	n pa wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.25/32,198.51.100.0/24
	n pa ip route add 198.51.100.0/24 dev "$PIF"
	xb_bg pb "$XB_BIN/xb-gre" --local 192.0.2.22 --remote 192.0.2.17 --key 7 "$B"
	xb_wait 3000 nq pb ip link show "$B" || { cat "$XB_LAST_LOG"; return 1; }
	xb_addr pb "$B" 192.0.2.30/30
	n pb ip link set "$B" up
	n pb ip route add 198.51.100.0/24 dev "$B"
}

fo_device() {
	xb_wg_up dev "$DIF" ours "$kd" 0 198.51.100.10/24 || return 1
	n dev wg set "$DIF" peer "$(pub "$kg")" endpoint 192.0.2.2:51820 allowed-ips 198.51.100.0/24,203.0.113.0/24
	n dev ip route add 203.0.113.0/24 dev "$DIF"
}

fo_tables() {
	TABLE=$(ctl -j rules | jq -r '.[] | select(.name == "erp") | .table')
	TA=$(ctl -j tunnels | jq -r --arg t "$A" '.[] | select(.name == $t) | .table')
	TB=$(ctl -j tunnels | jq -r --arg t "$B" '.[] | select(.name == $t) | .table')
}

# Packets from the device that reached the origin through each partner.
via_a() { nq org nft list chain ip ret pre | awk '/"e1"/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'; }
via_b() { nq org nft list chain ip ret pre | awk '/"e2"/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'; }
# Bytes rather than packets for bulk data: the userspace GRE partner (xb-gre)
# coalesces TCP segments into one TUN write, forwarded to the origin whole.
via_b_bytes() { nq org nft list chain ip ret pre | awk '/"e2"/ { for (i = 1; i < NF; i++) if ($i == "bytes") print $(i + 1) }'; }
tstate() { ctl -j tunnels | jq -r --arg t "$1" '.[] | select(.name == $t) | .health.probe_state'; }
both_up() { [ "$(tstate "$A")" = up ] && [ "$(tstate "$B")" = up ]; }
# on TUNNEL — the rule's table routes out of xb-TUNNEL. One exec, no pipe:
# it is what the failover time is polled with.
on() { [[ $(ip -n "$XB_RUN-gw" route show table "$TABLE") == "default dev xb-$1 "* ]]; }

# fo_gre_iperf — for the GRE throughput benches (bench/failover.sh,
# bench/gre.sh): routes so the gateway reaches the origin either plainly
# (from 192.0.2.17) or through xb-B (from 192.0.2.29) over the same hops, and
# an iperf3 server on the origin.
fo_gre_iperf() {
	nq org ip route add 192.0.2.16/30 via 203.0.113.5
	nq org ip route add 192.0.2.28/30 via 203.0.113.5
	nq org ip route add 192.0.2.16/30 via 203.0.113.5 table 2
	nq org ip route add 192.0.2.28/30 via 203.0.113.5 table 2
	nq rb ip route add 203.0.113.10 via 192.0.2.22
	nq gw ip route add 203.0.113.10 via 192.0.2.18
	xb_bg org iperf3 -s -B 203.0.113.10
	xb_wait 3000 nq org ss -ltn sport = :5201
}
