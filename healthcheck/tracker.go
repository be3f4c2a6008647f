package healthcheck

// Tracker is the rise/fall state machine for one target. It is a plain value:
// no clock, no locks, no I/O, so the thresholds can be tested exhaustively.
// The zero value is a DOWN tracker whose thresholds act as 1.
type Tracker struct {
	// Rise is how many consecutive passes bring a DOWN target UP.
	// Values below 1 act as 1.
	Rise int
	// Fall is how many consecutive failures take an UP target DOWN.
	// Values below 1 act as 1.
	Fall int

	up     bool
	passes int // consecutive passes, reset by any failure
	fails  int // consecutive failures, reset by any pass
}

// NewTracker returns a tracker with the given thresholds and initial state.
func NewTracker(rise, fall int, up bool) Tracker {
	return Tracker{Rise: rise, Fall: fall, up: up}
}

// Observe counts one pass (ok) or failure and reports whether the state
// flipped: Fall consecutive failures while UP take it DOWN, Rise consecutive
// passes while DOWN bring it UP. Streaks keep counting after a flip, so a
// Snapshot can show "5 failures in a row".
func (t *Tracker) Observe(ok bool) (changed bool) {
	if ok {
		t.passes++
		t.fails = 0
		if !t.up && t.passes >= atLeastOne(t.Rise) {
			t.up = true
			return true
		}
		return false
	}
	t.fails++
	t.passes = 0
	if t.up && t.fails >= atLeastOne(t.Fall) {
		t.up = false
		return true
	}
	return false
}

// Up reports the current state.
func (t Tracker) Up() bool { return t.up }

// Passes is the current streak of consecutive passes.
func (t Tracker) Passes() int { return t.passes }

// Fails is the current streak of consecutive failures.
func (t Tracker) Fails() int { return t.fails }

// forceDown takes the target DOWN for a reason outside the tracker (live
// traffic's connection failures). The pass streak restarts, so coming back
// takes Rise passes counted from now; the failure streak is kept, since
// it is the checks' own record.
func (t *Tracker) forceDown() {
	t.up = false
	t.passes = 0
}

func atLeastOne(n int) int {
	if n < 1 {
		return 1
	}
	return n
}
