package proxy

import (
	"net"
	"sync"
	"syscall"

	"github.com/pires/go-proxyproto"
)

// A websocket tunnel is idle most of its life, and a copy buffer held by a
// goroutine blocked in Read is memory for nothing. Where the source is a
// plain TCP socket, pump waits for the socket to become readable without a
// buffer (the runtime's poller, through syscall.RawConn) and takes a
// buffer from a pool only to move what arrived. Where bytes may wait above
// the socket (TLS, a PROXY-header reader), readability of the socket says
// nothing, and pump keeps its own buffer.

// tunnelBufSize is the copy buffer of one direction of a tunnel.
// Websocket messages are mostly small, and a larger one only costs a few
// more reads.
const tunnelBufSize = 4 << 10

// tunnelBufs lends copy buffers to tunnels while they move bytes. It holds
// array pointers, so Put allocates nothing.
type tunnelBufs struct{ p sync.Pool }

func newTunnelBufs() *tunnelBufs {
	return &tunnelBufs{p: sync.Pool{New: func() any { return new([tunnelBufSize]byte) }}}
}

func (b *tunnelBufs) get() *[tunnelBufSize]byte  { return b.p.Get().(*[tunnelBufSize]byte) }
func (b *tunnelBufs) put(x *[tunnelBufSize]byte) { b.p.Put(x) }

// pump writes first to dst, then copies src to dst until either fails or
// src ends. It returns the bytes written. Reads go through src (the node
// side's trackedConn, so its wsFramer can end the stream with a close
// frame; the clientConn, so activity is recorded).
func (s *Server) pump(dst, src net.Conn, first []byte) int64 {
	var total int64
	if len(first) > 0 {
		n, err := dst.Write(first)
		total += int64(n)
		if err != nil {
			return total
		}
	}
	w := newReadWaiter(src)
	var own *[tunnelBufSize]byte
	if w == nil {
		own = new([tunnelBufSize]byte)
	}
	for {
		buf := own
		if w != nil {
			// A deadline (a going-away tunnel) is for src.Read to see:
			// it turns it into the close frame.
			if err := w.wait(); err != nil && !isTimeoutErr(err) {
				return total
			}
			buf = s.tunBufs.get()
		}
		n, err := src.Read(buf[:])
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				err = werr
			}
		}
		if w != nil {
			s.tunBufs.put(buf)
		}
		if err != nil {
			return total
		}
	}
}

// readWaiter waits for a TCP socket to have something to read: bytes, EOF
// or an error.
type readWaiter struct {
	rc    syscall.RawConn
	peek  [1]byte
	f     func(fd uintptr) bool
	calls int // calls of ready within one wait
}

// newReadWaiter returns nil when c's readability cannot be seen on a socket.
func newReadWaiter(c net.Conn) *readWaiter {
	var tc *net.TCPConn
	switch v := c.(type) {
	case *trackedConn:
		tc, _ = v.Conn.(*net.TCPConn)
	case *clientConn:
		if _, buffered := v.Conn.(*proxyproto.Conn); !buffered {
			tc, _ = v.Conn.(*net.TCPConn)
		}
	case *prefixConn:
		// handed over by the fast path; once its buffer is drained,
		// reads go straight to the connection underneath
		if v.br == nil || v.br.Buffered() == 0 {
			return newReadWaiter(v.Conn)
		}
	}
	if tc == nil {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &readWaiter{rc: rc}
	w.f = w.ready
	return w
}

// ready peeks without blocking on its first call: the poller only reports
// readiness that arrives while waiting, so what is already there must be
// looked for. A later call comes from the poller having seen the socket
// readable, and is believed without a second peek: a tunnel that waits for
// each message costs the same syscalls as a blocking read (one that finds
// nothing, one that reads). A rare spurious wake-up only means the Read
// that follows waits with its buffer.
func (w *readWaiter) ready(fd uintptr) bool {
	w.calls++
	if w.calls > 1 {
		return true
	}
	_, _, err := syscall.Recvfrom(int(fd), w.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN
}

func (w *readWaiter) wait() error {
	w.calls = 0
	return w.rc.Read(w.f)
}
