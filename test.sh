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
	local corpus="$1/testdata/fuzz/$2" before after
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1" && return 0
	after=$(ls "$corpus" 2>/dev/null | sort || true)
	if [[ $before != "$after" ]]; then
		return 1 # a failing input was found and saved: a real failure
	fi
	# The fuzzing engine itself gave up (a worker that did not answer in
	# time on a loaded machine) without finding an input: run it again once.
	echo "== fuzz $2: no failing input was saved; running it again"
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
