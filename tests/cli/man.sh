#!/usr/bin/env bash
# Every man page (deploy/man/*.[1-8], man/*.[1-8]) renders without a single
# troff warning: `man --warnings -l'. A page with a known mistake must
# produce one, so that a silent man cannot pass this test.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
failed=0
command -v man >/dev/null || { echo "man (man-db) is missing"; exit 77; }
export LC_ALL=C.UTF-8 MANWIDTH=80
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

warnings() { man --warnings -E UTF-8 -l "$1" 2>&1 >/dev/null; }

printf '.TH BAD 8\n.SH NAME\nbad \\- a page with an undefined macro\n.XX oops\n' >"$tmp/bad.8"
if [ -n "$(warnings "$tmp/bad.8")" ]; then
	echo "ok - man/a page with an undefined macro warns"
else
	echo "not ok - man/a page with an undefined macro warns: man --warnings says nothing"
	exit 1
fi

n=0
for f in "$root"/deploy/man/*.[1-8] "$root"/man/*.[1-8]; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	name=${f#$root/}
	w=$(warnings "$f")
	if [ -z "$w" ] && man -E UTF-8 -l "$f" 2>/dev/null | grep -q NAME; then
		echo "ok - man/$name renders without warnings"
	else
		echo "not ok - man/$name: ${w:-renders empty}"
		failed=$((failed + 1))
	fi
done
[ "$n" -gt 0 ] || { echo "not ok - man/pages: none found"; exit 1; }
exit $((failed > 0))
