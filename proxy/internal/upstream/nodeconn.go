package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-lb/portico/proxy/internal/sock"
)

// Transport is a keep-alive HTTP/1.1 client for a pool's nodes, used
// for the requests that are safe to send twice (bodiless GET, HEAD,
// OPTIONS, TRACE without Upgrade): the bulk of the traffic.
//
// Why it exists: http.Transport hands each request to a write goroutine
// and each response to a read goroutine per connection, with channels and
// selects in between. Here the caller's goroutine writes the request and
// reads the response itself.
//
// RoundTrip (the ReverseProxy path) writes and parses nothing by hand: the
// request goes out with (*http.Request).Write and the response comes back
// through http.ReadResponse, net/http's own code for both; what is added
// is the connection pool, timeouts and cancellation. portico's fast paths
// use the same connections through Get, Conn.Send and Put: they write
// their request heads themselves and Send reads a plain response head in
// place (wire.ParseRespHead), leaving every other response to
// http.ReadResponse. Requests with a body stay on http.Transport.
type Transport struct {
	dialer      net.Dialer
	respTimeout time.Duration // ResponseHeaderTimeout
	maxIdle     int           // idle connections kept per node
	idleTimeout time.Duration
	peekAfter   time.Duration // PeekAfter; a field so tests can shorten it
	tls         *TLS          // nil = plain HTTP
	// dial is dialer's DialContext; tests replace it
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu     sync.Mutex
	idle   map[string][]*Conn // LIFO per node (poolKey): oldest at the bottom
	closed bool
	// sweep closes the connections idle for idleTimeout; one timer for
	// the transport, armed while any connection is idle, instead of a
	// goroutine or timer per connection.
	sweep *time.Timer
	armed bool
}

// IdleTimeout is how long a connection to a node stays open unused
// (for both transports of a pool): long enough to carry steady traffic,
// short enough that the connections opened for a burst close after it,
// before a node's own keep-alive timeout would close them under a request.
const IdleTimeout = 60 * time.Second

// PeekAfter is how long a connection may sit idle before a replayable
// request looks for unsolicited bytes on it (dataWaiting, a syscall per
// request otherwise). A node closing a connection it kept alive is caught
// without the look: the request then fails before any answer and is sent
// again on a fresh connection (NothingReceived). What only the look
// catches is a node that sent something unasked, an answer that would be
// taken for the request's; nodes do that (a 408, then closing) when their
// own idle timeout ends, which is seconds at the least, not within this.
const PeekAfter = time.Second

// nodeSweepMin spaces the sweeps: a connection may outlive the idle
// timeout by this much.
const nodeSweepMin = time.Second

// Same limits as the http.Transport this replaces for these requests.
const (
	MaxHeaderBytes = 10 << 20 // http.Transport's default
	nodeMax1xx     = 5        // informational responses before the final one
	nodeBufSize    = 16 << 10
)

// SmallAnswer is the largest body the fast paths (HTTP/1.1 and HTTP/2)
// read whole before answering: the node connection then goes back to the
// pool at once, whatever the client's reading pace (no more memory than
// the node connection's own read buffer, which it frees). A larger
// answer holds its node connection while the client takes it, bounded
// by the client progress limit.
const SmallAnswer = nodeBufSize

// NewTransport returns a Transport that dials within connectTimeout,
// waits respTimeout for an answer's head (0: no limit) and speaks TLS
// to the nodes when nt is not nil.
func NewTransport(connectTimeout, respTimeout time.Duration, nt *TLS) *Transport {
	t := &Transport{
		tls:         nt,
		dialer:      net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		respTimeout: respTimeout,
		maxIdle:     256,
		idleTimeout: IdleTimeout,
		peekAfter:   PeekAfter,
		idle:        make(map[string][]*Conn),
	}
	t.dial = t.dialer.DialContext
	return t
}

// Conn is one connection to a node with its buffers.
type Conn struct {
	t       *Transport
	key     string   // the idle list it goes back to (TLS.PoolKey)
	NetConn net.Conn // a *tls.Conn when the pool speaks TLS
	// rc is the socket's, for the unsolicited-data check and
	// flushAndWait; nil if unavailable, and under TLS, where readiness
	// of the socket says nothing of the records above it.
	rc syscall.RawConn
	lr LimitReader // bounds the response header
	// Reader reads the node's answers; what a caller leaves in it
	// (unread body bytes) makes the connection unfit for reuse.
	Reader *bufio.Reader
	bw     *bufio.Writer
	since  time.Time // idle since
	taken  time.Time // when Get handed it out, for armResponseDeadline
	// dl is the read and write deadline in force (zero: none), left
	// armed between requests whose answers came whole
	// (armResponseDeadline)
	dl time.Time

	// flushAndWait's state, kept here so that a request allocates nothing
	flushed  bool
	flushErr error
	step     func(fd uintptr) bool
	// dataWaiting's, for the same reason
	peeked  bool
	peekBuf [1]byte
	peek    func(fd uintptr) bool
}

