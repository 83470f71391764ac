# xborderd in a test's namespace "gw", for tests/net/*.sh (after netns.sh).
#
#   CTL=$XB_TMP/ctl.sock          the policy's control_socket
#   xb_gw_start                   xborderd -f -c $XB_TMP/xborder.conf; GWPID, GWLOG;
#                                 true once the socket answers and the gateway is up
#   xb_gw_stop                    SIGTERM, and wait (3 s) for it to exit
#   ctl status                    xborderctl on $CTL inside gw

xb_gw_start() {
	xb_bg gw "$XB_BIN/xborderd" -f -c "$XB_TMP/xborder.conf"
	GWPID=$XB_LAST_PID GWLOG=$XB_LAST_LOG
	xb_wait 5000 test -S "$CTL" && xb_wait 3000 grep -q "gateway up" "$GWLOG"
}

xb_gw_stop() {
	kill -TERM "$GWPID" 2>/dev/null
	for _ in $(seq 300); do kill -0 "$GWPID" 2>/dev/null || return 0; sleep 0.01; done
	return 1
}

ctl() { nq gw "$XB_BIN/xborderctl" -s "$CTL" "$@"; }
