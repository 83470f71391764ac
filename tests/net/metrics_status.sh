#!/usr/bin/env bash
# What an operator watches, through xborderd (topology: tests/lib/failover.sh):
#
#   1. per-device metrics: the device pings the origin over tunnel A with
#      known sizes; xborder_device_tunnel_bytes_total{device, tunnel A} counts
#      at least those bytes each way, tunnel B none; the handshake age is a
#      fresh one's;
#   2. every metric name the shipped dashboard and alerting rules use
#      (deploy/grafana, deploy/prometheus) is in the live exposition;
#   3. GET /status (samples every second here: gateway.status_interval)
#      shows both tunnels, a plot with points, the device and its posture
#      state, the tunnels' recent events, as served and as headless Chromium renders it (skipped, saying
#      so, without chromium).
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/wg.sh"
. "$(dirname "$0")/../lib/failover.sh"
xb_begin
fo_world || exit 1
fo_policy
# A posture profile no rule needs: the device's posture state is shown.
echo 'profiles = ( { name = "managed"; } );' >>"$XB_TMP/xborder.conf"
sed -i "s|metrics = \"$METRICS\";|& status_interval = 1;|" "$XB_TMP/xborder.conf"
fo_partners || { xb_fail "partners start"; xb_end; }
if ! xb_gw_start; then
	xb_fail "xborderd starts" "$(tail -n 20 "$GWLOG")"
	xb_end
fi
xb_ok "xborderd starts with metrics on $METRICS"
fo_tables
xb_check "both tunnels come up" xb_wait 20000 both_up
xb_check "the path uses A" xb_wait 3000 on "$A"
fo_device || { xb_fail "device bring-up"; xb_end; }
xb_check "the device reaches the origin" xb_wait 5000 nq dev ping -c 1 -W 1 203.0.113.10

metric() {	# metric NAME LABELS — the value of one sample
	nq gw curl -s --max-time 2 "http://$METRICS/metrics" | awk -v k="$1{$2}" '$1 == k { print $2 }'
}
# 20 echo requests of 1000 bytes of payload: 1028 IP bytes each, each way.
# On a loaded machine the path may move between A and B meanwhile: the two
# tunnels' counts add up to the traffic; which one carried it is checked
# when the route stayed on A throughout.
bytes() {	# bytes TUNNEL DIRECTION
	metric xborder_device_tunnel_bytes_total "device=\"dev\",tunnel=\"$1\",direction=\"$2\""
}
counts() { echo "$(bytes "$A" tx) $(bytes "$A" rx) $(bytes "$B" tx) $(bytes "$B" rx)"; }
on "$A" && stayed=1 || stayed=0
read -r atx0 arx0 btx0 brx0 <<<"$(counts)"
xb_check "20 pings of 1000 bytes" nq dev ping -q -c 20 -i 0.05 -W 2 -s 1000 203.0.113.10
on "$A" || stayed=0
read -r atx arx btx brx <<<"$(counts)"
tx=$(( ${atx:-0} - ${atx0:-0} + ${btx:-0} - ${btx0:-0} ))
rx=$(( ${arx:-0} - ${arx0:-0} + ${brx:-0} - ${brx0:-0} ))
xb_log "device dev: A tx ${atx0:-?} -> ${atx:-?}, rx ${arx0:-?} -> ${arx:-?}; B tx ${btx0:-?} -> ${btx:-?}, rx ${brx0:-?} -> ${brx:-?}"
xb_within "metrics: the device's bytes into the tunnels grew by 20 x 1028 (and a few probes)" "$tx" 20560 30840 bytes
xb_within "metrics: the device's bytes from the tunnels grew by 20 x 1028" "$rx" 20560 30840 bytes
if [ "$stayed" = 1 ]; then
	xb_check "metrics: the route stayed on A, and so did the device's bytes" \
		test "$(( ${btx:-1} - ${btx0:-0} + ${brx:-1} - ${brx0:-0} ))" = 0
else
	xb_skip "metrics: all of it on A" "the path left A during the pings (a loaded machine)"
