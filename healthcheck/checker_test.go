package healthcheck

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type fakeTarget struct {
	name string
	st   *State
}

func (f *fakeTarget) Name() string      { return f.name }
func (f *fakeTarget) Addr() string      { return f.name }
func (f *fakeTarget) State() *State     { return f.st }
func newTarget(name string) *fakeTarget { return &fakeTarget{name: name, st: NewState(true)} }

// scriptProber answers the n-th probe of an address (from 0) with script.
type scriptProber struct {
	script func(ctx context.Context, addr string, n int) Result
	mu     sync.Mutex
	calls  map[string]int
}

func (p *scriptProber) Probe(ctx context.Context, addr string) Result {
	p.mu.Lock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	n := p.calls[addr]
	p.calls[addr]++
	p.mu.Unlock()
	return p.script(ctx, addr, n)
}

func (p *scriptProber) count(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[addr]
}

func failFirst(k int) func(context.Context, string, int) Result {
	return func(_ context.Context, _ string, n int) Result {
		if n < k {
			return Result{Status: 500, Err: "status 500"}
		}
		return Result{OK: true, Status: 200}
	}
}

type event struct {
	r  Result
	tr *Transition
}

// runChecker starts c.Run with a logger writing into the returned buffer and
// an OnResult feeding the returned channel. stop cancels Run and waits for it
// to return, after which the buffer may be read.
func runChecker(c *Checker) (events chan event, logs *bytes.Buffer, stop func()) {
	events = make(chan event, 1000)
	logs = new(bytes.Buffer)
	c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	c.OnResult = func(_ Target, r Result, tr *Transition) { events <- event{r, tr} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(done)
	}()
	return events, logs, func() { cancel(); <-done }
}

func nextTransition(t *testing.T, events chan event) Transition {
	t.Helper()
	for e := range events {
		if e.tr != nil {
			return *e.tr
		}
	}
	t.Fatal("events closed")
	return Transition{}
}

func TestCheckerDownOnThirdFailure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		tg := newTarget("10.0.0.11:80")
		c := &Checker{Pool: "web", Targets: []Target{tg}, Prober: &scriptProber{script: failFirst(1 << 30)},
			Interval: 5 * time.Second, Rise: 2, Fall: 3}
		events, logs, stop := runChecker(c)

		tr := nextTransition(t, events)
		// Probes at 0s, 5s and 10s: the third failure, at 10s, is the one.
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("down after %v, want exactly 10s", got)
		}
		if got := tr.At.Sub(start); got != 10*time.Second || tr.From != true || tr.To != false {
			t.Errorf("transition %+v at %v", tr, got)
		}
		if tg.State().Up() {
			t.Error("state still up")
		}
		// Keep failing for a few more rounds: no further transition or log.
		for range 4 {
			if e := <-events; e.tr != nil {
				t.Errorf("extra transition %+v", *e.tr)
			}
		}
		stop()

		out := logs.String()
		if n := strings.Count(out, "server health changed"); n != 1 {
			t.Fatalf("%d transition log lines, want 1:\n%s", n, out)
		}
		for _, want := range []string{"level=WARN", "server=10.0.0.11:80", "pool=web", "from=up", "to=down", `reason="status 500 (3 consecutive failures)"`} {
			if !strings.Contains(out, want) {
				t.Errorf("log %q lacks %q", out, want)
			}
		}
	})
}

// A node that was passing and then fails for good: with a 5s interval
// and fall 3, the failures at 5s, 10s and 15s take it out at exactly 15s,
// and not a moment before.
func TestCheckerDownAtFifteenSeconds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		tg := newTarget("10.0.0.12:80")
		passOnce := func(_ context.Context, _ string, n int) Result {
			if n == 0 {
				return Result{OK: true, Status: 200}
			}
			return Result{Err: "connect: connection refused"}
		}
		c := &Checker{Pool: "web", Targets: []Target{tg}, Prober: &scriptProber{script: passOnce},
			Interval: 5 * time.Second, Rise: 2, Fall: 3}
		events, _, stop := runChecker(c)
		defer stop()
		for i := range 3 { // the pass at 0s, failures at 5s and 10s
			if e := <-events; e.tr != nil {
				t.Fatalf("probe %d at %v: early transition %+v", i, time.Since(start), *e.tr)
			}
			if !tg.State().Up() {
				t.Fatalf("down after probe %d at %v", i, time.Since(start))
			}
		}
		tr := nextTransition(t, events)
		if got := time.Since(start); got != 15*time.Second || tr.To {
			t.Errorf("transition %+v after %v, want down at exactly 15s", tr, got)
		}
	})
}

func TestCheckerRecoversAfterRise(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		tg := newTarget("10.0.0.12:80")
		c := &Checker{Pool: "web", Targets: []Target{tg}, Prober: &scriptProber{script: failFirst(3)},
			Interval: 5 * time.Second, Rise: 2, Fall: 3}
		events, logs, stop := runChecker(c)

		if tr := nextTransition(t, events); tr.To || time.Since(start) != 10*time.Second {
			t.Fatalf("first transition %+v after %v", tr, time.Since(start))
		}
		// Passes at 15s and 20s: rise 2 brings it up at 20s.
		tr := nextTransition(t, events)
		if !tr.To || tr.At.Sub(start) != 20*time.Second || !tg.State().Up() {
			t.Fatalf("recovery %+v after %v", tr, tr.At.Sub(start))
		}
		stop()
		out := logs.String()
		if n := strings.Count(out, "server health changed"); n != 2 {
			t.Fatalf("%d transition log lines, want 2:\n%s", n, out)
		}
		if !strings.Contains(out, "level=INFO") || !strings.Contains(out, "to=up") {
			t.Errorf("up transition not logged at info: %s", out)
		}
	})
}

