#!/usr/bin/env bash
# The test suite: unit, end-to-end (real binary, real sockets) and interop
# tests (nginx, haproxy, curl, promtool, chromium) under the race detector,
# in random order, then each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
FUZZTIME=${FUZZTIME:-15s}

go test -race -shuffle=on -timeout 20m -count=1 ./...
# allocation counts mean nothing under -race (sync.Pool drops items at random),
# and stack sizes differ there
go test -count=1 -run '^(TestHotPathAllocs|TestIdleKeepAliveStack|TestIdleTunnelStack)$' ./proxy/

fuzz() { # package target
	echo "== fuzz $2 ($FUZZTIME)"
	local corpus="$1/testdata/fuzz/$2" before after out
	before=$(ls "$corpus" 2>/dev/null | sort || true)
	out=$(mktemp)
	if go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1" 2>&1 | tee "$out"; then
		rm -f "$out"
		return 0
	fi
	after=$(ls "$corpus" 2>/dev/null | sort || true)
	if [[ $before != "$after" ]] || ! grep -q '^    context deadline exceeded$' "$out"; then
		rm -f "$out"
		return 1 # a failing input was found and saved, or another failure
	fi
	rm -f "$out"
	# Go's fuzzing engine can end a run at its time limit with "context
	# deadline exceeded" and no input, when a worker is slow to stop: that
	# says nothing about the code under test, so the target runs once more.
	echo "== fuzz $2: the engine stopped at its deadline without an input; running it again"
	go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1"
}
fuzz ./config FuzzParse
fuzz ./proxy/filter FuzzCanonicalize
fuzz ./proxy/filter FuzzUpgradeVerdict
fuzz ./proxy FuzzReadProxyHeader
fuzz ./proxy/internal/upstream FuzzNodeTransport
fuzz ./accesslog FuzzAccessJSON
fuzz ./proxy/internal/wire FuzzFastHead
fuzz ./proxy/internal/wire FuzzRespHead
fuzz ./proxy FuzzFastPathDiff
fuzz ./proxy/h2 FuzzH2Request
fuzz ./proxy/h2 FuzzParseHeaders
fuzz ./proxy/h2 FuzzPlainRequestURI
