package tunnel

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
// socket, the copy runs inside one syscall.RawConn.Read (RawRelay): the
// runtime's poller wakes it when the socket turns readable, it borrows a
// buffer from a pool, reads and writes what it read to the other side
// until a read says EAGAIN, gives the buffer back and waits again. A read
// that came back short is not taken for "drained": the peer's FIN may
// have been consumed by it, and the poller reports nothing more. Where
// bytes may wait above the socket (TLS, a PROXY-header reader),
// readability of the socket says nothing, and the copy keeps its own
// buffer.

// BufSize is the copy buffer of one direction of a tunnel while it
// moves bytes. It is borrowed only for that, so its size costs an idle
// tunnel nothing, and a bulk transfer moves a TLS record's worth per read.
const BufSize = 16 << 10

// ownBufSize is the buffer a tunnel keeps for its whole life where it
// cannot borrow one (bytes may wait above the socket). Websocket messages
// are mostly small, and a larger one only costs a few more reads.
const ownBufSize = 4 << 10

// Bufs lends copy buffers to tunnels while they move bytes. It holds
// array pointers, so Put allocates nothing.
type Bufs struct{ p sync.Pool }

// NewBufs returns an empty Bufs.
func NewBufs() *Bufs {
	return &Bufs{p: sync.Pool{New: func() any { return new([BufSize]byte) }}}
}

func (b *Bufs) get() *[BufSize]byte  { return b.p.Get().(*[BufSize]byte) }
func (b *Bufs) put(x *[BufSize]byte) { b.p.Put(x) }

// Pump writes first to dst, then copies src to dst until either fails or
// src ends. It returns the bytes written. What src's wrapper does on a read
// (activity for the idle watch; the node side's WSFramer) is done for the
// raw reads too; once a websocket is going away, or a deadline fires, reads
// go through src itself, whose WSFramer ends the stream with a close frame.
func Pump(dst, src net.Conn, first []byte, bufs *Bufs) int64 {
	var total int64
	if len(first) > 0 {
		n, err := dst.Write(first)
		total += int64(n)
		if err != nil {
			return total
		}
	}
	if r := NewRawRelay(src, dst, bufs); r != nil {
		n, err := r.Run()
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

// isTimeout reports a deadline of a read or a write.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errWrapperRead stops a RawRelay so that the source's own Read takes over.
var errWrapperRead = errors.New("read through the connection wrapper")

// RawRelay copies from a TCP socket to dst from inside the socket's
// RawConn.Read. It is used by one goroutine.
type RawRelay struct {
	rc   syscall.RawConn
	dst  net.Conn
	bufs *Bufs
	// Seen is what the source's wrapper does with the bytes read; a
	// caller that keeps its own account may replace it before Run.
	Seen func([]byte)
	stop func() bool // whether the wrapper must read from now on

	total int64
	err   error
	step  func(fd uintptr) bool
}

// NewRawRelay returns nil when src's bytes cannot be read from a socket
// directly: something may be buffered above it. Writes go to the socket
// under dst's wrappers (a shallower stack while the relay sits in
// RawConn.Read), and the activity those wrappers would record is recorded
// per read.
func NewRawRelay(src, dst net.Conn, bufs *Bufs) *RawRelay {
	tc, srcSeen, stop := ReadEnd(src)
	if tc == nil {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	out, dstSeen := WriteEnd(dst)
	r := &RawRelay{rc: rc, dst: out, bufs: bufs, Seen: srcSeen, stop: stop}
	if dstSeen != nil {
		r.Seen = func(b []byte) {
			srcSeen(b)
			dstSeen()
		}
	}
	r.step = r.move
	return r
}

// Wrapper is a connection wrapper over a socket (portico's client and node
// connections) that lets a tunnel move bytes on the socket itself. The
// relays ask it for the socket and for what its Read and Write record,
// instead of knowing each wrapper's type.
type Wrapper interface {
	net.Conn
	// ReadEnd returns the socket to read from in place of the wrapper,
	// nil when bytes may wait above it; seen is what the wrapper's Read
	// does with the bytes it reads (never nil with a socket); stop, when
	// not nil, reports that reads must go through the wrapper from now on.
	ReadEnd() (sock *net.TCPConn, seen func([]byte), stop func() bool)
	// WriteEnd returns the connection to write to in place of the
	// wrapper, writing to which is equivalent (the socket, when nothing
	// but bookkeeping sits above it), and what the wrapper's Write
	// records, nil for nothing.
	WriteEnd() (net.Conn, func())
}

// ReadEnd returns the TCP socket under c when nothing is buffered above
// it, with what c's Read does with the bytes it reads (see
// Wrapper.ReadEnd). c is a *net.TCPConn or a Wrapper; for anything else
// the socket is nil.
func ReadEnd(c net.Conn) (sock *net.TCPConn, seen func([]byte), stop func() bool) {
	switch v := c.(type) {
	case *net.TCPConn:
		return v, func([]byte) {}, nil
	case Wrapper:
		return v.ReadEnd()
	}
	return nil, nil, nil
}

// WriteEnd returns what to write to in place of c, so that the kernel can
// splice into it, and what c's Write records per write (nil for nothing):
// c itself unless it is a Wrapper.
func WriteEnd(c net.Conn) (net.Conn, func()) {
	if v, ok := c.(Wrapper); ok {
		return v.WriteEnd()
	}
	return c, nil
}

// Run copies until src ends (io.EOF), a read or write fails, a deadline
// fires, or stop says so (errWrapperRead). It returns the bytes written.
func (r *RawRelay) Run() (int64, error) {
	r.total, r.err = 0, nil
	if err := r.rc.Read(r.step); err != nil {
		return r.total, err // the deadline, or the socket closed
	}
	return r.total, r.err
}

// move is called first when run starts, then each time the poller reports
// the socket readable. It reports false (wait for the next report) only
// after a read said EAGAIN.
func (r *RawRelay) move(fd uintptr) bool {
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
			r.Seen(buf[:n])
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
