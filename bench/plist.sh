#!/usr/bin/env bash
# Prefix-list files (a rule's to_lists, docs/policy.md): what a list of
# LIST_PREFIXES (default 10 000) costs, next to the same policy without it.
#
#   xborderd --check           the policy read and checked, the list parsed
#   xb-nftbench                per phase, in a namespace of its own: load +
#                              check, compile, the table loaded through
#                              libnftables into an empty kernel, and
#                              replaced (a reload's nft part), median of 5
#   xborderd in a namespace    start to "gateway up", then `xborderctl
#                              reload' (whole reloads: policy, devices, the
#                              table, routes): unchanged, with one list
#                              line changed (checked in the kernel's set),
#                              and with the list taken out of the policy
#
# The list: tests/lib/plist.sh (four in five IPv4 /30s in 198.18.0.0/15,
# one in five IPv6 /64s, none merged). Nothing is sent to them. Goal: a
# 10 000-prefix list loads and reloads in well under a second.
. "$(dirname "$0")/../tests/lib/netns.sh"
. "$(dirname "$0")/../tests/lib/plist.sh"
LIST_PREFIXES=${LIST_PREFIXES:-10000}
XB_QUIET=1
xb_begin
exec 3>&2 2>"$XB_TMP/trace.log"
say() { printf '%s\n' "$*" >&3; }
die() { say "plist bench: $*"; tail -n 20 "$XB_TMP/trace.log" >&3; exit 1; }
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }'; }

xb_ns ld
ID=$$ dir=$XB_TMP/plist
CTL=$dir/ctl.sock
mkdir -p "$dir"
(umask 077; wg genkey >"$dir/gw.key")
xb_plist_gen "$LIST_PREFIXES" "$dir/erp.txt" || die "generating the list"
# policy FILE [TO_LISTS] — one device, one rule; the list in the rule or not.
policy() {
	cat >"$1" <<EOF
gateway = { interface = "xl$ID"; private_key_file = "gw.key"; pool4 = "198.51.100.0/24";
  pool6 = "2001:db8:100::/64"; control_socket = "$CTL"; state_dir = "$dir/state"; };
groups = [ "finance" ];
devices = ( { name = "d"; public_key = "$(wg genkey | wg pubkey)"; groups = [ "finance" ]; } );
rules = ( { name = "erp"; groups = [ "finance" ]; to = [ "203.0.113.0/24" ];${2:+ to_lists = [ \"$2\" ];}
  action = "allow"; via = [ "internet" ]; } );
EOF
}
policy "$dir/base.conf"
policy "$dir/list.conf" erp.txt
say "prefix list: $LIST_PREFIXES prefixes ($(grep -c '^198' "$dir/erp.txt") IPv4, $(grep -c '^2001' "$dir/erp.txt") IPv6); reference: the same policy without it; goal: well under 1 s"

check_ms() {
	local t0
	t0=$(now_ms)
	"$XB_BIN/xborderd" --check -c "$1" >/dev/null || die "xborderd --check $1 failed"
	echo $(( $(now_ms) - t0 ))
}
a=$(check_ms "$dir/list.conf") b=$(check_ms "$dir/base.conf")
say "$(printf '  %-36s %5s ms   without the list %4s ms' "xborderd --check" "$a" "$b")"

nq ld "$XB_BIN/xb-nftbench" -n 5 "$dir/base.conf" "$dir/list.conf" >"$XB_TMP/nftbench" ||
	die "xb-nftbench failed: $(cat "$XB_TMP/nftbench")"
sed "s|^$dir/||; s/^/  xb-nftbench /" "$XB_TMP/nftbench" >&3

# A whole daemon: start, reloads through the control socket (wall time of
# `xborderctl reload', which answers when the reload is done).
cp "$dir/list.conf" "$dir/xborder.conf"
t0=$(now_ms)
xb_bg ld "$XB_BIN/xborderd" -f -c "$dir/xborder.conf"
pid=$XB_LAST_PID log=$XB_LAST_LOG
xb_wait 60000 grep -q "gateway up" "$log" || die "xborderd did not come up: $(tail -n 5 "$log")"
say "$(printf '  %-36s %5s ms' "xborderd start to \"gateway up\"" $(( $(now_ms) - t0 )))"
reload_ms() {
	local t0
	t0=$(now_ms)
	nq ld "$XB_BIN/xborderctl" -s "$CTL" reload >/dev/null || die "reload failed: $(tail -n 5 "$log")"
	echo $(( $(now_ms) - t0 ))
}
in_set() { nq ld nft list set inet xborder r_erp_to4 | grep -q "$1"; }
for r in 1 2 3; do
	say "$(printf '  %-36s %5s ms' "reload $r, unchanged" "$(reload_ms)")"
done
sed -i 's|^198\.18\.0\.0/30$|192.0.2.128/25|' "$dir/erp.txt"
ms=$(reload_ms)
if in_set '192\.0\.2\.128/25' && ! in_set '198\.18\.0\.0/30'; then
	say "$(printf '  %-36s %5s ms   (the kernel'"'"'s set has the new line, not the old)' \
		"reload, one list line changed" "$ms")"
else
	die "after the reload the set does not hold the changed list line"
fi
with=$ms
cp "$dir/base.conf" "$dir/xborder.conf"
say "$(printf '  %-36s %5s ms   %s' "reload, the list taken out" "$(reload_ms)" "(the old set freed)")"
ms=$(reload_ms)
say "$(printf '  %-36s %5s ms   list changed / this = %s' "reload, without the list, unchanged" \
	"$ms" "$(ratio "$with" "$ms")")"
kill -TERM "$pid"
xb_wait 5000 sh -c "! kill -0 $pid" || say "xborderd did not stop on SIGTERM"
grep -E ": (warning|error): " "$log" | head -n 5 | sed "s/^/  xborderd log: /" >&3
say "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (other work skews the figures)"
exit 0
