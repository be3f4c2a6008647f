package healthcheck

import "testing"

func TestTracker(t *testing.T) {
	t.Parallel()
	const P, F = true, false
	tests := []struct {
		name       string
		rise, fall int
		up         bool
		seq        []bool
		// changedAt lists the indexes of observations that flip the state.
		changedAt []int
		wantUp    bool
	}{
		{"up stays up on passes", 2, 3, true, []bool{P, P, P}, nil, true},
		{"fall fails take it down", 2, 3, true, []bool{F, F, F}, []int{2}, false},
		{"fewer than fall keep it up", 2, 3, true, []bool{F, F}, nil, true},
		{"a pass resets the fail streak", 2, 3, true, []bool{F, F, P, F, F}, nil, true},
		{"rise passes bring it up", 2, 3, false, []bool{P, P}, []int{1}, true},
		{"a fail resets the pass streak", 2, 3, false, []bool{P, F, P}, nil, false},
		{"flapping never crosses", 2, 3, true, []bool{F, P, F, P, F, P, F, P, F, P}, nil, true},
		{"flapping while down never crosses", 2, 3, false, []bool{P, F, P, F, P, F, P}, nil, false},
		{"down then recovery after rise", 2, 3, true, []bool{F, F, F, F, P, P, P}, []int{2, 5}, true},
		{"down only once however long it fails", 1, 2, true, []bool{F, F, F, F, F}, []int{1}, false},
		{"zero thresholds act as one", 0, 0, true, []bool{F, P}, []int{0, 1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := NewTracker(tc.rise, tc.fall, tc.up)
			var changed []int
			for i, ok := range tc.seq {
				if tr.Observe(ok) {
					changed = append(changed, i)
				}
			}
			if !equalInts(changed, tc.changedAt) {
				t.Errorf("changed at %v, want %v", changed, tc.changedAt)
			}
			if tr.Up() != tc.wantUp {
				t.Errorf("Up() = %v, want %v", tr.Up(), tc.wantUp)
			}
		})
	}
}

func TestTrackerStreaks(t *testing.T) {
	t.Parallel()
	tr := NewTracker(2, 3, true)
	for range 5 {
		tr.Observe(false)
	}
	if tr.Fails() != 5 || tr.Passes() != 0 {
		t.Fatalf("streaks = %d passes, %d fails; want 0, 5", tr.Passes(), tr.Fails())
	}
	tr.Observe(true)
	if tr.Fails() != 0 || tr.Passes() != 1 {
		t.Fatalf("streaks = %d passes, %d fails; want 1, 0", tr.Passes(), tr.Fails())
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
