#!/usr/bin/env bash
# The etcd client (gateway/cluster/etcd.c) over TLS against a real 3-member
# cluster started with --client-cert-auth (tests/lib/etcd.sh, ETCD_TLS=1;
# certificates made here with the openssl CLI): kv, a watch, failover when
# the watch's member is killed — then three clients the members must turn
# away, each with a clear reason and nothing written: no client
# certificate, a client certificate from another CA, a CA that did not sign
# the members' certificates. Last, xborderd --check on a policy naming the
# same files.
#
#   e1 .51   e2 .52   e3 .53   (198.51.100.0/24, etcd members, https :2379)
#        \     |     /
#         eh: br0 .50 ── gw: etcd0 .61 (xb-etcdtest)
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/etcd.sh"
for t in etcd etcdctl openssl jq; do
	command -v "$t" >/dev/null || { echo "$t is not installed (deploy/deps.sh)"; exit 77; }
done
xb_begin
ETCD_TLS=1
xb_check "3-member cluster up, TLS with client certificates" etcd_start_cluster || xb_end
xb_ns gw
etcd_attach gw >/dev/null
T=$ETCD_DIR/tls
EPS=$(etcd_endpoints)
etcdtest() { n gw "$XB_BIN/xb-etcdtest" -e "$EPS" -c "$ETCD_CTL" "$@"; }

etcdtest -C "$T/ca.pem" -E "$T/client.pem" -K "$T/client.key" kv watch failover
rc=$?
[ $rc = 0 ] || [ $rc = 1 ] || xb_fail "xb-etcdtest" "exited with status $rc"
XB_FAILED=$((XB_FAILED + rc))
etcd_wait_healthy 20000 || xb_fail "the killed member is back"

# Another CA, and a client certificate it signed.
etcd_tls_ca "$T" other
etcd_tls_cert "$T" other intruder
refused() {	# refused WHAT PATTERN XB-ETCDTEST-OPTIONS...
	local what=$1 pat=$2 out
	shift 2
	out=$(etcdtest "$@" refused 2>&1)
	printf '%s\n' "$out" | sed 's/^/#   /'
	if printf '%s\n' "$out" | grep -q '^not ok'; then
		xb_fail "$what: refused" "see above"
	elif printf '%s\n' "$out" | grep -E '^# refused: ' | grep -qiE "$pat"; then
		xb_ok "$what: refused, the reason names it"
	else
		xb_fail "$what: refused" "the reason does not match /$pat/"
	fi
}
# TLS 1.3: the member checks the client's certificate after the handshake;
# the client sees an alert or a reset, and the message says what it may mean.
refused "no client certificate" "may require a client certificate" -C "$T/ca.pem"
refused "a client certificate from another CA" "may have refused our client certificate" \
	-C "$T/ca.pem" -E "$T/intruder.pem" -K "$T/intruder.key"
refused "a CA that did not sign the members" "SSL certificate problem" \
	-C "$T/other.pem" -E "$T/client.pem" -K "$T/client.key"
# shellcheck disable=SC2046
got=$(nq eh etcdctl --endpoints="$EPS" $(etcd_ctl_tls) --command-timeout=2s get --prefix --keys-only refused/ 2>&1)
xb_check "the refused clients wrote nothing" test -z "$got"
# shellcheck disable=SC2046
xb_check "and the members refuse plain http" \
	bash -c "! ip netns exec $XB_RUN-eh etcdctl --endpoints=http://$(etcd_ip 1):2379 --command-timeout=1s get x >/dev/null 2>&1"

# The policy naming these files passes --check; the members' own key
# (0600) and the CA in place of a key do not.
cp "$T/ca.pem" "$T/client.pem" "$T/client.key" "$XB_TMP/"
head -c 32 /dev/urandom | base64 >"$XB_TMP/gw.key"
chmod 600 "$XB_TMP/gw.key"
cat >"$XB_TMP/tls.conf" <<EOC
gateway = { private_key_file = "gw.key"; pool4 = "203.0.113.0/25"; };
cluster = { name = "tls"; node = "gw-a";
  endpoints = [ $(echo "$EPS" | sed 's/[^,]*/"&"/g; s/,/, /g') ];
  ca_file = "ca.pem"; cert_file = "client.pem"; key_file = "client.key"; };
EOC
xb_check "xborderd --check takes the TLS cluster section" "$XB_BIN/xborderd" -n -c "$XB_TMP/tls.conf"
chmod 644 "$XB_TMP/client.key"
out=$("$XB_BIN/xborderd" -n -c "$XB_TMP/tls.conf" 2>&1)
xb_check "a key file readable by others is refused, naming key_file" \
	grep -q "key_file \`client.key' is accessible by group or others" <<<"$out"
xb_check "and the key's content is not shown" bash -c "! grep -qF -- '$(sed -n 2p "$T/client.key")' <<<\"\$1\"" _ "$out"
xb_end
