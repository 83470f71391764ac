# DNS that follows the path (issue #16), on the failover topology
# (tests/lib/failover.sh; sourced after it) — each partner with its own
# mainland resolver behind it, at the same address as public resolvers are:
#
#   gw: xborderd ── A (WireGuard) ── pa: dnsmasq 203.0.113.53 (lo) ──┐
#     DNS 198.51.100.1  └ B (GRE) ── pb: dnsmasq 203.0.113.53 (lo) ──┴ org 203.0.113.10 (web)
#
# Both resolvers know every *.acme.cn name (203.0.113.10) with TTL
# DF_TTL (default 2 s, so that a test sees answers expire). The rule erp
# reaches *.acme.cn by name only (its `to' is replaced by domains): a page
# loads only after the gateway resolved its name. The dns rule is the one
# of the issue, naming A alone: it follows erp's path.
#
#   df_resolvers          dnsmasq in pa and pb; DF_PID_A, DF_PID_B, logs DF_LOG_A, DF_LOG_B
#   df_policy             fo_policy plus the dns section
#   dq NAME [dig opts]    ask the gateway from the device; the answer section
#   dq_ms NAME            ms until NAME is answered 203.0.113.10 (one dig, +time=2), or "-"
#   page NAME             the device loads http://NAME/ at the address the gateway gave
DF_TTL=${DF_TTL:-2}

df_resolvers() {
	for p in a b; do
		nq "p$p" ip addr add 203.0.113.53/32 dev lo
		xb_bg "p$p" dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --user=root \
			--pid-file= --local-ttl="$DF_TTL" --listen-address=203.0.113.53 --bind-interfaces \
			--port=53 --address=/acme.cn/203.0.113.10 --log-queries
		if [ $p = a ]; then DF_PID_A=$XB_LAST_PID DF_LOG_A=$XB_LAST_LOG
		else DF_PID_B=$XB_LAST_PID DF_LOG_B=$XB_LAST_LOG; fi
	done
}

df_policy() {
	fo_policy
	sed -i 's|to = \[ "203.0.113.10/32" \];|domains = [ "*.acme.cn" ];|' "$XB_TMP/xborder.conf"
	cat >>"$XB_TMP/xborder.conf" <<EOF2
	dns = {
	  rules = (
	    { name = "mainland"; domains = [ "*.acme.cn" ]; action = "tunnel"; tunnel = "$A";
	      servers = [ "203.0.113.53" ]; block = "refused"; }
	  );
	};
EOF2
}

dq() { local name=$1; shift; nq dev dig +time=2 +tries=1 @198.51.100.1 "$name" "$@"; }
dq_ms() {
	local t0 ans
	t0=$(date +%s%N)
	ans=$(nq dev dig +short +time=2 +tries=1 @198.51.100.1 "$1" A)
	if [ "$ans" = 203.0.113.10 ]; then echo $(( ($(date +%s%N) - t0) / 1000000 )); else echo -; fi
}
page() {
	nq dev curl -s --max-time 5 --resolve "$1:80:$(dq "$1" +short | head -n 1)" "http://$1/" |
		grep -q "erp origin"
}
