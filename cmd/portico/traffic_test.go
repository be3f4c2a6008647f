package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
)

// Steady client traffic for end-to-end tests. A load balancer's state
// changes while requests flow, and a quiet test hides what only live
// traffic triggers: a passive success once reset the failure streak the
// active checks were building, so a node failing /testall never left
// rotation while it got requests (GUIDE §7, "With traffic").

// The kinds of traffic, by what the client speaks to which listener.
const (
	trafficHTTP  = "http"  // HTTP/1.1, plain, keep-alive
	trafficHTTPS = "https" // HTTP/1.1 over TLS (h2 not offered), keep-alive
	trafficH2    = "h2"    // HTTP/2 over TLS, streams of all workers on one connection
	// HTTP/1.1 through a tcp listener to a stand-in node, one fresh
	// connection per request: a tcp listener picks a server per connection,
	// so a kept-alive connection opened before a node went DOWN would
	// rightly keep talking to it. A fresh connection per request makes every
	// request a new pick, so "nothing reaches a DOWN node" can be asserted
	// as for the http kinds, and each request exercises the dial-and-retry
	// path where passive detection lives.
	trafficTCP = "tcp"
)

// trafficKinds is every kind, for tests that run once per listener type.
var trafficKinds = []string{trafficHTTP, trafficHTTPS, trafficH2, trafficTCP}

// trafficSpec says what traffic to send. Zero fields take the defaults.
type trafficSpec struct {
	Kind string      // one of the traffic* kinds
	Addr string      // the listener to dial, whatever the URL says
	CA   *standin.CA // trusted for https and h2
	Host string      // Host header and SNI; default "login.example.com"
	Path string      // default "/login"

	// Workers send requests one after another, each pausing Pace between
	// two, so the load stays steady and modest: the suite runs under -race
	// on 2 cores, and the health probes under test have 150 ms timeouts.
	Workers int           // default 4
	Pace    time.Duration // default 10ms

	// The loop stops by itself after MaxRequests requests or MaxDuration,
	// whichever comes first.
	MaxRequests int           // default 20000
	MaxDuration time.Duration // default 60s

	// ExpectFailures: the test itself judges failures (all servers down,
	// shutdown). Otherwise a test that never called stop() fails at cleanup
	// if any request failed.
	ExpectFailures bool

	// Dial, when set, opens the client's connections (from inside a
	// network namespace, say) instead of a plain dial of Addr.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds each request, dial included. Default 10s.
	Timeout time.Duration

	// Off, when not empty, is why a test runs without traffic, for the
	// helpers that start traffic by default (startUnderTraffic).
	Off string
}

// trafficMark is a point in the traffic: requests started after it have a
// greater sequence number.
type trafficMark int64

// trafficStats summarises finished requests.
type trafficStats struct {
	Requests int64            // finished requests
	Failures int64            // of which failed: an error, a status other than 200, the wrong protocol
	Refused  int64            // of the failures, connections refused: nothing reached portico
	Errors   []string         // the first maxTrafficErrors failures, each with its sequence number
	PerNode  map[string]int64 // answers by X-Node ("" for portico's own answers and errors)
	Statuses map[int]int64    // answers by status (0: no answer)
	Stopped  string           // why the loop ended; "" while it runs
	Elapsed  time.Duration    // from start to end (or to now)
	// LongestGap is the longest time between two successful answers, as
	// a client sees an outage (over the whole loop, the first success
	// counts from the start; an outage not over yet is not counted).
	LongestGap time.Duration
}

const maxTrafficErrors = 20

func (s trafficStats) String() string {
	nodes := make([]string, 0, len(s.PerNode))
	for n, c := range s.PerNode {
		nodes = append(nodes, fmt.Sprintf("%q:%d", n, c))
	}
	sort.Strings(nodes)
	return fmt.Sprintf("%d requests, %d failed, per node {%s}, statuses %v, in %v, longest gap %v (stopped: %q); failures: %s",
		s.Requests, s.Failures, strings.Join(nodes, " "), s.Statuses, s.Elapsed.Round(time.Millisecond),
		s.LongestGap.Round(time.Millisecond), s.Stopped, strings.Join(s.Errors, "; "))
}

// requireOnlyRefused fails the test if a request failed other than by a
// refused connection: during a shutdown, a request is either refused at the
// door or answered, never cut off or answered with an error.
func (s trafficStats) requireOnlyRefused(t testing.TB, what string) {
	t.Helper()
	if s.Failures != s.Refused {
		t.Fatalf("%s: %d of %d client requests failed other than by a refused connection: %v",
			what, s.Failures-s.Refused, s.Requests, s)
	}
}

// requireNoFailures fails the test if any request failed.
func (s trafficStats) requireNoFailures(t testing.TB, what string) {
	t.Helper()
	if s.Failures != 0 {
		t.Fatalf("%s: %d of %d client requests failed: %v", what, s.Failures, s.Requests, s)
	}
}

