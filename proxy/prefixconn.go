package proxy

import (
	"bufio"
	"bytes"
	"net"
	"sync/atomic"
	"time"

	"github.com/portico-lb/portico/proxy/internal/tunnel"
)

// prefixConn is a connection handed to net/http's server: what the fast
// path buffered (br, nil if nothing) is read first.
//
// It also answers 408 to a request head that misses read_header_timeout,
// which net/http's server would close silently: a read that times out
// while the bytes read since the last write are unanswered (a head in
// progress) writes the 408 before net/http sees the timeout and closes.
// A wait for the next request that saw no byte stays silent, as do the
// reads net/http aborts on purpose (a deadline already past when set, as
// when a handler hijacks the connection), and nothing is written once the
// connection switched protocols.
//
// Its writes have the client progress limit wlimit (net/http's
// WriteTimeout would bound a whole answer, and cut long downloads and
// event streams), until the connection switches protocols: a tunnel has
// limits of its own.
type prefixConn struct {
	net.Conn
	br      *bufio.Reader
	wlimit  time.Duration
	timeout []byte // the listener's 408 (listenerRuntime.timeout408)

	// headDL (Unix ns, 0 for none) is the deadline of the request head
	// the fast path began: net/http's first read deadline, its own
	// read_header_timeout counted from the hand-off, is held to it
	headDL     atomic.Int64
	unanswered atomic.Bool // bytes read since the last write
	aborted    atomic.Bool // the read deadline was already past when set
	quiet      atomic.Bool // a 408 went out, or the connection switched protocols
	tunnel     atomic.Bool // the connection switched protocols
}

// ReadEnd gives a tunnel the socket under p once p's buffer is drained:
// from then on p's reads go straight to the connection underneath.
func (p *prefixConn) ReadEnd() (*net.TCPConn, func([]byte), func() bool) {
	if p.br != nil && p.br.Buffered() > 0 {
		return nil, nil, nil
	}
	return tunnel.ReadEnd(p.Conn)
}

// WriteEnd gives a tunnel what is under p, which buffers reads only.
func (p *prefixConn) WriteEnd() (net.Conn, func()) { return tunnel.WriteEnd(p.Conn) }

var _ tunnel.Wrapper = (*prefixConn)(nil)

func (p *prefixConn) Read(b []byte) (int, error) {
	var n int
	var err error
	if p.br != nil && p.br.Buffered() > 0 {
		n, err = p.br.Read(b)
	} else {
		p.br = nil
		n, err = p.Conn.Read(b)
	}
	if n > 0 {
		p.unanswered.Store(true)
	}
	if err != nil && isTimeout(err) && p.unanswered.Load() && !p.aborted.Load() && !p.quiet.Swap(true) {
		writeRequestTimeout(p.Conn, p.timeout)
	}
	return n, err
}

func (p *prefixConn) Write(b []byte) (int, error) {
	switched := false
	if bytes.HasPrefix(b, []byte("HTTP/1.1 101 ")) {
		p.quiet.Store(true) // a tunnel from here on: never an HTTP answer
		switched = !p.tunnel.Swap(true)
	}
	p.unanswered.Store(false)
	limited := p.wlimit > 0 && (switched || !p.tunnel.Load())
	if limited {
		p.Conn.SetWriteDeadline(time.Now().Add(p.wlimit))
	}
	n, err := p.Conn.Write(b)
	if limited && switched {
		p.Conn.SetWriteDeadline(time.Time{})
	}
	return n, err
}

func (p *prefixConn) SetReadDeadline(t time.Time) error {
	p.aborted.Store(!t.IsZero() && time.Until(t) <= 0)
	return p.Conn.SetReadDeadline(p.headDeadline(t))
}

func (p *prefixConn) SetDeadline(t time.Time) error {
	p.aborted.Store(!t.IsZero() && time.Until(t) <= 0)
	if h := p.headDeadline(t); !h.Equal(t) {
		p.Conn.SetWriteDeadline(t)
		return p.Conn.SetReadDeadline(h)
	}
	return p.Conn.SetDeadline(t)
}

// headDeadline caps the first read deadline net/http sets, the one for
// the request head the fast path handed over, at that head's deadline
// (none is no cap: net/http sets none when it has no header timeout).
// Later deadlines (the body's, the next request's) are net/http's own.
func (p *prefixConn) headDeadline(t time.Time) time.Time {
	ns := p.headDL.Swap(0)
	if ns == 0 {
		return t
	}
	if dl := time.Unix(0, ns); t.IsZero() || t.After(dl) {
		return dl
	}
	return t
}
