package accesslog

import (
	"sync"
	"testing"
)

// validFreshID reports whether s has the form of a fresh id: 12 and 12
// lower-case hex digits around a '-'.
func validFreshID(s string) bool {
	if len(s) != requestIDLen || s[idPrefixLen] != '-' {
		return false
	}
	for i := range len(s) {
		if i == idPrefixLen {
			continue
		}
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// TestRequestIDsAreUniqueAndWellFormed: ids made concurrently by one
// generator never repeat and all have the fresh form; two generators
// (two processes) have different prefixes.
func TestRequestIDsAreUniqueAndWellFormed(t *testing.T) {
	t.Parallel()
	g := NewRequestIDs()
	const workers, each = 4, 2000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var id RequestID
			for range each {
				g.Next(&id)
				ids[w] = append(ids[w], id.String())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, l := range ids {
		for _, s := range l {
			if !validFreshID(s) {
				t.Fatalf("id %q is not 12 hex digits, '-', 12 hex digits", s)
			}
			if seen[s] {
				t.Fatalf("id %q made twice", s)
			}
			seen[s] = true
		}
	}
	var a, b RequestID
	g.Next(&a)
	NewRequestIDs().Next(&b)
	if a.String()[:idPrefixLen] == b.String()[:idPrefixLen] {
		t.Errorf("two generators share the prefix %q", a.String()[:idPrefixLen])
	}
}

// TestRequestIDCostsNoAllocation: a fresh id is made and written to a
// node's request head without allocating.
func TestRequestIDCostsNoAllocation(t *testing.T) {
	g := NewRequestIDs()
	var id RequestID
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		g.Next(&id)
		buf = id.AppendTo(buf[:0])
	}); n != 0 {
		t.Errorf("%v allocations per id, want 0", n)
	}
}
