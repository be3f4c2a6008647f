package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// Health checks with steady client traffic at the same time, on every
// listener type. Every test here failed to notice, before it existed, that
// a node failing /testall never left rotation while it got requests: each
// proxied success reset the failure streak the active probes were building.

// checkSpec is a pool's health settings.
type checkSpec struct {
	interval, timeout time.Duration
	rise, fall        int
}

// fastCheck keeps the tests short; the bounds below keep them from being
// flaky on a loaded CI machine.
var fastCheck = checkSpec{interval: 200 * time.Millisecond, timeout: 150 * time.Millisecond, rise: 2, fall: 3}

func (c checkSpec) toml() string {
	return fmt.Sprintf(`{ interval = %q, timeout = %q, rise = %d, fall = %d }`, c.interval, c.timeout, c.rise, c.fall)
}

// round is the longest one check round can take: a probe that times out,
// then the interval plus its 10% jitter.
func (c checkSpec) round() time.Duration { return c.timeout + c.interval*11/10 }

// healthSlack covers scheduling on the CI machine: 2 cores, -race, other
// portico processes and their traffic in parallel.
const healthSlack = 5 * time.Second

// fallBound is how long a node whose checks started failing may stay UP:
// the round under way may still pass, then fall failing rounds.
func (c checkSpec) fallBound() time.Duration { return time.Duration(c.fall+1)*c.round() + healthSlack }

// riseBound is the same for a node whose checks started passing again.
func (c checkSpec) riseBound() time.Duration { return time.Duration(c.rise+1)*c.round() + healthSlack }

// rigAddrs are one portico's listeners: http, https (h2 too) and tcp in
// front of the same pool.
type rigAddrs struct{ http, https, tcp, admin string }

func (a rigAddrs) forKind(kind string) string {
	switch kind {
	case trafficHTTP:
		return a.http
	case trafficTCP:
		return a.tcp
	}
	return a.https
}

