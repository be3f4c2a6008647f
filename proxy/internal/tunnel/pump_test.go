package tunnel

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, ok := <-ch
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

// countingWrapper is a Wrapper over a socket that counts what its Read
// and Write see, as portico's connection wrappers record activity.
type countingWrapper struct {
	net.Conn
	readBytes atomic.Int64
	writes    atomic.Int64
}

func (c *countingWrapper) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.readBytes.Add(int64(n))
	return n, err
}

func (c *countingWrapper) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func (c *countingWrapper) ReadEnd() (*net.TCPConn, func([]byte), func() bool) {
	return c.Conn.(*net.TCPConn), func(b []byte) { c.readBytes.Add(int64(len(b))) }, nil
}

func (c *countingWrapper) WriteEnd() (net.Conn, func()) {
	return c.Conn, func() { c.writes.Add(1) }
}

// TestPumpThroughWrappers: Pump moves every byte from a wrapped socket to
// a wrapped socket on the raw relay, and what each wrapper would have
// recorded on its Read and Write is recorded for the raw reads and writes.
// From a source with no socket under it (a pipe) it copies through the
// wrapper's own Read.
func TestPumpThroughWrappers(t *testing.T) {
	t.Parallel()
	bufs := NewBufs()
	for _, raw := range []bool{true, false} {
		srcFar, srcNear := tcpPair(t)
		dstNear, dstFar := tcpPair(t)
		var src net.Conn
		var counted *countingWrapper
		if raw {
			counted = &countingWrapper{Conn: srcNear}
			src = counted
		} else {
			p1, p2 := net.Pipe()
			go func() { io.Copy(p1, srcNear); p1.Close() }()
			src = p2
		}
		dst := &countingWrapper{Conn: dstNear}
		if got := NewRawRelay(src, dst, bufs) != nil; got != raw {
			t.Fatalf("raw %v: NewRawRelay made a relay: %v", raw, got)
		}
		msg := strings.Repeat("y", 3*BufSize+5)
		done := make(chan int64, 1)
		go func() { done <- Pump(dst, src, []byte("hi "), bufs) }()
		got := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(dstFar); got <- b }()
		if _, err := io.WriteString(srcFar, msg); err != nil {
			t.Fatal(err)
		}
		srcFar.(*net.TCPConn).CloseWrite()
		select {
		case n := <-done:
			if n != int64(len(msg)+3) {
				t.Fatalf("raw %v: Pump wrote %d bytes, want %d", raw, n, len(msg)+3)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("raw %v: Pump did not end at the source's EOF", raw)
		}
		dstNear.(*net.TCPConn).CloseWrite()
		if b := <-got; !bytes.Equal(b, []byte("hi "+msg)) {
			t.Fatalf("raw %v: the far end got %d bytes, want %d", raw, len(b), len(msg)+3)
		}
		if dst.writes.Load() < 2 {
			t.Fatalf("raw %v: %d writes recorded on the destination", raw, dst.writes.Load())
		}
		if raw && counted.readBytes.Load() != int64(len(msg)) {
			t.Fatalf("raw reads recorded %d bytes, want %d", counted.readBytes.Load(), len(msg))
		}
	}
}

// TestEndsOfOtherConnections: a connection that is neither a socket nor
// a Wrapper has no socket to read from and is its own write end.
func TestEndsOfOtherConnections(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if s, seen, stop := ReadEnd(a); s != nil || seen != nil || stop != nil {
		t.Fatal("ReadEnd of a pipe gave a socket")
	}
	if w, rec := WriteEnd(a); w != a || rec != nil {
		t.Fatal("WriteEnd of a pipe is not the pipe itself")
	}
}

// readN reads exactly n bytes from r.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}