func TestCheckerJitter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c := &Checker{Targets: []Target{newTarget("a:1")}, Prober: &scriptProber{script: failFirst(0)},
			Interval: 10 * time.Second, Jitter: 0.5}
		events, _, stop := runChecker(c)
		defer stop()
		prev := (<-events).r.At
		if prev.Sub(start) != 0 {
			t.Fatalf("first round at %v, want immediately", prev.Sub(start))
		}
		for range 20 {
			at := (<-events).r.At
			if d := at.Sub(prev); d < 10*time.Second || d > 15*time.Second {
				t.Fatalf("wait %v outside [10s, 15s]", d)
			}
			prev = at
		}
	})
}

func TestRoundProbesConcurrently(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n = 8
		var mu sync.Mutex
		started := 0
		all := make(chan struct{})
		p := &scriptProber{script: func(context.Context, string, int) Result {
			mu.Lock()
			started++
			if started == n {
				close(all)
			}
			mu.Unlock()
			// Sequential probing would leave this waiting until the
			// (fake) deadline and fail.
			select {
			case <-all:
				return Result{OK: true}
			case <-time.After(time.Minute):
				return Result{Err: "not concurrent"}
			}
		}}
		var targets []Target
		for i := range n {
			targets = append(targets, newTarget(string(rune('a'+i))+":80"))
		}
		var results []Result
		c := &Checker{Targets: targets, Prober: p, Fall: 1, OnResult: func(_ Target, r Result, _ *Transition) {
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}}
		c.Round(context.Background())
		if len(results) != n {
			t.Fatalf("%d results, want %d", len(results), n)
		}
		for _, r := range results {
			if !r.OK {
				t.Fatalf("probe failed: %s", r.Err)
			}
		}
	})
}

// TestRoundOneProbeInFlight shows a target is never probed twice at once,
// even by a second Checker sharing its State (as after a reload).
func TestRoundOneProbeInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{}, 10)
		release := make(chan struct{})
		p := &scriptProber{script: func(context.Context, string, int) Result {
			started <- struct{}{}
			<-release
			return Result{OK: true}
		}}
		tg := newTarget("10.0.0.13:80")
		old := &Checker{Targets: []Target{tg}, Prober: p}
		done := make(chan struct{})
		go func() {
			old.Round(context.Background())
			close(done)
		}()
		<-started
		// Same State behind a new Target value, as the proxy does on reload.
		// If Round probed, it would block on release forever and synctest
		// would report the deadlock.
		reloaded := &Checker{Targets: []Target{&fakeTarget{name: tg.name, st: tg.st}}, Prober: p}
		reloaded.Round(context.Background())
		if got := p.count(tg.name); got != 1 {
			t.Fatalf("%d probes started, want 1", got)
		}
		close(release)
		<-done
		// Once finished, the target can be probed again.
		reloaded.Round(context.Background())
		if got := p.count(tg.name); got != 2 {
			t.Fatalf("%d probes after release, want 2", got)
		}
	})
}

// TestRunReturnsAfterCancel cancels Run while a probe is in flight: Run
// returns, and the aborted probe does not count against the server.
func TestRunReturnsAfterCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		p := &scriptProber{script: func(ctx context.Context, _ string, n int) Result {
			if n == 0 {
				return Result{OK: true}
			}
			close(started)
			<-ctx.Done()
			return Result{Err: "canceled"}
		}}
		tg := newTarget("10.0.0.14:80")
		c := &Checker{Targets: []Target{tg}, Prober: p, Fall: 1}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			c.Run(ctx)
			close(done)
		}()
		<-started // second round, after the default interval
		cancel()
		<-done
		if snap := tg.State().Snapshot(); !snap.Up || snap.Fails != 0 || !snap.Last.OK {
			t.Fatalf("aborted probe was counted: %+v", snap)
		}
	})
}

// A server whose check fails goes DOWN within fall rounds while live
// traffic keeps reaching it and succeeding (its other pages work), and
// comes back only after rise passing probes, traffic or not.
func TestCheckerDecidesUnderTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := newTarget("a")
		var healthy atomic.Bool
		p := &scriptProber{script: func(context.Context, string, int) Result {
			if healthy.Load() {
				return Result{OK: true, Status: 200}
			}
			return Result{Status: 500, Err: "status 500"}
		}}
		c := &Checker{Pool: "p", Targets: []Target{tg}, Prober: p, Interval: time.Second, Rise: 2, Fall: 3}
		events, _, stop := runChecker(c)
		defer stop()
		// Traffic: a successful exchange every millisecond of fake time.
		ctx, cancel := context.WithCancel(context.Background())
		traffic := make(chan struct{})
		defer func() { cancel(); <-traffic }()
		go func() {
			defer close(traffic)
			for ctx.Err() == nil {
				tg.st.ObservePassiveOK()
				time.Sleep(time.Millisecond)
			}
		}()
		start := time.Now()
		tr := nextTransition(t, events)
		if tr.To || time.Since(start) > 3*time.Second {
			t.Fatalf("went %s after %v, want down within fall x interval", upDown(tr.To), time.Since(start))
		}
		if n := p.count("a"); n != 3 {
			t.Fatalf("down after %d probes, want fall = 3", n)
		}
		healthy.Store(true)
		before := p.count("a")
		tr = nextTransition(t, events)
		if !tr.To || p.count("a")-before != 2 {
			t.Fatalf("came %s after %d passing probes, want up after rise = 2", upDown(tr.To), p.count("a")-before)
		}
	})
}
