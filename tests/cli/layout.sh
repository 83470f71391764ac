#!/usr/bin/env bash
# The tree's layering (docs/architecture.md, "The tree"): every #include of
# a project header goes from a folder to itself or to a folder below it, and
# the subsystems side by side under gateway/ do not include one another.
# A planted upward include must be caught, so that a check that sees
# nothing cannot pass.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
failed=0

# Layer of each folder; side-by-side folders share a layer.
declare -A LAYER=([common]=0 [tunnel]=1 [probe]=1 [policy]=2 [gateway/kernel]=3
	[gateway/links]=4 [gateway/dns]=4 [gateway/posture]=4 [gateway/health]=4
	[gateway/cluster]=4
	[gateway]=5 [ctl]=6 [agent]=7)

# May a file in folder $1 include header $2 (a path from the root)?
allowed() {
	local from=$1 inc=$2 to=${2%/*}
	[ "$from" = "$to" ] && return 0
	# The documented exceptions: ctl speaks the control socket's wire
	# format and handles WireGuard keys; the agent only uses common/.
	[ "$from" = ctl ] && { [ "$inc" = gateway/control.h ] || [ "$inc" = tunnel/wgconf.h ]; } && return 0
	[ "$from" = agent ] && { [ "$to" = common ]; return $?; }
	[ "$from" = ctl ] && [ "$to" = gateway ] && return 1
	[ -n "${LAYER[$from]:-}" ] && [ -n "${LAYER[$to]:-}" ] && [ "${LAYER[$to]}" -lt "${LAYER[$from]}" ]
}

# Every violation in the files given, as "FILE: #include PATH".
violations() {
	local f from inc
	for f in "$@"; do
		from=${f#$root/}
		from=${from%/*}
		while read -r inc; do
			allowed "$from" "$inc" || echo "${f#$root/}: #include \"$inc\""
		done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
	done
}

# The check itself must see an upward include.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/gateway/dns"
printf '#include "gateway/daemon.h"\n#include "gateway/posture/posture.h"\n#include "policy/policy.h"\n' \
	>"$tmp/gateway/dns/planted.c"
planted=$(root=$tmp; violations "$tmp/gateway/dns/planted.c")
if [ "$(printf '%s\n' "$planted" | grep -c include)" = 2 ]; then
	echo "ok - layout/a planted upward and a sideways include are caught"
else
	echo "not ok - layout/a planted upward and a sideways include are caught: got '$planted'"
	failed=1
fi

mapfile -t files < <(cd "$root" && git ls-files '*.c' '*.h' 2>/dev/null | grep -v '^tests/' |
	sed "s|^|$root/|")
[ ${#files[@]} -gt 0 ] || mapfile -t files < <(find "$root"/{common,tunnel,probe,policy,gateway,ctl,agent} \
	-name '*.[ch]')
bad=$(violations "${files[@]}")
if [ -z "$bad" ]; then
	echo "ok - layout/${#files[@]} source files include only their own folder or folders below"
else
	echo "not ok - layout/includes against the layering (docs/architecture.md, \"The tree\"):"
	printf '#   %s\n' "$bad"
	failed=1
fi
# A folder the layering does not know fails too: say where it belongs.
for f in "${files[@]}"; do
	d=${f#$root/}
	d=${d%/*}
	[ -n "${LAYER[$d]:-}" ] || { echo "not ok - layout/$d has no layer in tests/cli/layout.sh"; failed=1; break; }
done
exit $failed
