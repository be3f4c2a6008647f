package proxy

import (
	"bufio"
	"net"
	"net/http"
	"testing"
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
		c, err := net.Dial("tcp", sl.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if res := getOn(t, c, bufio.NewReader(c), "/"); res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	waiting := 0
	for range conns {
		if <-ended {
			waiting++
		}
	}
	if waiting != gateIdleWorkers || sl.workers.idle.Load() != gateIdleWorkers {
		t.Fatalf("%d of %d goroutines wait (idle %d), want %d", waiting, len(conns), sl.workers.idle.Load(), gateIdleWorkers)
	}

	// the next connection is served by one of them
	c, err := net.Dial("tcp", sl.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res := getOn(t, c, bufio.NewReader(c), "/"); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := sl.workers.idle.Load(); got != gateIdleWorkers-1 {
		t.Fatalf("%d goroutines wait while a connection is served, want %d: it did not take a waiting one", got, gateIdleWorkers-1)
	}
}
