#!/usr/bin/env bash
# The test suite: unit, end-to-end (real binary, real sockets) and interop
# tests (nginx, haproxy, curl, promtool, chromium) under the race detector,
# in random order, then each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
FUZZTIME=${FUZZTIME:-15s}

go test -race -shuffle=on -timeout 20m -count=1 ./...

fuzz() { # package target
	echo "== fuzz $2 ($FUZZTIME)"
	go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1"
}
fuzz ./config FuzzParse
fuzz ./proxy/filter FuzzCanonicalize
fuzz ./proxy/filter FuzzUpgradeVerdict
fuzz ./proxy FuzzReadProxyHeader
fuzz ./proxy FuzzNodeTransport
fuzz ./proxy FuzzAccessJSON
fuzz ./proxy FuzzFastHead
fuzz ./proxy FuzzRespHead
fuzz ./proxy FuzzFastPathDiff
fuzz ./proxy FuzzH2Request