func healthTrafficConf(a rigAddrs, servers string, c checkSpec, extra string) string {
	return fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "http"
bind = %q
mode = "http"
pool = "nodes"
[[listener]]
name = "https"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "nodes"
%s
[pool.nodes]
servers = %s
connect_timeout = "1s"
health = %s
`, a.admin, a.http, a.https, a.tcp, extra, servers, c.toml())
}

// healthRig is portico with steady traffic of one kind, in front of
// stand-in nodes.
type healthRig struct {
	p     *proc
	tr    *traffic
	addrs rigAddrs
	check checkSpec
	dir   string
}

// startHealthRig starts portico in front of servers with check, and kind's
// traffic through it, and waits until every server answered some of it.
func startHealthRig(t *testing.T, kind string, c checkSpec, servers []string) *healthRig {
	t.Helper()
	r := &healthRig{check: c, dir: t.TempDir(),
		addrs: rigAddrs{http: freeAddr(t), https: freeAddr(t), tcp: freeAddr(t), admin: freeAddr(t)}}
	ca := testCerts(t, r.dir, "login.example.com")
	r.p, r.tr = startUnderTraffic(t, r.dir, healthTrafficConf(r.addrs, quoteList(servers), c, ""),
		trafficSpec{Kind: kind, Addr: r.addrs.forKind(kind), CA: ca})
	eventually(t, 20*time.Second, "traffic reaching every server", func() bool {
		return len(r.tr.snapshot().PerNode) >= len(servers)
	})
	return r
}

func quoteList(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func addrsOf(ns []*standin.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Addr())
	}
	return out
}

// waitServer waits until /status shows addr up or down, and returns how
// long that took.
func (r *healthRig) waitServer(t *testing.T, addr string, up bool, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for serverUp(t, r.addrs.admin, addr) != up {
		if time.Since(start) > d {
			t.Fatalf("%s not up=%v in /status within %v; traffic meanwhile: %v", addr, up, d, r.tr.snapshot())
		}
		<-tick.C
	}
	return time.Since(start)
}

// waitTransition waits for the "server health changed" line of addr going
// to `to`, and returns it.
func (r *healthRig) waitTransition(t *testing.T, addr, to string) string {
	t.Helper()
	for {
		l := r.p.waitLog(`"server health changed"`, 10*time.Second)
		if strings.Contains(l, addr) && strings.Contains(l, `"to":"`+to+`"`) {
			return l
		}
	}
}

// TestFailingTestallTakesNodeOutUnderTraffic: b's /testall answers 500
// while its other paths serve traffic; fall failed checks take b out in
// time, whatever the traffic, and nothing reaches it after. No request
// fails.
func TestFailingTestallTakesNodeOutUnderTraffic(t *testing.T) {
	t.Parallel()
	for _, kind := range trafficKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns := nodes(t, "a", "b", "c")
			r := startHealthRig(t, kind, fastCheck, addrsOf(ns))
			b := ns[1]
			b.SetHealth(http.StatusInternalServerError)
			took := r.waitServer(t, b.Addr(), false, fastCheck.fallBound())
			// fall consecutive failed checks, as portico counted them: on
			// a loaded machine one of them may be a check that timed out
			// rather than one the node answered with 500
			l := r.waitTransition(t, b.Addr(), "down")
			if !strings.Contains(l, fmt.Sprintf("(%d consecutive failures)", fastCheck.fall)) || b.FailedChecks() < 1 {
				t.Fatalf("b went down with %d failed checks at the node: %s", b.FailedChecks(), l)
			}
			if !strings.Contains(l, "status 500") && !strings.Contains(l, "timeout") {
				t.Errorf("transition line lacks the reason: %s", l)
			}
			t.Logf("b down %v after /testall began failing", took.Round(time.Millisecond))
			r.tr.requireNone(t, "b", "b down")
			r.tr.stop().requireNoFailures(t, kind+" traffic")
		})
	}
}

// TestHangingTestallTakesNodeOutUnderTraffic: b's /testall hangs past the
// check timeout while its other paths serve traffic; b goes out as for a
// failing status.
func TestHangingTestallTakesNodeOutUnderTraffic(t *testing.T) {
	t.Parallel()
	for _, kind := range trafficKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns := nodes(t, "a", "b", "c")
			r := startHealthRig(t, kind, fastCheck, addrsOf(ns))
			b := ns[1]
			b.SetHealthDelay(10 * fastCheck.timeout)
			took := r.waitServer(t, b.Addr(), false, fastCheck.fallBound())
			r.waitTransition(t, b.Addr(), "down")
			t.Logf("b down %v after /testall began hanging", took.Round(time.Millisecond))
			r.tr.requireNone(t, "b", "b down")
			r.tr.stop().requireNoFailures(t, kind+" traffic")
		})
	}
}

// TestNodeReturnsAfterRisePassesUnderTraffic: a node taken out by its
// checks comes back only after rise passing checks, then gets traffic
// again.
func TestNodeReturnsAfterRisePassesUnderTraffic(t *testing.T) {
	t.Parallel()
	for _, kind := range trafficKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns := nodes(t, "a", "b", "c")
			r := startHealthRig(t, kind, fastCheck, addrsOf(ns))
			b := ns[1]
			b.SetHealth(http.StatusInternalServerError)
			r.waitServer(t, b.Addr(), false, fastCheck.fallBound())
			r.waitTransition(t, b.Addr(), "down")
			// No pass is counted while /testall answers 500, so every pass
			// from here on happened after the recovery.
			passes := b.PassedChecks()
			b.SetHealth(http.StatusOK)
			eventually(t, fastCheck.riseBound(), "b up again", func() bool {
				up := serverUp(t, r.addrs.admin, b.Addr())
				// Read after /status: portico flips only after reading the
				// rise-th pass, which the node counted before answering.
				if n := b.PassedChecks() - passes; up && n < int64(fastCheck.rise) {
					t.Fatalf("b up after %d passing checks, want rise=%d", n, fastCheck.rise)
				}
				return up
			})
			l := r.waitTransition(t, b.Addr(), "up")
			m := regexp.MustCompile(`(\d+) consecutive passes`).FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("up transition without its passes: %s", l)
			}
			if n, _ := strconv.Atoi(m[1]); n < fastCheck.rise {
				t.Fatalf("up after %d passes, want rise=%d: %s", n, fastCheck.rise, l)
			}
			r.tr.requireSome(t, "b", "b up again")
			r.tr.stop().requireNoFailures(t, kind+" traffic")
		})
	}
}

// TestReloadKeepsDownNodeOutUnderTraffic: a reload with an unrelated change
// (one more listener) keeps a DOWN node DOWN: not one request reaches it
// after the reload, as it would if the reload started it UP again.
func TestReloadKeepsDownNodeOutUnderTraffic(t *testing.T) {
	t.Parallel()
	for _, kind := range trafficKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns := nodes(t, "a", "b", "c")
			r := startHealthRig(t, kind, fastCheck, addrsOf(ns))
			b := ns[1]
			b.SetHealth(http.StatusInternalServerError)
			r.waitServer(t, b.Addr(), false, fastCheck.fallBound())
			r.waitTransition(t, b.Addr(), "down")
			m := r.tr.mark()
			r.p.reload(healthTrafficConf(r.addrs, quoteList(addrsOf(ns)), fastCheck, extraListener(t)), `"generation":2`)
			if serverUp(t, r.addrs.admin, b.Addr()) {
				t.Fatal("the reload brought b back up")
			}
			r.tr.requireNone(t, "b", "after the reload")
			if got := r.tr.since(m).PerNode["b"]; got != 0 {
				t.Fatalf("%d requests reached b around the reload", got)
			}
			r.tr.stop().requireNoFailures(t, kind+" traffic")
		})
	}
}

// TestFallInProgressCompletesAcrossReloadUnderTraffic: b's checks start
// failing, a reload with an unrelated change comes while b is still UP,
// and b still goes down in time: the reload keeps the failure streak.
func TestFallInProgressCompletesAcrossReloadUnderTraffic(t *testing.T) {
	t.Parallel()
	// A longer fall leaves room for the reload in the middle of it.
	check := fastCheck
	check.fall = 8
	for _, kind := range trafficKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns := nodes(t, "a", "b", "c")
			r := startHealthRig(t, kind, check, addrsOf(ns))
			b := ns[1]
			b.SetHealth(http.StatusInternalServerError)
			start := time.Now()
			eventually(t, 10*time.Second, "b's first failed check", func() bool { return b.FailedChecks() >= 1 })
			r.p.reload(healthTrafficConf(r.addrs, quoteList(addrsOf(ns)), check, extraListener(t)), `"generation":2`)
			if !serverUp(t, r.addrs.admin, b.Addr()) {
				// Not a portico fault: the machine was too slow to put the
				// reload inside the fall, so this run proves nothing.
				t.Fatalf("b went down before the reload was applied (%d failed checks); the test needs a longer fall", b.FailedChecks())
			}
			r.waitServer(t, b.Addr(), false, check.fallBound()-time.Since(start))
			r.waitTransition(t, b.Addr(), "down")
			r.tr.requireNone(t, "b", "b down after the reload")
			r.tr.stop().requireNoFailures(t, kind+" traffic")
		})
	}
}

// extraListener is an unrelated change for a reload: one more listener.
func extraListener(t *testing.T) string {
	return fmt.Sprintf("[[listener]]\nname = \"extra\"\nbind = %q\nmode = \"http\"\npool = \"nodes\"\n", freeAddr(t))
}

// TestKilledNodeUnderTraffic: node b's process is killed under traffic,
// with active checks far apart (1h). GET requests that were going to b go
// to the next server, and live traffic alone takes b out. No request fails
// on http listeners; on a tcp listener, a connection already relayed to b
// when it died can only be closed (README, Health checks), so at most one
// per worker fails there, and never with a status.
func TestKilledNodeUnderTraffic(t *testing.T) {
	t.Parallel()
	check := checkSpec{interval: time.Hour, timeout: time.Second, rise: 2, fall: 3}
	for _, kind := range trafficKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ns := nodes(t, "a", "c")
			bAddr, kill := nodeProcess(t, "b")
			r := startHealthRig(t, kind, check, []string{ns[0].Addr(), bAddr, ns[1].Addr()})
			waitFirstRound(t, r.addrs.admin)
			// Requests that finished before the kill were served by live
			// nodes; none may have failed.
			before := r.tr.snapshot()
			before.requireNoFailures(t, kind+" traffic before the kill")
			kill()
			r.waitServer(t, bAddr, false, 20*time.Second)
			l := r.waitTransition(t, bAddr, "down")
			if !strings.Contains(l, "passive") {
				t.Errorf("b's transition was not passive: %s", l)
			}
			for _, s := range adminStatus(t, r.addrs.admin).Pools[0].Servers {
				if s.Address == bAddr && (s.LastCheck == nil || s.LastCheck.OK || !s.LastCheck.Passive) {
					t.Errorf("b's last check %+v, want the passive failure", s.LastCheck)
				}
			}
			r.tr.requireNone(t, "b", "b killed")
			st := r.tr.stop()
			if kind != trafficTCP {
				st.requireNoFailures(t, kind+" traffic")
				return
			}
			// Only connections in flight at the kill, one per worker at
			// most, cut without an answer.
			if cut := st.Failures - before.Failures; cut > int64(r.tr.spec.Workers) || st.Statuses[0] != st.Failures {
				t.Fatalf("tcp traffic: %d failures, want only connections cut by the kill (at most %d, none with a status): %v",
					cut, r.tr.spec.Workers, st)
			}
			t.Logf("tcp traffic: %d connections cut by the kill", st.Failures)
		})
	}
}