// LimitReader lets at most n bytes through until n is reset; it bounds
// what a node may send as a response header, as http.Transport does.
type LimitReader struct {
	R io.Reader // what is read from
	N int64     // bytes still let through
}

var errHeaderTooLong = errors.New("proxy: server response headers exceeded limit")

// Read reads from R, failing once N bytes went through.
func (l *LimitReader) Read(p []byte) (int, error) {
	if l.N <= 0 {
		return 0, errHeaderTooLong
	}
	if int64(len(p)) > l.N {
		p = p[:l.N]
	}
	n, err := l.R.Read(p)
	l.N -= int64(n)
	return n, err
}

// RoundTrip sends a replayable bodiless request (http.RoundTripper).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	ctx := req.Context()
	for {
		// not replayable in Get's sense: the ReverseProxy path keeps the
		// look for unsolicited bytes on every reused connection
		nc, reused, err := t.Get(ctx, req.URL.Host, req.Host, false)
		if err != nil {
			return nil, err
		}
		if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.GotConn != nil {
			// as http.Transport does: the access log's connect_ms
			tr.GotConn(httptrace.GotConnInfo{Conn: nc.NetConn, Reused: reused})
		}
		res, err := nc.roundTrip(ctx, req)
		if err == nil {
			return res, nil
		}
		nc.NetConn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A kept-alive connection the node closed meanwhile fails before
		// any answer; the request is replayable, so it is sent again on a
		// fresh connection, as http.Transport does.
		if reused && NothingReceived(err) {
			continue
		}
		return nil, err
	}
}

