//go:build linux

package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newTestL4Set(t *testing.T) *Loops {
	t.Helper()
	s := NewLoops(slog.New(slog.DiscardHandler), NewBufs())
	t.Cleanup(s.Stop)
	return s
}

// adoptTestPair puts a tunnel between two loopback connections on a loop
// and returns the client's and the node's far ends, with deadlines, so a
// stuck tunnel fails the test instead of hanging it.
func adoptTestPair(t *testing.T, s *Loops, idle time.Duration, before func(client, node *net.TCPConn)) (client, node *net.TCPConn, h *Handle) {
	t.Helper()
	c, cNear := tcpPair(t)
	nNear, n := tcpPair(t)
	if before != nil {
		before(cNear.(*net.TCPConn), nNear.(*net.TCPConn))
	}
	h = s.Adopt(cNear, nNear, Opts{Idle: idle})
	if h == nil {
		t.Fatal("adopt refused two plain TCP connections")
	}
	deadline := time.Now().Add(20 * time.Second)
	c.SetDeadline(deadline)
	n.SetDeadline(deadline)
	return c.(*net.TCPConn), n.(*net.TCPConn), h
}

func waitResult(t *testing.T, h *Handle) Result {
	t.Helper()
	select {
	case r := <-h.p.done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the tunnel did not end")
		return Result{}
	}
}

func TestL4LoopRelaysBothWaysAndHalfCloses(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	c, n, h := adoptTestPair(t, s, 0, nil)
	c.Write([]byte("ping"))
	if got := readN(t, n, 4); got != "ping" {
		t.Fatalf("node got %q", got)
	}
	n.Write([]byte("pong"))
	if got := readN(t, c, 4); got != "pong" {
		t.Fatalf("client got %q", got)
	}
	// The client is done sending; the node still answers after the FIN.
	c.CloseWrite()
	if rest, err := io.ReadAll(n); err != nil || len(rest) != 0 {
		t.Fatalf("node after the client's FIN: %q, %v", rest, err)
	}
	n.Write([]byte("late answer"))
	n.CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || string(rest) != "late answer" {
		t.Fatalf("client after the node's FIN: %q, %v", rest, err)
	}
	r := waitResult(t, h)
	if r.Err != nil || r.Idle || r.Up != 4 || r.Down != 15 {
		t.Fatalf("result %+v, want up 4, down 15, no error", r)
	}
	h.Close() // after the end: nothing happens
}

// A client that writes and closes at once: its last bytes and its FIN
// come close together, in one report or two.
func TestL4LoopSeesFINRightAfterLastBytes(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	for _, size := range []int{10, BufSize + 10, 3*BufSize + 17} {
		msg := bytes.Repeat([]byte{'f'}, size)
		c, n, h := adoptTestPair(t, s, 0, nil)
		c.Write(msg)
		c.Close()
		got, err := io.ReadAll(n)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: node got %d bytes, %v", size, len(got), err)
		}
		n.Close()
		if r := waitResult(t, h); r.Up != int64(size) {
			t.Fatalf("size %d: result %+v", size, r)
		}
	}
}

// The last bytes and the FIN are queued before the loop reads: one short
// read takes both, and only the half-close in the report tells the loop
// to read once more and see the end.
func TestL4LoopSeesFINQueuedBeforeAdoption(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	for _, size := range []int{10, BufSize + 10} {
		msg := bytes.Repeat([]byte{'q'}, size)
		c, cNear := tcpPair(t)
		nNear, n := tcpPair(t)
		c.Write(msg)
		c.Close()
		// Wait until the bytes are queued on the loop's side (the FIN,
		// sent after them on loopback, is queued by then too).
		peekUntil(t, cNear.(*net.TCPConn), size)
		h := s.Adopt(cNear, nNear, Opts{})
		if h == nil {
			t.Fatal("adopt refused")
		}
		n.SetDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(n)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: node got %d bytes, %v", size, len(got), err)
		}
		n.Close()
		if r := waitResult(t, h); r.Up != int64(size) {
			t.Fatalf("size %d: result %+v", size, r)
		}
	}
}

