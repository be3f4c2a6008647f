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
	// Last is the most recent recorded result; its At is zero if none yet.
	// Passive successes are not recorded (see State.ObservePassiveOK).
	Last Result
	// LastTransition is when the state last flipped; zero if never.
	LastTransition time.Time
	// Passes and Fails are the current consecutive streaks.
	Passes, Fails int
}

// State is one target's health. It is shared between the proxy's hot path,
// which only calls Up (an atomic load), and the writers — one Checker at a
// time plus passive observations — which are serialised by mu. It survives
// config reloads, so nothing in it depends on a particular Checker.
type State struct {
	up       atomic.Bool
	inFlight atomic.Bool  // an active probe of this target is running
	failHint atomic.Int32 // mirror of tracker.Fails(), lets passive OKs skip the lock

	mu             sync.Mutex
	tracker        Tracker
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

// Observe applies r through the rise/fall tracker with the given thresholds,
// records it as the last result and returns the transition if one happened.
// Exactly one caller sees each transition, since the decision is made under
// the lock; that caller is the one to log it.
func (s *State) Observe(r Result, rise, fall int) (Transition, bool) {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.observeLocked(r, rise, fall)
}

func (s *State) observeLocked(r Result, rise, fall int) (Transition, bool) {
	// Thresholds come with each observation rather than living in the State
	// because the proxy's registry key already includes the check settings;
	// taking them here keeps State free of configuration.
	s.tracker.Rise, s.tracker.Fall = rise, fall
	from := s.tracker.Up()
	changed := s.tracker.Observe(r.OK)
	s.last = r
	s.failHint.Store(int32(min(s.tracker.Fails(), 1<<30)))
	if !changed {
		return Transition{}, false
	}
	to := s.tracker.Up()
	s.up.Store(to)
	s.lastTransition = r.At
	tr := Transition{From: from, To: to, At: r.At}
	if to {
		tr.Reason = fmt.Sprintf("%d consecutive passes", s.tracker.Passes())
	} else {
		tr.Reason = fmt.Sprintf("%s (%d consecutive failures)", r.Err, s.tracker.Fails())
	}
	return tr, true
}

// ObservePassive records what live traffic saw. A non-empty err (the proxy
// passes only refused or reset connections) counts as one failure on the same
// counter as active probes, so fall of them take a server down before the
// next round. An empty err is a success, handled as ObservePassiveOK.
func (s *State) ObservePassive(err string, rise, fall int) (Transition, bool) {
	if err == "" {
		s.ObservePassiveOK()
		return Transition{}, false
	}
	r := Result{Err: "passive: " + err, At: time.Now(), Passive: true}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.observeLocked(r, rise, fall)
}

// ObservePassiveOK records that live traffic reached the target. While UP it
// resets the failure streak: a real success proves the server works, so an
// old refusal must not add up with later ones. It never counts as a pass
// toward rise — a DOWN server gets no traffic, and coming back UP is the
// active check's decision. It is not recorded as Last (it would drown the
// probe results). When there is no streak to reset it takes no lock, since
// it runs on every proxied request.
func (s *State) ObservePassiveOK() {
	if s.failHint.Load() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracker.Up() {
		s.tracker.resetFails()
		s.failHint.Store(0)
	}
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
	}
}

// beginProbe claims the target for one probe; false if one is in flight.
func (s *State) beginProbe() bool { return s.inFlight.CompareAndSwap(false, true) }

// endProbe releases the claim taken by beginProbe.
func (s *State) endProbe() { s.inFlight.Store(false) }
