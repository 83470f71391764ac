# A 3-member etcd cluster in network namespaces, sourced after netns.sh (bash).
#
#   . "$(dirname "$0")/../lib/netns.sh"
#   . "$(dirname "$0")/../lib/etcd.sh"
#   xb_begin
#   etcd_start_cluster            # members 1..3 up and healthy, or returns 1
#   etcd_endpoints                # http://198.51.100.51:2379,...52:2379,...53:2379
#   addr=$(etcd_attach gw)        # veth gw:etcd0 <-> hub, 198.51.100.6x/24 on etcd0
#   etcd_kill 2                   # kill -9 member 2
#   etcd_restart 2                # start it again on its data dir
#   etcd_wait_healthy [MS]        # every running member answers and a leader exists
#   etcd_leader                   # the number (1..3) of the member that leads
#   "$ETCD_CTL" kill 2            # the same actions from a program (a script of its own)
#
# TLS: ETCD_TLS=1 before etcd_start_cluster makes a CA and certificates with
# the openssl CLI in $ETCD_DIR/tls (etcd_tls_ca, etcd_tls_cert): ca.pem, a
# server certificate per member (mN.pem/.key, the member's IP in
# subjectAltName), a client certificate (client.pem/.key, its key 0600);
# members serve clients https only with --client-cert-auth (peers stay
# http), etcd_endpoints prints https:// URLs and etcdctl here presents the
# client certificate.
#
#        e1 198.51.100.51    e2 198.51.100.52    e3 198.51.100.53     (eth0 each)
#              \                    |                   /
#               +---------- eh: bridge br0 198.51.100.50 -----------+
#                                   |
#                  gw: etcd0 198.51.100.61, .62, ... (etcd_attach)
#
# Namespaces are the kit's ("xb<pid>-e1" ...), so netns.sh's cleanup kills
# the members (and anything a test started in them) and removes the
# namespaces on every exit. 198.51.100.1-.49 stay free for the test's own
# use; members are .51-.53, the hub .50, attached namespaces .61-.99.
# Client port 2379, peer port 2380. Data dirs and logs in $XB_TMP/etcd.
#
# Elections: heartbeat 100 ms, election timeout 1000 ms. etcd's defaults
# are 100/1000; smaller values made members on a loaded 2-core box call
# elections for a scheduler stall. A killed leader is replaced in about
# 1-2 s.

ETCD_DIR=
ETCD_CTL=
ETCD_HEARTBEAT_MS=${ETCD_HEARTBEAT_MS:-100}
ETCD_ELECTION_MS=${ETCD_ELECTION_MS:-1000}
ETCD_TLS=${ETCD_TLS:-0}

etcd_ip() { echo "198.51.100.$((50 + $1))"; }
etcd_scheme() { if [ "$ETCD_TLS" = 1 ]; then echo https; else echo http; fi; }

etcd_endpoints() {
	local s
	s=$(etcd_scheme)
	echo "$s://$(etcd_ip 1):2379,$s://$(etcd_ip 2):2379,$s://$(etcd_ip 3):2379"
}

# etcd_tls_ca DIR NAME — a self-signed CA, DIR/NAME.pem and DIR/NAME.key
# (EC P-256, valid a day).
etcd_tls_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj "/CN=xborder test $2" -keyout "$1/$2.key" -out "$1/$2.pem" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		2>/dev/null && chmod 600 "$1/$2.key"
}

# etcd_tls_cert DIR CA NAME [SAN] — DIR/NAME.pem/.key signed by DIR/CA,
# for server and client use (etcd's gateway presents its server
# certificate to its own gRPC server), SAN e.g. "IP:198.51.100.51".
etcd_tls_cert() {
	local d=$1 ca=$2 name=$3 san=${4:-}
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
		-keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null || return 1
	chmod 600 "$d/$name.key"
	{ echo "extendedKeyUsage=serverAuth,clientAuth"; [ -z "$san" ] || echo "subjectAltName=$san"; } \
		>"$d/$name.ext"
	openssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.pem" -CAkey "$d/$ca.key" -CAcreateserial \
		-days 1 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
}

etcd_tls_make() {
	local d=$ETCD_DIR/tls i
	mkdir -p "$d"
	etcd_tls_ca "$d" ca || return 1
	for i in 1 2 3; do etcd_tls_cert "$d" ca "m$i" "IP:$(etcd_ip "$i")" || return 1; done
	etcd_tls_cert "$d" ca client
}

# The policy's cluster options for TLS, with the client certificate (none
# without TLS).
etcd_policy_tls() {
	[ "$ETCD_TLS" = 1 ] || return 0
	echo " ca_file = \"$ETCD_DIR/tls/ca.pem\"; cert_file = \"$ETCD_DIR/tls/client.pem\";" \
		"key_file = \"$ETCD_DIR/tls/client.key\";"
}

# etcdctl's TLS flags (none without TLS).
etcd_ctl_tls() {
	[ "$ETCD_TLS" = 1 ] || return 0
	echo "--cacert=$ETCD_DIR/tls/ca.pem --cert=$ETCD_DIR/tls/client.pem --key=$ETCD_DIR/tls/client.key"
}

