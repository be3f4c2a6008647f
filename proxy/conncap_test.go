package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
)

// startEchoNode is a node that echoes every byte back, until the test ends.
func startEchoNode(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// capConfig is two tcp listeners ("a" on 127.0.0.1, "b" on 127.0.0.2, both
// on a port of the kernel's choosing) in front of node, with
// limits.max_conns = max.
func capConfig(t *testing.T, node string, max int) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
[admin]
bind = ""
[limits]
max_conns = %d
[[listener]]
name = "a"
bind = "127.0.0.1:1"
mode = "tcp"
pool = "nodes"
[[listener]]
name = "b"
bind = "127.0.0.2:1"
mode = "tcp"
pool = "nodes"
[pool.nodes]
servers = [%q]
health = { enabled = false }
`, max, node)
	cfg := parseTestConfig(t, "cap.toml", src)
	cfg.Listeners[0].Bind, cfg.Listeners[1].Bind = "127.0.0.1:0", "127.0.0.2:0"
	return cfg
}

func startCapServer(t *testing.T, cfg *config.Config) (s *Server, a, b string) {
	t.Helper()
	return startCapServerWith(t, cfg, Options{})
}

func startCapServerWith(t *testing.T, cfg *config.Config, opts Options) (s *Server, a, b string) {
	t.Helper()
	opts.Logger = nil // quiet
	s = startTestServer(t, cfg, opts, nil)
	a = s.slots["127.0.0.1:0"].ln.Addr().String()
	if sl := s.slots["127.0.0.2:0"]; sl != nil {
		b = sl.ln.Addr().String()
	}
	return s, a, b
}

// until polls cond every few milliseconds until it holds, or fails the
// test after d.
func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// echoed dials addr and proves the connection admitted: bytes went
// through portico to the echo node and back.
func echoed(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, buf, err)
	}
	c.SetReadDeadline(time.Time{})
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (g *connGate) waiters() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

// TestConnCapMakesAcceptWait: with max_conns = 2 across two listeners, a
// third client is not admitted (both accept loops wait) until one of the
// first two closes; then it is served. A reload that raises the cap lets the next one in at once, and
// shutdown does not wait for a place.
func TestConnCapMakesAcceptWait(t *testing.T) {
	t.Parallel()
	node := startEchoNode(t)
	s, a, b := startCapServer(t, capConfig(t, node, 2))
	if c := s.ConnCap(); c.Max != 2 || c.Source != config.CapConfigured {
		t.Fatalf("cap %+v", c)
	}

	// One after the other: had b's loop taken the first place, it could
	// be back in Accept before a's took the second, and a's loop, waiting
	// for room, would leave the third client below in its queue.
	c1 := dial(t, a)
	echoed(t, c1, "one")
	c2 := dial(t, b)
	echoed(t, c2, "two")
	// Listener b's loop admitted the second place and waits for room:
	// it does not call Accept. Listener a's loop either waits for room
	// too, or saw room before that and is in Accept: then it takes the
	// third client from the queue, and the client waits for a place
	// before anything is read from it.
	c3 := dial(t, a)
	if _, err := io.WriteString(c3, "three"); err != nil {
		t.Fatal(err)
	}
	until(t, 10*time.Second, "both accept loops waiting", func() bool { return s.conns.waiters() == 2 })
	if n, _ := s.conns.state(); n != 2 {
		t.Fatalf("admitted %d; want 2", n)
	}
	if st := s.Status().Connections; st.Admitted != 2 || st.Max != 2 || st.Source != config.CapConfigured {
		t.Fatalf("/status connections %+v", st)
	}

	c2.Close() // a place frees on the other listener: the third client takes it
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c3, buf); err != nil || string(buf) != "three" {
		t.Fatalf("third client after a close: %q, %v", buf, err)
	}
	if n, _ := s.conns.state(); n != 2 {
		t.Fatalf("admitted %d, want 2", n)
	}

	// A reload raises the cap: a waiting client is let in without any close.
	c4 := dial(t, b)
	if _, err := s.Reload(capConfig(t, node, 3)); err != nil {
		t.Fatal(err)
	}
	echoed(t, c4, "four")
	if n, c := s.conns.state(); n != 3 || c.Max != 3 {
		t.Fatalf("after the reload: admitted %d, cap %+v", n, c)
	}

	// Shutdown with a loop waiting for room returns.
	until(t, 10*time.Second, "a loop waiting again", func() bool { return s.conns.waiters() >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n, _ := s.conns.state(); n != 0 {
		t.Fatalf("after shutdown: %d connections still hold a place", n)
	}
}

// TestConnCapLeavesClientsInTheQueue: with one listener and max_conns =
// 2, the accept loop waits for room without calling Accept, so the third
// client stays in the kernel's accept queue until one of the first two
// closes.
func TestConnCapLeavesClientsInTheQueue(t *testing.T) {
	t.Parallel()
	node := startEchoNode(t)
	cfg := capConfig(t, node, 2)
	cfg.Listeners = cfg.Listeners[:1]
	s, a, _ := startCapServer(t, cfg)

	c1, c2 := dial(t, a), dial(t, a)
	echoed(t, c1, "one")
	echoed(t, c2, "two")
	// The only loop waits for room: it is not in Accept.
	until(t, 10*time.Second, "the accept loop waiting", func() bool { return s.conns.waiters() == 1 })
	c3 := dial(t, a)
	if _, err := io.WriteString(c3, "three"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.conns.state(); n != 2 || s.conns.waiters() != 1 {
		t.Fatalf("admitted %d, %d loops waiting; want 2 and 1", n, s.conns.waiters())
	}
	c1.Close()
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c3, buf); err != nil || string(buf) != "three" {
		t.Fatalf("third client after a close: %q, %v", buf, err)
	}
}

// TestConnCapDerivedAtEachLoad: without limits.max_conns the cap comes
// from the open-files limit read at start, and again at each reload.
func TestConnCapDerivedAtEachLoad(t *testing.T) {
	t.Parallel()
	node := startEchoNode(t)
	var mu sync.Mutex
	limit := uint64(40)
	proc := func() config.Process {
		mu.Lock()
		defer mu.Unlock()
		return config.Process{OpenFiles: limit, CPUs: 1}
	}
	s, _, _ := startCapServerWith(t, capConfig(t, node, 0), Options{Process: proc})
	// reserved: 3 + 2 + 2 + 2 loops + 4 for two listeners + 16 margin = 29
	if c := s.ConnCap(); c.Max != (40-29)/2 || c.Source != config.CapOpenFiles || c.OpenFiles != 40 {
		t.Fatalf("cap at start %+v", c)
	}
	mu.Lock()
	limit = 1000
	mu.Unlock()
	next := capConfig(t, node, 0)
	next.Fingerprint = [32]byte{} // the same file: apply it anyway
	if _, err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	if c := s.ConnCap(); c.Max != (1000-29)/2 || c.OpenFiles != 1000 {
		t.Fatalf("cap after a reload under a higher limit %+v", c)
	}
}

// TestConnCapReleasedOnce: closing a client connection twice gives its
// place back once; a connection refused by the listener's own max_conns
// gives it back at once.
func TestConnCapReleasedOnce(t *testing.T) {
	t.Parallel()
	node := startEchoNode(t)
	cfg := capConfig(t, node, 5)
	cfg.Listeners[0].MaxConns = 1
	s, a, _ := startCapServer(t, cfg)

	c1 := dial(t, a)
	echoed(t, c1, "one")
	refused := dial(t, a) // over listener a's own cap: closed
	refused.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := refused.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("over the listener's cap: read %d, %v; want closed", n, err)
	}
	until(t, 10*time.Second, "the refused connection's place back", func() bool {
		n, _ := s.conns.state()
		return n == 1
	})

	g := newConnGate()
	g.resize(config.ConnCap{Max: 1, Source: config.CapConfigured})
	if !g.acquire(nil) {
		t.Fatal("acquire")
	}
	cc := &clientConn{Conn: nopConn{}, onClose: g.release}
	cc.Close()
	cc.Close()
	if n, _ := g.state(); n != 0 {
		t.Fatalf("two closes left %d admitted, want 0", n)
	}
}

type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }

func TestAcceptFailureLogIsRateLimited(t *testing.T) {
	t.Parallel()
	var f acceptFailures
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at   time.Duration
		want int
	}{
		{0, 1},                       // the first is logged
		{5 * time.Millisecond, 0},    // then quiet within the period
		{500 * time.Millisecond, 0},  //
		{time.Second, 3},             // one line for the three since the last
		{1500 * time.Millisecond, 0}, //
		{10 * time.Second, 2},        // a later failure reports the one held back
	}
	for _, st := range steps {
		if got := f.add(t0.Add(st.at)); got != st.want {
			t.Errorf("failure at +%v: line for %d failures, want %d", st.at, got, st.want)
		}
	}
}
