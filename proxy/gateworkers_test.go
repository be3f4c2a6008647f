package proxy

import (
	"bufio"
	"net"
	"net/http"
	goruntime "runtime"
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

// TestGateWorkerFreeAfterH2Handshake: an HTTP/2 connection is served on
// a goroutine of its own once its handshake is done, so the gate
// goroutine, whose stack the handshake grew, goes back to wait for the
// next connection while the HTTP/2 connection stays open and idle.
func TestGateWorkerFreeAfterH2Handshake(t *testing.T) {
	t.Parallel()
	node := startBenchNode(t)
	addr, s := startH2DiffServer(t, node.ln.Addr().String(), Options{}, false)
	sl := s.benchSlot()
	ended := make(chan bool, 4)
	f := func(waiting bool) { ended <- waiting }
	sl.workers.ended.Store(&f)
	c := h2DiffClient(t)
	res, err := c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != http.StatusOK {
		t.Fatalf("%s %d, want HTTP/2 200", res.Proto, res.StatusCode)
	}
	// the client keeps its connection open: the gate goroutine must
	// nonetheless have finished with it
	select {
	case waiting := <-ended:
		if !waiting {
			t.Fatal("the gate goroutine exited instead of waiting")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gate goroutine is still serving the open HTTP/2 connection")
	}
	if n := sl.workers.idle.Load(); n != 1 {
		t.Fatalf("%d gate goroutines waiting, want 1", n)
	}
}

// TestIdleKeepAliveStack: the goroutine of an idle keep-alive HTTP/1.1
// connection holds a 4 KiB stack. Served inside admit's frame, its
// requests would grow the stack to 8 KiB (admitted.run). Not parallel (it
// counts every goroutine's stack in the process), and not under -race,
// whose frames are larger: test.sh runs it without.
func TestIdleKeepAliveStack(t *testing.T) {
	if raceEnabled {
		t.Skip("stack sizes differ under -race; test.sh runs this without it")
	}
	node := startBenchNode(t)
	addr := benchServer(t, node.ln.Addr().String(), nil).benchSlot().ln.Addr().String()
	before := settledStacks()
	const n = 300
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: bench.example\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if err := readHTTP1Answer(bufio.NewReader(c), len(benchBody)); err != nil {
			t.Fatal(err)
		}
	}
	checkStackPerConn(t, before, n, "idle keep-alive connection")
}

// TestIdleTunnelStack: the goroutine that waits for an idle tcp tunnel
// holds a 4 KiB stack. The dial grows the gate goroutine's to 8 KiB,
// which is why the wait is not there (Server.serveTCP). As TestIdleKeepAliveStack: not
// parallel, not under -race.
func TestIdleTunnelStack(t *testing.T) {
	if raceEnabled {
		t.Skip("stack sizes differ under -race; test.sh runs this without it")
	}
	const n = 600 // against the gate goroutines kept for reuse (8 KiB, at most gateIdleWorkers)
	// a node that holds its connections without a goroutine each
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, n)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for range len(accepted) {
			(<-accepted).Close()
		}
	})
	s := startTunnelServer(t, ln.Addr().String())
	before := settledStacks()
	for range n {
		c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	until(t, time.Minute, "every tunnel on the loop", func() bool { return s.l4.Adopted() == n })
	checkStackPerConn(t, before, n, "idle tcp tunnel")
}

// settledStacks is the stack in use of every goroutine, once goroutines of
// earlier tests that were ending have ended.
func settledStacks() int64 {
	stacks := func() int64 {
		goruntime.GC()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		return int64(ms.StackInuse)
	}
	before := stacks()
	for range 100 {
		now := stacks()
		if now == before {
			break
		}
		before = now
	}
	return before
}

// checkStackPerConn fails the test when the stack in use grew by more than
// 6 KiB per connection since before (4 KiB expected, 8 is the fault). A
// second run in the same process (-count) reuses the stacks of the first
// one's ended goroutines and measures less; it cannot measure more.
func checkStackPerConn(t *testing.T, before int64, n int, what string) {
	t.Helper()
	per := float64(settledStacks()-before) / float64(n) / 1024
	t.Logf("%.1f KiB of stack per %s", per, what)
	if per > 6 {
		t.Errorf("%.1f KiB of stack per %s; want 4", per, what)
	}
}
