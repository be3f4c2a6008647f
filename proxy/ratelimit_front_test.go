package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// limitRules limit /limited to 3 requests at once, then 1 an hour, per
// client; the rest is unlimited.
const limitRules = `  [[listener.rule]]
  paths = ["/limited"]
  allow = ["0.0.0.0/0", "::/0"]
  limit = { rate = "1/h", burst = 3 }
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
`

// testClock is a clock for Options.Clock that the test moves by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Unix(1e9, 0).UnixNano())
	return c
}

func (c *testClock) now() time.Time         { return time.Unix(0, c.ns.Load()) }
func (c *testClock) add(d time.Duration)    { c.ns.Add(int64(d)) }
func (c *testClock) opts(o Options) Options { o.Clock = c.now; return o }

// A rule's rate limit holds on every front, each with its own server and
// buckets: the HTTP/1.1 fast path, net/http's handler, websocket
// upgrades, the HTTP/2 fast path and HTTP/2 through the handler. Each
// gets exactly burst answers from the node, then 429 with Retry-After
// that never reaches it; a token an hour later admits one more; other
// paths stay unlimited.
func TestEveryFrontAppliesTheRateLimit(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	h2c := h2DiffClient(t)
	type front struct {
		name string
		do   func(target string) (int, http.Header)
		srv  *Server
	}
	mk := func(name string, o Options, mode string, h2off bool, do func(addr, target string) (int, http.Header)) (front, *testClock) {
		clk := newTestClock()
		extra := ""
		if mode == "https" {
			cert, key := h2DiffCert(t, t.TempDir())
			extra = fmt.Sprintf("certificates = [{ cert = %q, key = %q }]", cert, key)
		}
		s := startDiffServerRules(t, n.addr, mode, extra, limitRules, clk.opts(o), func(s *Server) { s.h2FastOff = h2off })
		addr := s.benchSlot().ln.Addr().String()
		return front{name: name, srv: s, do: func(target string) (int, http.Header) { return do(addr, target) }}, clk
	}
	h1 := func(extra string) func(addr, target string) (int, http.Header) {
		return func(addr, target string) (int, http.Header) { return rawGetHeader(t, addr, target, extra) }
	}
	h2 := func(addr, target string) (int, http.Header) {
		o := n.h2Do(h2c, addr, "GET", target, nil)
		return o.Status, o.Header
	}
	upgrade := "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	seq := func() int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.seq
	}
	for _, c := range []struct {
		name  string
		o     Options
		mode  string
		h2off bool
		do    func(addr, target string) (int, http.Header)
	}{
		{"http fast path", Options{}, "http", false, h1("")},
		{"http net/http", Options{NoFastPath: true}, "http", false, h1("")},
		{"http upgrade", Options{}, "http", false, h1(upgrade)},
		{"h2 fast path", Options{}, "https", false, h2},
		{"h2 handler", Options{}, "https", true, h2},
	} {
		f, clk := mk(c.name, c.o, c.mode, c.h2off, c.do)
		var got []int
		before := seq()
		for i := 0; i < 6; i++ {
			status, hdr := f.do("/limited/x")
			got = append(got, status)
			if status == http.StatusTooManyRequests {
				if ra := hdr.Get("Retry-After"); ra != "3600" {
					t.Errorf("%s: Retry-After %q, want 3600 (one token at 1/h)", f.name, ra)
				}
				if hdr.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s: the 429 is not portico's own answer: %v", f.name, hdr)
				}
			}
		}
		if want := "[200 200 200 429 429 429]"; fmt.Sprint(got) != want {
			t.Errorf("%s: statuses %v, want %s", f.name, got, want)
		}
		if seq()-before != 3 {
			t.Errorf("%s: the node got %d requests, want 3", f.name, seq()-before)
		}
		if got := metricValue(t, f.srv, "portico_requests_limited_total", "0"); got != 3 {
			t.Errorf("%s: portico_requests_limited_total{rule=\"0\"} = %v, want 3", f.name, got)
		}
		if status, _ := f.do("/open"); status != http.StatusOK {
			t.Errorf("%s: an unlimited path got %d", f.name, status)
		}
		if c.mode == "https" && !c.h2off && f.srv.h2FastServed.Load() != 4 {
			t.Errorf("%s: the fast path served %d streams, want 4", f.name, f.srv.h2FastServed.Load())
		}
		clk.add(time.Hour)
		if status, _ := f.do("/limited"); status != http.StatusOK {
			t.Errorf("%s: no token after an hour at 1/h: %d", f.name, status)
		}
		if status, _ := f.do("/limited"); status != http.StatusTooManyRequests {
			t.Errorf("%s: two tokens after an hour at 1/h: %d", f.name, status)
		}
	}
}

