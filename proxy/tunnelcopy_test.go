package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/proxy/internal/tunnel"
)

// TestPump copies with a raw relay between TCP sockets and with a buffer
// of its own where the source is not a socket, and stops at the source's end.
func TestPump(t *testing.T) {
	t.Parallel()
	s := &Server{tunBufs: tunnel.NewBufs()}
	far, accepted := tcpPair(t)
	near := &clientConn{Conn: accepted}
	pipeIn, pipeOut := net.Pipe()
	for _, tc := range []struct {
		name     string
		src      net.Conn
		writeEnd net.Conn
		raw      bool
	}{
		{"socket", near, far, true},
		{"pipe", &clientConn{Conn: pipeOut}, pipeIn, false},
	} {
		if got := tunnel.NewRawRelay(tc.src, tc.writeEnd, s.tunBufs) != nil; got != tc.raw {
			t.Fatalf("%s: raw relay %v, want %v", tc.name, got, tc.raw)
		}
		var sink bytes.Buffer
		dst, dstEnd := net.Pipe()
		done := make(chan int64, 1)
		go func() { done <- tunnel.Pump(dst, tc.src, []byte("first "), s.tunBufs) }()
		go func() { io.Copy(&sink, dstEnd) }()
		msg := strings.Repeat("x", 3*tunnel.BufSize+17)
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

// TestRawRelaySeesThroughHandOff: a websocket whose connection began on
// the fast path (a prefixConn after the hand-off to net/http) still waits
// for data without a buffer once the hand-off buffer is drained.
func TestRawRelaySeesThroughHandOff(t *testing.T) {
	t.Parallel()
	c, _ := tcpPair(t)
	cc := &clientConn{Conn: c}
	bufs := tunnel.NewBufs()
	if tunnel.NewRawRelay(&prefixConn{Conn: cc}, c, bufs) == nil {
		t.Fatal("no raw relay for a handed-off connection with nothing buffered")
	}
	br := bufio.NewReader(strings.NewReader("early bytes"))
	br.Peek(1)
	if tunnel.NewRawRelay(&prefixConn{Conn: cc, br: br}, c, bufs) != nil {
		t.Fatal("a raw relay would skip the bytes still buffered from the hand-off")
	}
}

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

// TestRawRelayRoundTrips sends messages back and forth through a tunnel of
// two raw relays, one in flight at a time: the pattern where a relay waits
// on the poller after every short read, so a lost readiness report would
// stall a round (and fail it at its deadline). The sizes cross the buffer
// size, so reads that fill the buffer are followed by another read.
func TestRawRelayRoundTrips(t *testing.T) {
	t.Parallel()
	s := &Server{tunBufs: tunnel.NewBufs()}
	client, near := tcpPair(t)
	far, node := tcpPair(t)
	nearC := &clientConn{Conn: near}
	farT := &trackedConn{Conn: far, tun: newTunnel(0, nil)}
	if tunnel.NewRawRelay(nearC, farT, s.tunBufs) == nil || tunnel.NewRawRelay(farT, nearC, s.tunBufs) == nil {
		t.Fatal("no raw relay between two TCP sockets")
	}
	up, down := make(chan int64, 1), make(chan int64, 1)
	go func() { up <- tunnel.Pump(farT, nearC, nil, s.tunBufs); farT.Conn.(*net.TCPConn).CloseWrite() }()
	go func() { down <- tunnel.Pump(nearC, farT, nil, s.tunBufs); nearC.Conn.(*net.TCPConn).CloseWrite() }()

	sizes := []int{1, 7, 100, tunnel.BufSize - 1, tunnel.BufSize, tunnel.BufSize + 1, 3*tunnel.BufSize + 5, 64}
	var sent, back int64
	for round := range 1500 {
		size := sizes[round%len(sizes)]
		msg := bytes.Repeat([]byte{byte('a' + round%26)}, size)
		deadline := time.Now().Add(10 * time.Second)
		client.SetDeadline(deadline)
		node.SetDeadline(deadline)
		if _, err := client.Write(msg); err != nil {
			t.Fatalf("round %d: client write: %v", round, err)
		}
		got := make([]byte, size)
		if _, err := io.ReadFull(node, got); err != nil {
			t.Fatalf("round %d (%d bytes): node read: %v", round, size, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("round %d: node got other bytes", round)
		}
		reply := append(got[:0:0], bytes.ToUpper(got)...)
		if _, err := node.Write(reply); err != nil {
			t.Fatalf("round %d: node write: %v", round, err)
		}
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatalf("round %d (%d bytes): client read: %v", round, size, err)
		}
		if !bytes.Equal(got, reply) {
			t.Fatalf("round %d: client got other bytes", round)
		}
		sent += int64(size)
		back += int64(size)
	}
	// Half-close: each relay ends at its source's EOF and passes it on.
	client.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadAll(node); err != nil {
		t.Fatalf("node did not see the client's EOF: %v", err)
	}
	node.(*net.TCPConn).CloseWrite()
	for name, ch := range map[string]chan int64{"up": up, "down": down} {
		want := sent
		if name == "down" {
			want = back
		}
		select {
		case n := <-ch:
			if n != want {
				t.Errorf("%s relay moved %d bytes, want %d", name, n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s relay did not end at EOF", name)
		}
	}
}

// TestRawRelayRecordsActivity: bytes moved by a raw relay count as tunnel
// activity for the idle limit, whichever side's wrapper carries the
// tunnel, as they do through the wrappers' own Read and Write.
func TestRawRelayRecordsActivity(t *testing.T) {
	t.Parallel()
	s := &Server{tunBufs: tunnel.NewBufs()}
	for _, side := range []string{"source", "destination"} {
		client, near := tcpPair(t)
		far, node := tcpPair(t)
		tun := newTunnel(0, nil)
		var src, dst net.Conn = &clientConn{Conn: near}, &trackedConn{Conn: far, tun: tun}
		if side == "source" {
			src, dst = &trackedConn{Conn: near, tun: tun}, &clientConn{Conn: far}
		}
		tun.last.Store(0)
		done := make(chan int64, 1)
		go func() { done <- tunnel.Pump(dst, src, nil, s.tunBufs) }()
		if _, err := io.WriteString(client, "one way"); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len("one way"))
		node.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(node, got); err != nil {
			t.Fatalf("%s: %v", side, err)
		}
		client.Close()
		<-done
		if tun.last.Load() == 0 {
			t.Errorf("tunnel on the %s side: moved bytes not recorded as activity", side)
		}
	}
}

// hiddenConn hides the TCP socket under a connection, so that the tunnel
// copies through Read with a buffer of its own, as it does above TLS.
type hiddenConn struct{ net.Conn }

// BenchmarkTunnelRoundTrip: one 64-byte message to a node and its echo
// back, through the two copies of a tunnel, on loopback. "raw" is the
// copy inside RawConn.Read; "read" is a plain read/write loop on the same
// sockets (the copy used where bytes may wait above the socket).
func BenchmarkTunnelRoundTrip(b *testing.B) {
	for _, mode := range []string{"raw", "read"} {
		b.Run(mode, func(b *testing.B) {
			s := &Server{tunBufs: tunnel.NewBufs()}
			client, near := tcpPair(b)
			far, node := tcpPair(b)
			var nearC, farC net.Conn = near, far
			if mode == "read" {
				nearC, farC = hiddenConn{near}, hiddenConn{far}
			}
			go tunnel.Pump(farC, nearC, nil, s.tunBufs)
			go tunnel.Pump(nearC, farC, nil, s.tunBufs)
			go io.Copy(node, node) // the node echoes
			msg := bytes.Repeat([]byte{'m'}, 64)
			got := make([]byte, len(msg))
			client.SetDeadline(time.Now().Add(time.Minute))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := client.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRawRelaySeesFINAfterShortRead: the peer's last bytes and its FIN
// are all queued before the relay reads. The read that returns the last
// bytes (fewer than the buffer holds) takes the FIN with them, and the
// poller reports nothing more; the relay must still end at EOF. It hung
// when a short read was taken for a drained socket.
func TestRawRelaySeesFINAfterShortRead(t *testing.T) {
	t.Parallel()
	s := &Server{tunBufs: tunnel.NewBufs()}
	for _, size := range []int{10, tunnel.BufSize + 10, 3*tunnel.BufSize + 17} {
		writeEnd, src := tcpPair(t)
		msg := bytes.Repeat([]byte{'f'}, size)
		// The bytes and the FIN arrive while the socket is being waited
		// on, so the poller's report of them is taken by that wait, as by
		// a relay woken by it. Then wait until all the bytes are queued
		// (the FIN, sent after them on loopback, is queued by then too).
		waiting := make(chan struct{})
		go func() {
			<-waiting
			writeEnd.Write(msg)
			writeEnd.Close()
		}()
		peek := make([]byte, size+1)
		src.SetReadDeadline(time.Now().Add(10 * time.Second))
		raw := src.(*net.TCPConn)
		rc, _ := raw.SyscallConn()
		calls := 0
		if err := rc.Read(func(uintptr) bool {
			calls++
			if calls == 1 {
				close(waiting)
				return false
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		for {
			var n int
			var perr error
			rc.Read(func(fd uintptr) bool {
				n, _, perr = syscall.Recvfrom(int(fd), peek, syscall.MSG_PEEK)
				return perr != syscall.EAGAIN
			})
			if perr != nil {
				t.Fatal(perr)
			}
			if n == size {
				break
			}
		}
		src.SetReadDeadline(time.Time{})
		dst, dstEnd := net.Pipe()
		var sink bytes.Buffer
		copied := make(chan struct{})
		go func() { io.Copy(&sink, dstEnd); close(copied) }()
		done := make(chan int64, 1)
		go func() { done <- tunnel.Pump(dst, &clientConn{Conn: src}, nil, s.tunBufs) }()
		select {
		case n := <-done:
			if n != int64(size) {
				t.Errorf("%d bytes: pumped %d", size, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d bytes: the relay did not see the FIN that came with the last bytes", size)
		}
		dst.Close()
		<-copied
	}
}
