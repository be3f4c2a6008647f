package proxy

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestGateWorkersWait: the goroutine of a connection that ended waits for
// the next connection (which then runs on it, with the stack it grew),
// and no more than gateIdleWorkers wait however many connections ended.
func TestGateWorkersWait(t *testing.T) {
	t.Parallel()
	_, s, first := fastClient(t)
	sl := s.benchSlot()
	ended := make(chan bool, 2*gateIdleWorkers)
	f := func(waiting bool) { ended <- waiting }
	sl.workers.ended.Store(&f)
	if res := getOn(t, first, bufio.NewReader(first), "/"); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}

	// gateIdleWorkers+6 connections open at once, then all closed
	conns := []net.Conn{first}
	for len(conns) < gateIdleWorkers+6 {
		conns = append(conns, dialGet(t, sl.ln.Addr().String()))
	}
	for _, c := range conns {
		c.Close()
	}
	waiting := 0
	for i := range conns {
		select {
		case w := <-ended:
			if w {
				waiting++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d gate goroutines reported their connection's end", i, len(conns))
		}
	}
	if waiting != gateIdleWorkers || sl.workers.idle.Load() != gateIdleWorkers {
		t.Fatalf("%d of %d goroutines wait (idle %d), want %d", waiting, len(conns), sl.workers.idle.Load(), gateIdleWorkers)
	}

	// the next connection is served by one of them
	dialGet(t, sl.ln.Addr().String())
	if got := sl.workers.idle.Load(); got != gateIdleWorkers-1 {
		t.Fatalf("%d goroutines wait while a connection is served, want %d: it did not take a waiting one", got, gateIdleWorkers-1)
	}
}

// dialGet opens a connection to addr, closed when the test ends, and
// answers one GET on it.
func dialGet(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if res := getOn(t, c, bufio.NewReader(c), "/"); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	return c
}
