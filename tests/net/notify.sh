#!/usr/bin/env bash
# Notifications through libcurl, end to end: xborderd posts a tunnel's
# state changes to an HTTPS receiver it knows by host name only — resolved
# by glibc from the hosts file `ip netns exec' bind-mounts for gw
# (/etc/netns/NAME/hosts), through libcurl's threaded resolver — as a
# Slack-shaped, a PagerDuty-shaped (trigger, then resolve of the same
# dedup_key) and a generic JSON payload (with a bearer token from a 0600
# file). The receiver is verified against a test CA (ca_file); a target
# without it fails TLS verification. The Slack path answers 503 twice:
# the event is retried with doubling backoff and then delivered. While the
# receiver holds an answer, the daemon's loop still answers xborderctl.
#
#   gw (xborderd)  ep 192.0.2.1/30 ──── eth0 192.0.2.2/30  pb (xb-gre, partner)
#     xg<pid> 192.0.2.5/30  ······GRE key 7······  192.0.2.6/30
#                  eh 203.0.113.1/30 ── eth0 203.0.113.2/30  hk (hookrecv.py :8443,
#                                                              hooks.xbnotify.example)
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/xborderd.sh"
xb_begin
for tool in python3 openssl jq; do
	command -v "$tool" >/dev/null || { echo "needs $tool (deploy/deps.sh installs it)"; exit 77; }
done
HOSTS_DIR=/etc/netns/$XB_RUN-gw
trap 'rc=$?; rm -rf "$HOSTS_DIR"; (exit $rc); xb_cleanup' EXIT
NAME=hooks.xbnotify.example GT=xg$$ PB=pb$$ CTL=$XB_TMP/ctl.sock
LOG=$XB_TMP/recv.log CONTROL=$XB_TMP/control.json

xb_ns gw pb hk
xb_veth gw ep pb eth0
xb_veth gw eh hk eth0
xb_addr gw ep 192.0.2.1/30
xb_addr pb eth0 192.0.2.2/30
xb_addr gw eh 203.0.113.1/30
xb_addr hk eth0 203.0.113.2/30
mkdir -p "$HOSTS_DIR"
{ cat /etc/hosts; echo "203.0.113.2 $NAME"; } >"$HOSTS_DIR/hosts"

# A test CA and the receiver's certificate for $NAME.
( cd "$XB_TMP" && umask 077 &&
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=xb-test-ca \
	-keyout ca.key -out ca.pem 2>/dev/null &&
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$NAME" -keyout srv.key -out srv.csr 2>/dev/null &&
  printf 'subjectAltName=DNS:%s\n' "$NAME" >srv.ext &&
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile srv.ext -out srv.pem 2>/dev/null ) || { xb_fail "test CA" "openssl failed"; xb_end; }
chmod 644 "$XB_TMP/ca.pem"
echo '{"fail": {"/slack": 2}}' >"$CONTROL"
xb_bg hk python3 "$XB_ROOT/tests/tools/hookrecv.py" 203.0.113.2 8443 "$XB_TMP/srv.pem" \
	"$XB_TMP/srv.key" "$LOG" "$CONTROL"
xb_wait 5000 grep -q ready "$XB_LAST_LOG" || { xb_fail "receiver starts" "$(cat "$XB_LAST_LOG")"; xb_end; }

xb_bg pb "$XB_BIN/xb-gre" --local 192.0.2.2 --remote 192.0.2.1 --key 7 "$PB"
xb_wait 3000 nq pb ip link show "$PB" || { xb_fail "partner starts"; xb_end; }
xb_addr pb "$PB" 192.0.2.6/30
n pb ip link set "$PB" up

TOKEN=tok-$RANDOM$RANDOM RKEY=rk-$RANDOM$RANDOM
(umask 077; wg genkey >"$XB_TMP/gw.key"; echo "$TOKEN" >"$XB_TMP/hook.token"; echo "$RKEY" >"$XB_TMP/pd.key")
cat >"$XB_TMP/xborder.conf" <<EOF
gateway = {
  private_key_file = "gw.key"; pool4 = "198.51.100.0/24";
  control_socket = "$CTL"; state_dir = "$XB_TMP/state";
  notify = (
    { type = "slack"; url = "https://$NAME:8443/slack"; ca_file = "$XB_TMP/ca.pem";
      tries = 4; backoff = 400; },
    { type = "pagerduty"; url = "https://$NAME:8443/pd"; ca_file = "$XB_TMP/ca.pem";
      routing_key_file = "pd.key"; },
    { type = "json"; url = "https://$NAME:8443/json"; ca_file = "$XB_TMP/ca.pem";
      token_file = "hook.token"; timeout = 10; },
    { type = "json"; url = "https://$NAME:8443/unverified"; tries = 1; }
  );
};
tunnels = ( { name = "$GT"; type = "gre"; local = "192.0.2.1"; remote = "192.0.2.2"; key = 7;
  address4 = "192.0.2.5/30"; peer4 = "192.0.2.6"; probe_interval = 100; } );
