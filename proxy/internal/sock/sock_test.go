package sock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns raw I/O for one end of a loopback TCP connection and the
// other end as a plain net.Conn.
func pair(t *testing.T) (*IO, *net.TCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	tc := c.(*net.TCPConn)
	s := New(tc)
	if s == nil {
		t.Skip("raw socket calls are not available here")
	}
	return s, tc, peer
}

func TestRoundTripAndEOF(t *testing.T) {
	t.Parallel()
	s, _, peer := pair(t)
	peer.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := s.Write([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "ping" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	io.WriteString(peer, "pong")
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "pong" {
		t.Fatalf("read %q, %v", got, err)
	}
	peer.Close()
	if n, err := s.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

// A write larger than the socket buffers waits for room (EAGAIN) and
// completes as the peer reads.
func TestLargeWriteWaitsForRoom(t *testing.T) {
	t.Parallel()
	s, _, peer := pair(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	got := make(chan []byte, 1)
	go func() {
		peer.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want))))
		got <- b
	}()
	if n, err := s.Write(want); n != len(want) || err != nil {
		t.Fatalf("write: %d of %d, %v", n, len(want), err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer got %d bytes, not what was written", len(b))
	}
}

// Deadlines bound the waits as net.Conn's do, and the errors read as
// net.Conn's: a timeout, a closed connection.
func TestDeadlinesAndClose(t *testing.T) {
	t.Parallel()
	s, tc, _ := pair(t)
	tc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := s.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	// The peer reads nothing: the write fills the buffers, then times out
	// with what went out counted.
	tc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := s.Write(make([]byte, 64<<20))
	if !errors.As(err, &ne) || !ne.Timeout() || n <= 0 || n >= 64<<20 {
		t.Fatalf("write past its deadline: %d, %v; want part written and a timeout", n, err)
	}
	tc.Close()
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
}

// A write to a peer that reset the connection fails with an error (no
// SIGPIPE ends the process).
func TestWriteAfterPeerReset(t *testing.T) {
	t.Parallel()
	s, _, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // RST
	var err error
	for range 100 {
		if _, err = s.Write([]byte("x")); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write error %v (%T), want a *net.OpError for write", err, err)
	}
}
