package healthcheck

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStateObserve(t *testing.T) {
	t.Parallel()
	s := NewState(true)
	if !s.Up() {
		t.Fatal("NewState(true) is down")
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	fail := Result{Err: "status 500", Status: 500}
	for i := range 2 {
		fail.At = t0.Add(time.Duration(i) * time.Second)
		if _, changed := s.Observe(fail, 2, 3); changed {
			t.Fatalf("transition after %d failures", i+1)
		}
	}
	fail.At = t0.Add(2 * time.Second)
	tr, changed := s.Observe(fail, 2, 3)
	if !changed || tr.From != true || tr.To != false || !tr.At.Equal(fail.At) {
		t.Fatalf("third failure: %+v changed=%v", tr, changed)
	}
	if !strings.Contains(tr.Reason, "status 500") || !strings.Contains(tr.Reason, "3 consecutive") {
		t.Errorf("reason = %q", tr.Reason)
	}
	if s.Up() {
		t.Fatal("Up() after going down")
	}
	snap := s.Snapshot()
	if snap.Up || snap.Fails != 3 || !snap.LastTransition.Equal(fail.At) || snap.Last.Status != 500 {
		t.Fatalf("snapshot = %+v", snap)
	}
	ok := Result{OK: true, Status: 200}
	if _, changed := s.Observe(ok, 2, 3); changed {
		t.Fatal("up after one pass with rise 2")
	}
	tr, changed = s.Observe(ok, 2, 3)
	if !changed || !tr.To || tr.From || !s.Up() {
		t.Fatalf("second pass: %+v changed=%v", tr, changed)
	}
	if tr.At.IsZero() {
		t.Error("zero At not filled in")
	}
}

func TestStatePassive(t *testing.T) {
	t.Parallel()
	s := NewState(true)
	for range 2 {
		if _, changed := s.ObservePassive("connection refused", 3); changed {
			t.Fatal("early transition")
		}
	}
	// A completed exchange clears the passive streak.
	s.ObservePassiveOK()
	if f := s.Snapshot().PassiveFails; f != 0 {
		t.Fatalf("passive fails after passive OK = %d", f)
	}
	if _, changed := s.ObservePassive("", 3); changed {
		t.Fatal("empty err changed state")
	}
	// fall refused connections in a row: DOWN before any probe ran.
	s.ObservePassive("connection reset", 3)
	s.ObservePassive("connection refused", 3)
	tr, changed := s.ObservePassive("connection refused", 3)
	if !changed || tr.To || !strings.Contains(tr.Reason, "passive: connection refused") ||
		!strings.Contains(tr.Reason, "3 consecutive connection failures") {
		t.Fatalf("third failure: %+v changed=%v", tr, changed)
	}
	if last := s.Snapshot().Last; !last.Passive || last.OK {
		t.Fatalf("last = %+v", last)
	}
	// Passive successes never bring a server back up.
	for range 5 {
		s.ObservePassiveOK()
	}
	if s.Up() || s.Snapshot().Passes != 0 {
		t.Fatal("passive OKs counted toward rise")
	}
	// rise passing probes do.
	s.Observe(Result{OK: true}, 2, 3)
	if tr, changed := s.Observe(Result{OK: true}, 2, 3); !changed || !tr.To || !s.Up() {
		t.Fatalf("two passes after a passive down: %+v changed=%v", tr, changed)
	}
}

// The active checks' failure streak belongs to them: live traffic that
// gets answers in between (the node serves its pages while its /testall
// fails) neither resets nor delays it.
func TestStateTrafficNeverResetsActiveFailures(t *testing.T) {
	t.Parallel()
	s := NewState(true)
	fail := Result{Err: "status 500", Status: 500}
	for i := range 3 {
		for range 100 {
			s.ObservePassiveOK()
		}
		tr, changed := s.Observe(fail, 2, 3)
		if i < 2 && changed {
			t.Fatalf("transition after %d failures", i+1)
		}
		if i == 2 && (!changed || tr.To) {
			t.Fatalf("fail, ok-traffic, fail, ok-traffic, fail: %+v changed=%v, want DOWN", tr, changed)
		}
	}
	// DOWN, and traffic (from requests admitted just before) keeps
	// succeeding: still DOWN until rise probes pass.
	for range 100 {
		s.ObservePassiveOK()
	}
	if s.Up() {
		t.Fatal("traffic brought a DOWN server back")
	}
	s.Observe(Result{OK: true}, 2, 3)
	for range 100 {
		s.ObservePassiveOK()
	}
	if s.Up() {
		t.Fatal("UP after one pass with rise 2")
	}
	if _, changed := s.Observe(Result{OK: true}, 2, 3); !changed || !s.Up() {
		t.Fatal("not UP after rise passes")
	}
}

// Passive failures and active failures are separate streaks: neither
// completes the other's, and an active pass does not hide a passive streak
// (the node may answer /testall and still refuse half its connections).
func TestStateSignalsAreSeparate(t *testing.T) {
	t.Parallel()
	s := NewState(true)
	s.Observe(Result{Err: "status 500"}, 2, 3)
	s.Observe(Result{Err: "status 500"}, 2, 3)
	if _, changed := s.ObservePassive("connection refused", 3); changed {
		t.Fatal("a passive failure completed the active streak")
	}
	s.ObservePassive("connection refused", 3)
	if _, changed := s.Observe(Result{OK: true}, 2, 3); changed {
		t.Fatal("flip on a pass while UP")
	}
	snap := s.Snapshot()
	if snap.Fails != 0 || snap.PassiveFails != 2 {
		t.Fatalf("streaks after a pass: active %d passive %d, want 0 and 2", snap.Fails, snap.PassiveFails)
	}
	if tr, changed := s.ObservePassive("connection refused", 3); !changed || tr.To {
		t.Fatalf("third connection failure: %+v changed=%v", tr, changed)
	}
	// While DOWN, connection failures are not counted: a server coming
	// back starts with a clean passive streak.
	s.ObservePassive("connection refused", 3)
	s.Observe(Result{OK: true}, 2, 3)
	s.Observe(Result{OK: true}, 2, 3)
	if !s.Up() || s.Snapshot().PassiveFails != 0 {
		t.Fatalf("after rise: up=%v passive=%d", s.Up(), s.Snapshot().PassiveFails)
	}
	for range 2 {
		if _, changed := s.ObservePassive("connection refused", 3); changed {
			t.Fatal("an old streak carried over the DOWN period")
		}
	}
}

// TestStateConcurrentTransitions checks that each transition is reported to
// exactly one caller when many observe at once.
func TestStateConcurrentTransitions(t *testing.T) {
	t.Parallel()
	s := NewState(true)
	var mu sync.Mutex
	var downs int
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_ = s.Up()
			if tr, changed := s.ObservePassive("connection refused", 3); changed && !tr.To {
				mu.Lock()
				downs++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if downs != 1 || s.Up() {
		t.Fatalf("downs = %d, up = %v", downs, s.Up())
	}
}

// A target marked down from outside both signals (back from maintenance)
// returns only after rise passing probes.
func TestStateMarkDown(t *testing.T) {
	t.Parallel()
	s := NewState(true)
	s.ObservePassive("connection refused", 3)
	tr, changed := s.MarkDown("left maintenance")
	if !changed || tr.To || s.Up() || tr.Reason != "left maintenance" || s.Snapshot().PassiveFails != 0 {
		t.Fatalf("%+v changed=%v up=%v", tr, changed, s.Up())
	}
	if _, changed := s.MarkDown("again"); changed {
		t.Fatal("a second MarkDown flipped a DOWN target")
	}
	if _, changed := s.Observe(Result{OK: true}, 2, 3); changed {
		t.Fatal("up after one pass with rise 2")
	}
	if _, changed := s.Observe(Result{OK: true}, 2, 3); !changed || !s.Up() {
		t.Fatal("not up after rise passes")
	}
}
