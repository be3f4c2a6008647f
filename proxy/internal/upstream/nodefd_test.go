package upstream

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestNodeDialOutOfDescriptorsDropsIdle: a dial that fails for want of
// file descriptors closes the idle connections to the other nodes and
// is tried once more, so descriptors held idle for one node do not fail
// a request for another.
func TestNodeDialOutOfDescriptorsDropsIdle(t *testing.T) {
	t.Parallel()
	ok := func(string) (string, bool) { return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false }
	a, b := startCannedNode(t, ok), startCannedNode(t, ok)
	tr := NewTransport(5*time.Second, 5*time.Second, nil)
	t.Cleanup(tr.CloseIdleConnections)
	if body, err := fastGet(tr, a.ln.Addr().String()); err != nil || body != "ok" {
		t.Fatalf("first request to a: %q, %v", body, err)
	}
	tr.mu.Lock()
	held := len(tr.idle[a.ln.Addr().String()])
	tr.mu.Unlock()
	if held != 1 {
		t.Fatalf("%d idle connections to a, want 1", held)
	}

	// The next dial finds the process out of descriptors, as long as a's
	// idle connection is open.
	dials := 0
	tr.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		tr.mu.Lock()
		idle := len(tr.idle[a.ln.Addr().String()])
		tr.mu.Unlock()
		if idle > 0 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", syscall.EMFILE)}
		}
		return tr.dialer.DialContext(ctx, network, addr)
	}
	if body, err := fastGet(tr, b.ln.Addr().String()); err != nil || body != "ok" {
		t.Fatalf("request to b with the descriptors held idle for a: %q, %v", body, err)
	}
	if dials != 2 {
		t.Fatalf("%d dials, want 2 (the failed one, then one after the idle connections closed)", dials)
	}

	// Out of descriptors with nothing idle to close: the error stands.
	tr.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("socket", syscall.EMFILE)}
	}
	tr.dropIdle()
	if _, err := fastGet(tr, a.ln.Addr().String()); err == nil {
		t.Fatal("a dial out of descriptors with nothing idle succeeded")
	}
}
