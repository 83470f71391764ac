#!/usr/bin/env bash
# `make demo CHECK=1` inside `make test`: the demo's whole story (DNS, access,
# posture cut, failover) without pauses, each step asserted. It removes a
# demo left running (namespaces xbdemo-*) before and after.
[ "$(id -u)" = 0 ] || { echo "needs root for network namespaces (run: sudo make test)"; exit 77; }
exec bash "$(dirname "$0")/../../deploy/demo/demo.sh" --check
