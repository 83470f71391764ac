#!/usr/bin/env bash
# What deploy/ ships for monitoring:
#   - deploy/grafana/xborder.json is JSON (jq) and a dashboard: a uid, panels
#     with targets;
#   - deploy/prometheus/xborder-rules.yml passes `promtool check rules', and
#     its unit tests (xborder-rules.test.yml) pass `promtool test rules';
#   - every metric name either uses is one the daemon exports (the names
#     gateway/metrics*.c writes; tests/net/metrics_status.sh checks them
#     against a running daemon's page). A rules file with a name the daemon
#     lacks must fail this check, so that it cannot pass by finding nothing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
dash=$root/deploy/grafana/xborder.json
rules=$root/deploy/prometheus/xborder-rules.yml
failed=0
ok() { echo "ok - deploy/$1"; }
bad() { echo "not ok - deploy/$1${2:+: $2}"; failed=$((failed + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v jq >/dev/null || { echo "skip - deploy: jq is missing (deploy/deps.sh installs it)"; exit 77; }
if jq -e '.uid and (.panels | length > 0) and all(.panels[]; (.targets | length) > 0)' "$dash" >/dev/null; then
	ok "grafana/xborder.json is a dashboard: a uid, panels with targets"
else
	bad "grafana/xborder.json is a dashboard" "$(jq . "$dash" 2>&1 >/dev/null | head -3)"
fi

if command -v promtool >/dev/null; then
	if out=$(promtool check rules "$rules" 2>&1); then
		ok "prometheus/xborder-rules.yml: promtool check rules ($(echo "$out" | grep -o '[0-9]* rules found'))"
	else
		bad "prometheus/xborder-rules.yml: promtool check rules" "$out"
	fi
	printf 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: up ==\n' >"$tmp/bad.yml"
	if promtool check rules "$tmp/bad.yml" >/dev/null 2>&1; then
		bad "promtool refuses a rule with a broken expression"
	else
		ok "promtool refuses a rule with a broken expression"
	fi
	if out=$(cd "$root/deploy/prometheus" && promtool test rules xborder-rules.test.yml 2>&1); then
		ok "prometheus/xborder-rules.test.yml: the alerts fire as tested"
	else
		bad "prometheus/xborder-rules.test.yml" "$(echo "$out" | tail -n 15)"
	fi
else
	echo "skip - deploy/promtool: not installed (Debian package prometheus; deploy/deps.sh installs it)"
fi

# Metric names: what the daemon writes, and what the files use. Recording
# rules (xborder:...) are Prometheus's own names.
grep -ho '"xborder_[a-z0-9_]*' "$root"/gateway/metrics*.c | tr -d '"' | sort -u >"$tmp/exported"
used() { grep -o 'xborder_[a-z0-9_]*' "$@" | sort -u; }
# unknown FILE... — names used but not exported
unknown() { used "$@" | comm -23 - "$tmp/exported"; }
[ -s "$tmp/exported" ] || bad "the daemon's metric names found in gateway/metrics*.c"
echo 'expr: xborder_no_such_metric > 0' >"$tmp/fake.yml"
if [ "$(unknown "$tmp/fake.yml")" = xborder_no_such_metric ]; then
	ok "a name the daemon does not export is found"
else
	bad "a name the daemon does not export is found"
fi
for f in "$dash" "$rules"; do
	n=$(used "$f" | wc -l)
	u=$(unknown "$f" | tr '\n' ' ')
	if [ "$n" -gt 0 ] && [ -z "$u" ]; then
		ok "${f#$root/deploy/}: its $n metric names are the daemon's"
	else
		bad "${f#$root/deploy/}: names the daemon does not export" "${u:-none used}"
	fi
done
exit $((failed > 0))
