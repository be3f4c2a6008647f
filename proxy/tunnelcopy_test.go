package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestPump copies with a borrowed buffer between TCP sockets and with its
// own where the source is not a socket, and stops at the source's end.
func TestPump(t *testing.T) {
	t.Parallel()
	s := &Server{tunBufs: newTunnelBufs()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	far, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	near := &clientConn{Conn: <-accepted}
	defer near.Close()
	pipeIn, pipeOut := net.Pipe()
	for _, tc := range []struct {
		name     string
		src      net.Conn
		writeEnd net.Conn
		waiter   bool
	}{
		{"socket", near, far, true},
		{"pipe", &clientConn{Conn: pipeOut}, pipeIn, false},
	} {
		if got := newReadWaiter(tc.src) != nil; got != tc.waiter {
			t.Fatalf("%s: waiter %v, want %v", tc.name, got, tc.waiter)
		}
		var sink bytes.Buffer
		dst, dstEnd := net.Pipe()
		done := make(chan int64, 1)
		go func() { done <- s.pump(dst, tc.src, []byte("first ")) }()
		go func() { io.Copy(&sink, dstEnd) }()
		msg := strings.Repeat("x", 3*tunnelBufSize+17)
		if _, err := io.WriteString(tc.writeEnd, msg); err != nil {
			t.Fatal(err)
		}
		tc.writeEnd.Close()
		select {
		case n := <-done:
			if n != int64(len("first ")+len(msg)) {
				t.Errorf("%s: pumped %d bytes, want %d", tc.name, n, len("first ")+len(msg))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: pump did not stop at EOF", tc.name)
		}
		dst.Close()
	}
}

// TestReadWaiterSeesThroughHandOff: a websocket whose connection began on
// the fast path (a prefixConn after the hand-off to net/http) still waits
// for data without a buffer once the hand-off buffer is drained.
func TestReadWaiterSeesThroughHandOff(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc := &clientConn{Conn: c}
	if newReadWaiter(&prefixConn{Conn: cc}) == nil {
		t.Fatal("no read waiter for a handed-off connection with nothing buffered")
	}
	br := bufio.NewReader(strings.NewReader("early bytes"))
	br.Peek(1)
	if newReadWaiter(&prefixConn{Conn: cc, br: br}) != nil {
		t.Fatal("a read waiter would skip the bytes still buffered from the hand-off")
	}
}
