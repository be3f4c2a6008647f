#!/usr/bin/env bash
# Measures portico and HAProxy with cmd/h2stress, each scenario against a
# freshly started proxy, inside a network namespace whose TCP buffers are
# capped (so the kernel's loopback buffers do not absorb what a proxy
# holds). Run as root from the repository root:
#
#	docs/hardening/measure.sh [portico|haproxy ...] [-- h2stress flags]
#
# Output: one line per result, prefixed with the proxy's name.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin GOTOOLCHAIN=${GOTOOLCHAIN:-local}

proxies=()
while (($#)) && [[ $1 != -- ]]; do proxies+=("$1"); shift; done
(($#)) && shift
((${#proxies[@]})) || proxies=(portico haproxy)
scenarios=${SCENARIOS:-upload stall reset data h1}

work=$(mktemp -d)
ns=h2stress-$$
pid=
cleanup() {
	set +e # every step runs, whatever failed before
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
	ip netns del "$ns" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/portico" ./cmd/portico
go build -o "$work/h2stress" ./cmd/h2stress
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_wmem="4096 16384 65536" net.ipv4.tcp_rmem="4096 16384 65536"
"$work/h2stress" setup -dir "$work" >/dev/null
ulimit -n "$(ulimit -Hn)" # the stall scenario wants ~20,000 descriptors per process

for proxy in "${proxies[@]}"; do
	for s in $scenarios; do
		case $proxy in
		portico)
			ip netns exec "$ns" "$work/portico" -config "$work/portico.toml" 2>"$work/proxy.log" &
			metrics=(-metrics http://127.0.0.1:9100/metrics) ;;
		haproxy)
			ip netns exec "$ns" haproxy -db -f "$work/haproxy.cfg" >"$work/proxy.log" 2>&1 &
			metrics=() ;;
		*) echo "unknown proxy $proxy" >&2; exit 2 ;;
		esac
		pid=$!
		ip netns exec "$ns" "$work/h2stress" -run "$s" -pid "$pid" "${metrics[@]}" "$@" | sed "s/^/$proxy /" ||
			echo "$proxy $s failed"
		kill "$pid"; wait "$pid" 2>/dev/null || true
		pid=
	done
done