fi
age=$(metric xborder_device_handshake_age_seconds 'device="dev"')
xb_within "metrics: the device's handshake age is a fresh one's" "${age:--1}" 0 180 s
xb_check "metrics: the device has sent no posture report" \
	test "$(metric xborder_device_posture 'device="dev",state="no_report"')" = 1

nq gw curl -s --max-time 2 "http://$METRICS/metrics" >"$XB_TMP/metrics.txt"
xb_check "metrics: every sample line parses (name{labels} number)" \
	sh -c "! grep -v '^#' '$XB_TMP/metrics.txt' | grep -Evq '^[a-z_][a-z0-9_]*(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? -?[0-9.e+-]+$'"
# The names the shipped dashboard and rules use, against this page.
awk '$1 == "#" && $2 == "TYPE" { print $3 }' "$XB_TMP/metrics.txt" | sort -u >"$XB_TMP/live"
grep -ho 'xborder_[a-z0-9_]*' "$XB_ROOT/deploy/grafana/xborder.json" "$XB_ROOT/deploy/prometheus/xborder-rules.yml" |
	sort -u >"$XB_TMP/used"
missing=$(comm -23 "$XB_TMP/used" "$XB_TMP/live" | tr '\n' ' ')
xb_check "dashboard and rules: their $(wc -l <"$XB_TMP/used") metric names are on the live page${missing:+ (missing: $missing)}" \
	test -z "$missing"
# 3. The status page.
page() { nq gw curl -s --max-time 2 "http://$METRICS/status"; }
# points="X,Y X,Y" — a line, not a lone point
plotted() { page | grep -Eq "<polyline [^>]*points=\"[0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+"; }
xb_check "status: a plot has a line within a few samples" xb_wait 10000 plotted
page >"$XB_TMP/status.html"
xb_check "status: served as HTML with both tunnels" \
	sh -c "grep -Eq '<h3>$A <span class=\"state\">(up|degraded|down|unprobed)</span>' '$XB_TMP/status.html' && grep -q '<h3>$B ' '$XB_TMP/status.html'"
xb_check "status: the device and its posture state" \
	grep -q '<td class="device">dev</td><td class="posture">no_report</td>' "$XB_TMP/status.html"
xb_check "status: recent events, among them a tunnel's state change" \
	grep -Eq "<li><code>\\{&quot;event&quot;:&quot;state&quot;.*&quot;tunnel&quot;:&quot;($A|$B)&quot;" "$XB_TMP/status.html"
xb_check "status: nothing but GET /metrics and /status" \
	test "$(nq gw curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$METRICS/status/x")" = 404
if command -v chromium >/dev/null; then
	# As a browser draws it: the DOM after parsing (a broken page would lose
	# its SVG or table). Root needs --no-sandbox; the profile is per run.
	timeout 60 ip netns exec "$XB_RUN-gw" chromium --headless --no-sandbox --disable-gpu \
		--user-data-dir="$XB_TMP/chromium" --dump-dom "http://$METRICS/status" \
		>"$XB_TMP/dom.html" 2>"$XB_TMP/chromium.log"
	grep -o '<h3>[^/]*</span></h3>' "$XB_TMP/dom.html" | sed 's/^/# chromium: /'
	xb_check "chromium: the page's tunnels" \
		sh -c "grep -Eq '<h3>$A <span class=\"state\">(up|degraded|down|unprobed)</span></h3>' '$XB_TMP/dom.html' && grep -q '<h3>$B ' '$XB_TMP/dom.html'"
	n=$(grep -Eo '<polyline [^>]*points="[0-9.]+,[0-9.]+ [0-9.]+,[0-9.]+' "$XB_TMP/dom.html" | wc -l)
	xb_check "chromium: an <svg> with a polyline with points ($n lines)" \
		sh -c "[ $n -ge 1 ] && grep -q '<svg ' '$XB_TMP/dom.html'"
	xb_check "chromium: the device and its posture state" \
		grep -q '<td class="device">dev</td><td class="posture">no_report</td>' "$XB_TMP/dom.html"
else
	xb_skip "chromium renders /status" "chromium is not installed (Debian package chromium; deploy/deps.sh installs it)"
fi
xb_check "the daemon logged no error" sh -c "! grep -Ei 'error|fatal' '$GWLOG'"
xb_end
