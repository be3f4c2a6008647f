package healthcheck

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Defaults applied by Checker and HTTPProber to zero-valued settings. They
// match portico's documented configuration defaults.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
	DefaultPath     = "/testall"
)

// Target is something a Checker probes.
type Target interface {
	// Name identifies the target in logs, e.g. "10.0.0.11:80".
	Name() string
	// Addr is the host:port traffic is sent to; the check may override the port.
	Addr() string
	// State is the target's health, shared with the proxy's hot path.
	State() *State
}

// Prober performs one probe of addr. It must honour ctx and fill in a
// Result; At may be left zero for the Checker to set.
type Prober interface {
	Probe(ctx context.Context, addr string) Result
}

// Checker runs the active checks of one pool. Its fields must not change
// once Run or Round has been called.
type Checker struct {
	// Pool names the pool in logs.
	Pool string
	// Targets are the servers probed in each round.
	Targets []Target
	// Skip, if set, is asked before each probe: a target it reports is
	// not probed this round (a server in maintenance). Nil: none skipped.
	Skip func(Target) bool
	// Prober performs the probes; nil = &HTTPProber{} (GET /testall over http).
	Prober Prober
	// Interval is the time between the starts of rounds; 0 = DefaultInterval.
	Interval time.Duration
	// Jitter is the fraction of Interval added at random to each wait, e.g.
	// 0.1 for up to +10%, so pools started together do not probe in lockstep.
	// 0 (or negative) = none.
	Jitter float64
	// Rise consecutive passes bring a server UP; 0 = DefaultRise.
	Rise int
	// Fall consecutive failures take a server DOWN; 0 = DefaultFall.
	Fall int
	// Logger receives each transition exactly once, at Warn when a server
	// goes down and Info when it comes up; nil = slog.Default().
	Logger *slog.Logger
	// OnResult, if set, is called after every probe result is applied (e.g.
	// for metrics); tr is nil when the result caused no transition. It is
	// called concurrently for different targets.
	OnResult func(t Target, r Result, tr *Transition)
}

// Run performs a round immediately, then one round per Interval (plus
// jitter) until ctx is done. It returns once ctx is done and the round in
// progress has finished, so the caller can wait for it to stop probing.
func (c *Checker) Run(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		c.Round(ctx)
		// Waiting from the round's start keeps the cadence at Interval even
		// when probes are slow; a round longer than the wait starts the next
		// one at once (Round never overlaps itself for a target anyway).
		wait := c.nextWait() - time.Since(start)
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (c *Checker) nextWait() time.Duration {
	iv := c.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	if c.Jitter > 0 {
		iv += time.Duration(rand.Float64() * c.Jitter * float64(iv))
	}
	return iv
}

// Round probes all targets concurrently and waits for all of them. A target
// whose previous probe is still in flight (possibly from another Checker
// sharing its State across a reload) is skipped. Results obtained after ctx
// is done are discarded: a probe cut short by shutdown or reload says
// nothing about the server.
func (c *Checker) Round(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range c.Targets {
		if c.Skip != nil && c.Skip(t) {
			continue
		}
		st := t.State()
		if !st.beginProbe() {
			continue
		}
		wg.Go(func() {
			defer st.endProbe()
			c.probe(ctx, t, st)
		})
	}
	wg.Wait()
}

func (c *Checker) probe(ctx context.Context, t Target, st *State) {
	var p Prober = c.Prober
	if p == nil {
		p = &HTTPProber{}
	}
	r := p.Probe(ctx, t.Addr())
	if ctx.Err() != nil || r.Local {
		// cut short by shutdown or reload, or portico out of file
		// descriptors: nothing learnt about the server
		return
	}
	if r.At.IsZero() {
		r.At = time.Now()
	}
	rise, fall := c.Rise, c.Fall
	if rise <= 0 {
		rise = DefaultRise
	}
	if fall <= 0 {
		fall = DefaultFall
	}
	tr, changed := st.Observe(r, rise, fall)
	var trp *Transition
	if changed {
		trp = &tr
		logger := c.Logger
		if logger == nil {
			logger = slog.Default()
		}
		LogTransition(ctx, logger, c.Pool, t.Name(), tr)
	}
	if c.OnResult != nil {
		c.OnResult(t, r, trp)
	}
}

// LogTransition logs tr the way the Checker does: Warn when going down, Info
// when coming up, with attributes server, pool, from, to and reason. The
// proxy can use it for transitions caused by passive observations so both
// kinds read alike.
func LogTransition(ctx context.Context, l *slog.Logger, pool, server string, tr Transition) {
	lvl := slog.LevelWarn
	if tr.To {
		lvl = slog.LevelInfo
	}
	l.Log(ctx, lvl, "server health changed",
		slog.String("server", server), slog.String("pool", pool),
		slog.String("from", upDown(tr.From)), slog.String("to", upDown(tr.To)),
		slog.String("reason", tr.Reason))
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
