package healthcheck

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Result is the outcome of one active probe or one passive observation.
type Result struct {
	// OK is true when the probe passed. The zero value is a failure.
	OK bool
	// Status is the HTTP status code received; 0 if no response was read.
	Status int
	// Latency is how long the probe took; 0 for passive observations.
	Latency time.Duration
	// Err is "" when OK, else a short reason such as "connect: connection
	// refused", "status 500" or "timeout after 2s".
	Err string
	// At is when the result was obtained; zero means "now" to State.Observe.
	At time.Time
	// Passive is true when the result came from live traffic, not a probe.
	Passive bool
	// Local is true when the probe could not be made for a reason of the
	// prober's own (out of file descriptors or socket buffers): it says
	// nothing about the target, and the Checker does not count it.
	Local bool
}

// Transition is one UP/DOWN flip of a target.
type Transition struct {
	// From and To are the states before and after (true = UP).
	From, To bool
	// Reason says why, e.g. "status 500 (3 consecutive failures)".
	Reason string
	// At is the time of the result that caused the flip.
	At time.Time
}

// Snapshot is a consistent copy of a State for /status and metrics.
type Snapshot struct {
	// Up is the current state.
	Up bool
	// Last is the most recent recorded result: an active probe, or a
	// passive failure; its At is zero if none yet. Passive successes are
	// not recorded (see State.ObservePassiveOK).
	Last Result
	// LastTransition is when the state last flipped; zero if never.
	LastTransition time.Time
	// Passes and Fails are the active checks' current consecutive streaks.
	Passes, Fails int
	// PassiveFails is the current streak of failed connections seen by
	// live traffic.
	PassiveFails int
}

// State is one target's health. It is shared between the proxy's hot path,
// which only calls Up (an atomic load), and the writers — one Checker at a
// time plus passive observations — which are serialised by mu. It survives
// config reloads, so nothing in it depends on a particular Checker.
//
// Two signals feed it, on separate streaks. The active checks own the
// rise/fall tracker: only they bring a target UP, and nothing live traffic
// sees touches their streaks, so a node that fails its checks goes DOWN at
// any traffic rate. Live traffic reports broken connections (refused,
// reset, timed out) on a passive streak of its own: fall of them in a row
// take an UP target DOWN before the next round, and a successful exchange
// resets that streak only.
type State struct {
	up       atomic.Bool
	inFlight atomic.Bool  // an active probe of this target is running
	pHint    atomic.Int32 // mirror of passiveFails, lets passive OKs skip the lock

	mu             sync.Mutex
	tracker        Tracker // the active checks' rise/fall state
	passiveFails   int
	last           Result
	lastTransition time.Time
}

// NewState returns a State starting in the given state. Portico starts
// servers UP so a reload or restart does not empty a pool before the first
// round of checks has run.
func NewState(up bool) *State {
	s := &State{tracker: NewTracker(0, 0, up)}
	s.up.Store(up)
	return s
}

// Up reports whether the target is UP. It is lock-free: it is called on
// every request.
func (s *State) Up() bool { return s.up.Load() }

// Observe applies one active probe result through the rise/fall tracker
// with the given thresholds, records it as the last result and returns the
// transition if one happened. Exactly one caller sees each transition,
// since the decision is made under the lock; that caller is the one to log
// it. A passive result passed here is treated as ObservePassive would.
func (s *State) Observe(r Result, rise, fall int) (Transition, bool) {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	if r.Passive {
		if r.OK {
			s.ObservePassiveOK()
			return Transition{}, false
		}
		return s.observePassive(r, fall)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Thresholds come with each observation rather than living in the State
	// because the proxy's registry key already includes the check settings;
	// taking them here keeps State free of configuration.
	s.tracker.Rise, s.tracker.Fall = rise, fall
	from := s.tracker.Up()
	changed := s.tracker.Observe(r.OK)
	s.last = r
	if !changed {
		return Transition{}, false
	}
	to := s.tracker.Up()
	if to {
		// back in rotation: old connection failures say nothing now
		s.setPassiveFails(0)
	}
	tr := s.flipLocked(from, to, r.At)
	if to {
		tr.Reason = fmt.Sprintf("%d consecutive passes", s.tracker.Passes())
	} else {
		tr.Reason = fmt.Sprintf("%s (%d consecutive failures)", r.Err, s.tracker.Fails())
	}
	return tr, true
}

func (s *State) flipLocked(from, to bool, at time.Time) Transition {
	s.up.Store(to)
	s.lastTransition = at
	return Transition{From: from, To: to, At: at}
}

func (s *State) setPassiveFails(n int) {
	s.passiveFails = n
	s.pHint.Store(int32(min(n, 1<<30)))
}

// ObservePassive records a connection to the target that live traffic saw
// fail (the proxy passes refused, reset and timed-out connections only; a
// node's own 4xx/5xx answers are not health signals). fall of them in a row
// take an UP target DOWN; it then needs rise passing probes to come back.
// While DOWN nothing is counted: the target gets no traffic, and the active
// checks decide. An empty err is a success, handled as ObservePassiveOK.
func (s *State) ObservePassive(err string, fall int) (Transition, bool) {
	if err == "" {
		s.ObservePassiveOK()
		return Transition{}, false
	}
	return s.observePassive(Result{Err: "passive: " + err, At: time.Now(), Passive: true}, fall)
}

func (s *State) observePassive(r Result, fall int) (Transition, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tracker.Up() {
		return Transition{}, false
	}
	s.last = r
	s.setPassiveFails(s.passiveFails + 1)
	if s.passiveFails < atLeastOne(fall) {
		return Transition{}, false
	}
	n := s.passiveFails
	s.tracker.forceDown()
	s.setPassiveFails(0)
	tr := s.flipLocked(true, false, r.At)
	tr.Reason = fmt.Sprintf("%s (%d consecutive connection failures)", r.Err, n)
	return tr, true
}

// MarkDown takes the target DOWN for a reason outside both signals (it
// comes back from maintenance, where nothing was checked): like any DOWN
// target it returns after rise passing probes.
func (s *State) MarkDown(reason string) (Transition, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tracker.forceDown()
	s.setPassiveFails(0)
	if !s.up.Load() {
		return Transition{}, false
	}
	tr := s.flipLocked(true, false, time.Now())
	tr.Reason = reason
	return tr, true
}

// ObservePassiveOK records that live traffic completed an exchange with the
// target. It resets the passive failure streak and nothing else: it never
// touches the active checks' streaks (a node that answers traffic may still
// fail its health check, and that check decides), and never counts toward
// rise. It is not recorded as Last (it would drown the probe results). When
// there is no streak to reset it takes no lock, since it runs on every
// proxied request.
func (s *State) ObservePassiveOK() {
	if s.pHint.Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setPassiveFails(0)
}

// Snapshot returns a consistent copy of the state.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		Up:             s.tracker.Up(),
		Last:           s.last,
		LastTransition: s.lastTransition,
		Passes:         s.tracker.Passes(),
		Fails:          s.tracker.Fails(),
		PassiveFails:   s.passiveFails,
	}
}

// beginProbe claims the target for one probe; false if one is in flight.
func (s *State) beginProbe() bool { return s.inFlight.CompareAndSwap(false, true) }

// endProbe releases the claim taken by beginProbe.
func (s *State) endProbe() { s.inFlight.Store(false) }
