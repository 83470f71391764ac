# Prefix lists for to_lists (docs/policy.md), for tests/net/plist.sh and
# bench/plist.sh (sourced, bash).
#
#   xb_plist_gen N FILE    N prefixes, deterministic, none overlapping or
#                          adjacent (auto-merge keeps every one): four in
#                          five IPv4 /30s spread over 198.18.0.0/15 (RFC 2544,
#                          the benchmarking range: the documentation ranges
#                          hold too few), one in five IPv6 /64s under
#                          2001:db8:8000::/33; a comment line every 100.
# The prefixes only fill nft sets: no test sends traffic to them. N is at
# most 20 000 (16 384 IPv4 slots).
xb_plist_gen() {
	awk -v n="$1" 'BEGIN {
		if (n > 20000) { print "xb_plist_gen: at most 20000" > "/dev/stderr"; exit 1 }
		print "# generated: " n " prefixes"
		for (i = 0; i < n; i++) {
			if (i % 100 == 99) print "# line " i
			if (i % 5 == 4) {
				k = int(i / 5)
				printf "2001:db8:%x:%x::/64\n", 32768 + int(k / 256), (k % 256) * 2
			} else {
				k = i - int(i / 5)
				a = k * 8
				printf "198.%d.%d.%d/30\n", 18 + int(a / 65536), int(a / 256) % 256, a % 256
			}
		}
	}' >"$2"
}