type trafficRec struct {
	seq     int64
	node    string
	status  int
	fail    string    // "" when the request succeeded
	refused bool      // the connection to portico was refused
	at      time.Time // when it finished
}

// traffic is a running client loop.
type traffic struct {
	t      testing.TB
	spec   trafficSpec
	client *http.Client
	url    string
	start  time.Time

	seq      atomic.Int64 // requests started
	stopc    chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	explicit atomic.Bool // the test called stop()

	mu      sync.Mutex
	recs    []trafficRec  // in the order they finished
	grew    chan struct{} // closed (and replaced) when a request finishes
	stopped string
	end     time.Time
}

// startTraffic starts spec's client loop at once. It stops by itself (see
// trafficSpec), at stop(), or at the test's cleanup, which runs before the
// cleanups registered earlier (portico's, the nodes').
func startTraffic(t testing.TB, spec trafficSpec) *traffic {
	t.Helper()
	if spec.Host == "" {
		spec.Host = "login.example.com"
	}
	if spec.Path == "" {
		spec.Path = "/login"
	}
	if spec.Workers <= 0 {
		spec.Workers = 4
	}
	if spec.Pace <= 0 {
		spec.Pace = 10 * time.Millisecond
	}
	if spec.MaxRequests <= 0 {
		spec.MaxRequests = 20000
	}
	if spec.MaxDuration <= 0 {
		spec.MaxDuration = 60 * time.Second
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 10 * time.Second
	}
	addr, dial := spec.Addr, spec.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, addr)
		},
		MaxIdleConnsPerHost: spec.Workers,
	}
	scheme := "http"
	switch spec.Kind {
	case trafficHTTP:
	case trafficTCP:
		tr.DisableKeepAlives = true
	case trafficHTTPS:
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{RootCAs: spec.CA.Pool(), ServerName: spec.Host, NextProtos: []string{"http/1.1"}}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no h2
	case trafficH2:
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{RootCAs: spec.CA.Pool(), ServerName: spec.Host}
		tr.ForceAttemptHTTP2 = true
	default:
		t.Fatalf("traffic kind %q: want one of %v", spec.Kind, trafficKinds)
	}
	x := &traffic{
		t: t, spec: spec, start: time.Now(),
		client: &http.Client{Transport: tr, Timeout: spec.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		url:   scheme + "://" + spec.Host + spec.Path,
		stopc: make(chan struct{}), done: make(chan struct{}), grew: make(chan struct{}),
	}
	var wg sync.WaitGroup
	for range spec.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x.work()
		}()
	}
	limit := time.AfterFunc(spec.MaxDuration, func() { x.halt("max duration") })
	go func() {
		wg.Wait()
		limit.Stop()
		x.halt("max requests") // no-op when something else stopped it first
		tr.CloseIdleConnections()
		x.mu.Lock()
		x.end = time.Now()
		x.mu.Unlock()
		close(x.done)
	}()
	t.Cleanup(func() {
		st := x.halt("cleanup")
		if !x.explicit.Load() && !spec.ExpectFailures && st.Failures != 0 {
			t.Errorf("%s traffic: %d of %d client requests failed: %v", spec.Kind, st.Failures, st.Requests, st)
		}
	})
	return x
}

// work is one worker: a request, a pause, until the loop stops.
func (x *traffic) work() {
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-x.stopc:
			return
		case <-pause.C:
		}
		n := x.seq.Add(1)
		if n > int64(x.spec.MaxRequests) {
			return
		}
		rec := x.one(n)
		rec.at = time.Now()
		x.mu.Lock()
		x.recs = append(x.recs, rec)
		close(x.grew)
		x.grew = make(chan struct{})
		x.mu.Unlock()
		pause.Reset(x.spec.Pace)
	}
}

