package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An active/active fleet behind an L4 balancer: HAProxy in mode tcp (the
// stand-in for a cloud NLB) sends PROXY v2 to two porticos round robin and
// checks each one's /healthz; the porticos accept the header from the
// balancer only. The client's address must survive both hops to the node,
// and a portico stopped gracefully (SIGTERM) under a client loop must cost
// no request that was not in flight on it; so must a hung one, which only
// the balancer's check of /healthz can find out.

var fleetHosts = map[string]int{"client": 10, "l4": 30, "lb1": 1, "lb2": 2, "nodes": 20}

// fleetPorticoConf is the configuration every portico of the fleet runs.
// The admin listener answers the balancer's health checks; shutdown_delay
// outlasts the balancer's fall × inter, so a stopping portico is out of
// rotation before its listeners close.
func fleetPorticoConf(balancer, servers string) string {
	return fmt.Sprintf(`
shutdown_delay = "1s"
[admin]
bind = "0.0.0.0:9090"
allow = ["127.0.0.1/32", "%[1]s/32"]
[[listener]]
name = "http"
bind = "0.0.0.0:8080"
mode = "http"
pool = "nodes"
accept_proxy_protocol = true
trusted_proxies = ["%[1]s/32"]
[pool.nodes]
servers = %[2]s
connect_timeout = "1s"
response_timeout = "3s"
health = { interval = "1s", timeout = "500ms", rise = 1, fall = 2 }
`, balancer, servers)
}

// fleetHAProxy is the L4 balancer: PROXY v2 to each portico, an HTTP check
// of its /healthz on the admin port, and a failed connection retried on
// the other portico.
func fleetHAProxy(front string, porticos ...string) string {
	var servers strings.Builder
	for i, p := range porticos {
		fmt.Fprintf(&servers, "    server lb%d %s:8080\n", i+1, p)
	}
	return fmt.Sprintf(`    retries 3
    option redispatch 1
frontend fe
    mode tcp
    bind %s
    default_backend porticos
backend porticos
    mode tcp
    balance roundrobin
    option httpchk GET /healthz
    default-server send-proxy-v2 check port 9090 inter 200ms fall 2 rise 2
%s`, front, servers.String())
}

// porticoRequests is the number of requests a portico in host answered.
func porticoRequests(t *testing.T, lab *netLab, host string) float64 {
	t.Helper()
	_, body := netnsGet(t, lab, host, "http://127.0.0.1:9090/metrics")
	return parseProm(t, []byte(body)).sum("portico_requests_total", map[string]string{"listener": "http"})
}

// fleetClientTimeout bounds each request of the client loop: a request
// caught by a hung portico fails after it.
const fleetClientTimeout = 2 * time.Second

// startFleet starts the nodes, a portico in lb1 and lb2 and HAProxy in l4,
// and returns the balancer's front address.
func startFleet(t *testing.T) (*netLab, map[string]*proc, string) {
	t.Helper()
	lab := newNetLab(t, fleetHosts)
	balancer := lab.addr("l4")
	conf := fleetPorticoConf(balancer, startNodesIn(t, lab))
	porticos := map[string]*proc{}
	for _, host := range []string{"lb1", "lb2"} {
		porticos[host] = startPorticoIn(t, lab, host, conf)
	}
	t.Logf("the fleet runs configuration %s", requireSameFingerprint(t, lab, "lb1", "lb2"))
	front := balancer + ":8080"
	startHAProxyIn(t, lab.dial("l4", time.Second), lab.prefix("l4"), front,
		fleetHAProxy(front, lab.addr("lb1"), lab.addr("lb2")))
	return lab, porticos, front
}

// One portico of the fleet stopped gracefully (SIGTERM) or hung (SIGSTOP:
// its kernel still accepts connections, only the balancer's check of
// /healthz can tell) under a client loop. Stopped: no request fails (it
// fails /healthz for shutdown_delay while still serving, so the balancer
// sends it nothing by the time its listeners close). Hung: no request
// fails beyond those in flight on it, at most one per client worker.
func TestL4FleetKeepsClientAddressAndLosesOnlyInFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"stopped", syscall.SIGTERM},
		{"hung", syscall.SIGSTOP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab, porticos, front := startFleet(t)
			requireClientAddressAtNode(t, lab, front)

			tr := startTraffic(t, trafficSpec{Kind: trafficTCP, Addr: front, Dial: lab.dial("client", time.Second),
				Timeout: fleetClientTimeout, Workers: 4, Pace: 10 * time.Millisecond, MaxDuration: 90 * time.Second,
				ExpectFailures: true})
			tr.waitSince(0, 100, 30*time.Second).requireNoFailures(t, "through the balancer")
			// Both porticos take traffic: the balancer's checks pass on both.
			for _, host := range []string{"lb1", "lb2"} {
				base := porticoRequests(t, lab, host)
				eventually(t, 10*time.Second, "requests answered by portico on "+host, func() bool {
					return porticoRequests(t, lab, host) > base
				})
			}

			failing := porticos["lb1"]
			switch tc.sig {
			case syscall.SIGTERM:
				if err := failing.stop(); err != nil {
					t.Fatalf("portico on lb1 did not stop cleanly: %v", err)
				}
				failing.waitLog("shutting down after shutdown_delay", 5*time.Second)
			case syscall.SIGSTOP:
				// Runs before portico's own cleanup: a stopped process would
				// not act on SIGTERM.
				t.Cleanup(func() { failing.cmd.Process.Signal(syscall.SIGCONT) })
				failing.signal(syscall.SIGSTOP)
			}
			// Were lb1 still in rotation, every worker would meet it again
			// within these requests.
			tr.waitSince(tr.mark(), 300, 60*time.Second)
			st := tr.stop()
			t.Logf("portico on lb1 %s under the loop: %d of %d requests failed, longest gap %v; failures: %s",
				tc.name, st.Failures, st.Requests, st.LongestGap.Round(time.Millisecond), strings.Join(st.Errors, "; "))
			if tc.sig == syscall.SIGTERM && st.Failures > 0 {
				t.Fatalf("%d requests failed with portico on lb1 stopped after shutdown_delay, want none: %v", st.Failures, st)
			}
			if st.Failures > int64(tr.spec.Workers) {
				t.Fatalf("%d requests failed with portico on lb1 %s, more than the %d that can be in flight on it: %v",
					st.Failures, tc.name, tr.spec.Workers, st)
			}
		})
	}
}

// requireClientAddressAtNode: the node sees the client's own address,
// through the balancer (PROXY v2) and portico (X-Forwarded-For).
func requireClientAddressAtNode(t *testing.T, lab *netLab, front string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: lab.dial("client", 2*time.Second), DisableKeepAlives: true}}
	for range 8 {
		code, _, h := get(t, c, "http://"+front+"/login", "Host", "login.example.com")
		if code != http.StatusOK || h.Get("X-Seen-XFF") != lab.addr("client") {
			t.Fatalf("through HAProxy and portico: status %d, the node saw X-Forwarded-For %q, want the client's %s",
				code, h.Get("X-Seen-XFF"), lab.addr("client"))
		}
	}
}