// peekUntil waits until at least size bytes are queued on c.
func peekUntil(t *testing.T, c *net.TCPConn, size int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, size)
	for {
		var n int
		var perr error
		if err := rc.Read(func(fd uintptr) bool {
			n, perr = peek(int(fd), buf)
			return !isEAGAIN(perr)
		}); err != nil {
			t.Fatal(err)
		}
		if perr != nil {
			t.Fatal(perr)
		}
		if n >= size {
			return
		}
	}
}

func TestL4LoopHoldsWhatTheNodeCannotTake(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	c, n, h := adoptTestPair(t, s, 0, func(_, nNear *net.TCPConn) {
		nNear.SetWriteBuffer(4096)
	})
	// (A small receive buffer on n would stall loopback TCP itself: its
	// window stays below one segment, and the sender waits for the
	// persist timer whoever writes.)
	msg := make([]byte, 4<<20)
	for i := range msg {
		msg[i] = byte(i * 7 / 3)
	}
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(n)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("node got %d of %d bytes (equal %v), %v", len(got), len(msg), bytes.Equal(got, msg), err)
	}
	n.Close()
	if r := waitResult(t, h); r.Up != int64(len(msg)) {
		t.Fatalf("result %+v", r)
	}
	if held := h.loop.held.Load(); held == 0 {
		t.Fatal("the node's socket never filled up: the test did not exercise holding")
	}
}

func TestL4LoopCloseEndsBothSides(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	c, n, h := adoptTestPair(t, s, 0, nil)
	c.Write([]byte("x"))
	readN(t, n, 1)
	h.Close()
	for name, conn := range map[string]net.Conn{"client": c, "node": n} {
		if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, ioReset) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if r := waitResult(t, h); r.Idle || r.Up != 1 {
		t.Fatalf("result %+v", r)
	}
	h.Close()
}

func TestL4LoopIdleEndsSilentTunnel(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	c, n, h := adoptTestPair(t, s, 50*time.Millisecond, nil)
	c.Write([]byte("once"))
	readN(t, n, 4)
	if r := waitResult(t, h); !r.Idle || r.Err != nil {
		t.Fatalf("result %+v, want idle", r)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("client after the idle close: %v", err)
	}
}

func TestL4LoopResetAfterFINEndsTunnel(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	c, n, h := adoptTestPair(t, s, 0, nil)
	// The client has finished sending and the node is silent, so no read
	// or write of the loop's meets the client's reset: only the error
	// report does.
	c.CloseWrite()
	if _, err := io.ReadAll(n); err != nil {
		t.Fatal(err)
	}
	c.SetLinger(0)
	c.Close()
	if r := waitResult(t, h); r.Err == nil {
		t.Fatalf("result %+v, want the reset", r)
	}
	if _, err := io.ReadAll(n); err != nil {
		t.Fatalf("node: %v", err)
	}
}

func TestL4LoopNodeResetEndsTunnel(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	c, n, h := adoptTestPair(t, s, 0, nil)
	n.SetLinger(0)
	n.Close()
	if r := waitResult(t, h); r.Err == nil {
		t.Fatalf("result %+v, want the reset", r)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("client: %v", err)
	}
}

