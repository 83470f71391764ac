# Active/standby with keepalived, for tests/net/ha_*.sh and bench/ha.sh
# (sourced after netns.sh and wg.sh).
#
#   dev ─┐                                     ┌─ pt: partner (xborder-wg) ── org
#  .200  │  lan: bridge          wan: bridge   │  192.0.2.100/25    192.0.2.245/30 ↔ .246
#        ├── ga: xborderd A + keepalived ──────┤  inner 192.0.2.250/30      origin 192.0.2.200
#        │   lan0 203.0.113.1   wan0 192.0.2.1 │
#        └── gb: xborderd B + keepalived ──────┘
#            lan0 203.0.113.2   wan0 192.0.2.2
#
#   Device pool 192.0.2.128/26 (the device: 192.0.2.130). 198.51.100.0/24
#   is left to tests/lib/etcd.sh (members, and etcd0 in the gateways).
#
#   One VRRP instance (v3, unicast between 203.0.113.1 and .2, nopreempt,
#   both BACKUP) holds two addresses: 203.0.113.10, the devices' endpoint,
#   and 192.0.2.10 on the partner side. While it is master it also holds a
#   route to the devices' network (203.0.113.128/25) with src 203.0.113.10,
#   so that what the gateway starts towards a device — takeover's
#   handshakes — leaves from the address the device (and its NAT) talks to.
#
#   The partner: both gateways hold the tunnel's key, so to the partner they
#   are one peer, and each handshake replaces the session. Its peer's
#   endpoint is 192.0.2.10:51900 (the active gateway). Return traffic finds
#   the new active gateway by WireGuard roaming: the standby sends nothing
#   into the tunnel (keepalive = 0, no probes: a standby's keepalive would
#   start a session of its own and the partner's replies to the active one
#   would go out under the standby's keys); the first device packet the new
#   active gateway forwards starts a handshake with the partner, whose peer
#   then roams to that gateway.
#
#   Why not track_process: keepalived's process tracking reads the kernel's
#   proc connector, which only answers in the initial network namespace
#   (inside one, keepalived 2.2.7 logs "Failed to set/clear process event
#   listen - errno 111" and the instance stays in FAULT). Here each xborderd
#   runs under a shell that writes 1 to a file the instant it exits, and
#   keepalived's track_file (inotify, weight 0: non-zero = FAULT) reacts at
#   once; a faulted master sends a priority-0 advert and the backup takes over
#   after its skew time. On a host, track_process does the same (docs/ha.md).
#
#   ha_world                  namespaces, bridges, addresses, partner, origin
#   ha_policy X [SNIPPET]     $XB_TMP/X.conf for gateway X (a|b); SNIPPET is
#                             added at the top level (ha_cluster_snippet X).
#                             Rule origin (192.0.2.200) needs posture corp
#                             (os_version >= 12); rule erp is *.acme.test
#                             (dnsmasq on pt answers www.acme.test 192.0.2.201)
#   ha_cluster_up             three etcd members (tests/lib/etcd.sh), both
#                             gateways attached
#   ha_cluster_snippet X      the cluster section: vip 203.0.113.10
#   ha_report SEQ OSVERSION   the device's posture report to the active gateway
#                             (192.0.2.129:8443); prints the HTTP status
#   ha_gw_start X             xborderd for X under its watcher; HA_PID[X], HA_LOG[X]
#   ha_keepalived X           keepalived for X (config, pid files, log in $XB_TMP)
#   ha_kill X                 kill -9 X's xborderd
#   ha_wait_vip X MS          until the device VIP is on X
#   ha_holder                 a, b or none
#   hctl X ARGS               xborderctl on X
#   ha_device                 the device's WireGuard (endpoint the VIP)
#   ha_ping SECS              the device pings the origin every 10 ms for SECS,
#                             with receive times (ping -D), in the background
#   ha_gap T0_NS              after ha_ping ended: HA_GAP_MS, the longest time
#                             without a reply from T0 on (to the run's end if
#                             none came), and HA_REPLIES
#   ha_failover X             kill -9 X's xborderd while pinging; HA_GAP_MS,
#                             HA_VIP_MS (the VIP on the other, polled)
# HA_GW_EXTRA: settings added to both gateways' gateway section (bench/cluster.sh).
# HA_ADVERT: VRRP advert interval in seconds (default 0.2: 0.1 gave spurious
# transitions on the loaded test box; docs/ha.md).

ID=$$
HA_ADVERT=${HA_ADVERT:-0.2}
HA_VIP=203.0.113.10 HA_VIP_WAN=192.0.2.10
HA_PORT_P=51900 HA_PORTS=
declare -A HA_PID HA_LOG HA_KA HA_IP=([a]=203.0.113.1 [b]=203.0.113.2) HA_WAN=([a]=192.0.2.1 [b]=192.0.2.2)
DIF=hd$ID PIF=hp$ID
pub() { echo "$1" | wg pubkey; }