// NothingReceived reports a failure of a kept-alive connection before
// any answer: the node closed it meanwhile, and a replayable request may
// be sent again on a fresh one.
func NothingReceived(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Get takes the most recently used idle connection to addr, or dials one.
// host is the request's Host, the server name when the pool's TLS takes
// it from the request. replayable says the caller sends the request again
// on a fresh connection when a reused one fails before any answer
// (NothingReceived); a connection idle for less than PeekAfter is then
// taken without looking for unsolicited bytes on it.
func (t *Transport) Get(ctx context.Context, addr, host string, replayable bool) (*Conn, bool, error) {
	now := time.Now()
	key, sn := addr, ""
	if t.tls != nil {
		sn = t.tls.ServerName(host, addr)
		key = t.tls.PoolKey(addr, sn)
	}
	for {
		t.mu.Lock()
		l := t.idle[key]
		if len(l) == 0 {
			t.mu.Unlock()
			break
		}
		nc := l[len(l)-1]
		l[len(l)-1] = nil
		t.idle[key] = l[:len(l)-1]
		t.mu.Unlock()
		idle := now.Sub(nc.since)
		if idle > t.idleTimeout || nc.dataWaiting(!replayable || idle > t.peekAfter, now) {
			nc.NetConn.Close()
			continue
		}
		nc.taken = now
		return nc, true, nil
	}
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil && outOfDescriptors(err) && t.dropIdle() > 0 {
		// The connection cap counts one node connection per client
		// connection, but idle connections to the other nodes may hold
		// more than that share (the round robin's uneven moments): they
		// go first, and the dial is tried once more.
		c, err = t.dial(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, false, err
	}
	nc := &Conn{t: t, key: key, taken: now}
	if t.tls != nil {
		if c, err = t.tls.Handshake(ctx, c, sn, t.dialer.Timeout); err != nil {
			return nil, false, err
		}
	} else if sc, ok := c.(syscall.Conn); ok {
		nc.rc, _ = sc.SyscallConn()
	}
	nc.NetConn = c
	nc.step, nc.peek = nc.flushStep, nc.peekStep
	// a plain socket is read and written with raw calls (sock)
	var rw io.ReadWriter = c
	if tc, ok := c.(*net.TCPConn); ok {
		if sio := sock.New(tc); sio != nil {
			rw = sio
		}
	}
	nc.lr.R = rw
	nc.Reader = bufio.NewReaderSize(&nc.lr, nodeBufSize)
	nc.bw = bufio.NewWriterSize(rw, nodeBufSize)
	return nc, false, nil
}

// dataWaiting reports bytes (or EOF) that arrived on an idle connection:
// the node closed it, or sent something nobody asked for. Either way it
// must not carry the next request, or its answer would be taken for the
// response. Bytes already read into the buffer are always seen; the
// socket is looked at (one non-blocking peek, no goroutine per idle
// connection) when look is set.
func (nc *Conn) dataWaiting(look bool, now time.Time) bool {
	if nc.Reader.Buffered() > 0 {
		return true
	}
	if nc.rc == nil || !look {
		return false
	}
	if !nc.dl.IsZero() && !nc.dl.After(now) {
		// a response deadline left armed has passed while the
		// connection was idle: the peek would fail on it, unseen
		nc.clearDeadline()
	}
	nc.peeked = false
	nc.rc.Read(nc.peek)
	return nc.peeked
}

// peekStep is dataWaiting's RawConn.Read callback: one non-blocking peek.
func (nc *Conn) peekStep(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), nc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	nc.peeked = n > 0 || (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN)
	return true
}

// flushAndWait sends what bw holds, then waits until the node's answer
// starts to arrive, both inside one RawConn.Read. A Flush followed by a
// plain read costs a read that only says EAGAIN (the node has not answered
// yet) before the goroutine parks. Inside the call the wait needs no read,
// and no readiness report can be discarded between the write and the
// wait. The answer is then read through br, and the first read finds it.
func (nc *Conn) flushAndWait() error {
	if nc.rc == nil || nc.Reader.Buffered() > 0 {
		// Bytes already in br may hold the answer, and then the socket
		// might never turn readable: read through br as before.
		return nc.bw.Flush()
	}
	nc.flushed, nc.flushErr = false, nil
	err := nc.rc.Read(nc.step)
	if nc.flushErr != nil {
		return nc.flushErr
	}
	if err != nil {
		return &net.OpError{Op: "read", Net: "tcp", Source: nc.NetConn.LocalAddr(), Addr: nc.NetConn.RemoteAddr(), Err: err}
	}
	return nil
}

// flushStep is flushAndWait's RawConn.Read callback: the first call
// writes and asks to wait; the next comes from the poller having seen the
// socket readable.
func (nc *Conn) flushStep(uintptr) bool {
	if nc.flushed {
		return true
	}
	nc.flushed = true
	nc.flushErr = nc.bw.Flush()
	return nc.flushErr != nil
}

// roundTrip sends req and reads the response header. The caller closes
// the connection on error.
func (nc *Conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	// A client that goes away ends the wait: a deadline in the past makes
	// the blocked read or write return at once.
	nc.armResponseDeadline()
	stop := context.AfterFunc(ctx, func() { nc.NetConn.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(nc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := nc.flushAndWait(); err != nil {
		stop()
		return nil, err
	}
	res, err := ReadFinalResponse(nc.Reader, &nc.lr, req, func(res *http.Response) error {
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			return trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header))
		}
		return nil
	})
	if err != nil {
		stop()
		return nil, err
	}
	nc.clearDeadline()
	body := &nodeBody{rc: res.Body, nc: nc, stop: stop, reuse: !res.Close && !req.Close}
	if res.Body == http.NoBody {
		body.eof = true
	}
	res.Body = body
	return res, nil
}

// ReadFinalResponse reads response heads from br until one that is not
// informational (a 101 counts as final), handing each informational one
// to got1xx. Each head is bounded by MaxHeaderBytes through lr, which
// reads under br; the final response's body is not bounded.
func ReadFinalResponse(br *bufio.Reader, lr *LimitReader, req *http.Request, got1xx func(*http.Response) error) (*http.Response, error) {
	for n1xx := 0; ; n1xx++ {
		lr.N = MaxHeaderBytes
		res, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if res.StatusCode < 100 || res.StatusCode > 199 || res.StatusCode == http.StatusSwitchingProtocols {
			lr.N = 1<<63 - 1
			return res, nil
		}
		if n1xx >= nodeMax1xx {
			return nil, errors.New("proxy: too many 1xx informational responses")
		}
		if err := got1xx(res); err != nil {
			return nil, err
		}
	}
}

// nodeBody hands the connection back to the pool when the response body
// was read to its end, and closes it otherwise.
type nodeBody struct {
	rc    io.ReadCloser
	nc    *Conn
	stop  func() bool
	eof   bool
	reuse bool
	done  bool
}

func (b *nodeBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *nodeBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// stop reports false when the request's context already ended and
	// poisoned the connection's deadline.
	if b.stop() && b.eof && b.reuse {
		b.rc.Close() // at EOF: releases, reads nothing
		b.nc.t.Put(b.nc)
		return nil
	}
	// Not at the end: draining a body nobody wants could take long; the
	// connection goes instead.
	return b.nc.NetConn.Close()
}