// rawGetHeader sends one GET on a fresh connection and returns the status
// and header.
func rawGetHeader(t *testing.T, addr, target, extra string) (int, http.Header) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: diff.test\r\n%s\r\n", target, extra)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header
}

// A reload that keeps a rule's limit keeps its buckets; one that changes
// the limit starts with full ones. Reloads happen while a client loop
// runs against an unlimited path, which must see no failure.
func TestRateLimitAcrossReloads(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	clk := newTestClock()
	s := startDiffServerRules(t, n.addr, "http", "", limitRules, clk.opts(Options{}), nil)
	addr := s.benchSlot().ln.Addr().String()
	stop := make(chan struct{})
	var loop sync.WaitGroup
	var sent, failed atomic.Int64
	loop.Add(1)
	go func() {
		defer loop.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent.Add(1)
			if status, _ := rawGetHeaderErr(addr, "/open"); status != http.StatusOK {
				failed.Add(1)
			}
		}
	}()
	limited := func() int {
		status, _ := rawGetHeader(t, addr, "/limited", "")
		return status
	}
	for i := 0; i < 3; i++ {
		limited()
	}
	if got := limited(); got != http.StatusTooManyRequests {
		t.Fatalf("after the burst: %d, want 429", got)
	}
	reload := func(rules string) {
		t.Helper()
		cfg := diffConfig(t, n.addr, "http", "", rules)
		cfg.Listeners[0].Bind = s.benchSlot().bind
		if _, err := s.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	// the same limit, with another rule in front of it: still limited
	reload("  [[listener.rule]]\n  paths = [\"/other\"]\n  allow = [\"0.0.0.0/0\"]\n" + limitRules)
	if got := limited(); got != http.StatusTooManyRequests {
		t.Errorf("after a reload that kept the limit: %d, want 429", got)
	}
	// a changed limit: full buckets
	reload(strings.Replace(limitRules, "burst = 3", "burst = 2", 1))
	for i, want := range []int{200, 200, 429} {
		if got := limited(); got != want {
			t.Errorf("request %d after a reload that changed the limit: %d, want %d", i, got, want)
		}
	}
	if got := len(s.reg.limits); got != 1 {
		t.Errorf("%d limiters kept, want 1 (the replaced one dropped)", got)
	}
	close(stop)
	loop.Wait()
	if sent.Load() == 0 || failed.Load() != 0 {
		t.Errorf("client loop: %d of %d requests failed", failed.Load(), sent.Load())
	}
}

// rawGetHeaderErr is rawGetHeader for a goroutine other than the test's:
// a failure is a status of 0.
func rawGetHeaderErr(addr, target string) (int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: diff.test\r\n\r\n", target)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// max_conns_per_client: a client's connection over the cap is closed
// unanswered while its others are served; counts return to zero once
// every connection closed, whichever way (served, refused, hung up),
// after a loop of clients that open and drop connections.
func TestMaxConnsPerClient(t *testing.T) {
	t.Parallel()
	n := startDiffNode(t)
	s := startDiffServerRules(t, n.addr, "http", "max_conns_per_client = 2", diffRules, Options{}, nil)
	sl := s.benchSlot()
	addr := sl.ln.Addr().String()
	held := make([]net.Conn, 2)
	for i := range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held[i] = c
		// a served request proves the gate counted this connection
		fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: diff.test\r\n\r\n")
		c.SetDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("held connection %d: %v %v", i, res, err)
		}
		io.Copy(io.Discard, res.Body)
	}
	if status, err := rawGetHeaderErr(addr, "/ok"); err == nil {
		t.Fatalf("a third connection was answered (%d), want it closed", status)
	}
	lim := metricValue(t, s, "portico_requests_limited_total", "conns")
	if lim < 1 {
		t.Errorf("portico_requests_limited_total{rule=\"conns\"} = %v", lim)
	}

	// Traffic: clients that finish requests, hang up before a request,
	// or are refused, in parallel with the two held connections.
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if i%2 == 0 {
					rawGetHeaderErr(addr, "/ok")
					continue
				}
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range held {
		c.Close()
	}
	client := netip.MustParseAddr("127.0.0.1")
	// the server closes its side when it reads the clients' EOF: poll
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n, addrs := sl.perClient.count(client)
		if n == 0 && addrs == 0 {
			break
		}
		select {
		case <-deadline.C:
			t.Fatalf("after every connection closed: %d connections of %s counted, %d addresses", n, client, addrs)
		case <-tick.C:
		}
	}
	if status, err := rawGetHeaderErr(addr, "/ok"); err != nil || status != 200 {
		t.Errorf("after the others closed: %d %v", status, err)
	}
}

// metricValue is the value of a counter of s's registry whose labels
// include label (any value of the others), summed.
func metricValue(t *testing.T, s *Server, name, label string) float64 {
	t.Helper()
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
