package proxy

import (
	"testing"

	"github.com/portico-lb/portico/accesslog"
)

// validFreshID reports whether s has the form of a fresh id: 12 and 12
// lower-case hex digits around a '-'.
func validFreshID(s string) bool {
	const prefix = 12
	if len(s) != 2*prefix+1 || s[prefix] != '-' {
		return false
	}
	for i := range len(s) {
		if i == prefix {
			continue
		}
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// TestChooseRequestID: a trusted proxy's id is kept; an untrusted
// client's, or an empty one, is replaced by a fresh one.
func TestChooseRequestID(t *testing.T) {
	t.Parallel()
	g := accesslog.NewRequestIDs()
	for _, c := range []struct {
		name    string
		trusted bool
		sent    []string
		kept    string
	}{
		{"trusted keeps its id", true, []string{"lb1-42", "other"}, "lb1-42"},
		{"untrusted gets a fresh one", false, []string{"spoofed"}, ""},
		{"trusted without an id gets a fresh one", true, nil, ""},
		{"trusted with an empty id gets a fresh one", true, []string{""}, ""},
		{"untrusted without an id gets a fresh one", false, nil, ""},
	} {
		var id accesslog.RequestID
		id.Keep("left over")
		chooseRequestID(&id, g, c.trusted, c.sent)
		got := id.String()
		if c.kept != "" {
			if got != c.kept {
				t.Errorf("%s: id %q, want %q", c.name, got, c.kept)
			}
			continue
		}
		if !validFreshID(got) {
			t.Errorf("%s: id %q, want a fresh one", c.name, got)
		}
	}
}
