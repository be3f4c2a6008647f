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
		if _, changed := s.ObservePassive("connection refused", 2, 3); changed {
			t.Fatal("early transition")
		}
	}
	// Real traffic getting through clears the streak.
	s.ObservePassiveOK()
	if f := s.Snapshot().Fails; f != 0 {
		t.Fatalf("fails after passive OK = %d", f)
	}
	if _, changed := s.ObservePassive("", 2, 3); changed {
		t.Fatal("empty err changed state")
	}
	// Passive failures share the counter with active ones.
	s.Observe(Result{Err: "status 500"}, 2, 3)
	s.ObservePassive("connection reset", 2, 3)
	tr, changed := s.ObservePassive("connection refused", 2, 3)
	if !changed || tr.To || !strings.Contains(tr.Reason, "passive: connection refused") {
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
			if tr, changed := s.ObservePassive("connection refused", 2, 3); changed && !tr.To {
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