ha_port() {	# ha_port BRIDGE_NS NS IF: a veth from NS:IF into the bridge in BRIDGE_NS
	local p="p$(( ${#HA_PORTS} ))$ID"
	HA_PORTS+=x
	xb_veth "$2" "$3" "$1" "$p" || return 1
	nq "$1" ip link set "$p" master br0
}

ha_world() {
	xb_ns dev lan wan ga gb pt org
	for b in lan wan; do
		nq "$b" ip link add br0 type bridge
		nq "$b" ip link set br0 up
	done
	ha_port lan dev eth0 && ha_port lan ga lan0 && ha_port lan gb lan0 &&
	ha_port wan ga wan0 && ha_port wan gb wan0 && ha_port wan pt eth0 || return 1
	xb_veth pt eo org eth0
	command -v dnsmasq >/dev/null || { echo "dnsmasq is not installed (deploy/deps.sh)"; return 1; }
	xb_addr dev eth0 203.0.113.200/24
	for x in a b; do
		xb_addr "g$x" lan0 "${HA_IP[$x]}/24"
		xb_addr "g$x" wan0 "${HA_WAN[$x]}/25"
	done
	xb_addr pt eth0 192.0.2.100/25
	xb_addr pt eo 192.0.2.245/30
	xb_addr org eth0 192.0.2.246/30
	xb_addr org lo 192.0.2.200/32 192.0.2.201/32
	n org ip route add default via 192.0.2.245
	xb_router pt
	kg=$(wg genkey) kt=$(wg genkey) kp=$(wg genkey) kd=$(wg genkey)
	(umask 077; echo "$kg" >"$XB_TMP/gw.key"; echo "$kt" >"$XB_TMP/tun.key")
	# The partner: the pool back into its tunnel (snat = false).
	xb_wg_up pt "$PIF" ours "$kp" "$HA_PORT_P" 192.0.2.250/30 || return 1
	n pt wg set "$PIF" peer "$(pub "$kt")" allowed-ips 192.0.2.249/32,192.0.2.128/26 \
		endpoint "$HA_VIP_WAN:$HA_PORT_P"
	n pt ip route add 192.0.2.128/26 dev "$PIF"
	n pt ip route add 192.0.2.200/31 via 192.0.2.246
	xb_bg pt dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --user=root --pid-file= \
		--local-ttl=300 --listen-address=192.0.2.100 --bind-interfaces --port=53 \
		--address=/www.acme.test/192.0.2.201
}

ha_policy() {	# X [SNIPPET]
	local x=$1
	mkdir -p "$XB_TMP/state-$x"
	cat >"$XB_TMP/$x.conf" <<EOF
	gateway = {
	  interface = "xd$x$ID"; listen_port = 51820; private_key_file = "gw.key";
	  pool4 = "192.0.2.128/26";
	  control_socket = "$XB_TMP/$x.sock"; state_dir = "$XB_TMP/state-$x";
	  ${HA_GW_EXTRA:-}
	};
	${2:-}
	groups = [ "staff" ];
	devices = (
	  { name = "dev"; public_key = "$(pub "$kd")"; groups = [ "staff" ]; address4 = "192.0.2.130"; }
	);
	tunnels = (
	  { name = "t$x$ID"; endpoint = "192.0.2.100:$HA_PORT_P"; private_key_file = "tun.key";
	    public_key = "$(pub "$kp")"; address4 = "192.0.2.249/30"; snat = false; listen_port = $HA_PORT_P;
	    keepalive = 0; }
	);
	profiles = ( { name = "corp"; checks = ( { os_version = ">= 12"; } ); } );
	rules = (
	  { name = "origin"; groups = [ "staff" ]; posture = [ "corp" ]; to = [ "192.0.2.200/32" ];
	    protocols = [ "tcp", "icmp" ]; action = "allow"; via = [ "t$x$ID" ]; },
	  { name = "erp"; groups = [ "staff" ]; domains = [ "*.acme.test" ]; action = "allow"; via = [ "t$x$ID" ]; }
	);
	dns = { upstreams = [ "192.0.2.100" ]; timeout = 500; tries = 1; };
EOF
}

# The shell around xborderd writes its pid, and 1 to the track file the
# instant xborderd exits however it exits (keepalived's track_file).
ha_gw_start() {
	local x=$1
	echo 0 >"$XB_TMP/$x.down"
	rm -f "$XB_TMP/$x.pid"
	xb_bg "g$x" sh -c "'$XB_BIN/xborderd' -f -c '$XB_TMP/$x.conf' & echo \$! >'$XB_TMP/$x.pid'; wait \$!; echo 1 >'$XB_TMP/$x.down'"
	HA_LOG[$x]=$XB_LAST_LOG
	xb_wait 3000 test -s "$XB_TMP/$x.pid" || return 1
	HA_PID[$x]=$(cat "$XB_TMP/$x.pid")
	xb_wait 8000 test -S "$XB_TMP/$x.sock" && xb_wait 5000 grep -q "gateway up" "${HA_LOG[$x]}"
}

