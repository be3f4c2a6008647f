package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"

	"github.com/portico-lb/portico/proxy/internal/tunnel"
)

// A keep-alive connection spends most of its life waiting for the next
// request. It waits without the fast path's read and write buffers (4 KiB
// each) and its request scratch (about 3 KiB), which go back to their
// pools and are taken again when the request's first bytes are there
// (docs/performance.md, "Memory per idle connection").
//
// How it waits depends on what is under the connection:
//   - a plain TCP socket (waitRaw): the read that finds the request is
//     made inside the socket's RawConn.Read, into the reader's buffer;
//     when it says EAGAIN the buffers go back and the poller waits for
//     readability with nothing held. A client that already sent its next
//     request never lets go of them, and no syscall is added: the EAGAIN
//     read and the wait are the ones a buffered Peek makes.
//   - TLS: crypto/tls may hold decrypted bytes above the socket, so the
//     wait is a one-byte Read of the tls.Conn; the rest of the record stays
//     in crypto/tls's buffer and the reader takes it without a syscall.
//   - anything else (a PROXY-header reader, which buffers bytes of its
//     own): the reader waits with its buffer, as a one-byte read there
//     would cost a syscall per request.
//
// Every deadline stays as the caller set it: RawConn.Read and tls.Conn's
// Read both end with a timeout at the read deadline.

// fastSrc is what a fast-path connection's reader reads from: the
// connection, after a byte that was read before the reader was taken
// back; while a plain socket is being waited on, the socket itself,
// without blocking.
type fastSrc struct {
	c      net.Conn
	one    [1]byte
	hasOne bool
	fd     int          // >= 0: read this socket directly (inside RawConn.Read)
	seen   func([]byte) // what c's Read records of the bytes it reads
}

// errAgain is a direct read of a socket with nothing to read.
var errAgain = errors.New("fast path: socket not readable")

func (s *fastSrc) Read(p []byte) (int, error) {
	if s.hasOne && len(p) > 0 {
		p[0], s.hasOne = s.one[0], false
		return 1, nil
	}
	if s.fd >= 0 {
		n, err := rawRead(s.fd, p)
		if n > 0 && s.seen != nil {
			s.seen(p[:n])
		}
		return n, err
	}
	return s.c.Read(p)
}

// unread puts b in front of what the connection sends next.
func (s *fastSrc) unread(b byte) { s.one[0], s.hasOne = b, true }

// takeBufs gives the connection its reader and writer from the pools.
func (fc *fastConn) takeBufs() {
	bufs := fc.srv.fastBufs
	fc.br = bufs.r.Get().(*bufio.Reader)
	fc.br.Reset(&fc.src)
	fc.bw = bufs.w.Get().(*bufio.Writer)
	fc.bw.Reset(&fc.wd)
	sc := bufs.scratch.Get().(*fastScratch)
	fc.scratch = sc
	fc.out, fc.req, fc.h.Fields, fc.rh.Lines = sc.out[:0], sc.req[:0], sc.fields[:0], sc.lines[:0]
	bufs.lent.Add(1)
}

// putScratch returns the request scratch, with what the requests grew it
// to, except for an outsize response head.
func (fc *fastConn) putScratch() {
	sc := fc.scratch
	sc.out, sc.req, sc.fields, sc.lines = fc.out[:0], fc.req[:0], fc.h.Fields[:0], fc.rh.Lines[:0]
	if cap(sc.out) > 64<<10 {
		sc.out = make([]byte, 0, 1024)
	}
	// the fields and lines point into buffers now lent to others
	clear(sc.fields[:cap(sc.fields)])
	clear(sc.lines[:cap(sc.lines)])
	fc.out, fc.req, fc.h.Fields, fc.rh.Lines, fc.scratch = nil, nil, nil, nil, nil
	fc.srv.fastBufs.scratch.Put(sc)
}

// dropBufs returns the reader and writer to the pools; both are empty.
func (fc *fastConn) dropBufs() {
	bufs := fc.srv.fastBufs
	fc.br.Reset(nil)
	bufs.r.Put(fc.br)
	fc.bw.Reset(nil)
	bufs.w.Put(fc.bw)
	fc.br, fc.bw = nil, nil
	fc.putScratch()
	bufs.lent.Add(-1)
}

// waitRequest waits, under the read deadline the caller set, until the
// next request's first byte is in fc.br; the writer is empty. It returns
// with both buffers held, or with the error that ended the wait (and
// possibly without them: serveFast puts back what is held).
func (fc *fastConn) waitRequest() error {
	if fc.src.hasOne {
		_, err := fc.br.Peek(1)
		return err
	}
	if fc.raw == nil && !fc.rawTried {
		fc.rawTried = true
		if sock, seen, _ := tunnel.ReadEnd(fc.c); sock != nil && rawReadable {
			if rc, err := sock.SyscallConn(); err == nil {
				fc.raw, fc.src.seen = rc, seen
			}
		}
	}
	if fc.raw != nil {
		fc.waitErr = nil
		if err := fc.raw.Read(fc.waitFn); err != nil {
			return err // the deadline, or the connection closed
		}
		return fc.waitErr
	}
	if _, ok := fc.c.(*tls.Conn); ok {
		fc.dropBufs()
		n, err := fc.c.Read(fc.src.one[:])
		fc.src.hasOne = n == 1
		fc.takeBufs()
		if n == 0 {
			return err
		}
		return nil
	}
	_, err := fc.br.Peek(1)
	return err
}

// waitRead is the callback of the raw wait: one direct read into the
// reader's buffer; when the socket has nothing, the buffers go back and
// the poller waits (false), and on its report they are taken again.
func (fc *fastConn) waitRead(fd uintptr) bool {
	if fc.br == nil {
		fc.takeBufs()
	}
	fc.src.fd = int(fd)
	_, err := fc.br.Peek(1)
	fc.src.fd = -1
	if err == errAgain {
		fc.dropBufs()
		return false
	}
	fc.waitErr = err
	return true
}
