//go:build linux

package tunnel

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A websocket going away on the loop: the close frame waits for the end
// of the node's frame that is under way, then ends the tunnel, both ways
// (a websocket has no half-close).
func TestL4LoopGoAwayWaitsForFrameEnd(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	ws := NewWSFramer()
	ws.Advance([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n")) // read by the handshake
	c, cNear := tcpPair(t)
	nNear, n2 := tcpPair(t)
	h := s.Adopt(cNear, nNear, Opts{Whole: true, WS: ws})
	if h == nil {
		t.Fatal("adopt refused")
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	first, long := frame(10, false), frame(300, false)
	n2.Write(first)
	n2.Write(long[:100]) // a frame cut in the middle
	if got := readN(t, c, len(first)+100); got != string(first)+string(long[:100]) {
		t.Fatalf("client got %q", got)
	}
	ws.Going.Store(true) // as trackedConn.goAway does
	h.GoAway()
	// Commands run in order: once a tunnel added after the go-away on the
	// same loop moves bytes, the go-away has been looked at, mid-frame.
	for {
		oc, on, oh := adoptTestPair(t, s, 0, nil)
		if oh.loop != h.loop {
			continue
		}
		oc.Write([]byte("x"))
		readN(t, on, 1)
		break
	}
	n2.Write(long[100:]) // finishes the frame: then the close frame
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != string(long[100:])+GoAwayFrame {
		t.Fatalf("client read %d bytes ending %q, %v; want the frame's rest, then the close frame, then EOF",
			len(rest), rest[max(len(rest)-8, 0):], err)
	}
	if r := waitResult(t, h); r.Err != nil {
		t.Fatalf("result %+v", r)
	}
	n2.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(n2); err != nil {
		t.Fatalf("node after the go-away: %v", err)
	}
}

// A websocket on the loop ends when either side does, with no half-close.
func TestL4LoopWholeTunnelEndsWithEitherSide(t *testing.T) {
	t.Parallel()
	s := newTestL4Set(t)
	c, cNear := tcpPair(t)
	nNear, n := tcpPair(t)
	var touched atomic.Int64
	h := s.Adopt(cNear, nNear, Opts{Whole: true, Touch: &touched})
	if h == nil {
		t.Fatal("adopt refused")
	}
	n.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("bye"))
	c.(*net.TCPConn).CloseWrite()
	if got, err := io.ReadAll(n); err != nil || string(got) != "bye" {
		t.Fatalf("node got %q, %v", got, err)
	}
	if r := waitResult(t, h); r.Up != 3 || r.Err != nil {
		t.Fatalf("result %+v", r)
	}
	if touched.Load() == 0 {
		t.Fatal("the tunnel's activity was not recorded")
	}
}
