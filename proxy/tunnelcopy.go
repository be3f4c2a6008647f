package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// A tunnel is idle most of its life, and a copy buffer held by a goroutine
// blocked in Read is memory for nothing. Where the source is a plain TCP
// socket, the copy runs inside one syscall.RawConn.Read (rawRelay): the
// runtime's poller wakes it when the socket turns readable, it borrows a
// buffer from a pool, reads and writes what it read to the other side
// until a read says EAGAIN, gives the buffer back and waits again. A read
// that came back short is not taken for "drained": the peer's FIN may
// have been consumed by it, and the poller reports nothing more. Where
// bytes may wait above the socket (TLS, a PROXY-header reader),
// readability of the socket says nothing, and the copy keeps its own
// buffer.

// tunnelBufSize is the copy buffer of one direction of a tunnel while it
// moves bytes. It is borrowed only for that, so its size costs an idle
// tunnel nothing, and a bulk transfer moves a TLS record's worth per read.
const tunnelBufSize = 16 << 10

// ownBufSize is the buffer a tunnel keeps for its whole life where it
// cannot borrow one (bytes may wait above the socket). Websocket messages
// are mostly small, and a larger one only costs a few more reads.
const ownBufSize = 4 << 10

// tunnelBufs lends copy buffers to tunnels while they move bytes. It holds
// array pointers, so Put allocates nothing.
type tunnelBufs struct{ p sync.Pool }

func newTunnelBufs() *tunnelBufs {
	return &tunnelBufs{p: sync.Pool{New: func() any { return new([tunnelBufSize]byte) }}}
}

func (b *tunnelBufs) get() *[tunnelBufSize]byte  { return b.p.Get().(*[tunnelBufSize]byte) }
func (b *tunnelBufs) put(x *[tunnelBufSize]byte) { b.p.Put(x) }

// pump writes first to dst, then copies src to dst until either fails or
// src ends. It returns the bytes written. What src's wrapper does on a read
// (activity for the idle watch; the node side's wsFramer) is done for the
// raw reads too; once a websocket is going away, or a deadline fires, reads
// go through src itself, whose wsFramer ends the stream with a close frame.
func (s *Server) pump(dst, src net.Conn, first []byte) int64 {
	var total int64
	if len(first) > 0 {
		n, err := dst.Write(first)
		total += int64(n)
		if err != nil {
			return total
		}
	}
	if r := newRawRelay(src, dst, s.tunBufs); r != nil {
		n, err := r.run()
		total += n
		if !isTimeout(err) && err != errWrapperRead {
			return total
		}
	}
	buf := make([]byte, ownBufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				err = werr
			}
		}
		if err != nil {
			return total
		}
	}
}

// errWrapperRead stops a rawRelay so that the source's own Read takes over.
var errWrapperRead = errors.New("read through the connection wrapper")

// rawRelay copies from a TCP socket to dst from inside the socket's
// RawConn.Read. It is used by one goroutine.
type rawRelay struct {
	rc   syscall.RawConn
	dst  net.Conn
	bufs *tunnelBufs
	seen func([]byte) // what the source's wrapper does with bytes read
	stop func() bool  // whether the wrapper must read from now on

	total int64
	err   error
	step  func(fd uintptr) bool
}

// newRawRelay returns nil when src's bytes cannot be read from a socket
// directly: nothing may be buffered above it. Writes go to the socket under
// dst's wrappers (a shallower stack while the relay sits in RawConn.Read),
// and the activity those wrappers would record is recorded per read.
func newRawRelay(src, dst net.Conn, bufs *tunnelBufs) *rawRelay {
	tc, srcSeen := rawSource(src)
	if tc == nil {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawRelay{rc: rc, dst: unwrapTCP(dst), bufs: bufs, seen: srcSeen}
	if v, ok := src.(*trackedConn); ok && v.ws != nil {
		r.stop = v.ws.going.Load
	}
	if dstSeen := activity(dst); dstSeen != nil {
		r.seen = func(b []byte) {
			srcSeen(b)
			dstSeen()
		}
	}
	r.step = r.move
	return r
}

// rawSource returns the TCP socket under src when nothing is buffered
// above it, with what src's Read does with the bytes it reads.
func rawSource(src net.Conn) (*net.TCPConn, func([]byte)) {
	switch v := src.(type) {
	case *net.TCPConn:
		return v, func([]byte) {}
	case *trackedConn:
		tc, _ := v.Conn.(*net.TCPConn)
		return tc, func(b []byte) {
			v.tun.touch()
			if v.ws != nil {
				v.ws.advance(b)
			}
		}
	case *clientConn:
		tc, _ := v.Conn.(*net.TCPConn) // a *proxyproto.Conn may hold bytes
		return tc, func([]byte) {
			if t := v.tun.Load(); t != nil {
				t.touch()
			}
		}
	case *prefixConn:
		// handed over by the fast path; once its buffer is drained,
		// reads go straight to the connection underneath
		if v.br == nil || v.br.Buffered() == 0 {
			return rawSource(v.Conn)
		}
	}
	return nil, nil
}

// activity returns what dst's Write records, or nil.
func activity(dst net.Conn) func() {
	switch v := dst.(type) {
	case *trackedConn:
		return v.tun.touch
	case *clientConn:
		return func() {
			if t := v.tun.Load(); t != nil {
				t.touch()
			}
		}
	case *prefixConn:
		return activity(v.Conn)
	}
	return nil
}

// run copies until src ends (io.EOF), a read or write fails, a deadline
// fires, or stop says so (errWrapperRead). It returns the bytes written.
func (r *rawRelay) run() (int64, error) {
	r.total, r.err = 0, nil
	if err := r.rc.Read(r.step); err != nil {
		return r.total, err // the deadline, or the socket closed
	}
	return r.total, r.err
}

// move is called first when run starts, then each time the poller reports
// the socket readable. It reports false (wait for the next report) only
// after a read said EAGAIN.
func (r *rawRelay) move(fd uintptr) bool {
	if r.stop != nil && r.stop() {
		r.err = errWrapperRead
		return true
	}
	buf := r.bufs.get()
	defer r.bufs.put(buf)
	for {
		n, err := syscall.Read(int(fd), buf[:])
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			r.seen(buf[:n])
			m, werr := r.dst.Write(buf[:n])
			r.total += int64(m)
			if werr != nil {
				r.err = werr
				return true
			}
			// Read again even after a short read: a FIN that came with
			// these bytes was taken by this read without a word, and
			// brings no new report from the poller, so only the next
			// read can tell of it (0 bytes: EOF).
			continue
		}
		switch {
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		default:
			r.err = io.EOF
		}
		return true
	}
}