# Writes $ETCD_DIR/ctl: "ctl kill N", "ctl restart N", "ctl pid N" — usable
# by a test program, which has none of this shell's functions.
etcd_write_ctl() {
	local i cluster= s tls=
	s=$(etcd_scheme)
	for i in 1 2 3; do cluster+="${cluster:+,}m$i=http://$(etcd_ip "$i"):2380"; done
	[ "$ETCD_TLS" = 1 ] && tls="--client-cert-auth --trusted-ca-file $ETCD_DIR/tls/ca.pem \\
		--cert-file $ETCD_DIR/tls/m\$n.pem --key-file $ETCD_DIR/tls/m\$n.key"
	cat >"$ETCD_CTL" <<EOF
#!/bin/sh
# Written by tests/lib/etcd.sh for run $XB_RUN.
set -u
dir=$ETCD_DIR
n=\${2:?member 1..3}
case \$n in 1|2|3) ;; *) echo "etcd ctl: no member '\$n'" >&2; exit 2 ;; esac
ip=198.51.100.\$((50 + n))
case \$1 in
kill)
	[ -s "\$dir/m\$n.pid" ] && kill -9 "\$(cat "\$dir/m\$n.pid")" 2>/dev/null
	rm -f "\$dir/m\$n.pid" ;;
start|restart)
	[ -s "\$dir/m\$n.pid" ] && kill -0 "\$(cat "\$dir/m\$n.pid")" 2>/dev/null && exit 0
	setsid ip netns exec $XB_RUN-e\$n etcd --name m\$n --data-dir "\$dir/m\$n.data" \\
		--listen-client-urls $s://\$ip:2379 --advertise-client-urls $s://\$ip:2379 $tls \\
		--listen-peer-urls http://\$ip:2380 --initial-advertise-peer-urls http://\$ip:2380 \\
		--initial-cluster $cluster --initial-cluster-state new \\
		--initial-cluster-token $XB_RUN --heartbeat-interval $ETCD_HEARTBEAT_MS \\
		--election-timeout $ETCD_ELECTION_MS --logger zap --log-level warn \\
		</dev/null >>"\$dir/m\$n.log" 2>&1 &
	echo \$! >"\$dir/m\$n.pid" ;;
pid)
	cat "\$dir/m\$n.pid" ;;
*)
	echo "etcd ctl: kill|restart|pid N" >&2; exit 2 ;;
esac
EOF
	chmod 755 "$ETCD_CTL"
}

etcd_start_cluster() {
	local i
	ETCD_DIR=$XB_TMP/etcd
	ETCD_CTL=$ETCD_DIR/ctl
	mkdir -p "$ETCD_DIR"
	xb_ns eh e1 e2 e3 || return 1
	nq eh ip link add br0 type bridge || return 1
	nq eh ip link set br0 up
	xb_addr eh br0 "$(etcd_ip 0)/24" || return 1
	for i in 1 2 3; do
		xb_veth "e$i" eth0 eh "m$i" || return 1
		nq eh ip link set "m$i" master br0
		xb_addr "e$i" eth0 "$(etcd_ip "$i")/24" || return 1
	done
	[ "$ETCD_TLS" != 1 ] || etcd_tls_make || { xb_log "etcd: could not make the TLS certificates"; return 1; }
	etcd_write_ctl
	for i in 1 2 3; do "$ETCD_CTL" start "$i" || return 1; done
	etcd_wait_healthy 30000 || { xb_log "etcd: cluster not healthy; logs in $ETCD_DIR"; tail -n 5 "$ETCD_DIR"/m*.log; return 1; }
}

etcd_kill() { "$ETCD_CTL" kill "$1"; }
etcd_restart() { "$ETCD_CTL" restart "$1"; }

# The endpoints of the members whose process runs.
etcd_running() {
	local i eps=
	for i in 1 2 3; do
		[ -s "$ETCD_DIR/m$i.pid" ] && kill -0 "$(cat "$ETCD_DIR/m$i.pid")" 2>/dev/null &&
			eps+="${eps:+,}$(etcd_scheme)://$(etcd_ip "$i"):2379"
	done
	echo "$eps"
}

etcd_healthy_now() {
	local eps
	eps=$(etcd_running)
	[ -n "$eps" ] || return 1
	# shellcheck disable=SC2046 # etcd_ctl_tls: words, no spaces in paths
	nq eh etcdctl --endpoints="$eps" $(etcd_ctl_tls) --dial-timeout=500ms --command-timeout=1s \
		endpoint health >/dev/null 2>&1
}

# etcd_wait_healthy [MS] — every running member healthy (a health check is a
# quorum read), within MS (default 20000).
etcd_wait_healthy() { xb_wait "${1:-20000}" etcd_healthy_now; }

etcd_leader() {
	local i
	for i in 1 2 3; do
		# shellcheck disable=SC2046
		nq eh etcdctl --endpoints="$(etcd_scheme)://$(etcd_ip "$i"):2379" $(etcd_ctl_tls) --dial-timeout=500ms \
			--command-timeout=1s endpoint status -w json 2>/dev/null |
			jq -e '.[0].Status.leader == .[0].Status.header.member_id' >/dev/null 2>&1 &&
			{ echo "$i"; return 0; }
	done
	return 1
}

# etcd_attach NS — a veth from NS (etcd0) to the hub's bridge; prints the
# address given to etcd0 (198.51.100.61 upwards, /24: the members are on-link).
etcd_attach() {
	local ns=$1 k addr
	# A file, not a variable: callers run this in $(...), a subshell.
	k=$(( $(cat "$ETCD_DIR/attached" 2>/dev/null || echo 0) + 1 ))
	echo "$k" >"$ETCD_DIR/attached"
	[ "$k" -le 39 ] || { echo "etcd_attach: out of addresses" >&2; return 1; }
	addr=198.51.100.$((60 + k))
	xb_veth "$ns" etcd0 eh "a$k" || return 1
	nq eh ip link set "a$k" master br0 || return 1
	xb_addr "$ns" etcd0 "$addr/24" || return 1
	echo "$addr"
}
