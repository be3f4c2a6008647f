package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

func healthConf(listen, tcpListen, admin, servers, health string, minHealthy int) string {
	return fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "http"
bind = %q
mode = "http"
pool = "nodes"
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "nodes"
[pool.nodes]
servers = %s
min_healthy = %d
connect_timeout = "1s"
health = %s
`, admin, listen, tcpListen, servers, minHealthy, health)
}

func serverUp(t testing.TB, admin, addr string) bool {
	for _, p := range adminStatus(t, admin).Pools {
		for _, s := range p.Servers {
			if s.Address == addr {
				return s.Up
			}
		}
	}
	t.Fatalf("server %s not in /status", addr)
	return false
}

// TestFailingTestallLeavesAndReturns: under steady traffic, b's failing
// /testall takes it out (its other paths keep answering 200, and that must
// not count), nothing reaches it while it is down, and it returns when the
// checks pass again. No request fails.
func TestFailingTestallLeavesAndReturns(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	listen, tl, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	p, tr := startUnderTraffic(t, t.TempDir(), healthConf(listen, tl, admin, serverList(ns),
		`{ interval = "200ms", timeout = "150ms", rise = 2, fall = 3 }`, 1),
		trafficSpec{Kind: trafficHTTP, Addr: listen})
	tr.requireSome(t, "b", "before the failure")
	ns[1].SetHealth(http.StatusInternalServerError)
	eventually(t, 10*time.Second, "b down", func() bool { return !serverUp(t, admin, ns[1].Addr()) })
	// Counted by the node as it answers, so a check that was under way
	// when its health changed is counted by the answer it got.
	if got := ns[1].FailedChecks(); got < 3 {
		t.Fatalf("b went down after %d failed checks, want at least fall=3", got)
	}
	p.waitLog(`"to":"down"`, 5*time.Second)
	tr.requireNone(t, "b", "b down")
	ns[1].SetHealth(http.StatusOK)
	eventually(t, 10*time.Second, "b up again", func() bool { return serverUp(t, admin, ns[1].Addr()) })
	tr.requireSome(t, "b", "b up again")
	tr.stop().requireNoFailures(t, "traffic")
	// Each transition is logged exactly once.
	if n := strings.Count(p.Logs(), `"server health changed"`); n != 2 {
		t.Fatalf("%d transition log lines, want 2:\n%s", n, p.Logs())
	}
}

// TestAllServersDown: with every server down, under traffic, http clients
// get 503 with Retry-After (never an error or another status), tcp
// connections are closed at once, and /healthz fails.
func TestAllServersDown(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	listen, tl, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	_, tr := startUnderTraffic(t, t.TempDir(), healthConf(listen, tl, admin, serverList(ns),
		`{ interval = "200ms", timeout = "150ms", rise = 1, fall = 1 }`, 1),
		trafficSpec{Kind: trafficHTTP, Addr: listen, ExpectFailures: true})
	tr.waitSince(0, 20, 20*time.Second).requireNoFailures(t, "traffic while both are up")
	for _, n := range ns {
		n.SetHealth(http.StatusServiceUnavailable)
	}
	eventually(t, 10*time.Second, "all down", func() bool {
		return !serverUp(t, admin, ns[0].Addr()) && !serverUp(t, admin, ns[1].Addr())
	})
	// From now on every request is answered 503 by portico; before, each
	// got 200 or 503: going down costs no error and no other status.
	after := tr.waitSince(tr.mark(), 40, 20*time.Second)
	if after.Statuses[http.StatusServiceUnavailable] != after.Requests {
		t.Fatalf("traffic with every server down: %v, want only 503s", after)
	}
	if all := tr.stop(); all.Statuses[200]+all.Statuses[503] != all.Requests {
		t.Fatalf("traffic: %v, want only 200s, then 503s", all)
	}
	code, _, hdr := get(t, client(listen, nil), "http://x/login")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After=%q, want 503 with Retry-After", code, hdr.Get("Retry-After"))
	}
	// tcp listener: the connection is closed, nothing hangs.
	conn, err := net.Dial("tcp", tl)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("tcp read: %d, %v; want EOF", n, err)
	}
	// /healthz fails while no pool has min_healthy servers.
	res, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "nodes") {
		t.Fatalf("/healthz %d %q", res.StatusCode, body)
	}
}

func TestHealthzFollowsMinHealthy(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b", "c")
	listen, tl, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	_, tr := startUnderTraffic(t, t.TempDir(), healthConf(listen, tl, admin, serverList(ns),
		`{ interval = "200ms", timeout = "150ms", rise = 1, fall = 1 }`, 2),
		trafficSpec{Kind: trafficTCP, Addr: tl})
	healthz := func() int {
		res, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if c := healthz(); c != 200 {
		t.Fatalf("/healthz %d with 3 nodes up", c)
	}
	ns[0].SetHealth(500)
	eventually(t, 10*time.Second, "a down", func() bool { return !serverUp(t, admin, ns[0].Addr()) })
	if c := healthz(); c != 200 {
		t.Fatalf("/healthz %d with 2 of 3 up and min_healthy 2", c)
	}
	ns[1].SetHealth(500)
	eventually(t, 10*time.Second, "/healthz 503", func() bool { return healthz() == 503 })
	// Below min_healthy, the one server up still takes all the traffic.
	tr.requireNone(t, "a", "a and b down")
	tr.requireNone(t, "b", "a and b down")
	tr.stop().requireNoFailures(t, "tcp traffic")
}

// TestPassiveDetectionBeforeNextRound: with a long check interval, a node
// that refuses connections is taken out by live traffic alone, and no
// request fails meanwhile.
func TestPassiveDetectionBeforeNextRound(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	listen, tl, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	_, tr := startUnderTraffic(t, t.TempDir(), healthConf(listen, tl, admin, serverList(ns),
		`{ interval = "1h", timeout = "1s", rise = 2, fall = 2 }`, 1),
		trafficSpec{Kind: trafficHTTP, Addr: listen})
	waitFirstRound(t, admin)
	tr.requireSome(t, "b", "before b closes")
	ns[1].Close()
	eventually(t, 10*time.Second, "live traffic taking b out", func() bool { return !serverUp(t, admin, ns[1].Addr()) })
	tr.requireNone(t, "b", "b refusing")
	tr.stop().requireNoFailures(t, "traffic")
	// /status tells the story: b's last result is the passive failure, its
	// transition is timed and listed; a's active check has a latency.
	st := adminStatus(t, admin)
	for _, srv := range st.Pools[0].Servers {
		if srv.InFlight == nil || srv.LastCheck == nil || srv.LastCheck.At.IsZero() {
			t.Errorf("%s: /status lacks in_flight or last_check: %+v", srv.Address, srv)
			continue
		}
		switch srv.Address {
		case ns[0].Addr():
			if !srv.LastCheck.OK || srv.LastCheck.LatencyMS == nil || *srv.LastCheck.LatencyMS <= 0 {
				t.Errorf("a: last check %+v, want a passed active check with its latency", *srv.LastCheck)
			}
		case ns[1].Addr():
			if srv.LastCheck.OK || !srv.LastCheck.Passive || srv.LastTransition.IsZero() {
				t.Errorf("b: last check %+v, last transition %v; want the passive failure and its time", *srv.LastCheck, srv.LastTransition)
			}
		}
	}
	listed := false
	for _, tr := range st.Transitions {
		listed = listed || (tr.Server == ns[1].Addr() && tr.To == "down" && tr.Reason != "")
	}
	if !listed {
		t.Errorf("recent_transitions lacks b going down: %+v", st.Transitions)
	}
}

// With active checks off, refused connections still move each request to
// the next server, but never take a server out for good: nothing would
// bring it back.
func TestPassiveFailuresWithoutChecksAreNotForever(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	listen, tl, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	_, tr := startUnderTraffic(t, t.TempDir(), healthConf(listen, tl, admin, serverList(ns), `{ enabled = false }`, 1),
		trafficSpec{Kind: trafficHTTP, Addr: listen})
	tr.requireSome(t, "b", "before b closes")
	bAddr := ns[1].Addr()
	ns[1].Close()
	tr.requireNone(t, "b", "b refusing")
	b, err := standin.Start("b", bAddr)
	if err != nil {
		t.Fatalf("restarting b on %s: %v", bAddr, err)
	}
	t.Cleanup(func() { b.Close() })
	tr.requireSome(t, "b", "b serving again")
	tr.stop().requireNoFailures(t, "traffic")
}

// A POST with a body survives a refusing server: the dial failed, nothing
// reached any node, so the request goes to the next server with its whole
// body.
func TestRefusedServerCostsNoPOST(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a", "b")
	listen, tl, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	_, tr := startUnderTraffic(t, t.TempDir(), healthConf(listen, tl, admin, serverList(ns),
		`{ interval = "1h", timeout = "1s", rise = 2, fall = 1000 }`, 1),
		trafficSpec{Kind: trafficHTTP, Addr: listen})
	waitFirstRound(t, admin)
	tr.requireSome(t, "b", "before b closes")
	ns[1].Close()
	c := client(listen, nil)
	body := strings.Repeat("x", 100_000)
	for i := range 6 {
		res, err := c.Post("http://x/login", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("X-Node") != "a" || res.Header.Get("X-Seen-Body-Bytes") != "100000" {
			t.Fatalf("POST %d: %d from %q with %s body bytes, want 200 from a with 100000",
				i, res.StatusCode, res.Header.Get("X-Node"), res.Header.Get("X-Seen-Body-Bytes"))
		}
	}
	// GETs alongside went to a as well, none failed.
	tr.stop().requireNoFailures(t, "traffic")
	// Both refuse now: nothing is left to try, and nothing was "down" by
	// the checks (fall 1000): 502.
	ns[0].Close()
	res, err := c.Post("http://x/login", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("every server refusing: %d, want 502", res.StatusCode)
	}
}

func waitFirstRound(t testing.TB, admin string) {
	eventually(t, 10*time.Second, "first check round", func() bool {
		for _, p := range adminStatus(t, admin).Pools {
			for _, s := range p.Servers {
				if s.LastCheck == nil {
					return false
				}
			}
		}
		return true
	})
}