func TestL4LoopManyTunnels(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	const tunnels, rounds = 64, 40
	var wg sync.WaitGroup
	errs := make(chan error, tunnels)
	for i := range tunnels {
		c, n, h := adoptTestPair(t, s, time.Minute, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() { io.Copy(n, n); n.CloseWrite() }() // the node echoes
			buf := make([]byte, 100)
			for r := range rounds {
				msg := fmt.Appendf(nil, "%03d-%03d-", i, r)
				msg = append(msg, bytes.Repeat([]byte{'.'}, 100-len(msg))...)
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, msg) {
					errs <- fmt.Errorf("tunnel %d round %d: %q, %v", i, r, buf, err)
					return
				}
			}
			c.CloseWrite()
			var r Result
			select {
			case r = <-h.p.done:
			case <-time.After(20 * time.Second):
				errs <- fmt.Errorf("tunnel %d did not end", i)
				return
			}
			if r.Up != 100*rounds || r.Down != 100*rounds || r.Err != nil {
				errs <- fmt.Errorf("tunnel %d: %+v", i, r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestL4LoopStopEndsTunnels(t *testing.T) {
	t.Parallel()
	s := NewLoops(slog.New(slog.DiscardHandler), NewBufs())
	var hs []*Handle
	var clients []*net.TCPConn
	for range 3 {
		c, _, h := adoptTestPair(t, s, 0, nil)
		hs = append(hs, h)
		clients = append(clients, c)
	}
	s.Stop()
	for i, h := range hs {
		if r := waitResult(t, h); !errors.Is(r.Err, errL4Stopped) {
			t.Fatalf("tunnel %d: %+v", i, r)
		}
		if _, err := io.ReadAll(clients[i]); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	a, b := tcpPair(t)
	if s.Adopt(a, b, Opts{}) != nil {
		t.Fatal("a stopped loop set adopted a tunnel")
	}
}

func TestL4LoopLeavesWrappedConnections(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	a, _ := tcpPair(t)
	if s.Adopt(p1, a, Opts{}) != nil || s.Adopt(a, p2, Opts{}) != nil {
		t.Fatal("adopted a connection that is not a bare TCP socket")
	}
	// a is still usable by the caller
	if _, err := a.Write([]byte("still mine")); err != nil {
		t.Fatal(err)
	}
}

var ioReset = syscall.ECONNRESET

func peek(fd int, buf []byte) (int, error) {
	n, _, err := syscall.Recvfrom(fd, buf, syscall.MSG_PEEK)
	return n, err
}

func isEAGAIN(err error) bool { return err == syscall.EAGAIN }

// A bulk transfer whose source does not run dry gets its turn in slices.
// The bulk bytes all arrive, in order, though no report announces the
// ones left behind when a slice ended, and another tunnel on the same
// loop moves bytes meanwhile.
func TestL4LoopSharesTurnsBetweenTunnels(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	const size = 8 << 20
	bulk := make([]byte, size)
	for i := range bulk {
		bulk[i] = byte(i % 251)
	}
	c1, cNear1 := tcpPair(t)
	nNear1, n1 := tcpPair(t)
	cNear1.(*net.TCPConn).SetReadBuffer(1 << 20) // room for more than a budget
	// Queue a good part of it before the loop sees the socket: the first
	// report then finds far more than one budget's worth.
	wrote := make(chan error, 1)
	go func() {
		_, err := c1.Write(bulk)
		c1.(*net.TCPConn).CloseWrite()
		wrote <- err
	}()
	peekUntil(t, cNear1.(*net.TCPConn), (l4Budget+1)*BufSize)
	h1 := s.Adopt(cNear1, nNear1, Opts{})
	if h1 == nil {
		t.Fatal("adopt refused")
	}
	l := h1.loop
	// The second tunnel goes on the same loop.
	var c2, n2 *net.TCPConn
	var h2 *Handle
	for h2 == nil || h2.loop != l {
		c2, n2, h2 = adoptTestPair(t, s, 0, nil)
	}
	echoed := make(chan error, 1)
	go func() {
		buf := make([]byte, 5)
		for range 100 {
			if _, err := c2.Write([]byte("hello")); err != nil {
				echoed <- err
				return
			}
			if _, err := io.ReadFull(n2, buf); err != nil {
				echoed <- err
				return
			}
		}
		echoed <- nil
	}()
	n1.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(n1)
	if err != nil || !bytes.Equal(got, bulk) {
		t.Fatalf("bulk: got %d of %d bytes (equal %v), %v", len(got), size, bytes.Equal(got, bulk), err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
	if l.turns.Load() == 0 {
		t.Fatal("no budget ran out: the test did not exercise turns")
	}
	n1.Close()
	waitResult(t, h1)
}

// BenchmarkL4LoopRoundTrip is BenchmarkTunnelRoundTrip's message through
// a tunnel on the loop: one tunnel, so nothing is batched.
func BenchmarkL4LoopRoundTrip(b *testing.B) {
	s := NewLoops(slog.New(slog.DiscardHandler), NewBufs())
	defer s.Stop()
	client, near := tcpPair(b)
	far, node := tcpPair(b)
	if s.Adopt(near, far, Opts{}) == nil {
		b.Fatal("adopt refused")
	}
	go io.Copy(node, node) // the node echoes
	msg := bytes.Repeat([]byte{'m'}, 64)
	got := make([]byte, len(msg))
	client.SetDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, got); err != nil {
			b.Fatal(err)
		}
	}
}