// one sends request n. A request in flight when the loop stops runs to its
// end: cancelling it would be a failure of the test's making.
func (x *traffic) one(n int64) trafficRec {
	rec := trafficRec{seq: n}
	res, err := x.client.Get(x.url)
	if err != nil {
		rec.fail, rec.refused = err.Error(), errors.Is(err, syscall.ECONNREFUSED)
		return rec
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	rec.status, rec.node = res.StatusCode, res.Header.Get("X-Node")
	wantMajor := 1
	if x.spec.Kind == trafficH2 {
		wantMajor = 2
	}
	switch {
	case err != nil:
		rec.fail = fmt.Sprintf("status %d from %q, body: %v", res.StatusCode, rec.node, err)
	case res.StatusCode != http.StatusOK:
		rec.fail = fmt.Sprintf("status %d from %q", res.StatusCode, rec.node)
	case res.ProtoMajor != wantMajor:
		rec.fail = fmt.Sprintf("answered over %s, want HTTP/%d", res.Proto, wantMajor)
	}
	return rec
}

// halt stops the loop (once), waits for the requests in flight and returns
// the stats.
func (x *traffic) halt(why string) trafficStats {
	x.stopOnce.Do(func() {
		x.mu.Lock()
		x.stopped = why
		x.mu.Unlock()
		close(x.stopc)
	})
	if why != "max requests" { // called by the loop's own goroutine: do not wait for itself
		<-x.done
	}
	return x.window(0, -1)
}

// stop stops the loop and returns the stats of every request.
func (x *traffic) stop() trafficStats {
	x.explicit.Store(true)
	return x.halt("stop")
}

// snapshot returns the stats of the requests finished so far.
func (x *traffic) snapshot() trafficStats { return x.window(0, -1) }

// mark returns a point to measure from: requests started after it.
func (x *traffic) mark() trafficMark { return trafficMark(x.seq.Load()) }

// since returns the stats of the requests started after m and finished so
// far. since(m).PerNode["b"] == 0 means b got no request sent after m.
func (x *traffic) since(m trafficMark) trafficStats { return x.window(m, -1) }

// window returns the stats of the finished requests started after from and
// up to to (to < 0: no upper bound).
func (x *traffic) window(from, to trafficMark) trafficStats {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := trafficStats{PerNode: map[string]int64{}, Statuses: map[int]int64{}, Stopped: x.stopped}
	var lastOK time.Time
	if from == 0 {
		lastOK = x.start
	}
	for _, r := range x.recs {
		if r.seq <= int64(from) || (to >= 0 && r.seq > int64(to)) {
			continue
		}
		if r.fail == "" {
			if !lastOK.IsZero() {
				st.LongestGap = max(st.LongestGap, r.at.Sub(lastOK))
			}
			lastOK = r.at
		}
		st.Requests++
		st.PerNode[r.node]++
		st.Statuses[r.status]++
		if r.fail != "" {
			st.Failures++
			if r.refused {
				st.Refused++
			}
			if len(st.Errors) < maxTrafficErrors {
				st.Errors = append(st.Errors, fmt.Sprintf("#%d %s", r.seq, r.fail))
			}
		}
	}
	if x.end.IsZero() {
		st.Elapsed = time.Since(x.start)
	} else {
		st.Elapsed = x.end.Sub(x.start)
	}
	return st
}

// waitSince waits until at least n requests started after m have finished,
// and returns their stats. It fails the test if the loop ends first (a
// test must not assert "nothing reached b" over traffic that had stopped)
// or d passes.
func (x *traffic) waitSince(m trafficMark, n int, d time.Duration) trafficStats {
	x.t.Helper()
	deadline := time.After(d)
	for {
		x.mu.Lock()
		grew := x.grew
		x.mu.Unlock()
		st := x.since(m)
		if st.Requests >= int64(n) {
			return st
		}
		select {
		case <-grew:
		case <-x.done:
			if st := x.since(m); st.Requests >= int64(n) {
				return st
			}
			x.t.Fatalf("%s traffic ended (%s) after %d of the %d requests wanted since mark %d: %v",
				x.spec.Kind, x.since(m).Stopped, x.since(m).Requests, n, m, x.snapshot())
		case <-deadline:
			x.t.Fatalf("%s traffic: %d of the %d requests wanted since mark %d within %v: %v",
				x.spec.Kind, x.since(m).Requests, n, m, d, x.snapshot())
		}
	}
}

// requireNone waits for 60 requests sent from now on and fails if any of
// them reached node name (a node that is DOWN or gone).
func (x *traffic) requireNone(t testing.TB, name, while string) {
	t.Helper()
	st := x.waitSince(x.mark(), 60, 30*time.Second)
	if got := st.PerNode[name]; got != 0 {
		t.Fatalf("%s: %d of %d requests reached %s: %v", while, got, st.Requests, name, st)
	}
}

// requireSome waits until a request sent from now on reaches node name.
func (x *traffic) requireSome(t testing.TB, name, while string) {
	t.Helper()
	m := x.mark()
	deadline := time.Now().Add(20 * time.Second)
	for x.since(m).PerNode[name] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no request reached %s within 20s: %v", while, name, x.since(m))
		}
		x.waitSince(m, int(x.since(m).Requests)+1, time.Until(deadline))
	}
}

// startUnderTraffic starts portico on conf and steady traffic against one
// of its listeners: the default for health, reload and failover tests. A
// test that must run on a quiet proxy says why in spec.Off (and gets a nil
// *traffic).
func startUnderTraffic(t testing.TB, dir, conf string, spec trafficSpec) (*proc, *traffic) {
	t.Helper()
	p := startPortico(t, dir, conf)
	if spec.Off != "" {
		t.Logf("no client traffic: %s", spec.Off)
		return p, nil
	}
	if spec.Kind == "" {
		t.Fatal("startUnderTraffic: say which traffic (spec.Kind), or why none (spec.Off)")
	}
	return p, startTraffic(t, spec)
}
