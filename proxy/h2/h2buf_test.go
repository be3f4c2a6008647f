package h2

import (
	"strings"
	"testing"
	"time"

	"github.com/portico-lb/portico/proxy/h2/h2test"
)

// An idle HTTP/2 connection holds no write buffer, after a short answer
// and after one of several DATA frames, and serves its next stream.
func TestH2IdleHoldsNoWriteBuffer(t *testing.T) {
	t.Parallel()
	bufs := NewBufs()
	body := strings.Repeat("b", 20000) // two DATA frames; both streams within the client's window
	addr, _ := h2tServer(t, okHandler(body), func(c *Config) { c.Bufs = bufs })
	idle := func() {
		t.Helper()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		deadline := time.Now().Add(10 * time.Second)
		for bufs.Lent() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d idle connections hold a write buffer", bufs.Lent())
			}
			<-tick.C
		}
	}
	var cls []*h2test.Client
	for range 8 {
		cl := h2test.Dial(t, addr)
		cl.Get(1, "/a")
		if r := cl.Response(1); r.Err != nil || r.Status != "200" || string(r.Body) != body {
			t.Fatalf("%s %v, %d bytes", r.Status, r.Err, len(r.Body))
		}
		cls = append(cls, cl)
	}
	idle()
	for _, cl := range cls {
		cl.Get(3, "/b")
		if r := cl.Response(3); r.Err != nil || r.Status != "200" || string(r.Body) != body {
			t.Fatalf("after idling: %s %v, %d bytes", r.Status, r.Err, len(r.Body))
		}
	}
	idle()
}