ha_keepalived() {
	local x=$1 o=b prio=100
	[ "$x" = b ] && o=a
	[ "$x" = a ] && prio=150
	cat >"$XB_TMP/ka-$x.conf" <<EOF
global_defs {
	router_id xb$ID$x
	vrrp_version 3
	vrrp_garp_master_delay 1
	vrrp_garp_master_repeat 2
}
vrrp_track_file xborderd {
	file "$XB_TMP/$x.down"
	weight 0
}
vrrp_instance devices {
	state BACKUP
	nopreempt
	interface lan0
	virtual_router_id 17
	priority $prio
	advert_int $HA_ADVERT
	unicast_src_ip ${HA_IP[$x]}
	unicast_peer {
		${HA_IP[$o]}
	}
	virtual_ipaddress {
		$HA_VIP/32 dev lan0
		$HA_VIP_WAN/32 dev wan0
	}
	virtual_routes {
		203.0.113.128/25 dev lan0 src $HA_VIP
	}
	track_file {
		xborderd
	}
}
EOF
	nq "g$x" keepalived -t -f "$XB_TMP/ka-$x.conf" >"$XB_TMP/ka-$x.check" 2>&1 ||
		{ echo "keepalived refuses its config:"; cat "$XB_TMP/ka-$x.check"; return 1; }
	xb_bg "g$x" keepalived -n -l -D -G -P -f "$XB_TMP/ka-$x.conf" -p "$XB_TMP/ka-$x.pid" \
		-r "$XB_TMP/ka-$x.vrrp.pid"
	HA_KA[$x]=$XB_LAST_LOG
}

ha_holds() { [[ $(ip -n "$XB_RUN-g$1" -4 addr show dev lan0) == *" $HA_VIP/32 "* ]]; }
ha_holder() { if ha_holds a; then echo a; elif ha_holds b; then echo b; else echo none; fi; }
ha_wait_vip() { xb_wait "$2" ha_holds "$1"; }
ha_kill() { kill -9 "${HA_PID[$1]}"; }
hctl() { local x=$1; shift; nq "g$x" "$XB_BIN/xborderctl" -s "$XB_TMP/$x.sock" "$@"; }

ha_device() {
	xb_wg_up dev "$DIF" ours "$kd" 0 192.0.2.130/26 || return 1
	n dev wg set "$DIF" peer "$(pub "$kg")" endpoint "$HA_VIP:51820" allowed-ips 192.0.2.128/26,192.0.2.200/31
	n dev ip route add 192.0.2.200/31 dev "$DIF"
}

ha_ping() {
	xb_bg dev ping -D -n -i 0.01 -W 1 -w "$1" 192.0.2.200
	HA_PING_PID=$XB_LAST_PID HA_PING_LOG=$XB_LAST_LOG
}

ha_gap() {
	local end
	wait "$HA_PING_PID" 2>/dev/null
	end=$(date +%s.%N)
	HA_GAP_MS=$(awk -F'[][]' -v k="$(( $1 / 1000000 ))" -v e="$end" '
		/bytes from/ { t = $2 + 0; if (t * 1000 < k) { p = t; next } if (t - p > m) m = t - p; p = t }
		END { if (!p) p = k / 1000; if (e - p > m) m = e - p; printf "%d", m * 1000 }' "$HA_PING_LOG")
	HA_REPLIES=$(grep -c "bytes from" "$HA_PING_LOG")
}

ha_failover() {	# X [PING_SECONDS]
	local x=$1 o=b t0
	[ "$x" = b ] && o=a
	ha_ping "${2:-6}"
	sleep 1.5
	t0=$(date +%s%N)
	ha_kill "$x"
	ha_wait_vip "$o" 3000
	HA_VIP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
	ha_gap "$t0"
}

ha_cluster_up() {
	. "$(dirname "${BASH_SOURCE[0]}")/etcd.sh"
	etcd_start_cluster || return 1
	etcd_attach ga >/dev/null && etcd_attach gb >/dev/null
}

ha_cluster_snippet() {
	echo "cluster = { name = \"ha$ID\"; node = \"g$1\";
	  endpoints = [ $(etcd_endpoints | sed 's/[^,]*/"&"/g; s/,/, /g') ];
	  request_timeout_ms = 500; vip = \"$HA_VIP\"; };"
}

HA_GW=http://192.0.2.129:8443
ha_report() {	# SEQ OSVERSION
	local nonce
	nonce=$(nq dev curl -s -m 2 "$HA_GW/v1/nonce" | sed 's/.*"nonce":"\([0-9a-f]*\)".*/\1/')
	nq dev curl -s -m 3 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
		-d "{\"seq\":$1,\"nonce\":\"$nonce\",\"time\":0,\"os\":{\"family\":\"linux\",\"version\":\"$2\"}}" \
		"$HA_GW/v1/report"
}
ha_in_set() { nq "g$1" nft list set inet xborder "$2" 2>/dev/null | grep -q "$3"; }