rules = ( { name = "all"; action = "allow"; via = [ "$GT" ]; } );
EOF
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(tail -n 20 "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts with four notification targets"

tstate() { ctl -j tunnels | jq -r '.[0].health.probe_state'; }
is() { [ "$(tstate)" = "$1" ]; }
got() {	# got PATH JQ-FILTER — some POST to PATH matches
	jq -e -s --arg p "$1" "[.[] | select(.path == \$p) | select($2)] | length > 0" "$LOG"
}
xb_check "the tunnel comes up" xb_wait 10000 is up
n pb ip link set eth0 down
xb_check "the tunnel goes down when the partner's link does" xb_wait 10000 is down

DEDUP="xborder/$(nq gw hostname)/state/$GT"
xb_check "pagerduty: a trigger for the tunnel, with the routing key from its file" \
	xb_wait 10000 got /pd ".body.event_action == \"trigger\" and .body.routing_key == \"$RKEY\" and .body.dedup_key == \"$DEDUP\" and .body.payload.severity == \"critical\""
xb_check "json: the event as it is, with the bearer token from its file" \
	xb_wait 5000 got /json ".body.event == \"state\" and .body.to == \"down\" and .auth == \"Bearer $TOKEN\""
xb_check "slack: {\"text\"} delivered after two 503s" \
	xb_wait 10000 got /slack ".status == 200 and (.body.text | test(\"tunnel $GT: .* -> down\"))"
# The tries of the first event: 503, 503, 200, each gap at least the
# backoff (400 ms, then 800 ms; lower bounds hold on any load).
first=$(jq -s -c '[.[] | select(.path == "/slack")][0:3] | map([.status, .ms])' "$LOG")
xb_log "slack tries (status, ms): $first"
xb_check "slack: 503, 503, then 200 for the same payload" \
	jq -e -s '[.[] | select(.path == "/slack")][0:3] | (map(.status) == [503, 503, 200]) and (map(.body) | unique | length == 1)' "$LOG"
gap1=$(echo "$first" | jq '.[1][1] - .[0][1]') gap2=$(echo "$first" | jq '.[2][1] - .[1][1]')
xb_within "slack: first retry after the backoff" "$gap1" 400 5000 ms
xb_within "slack: second retry after twice the backoff" "$gap2" 800 10000 ms
xb_check "the target without ca_file failed TLS verification and posted nothing" \
	sh -c "grep -q 'notify json $NAME: giving up.*SSL certificate' '$GWLOG' && ! grep -q /unverified '$LOG'"

# The partner back: PagerDuty resolves the same dedup_key. The JSON
# receiver now holds its answers 6 s: the loop must not wait for it.
echo '{"stall": {"/json": 6}}' >"$CONTROL"
n pb ip link set eth0 up
xb_check "pagerduty: a resolve of the same dedup_key when the tunnel is back" \
	xb_wait 15000 got /pd ".body.event_action == \"resolve\" and .body.dedup_key == \"$DEDUP\""
xb_check "json: the up event reached the stalled receiver" xb_wait 5000 got /json '.body.to == "up"'
worst=0
for _ in 1 2 3 4 5; do
	t0=$(date +%s%N)
	ctl status >/dev/null || worst=99999
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$ms" -gt "$worst" ] && worst=$ms
	sleep 0.3
done
xb_log "xborderctl status while the receiver stalls: worst of 5 took $worst ms"
xb_within "xborderctl status answers while the receiver holds its answer" "$worst" 0 2000 ms
xb_log "the daemon's loop so far (its longest round, a figure, not asserted): $(ctl -j dns | jq -c .loop)"

# A reload that keeps the targets (one retry rule changed) and drops the
# unverified one: the next event still reaches every kept target.
echo '{}' >"$CONTROL"
sed -i -e 's/tries = 4; backoff = 400;/tries = 3; backoff = 400;/' \
	-e '/unverified/d' -e 's/token_file = "hook.token"; timeout = 10; },/token_file = "hook.token"; timeout = 10; }/' \
	"$XB_TMP/xborder.conf"
xb_check "a reload with the targets kept succeeds" sh -c "ip netns exec $XB_RUN-gw $XB_BIN/xborderctl -s $CTL reload"
xb_check "the tunnel is up after the reload" xb_wait 10000 is up
before=$(wc -l <"$LOG")
n pb ip link set eth0 down
xb_check "after the reload: the next down event reaches slack, pagerduty and json" \
	xb_wait 15000 sh -c "tail -n +$((before + 1)) '$LOG' | jq -e -s '[.[] | select(.body.to == \"down\" or .body.event_action == \"trigger\" or (.body.text // \"\" | test(\"-> down\"))) | .path] | unique == [\"/json\", \"/pd\", \"/slack\"]'"
[ "$XB_FAILED" = 0 ] || { xb_log "receiver saw:"; tail -n 8 "$LOG" | cut -c1-300; xb_log "daemon:"; grep -v "^xborderd: info: event" "$GWLOG" | tail -n 25; }
xb_check "no secret in the daemon's log" sh -c "! grep -e '$TOKEN' -e '$RKEY' '$GWLOG'"
xb_check "xborderd stops on SIGTERM" xb_gw_stop
xb_check "no sanitizer report (a SAN build) in the daemon's log" sh -c "! grep -q Sanitizer '$GWLOG'"
xb_end
