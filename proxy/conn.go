package proxy

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/portico-lb/portico/proxy/internal/sock"
	"github.com/portico-lb/portico/proxy/internal/tunnel"
)

// clientConn is an accepted client connection that passed the gate. It
// carries the client identity decided at the connection level (the peer, or
// the PROXY source from a trusted upstream) and reports tunnel activity.
type clientConn struct {
	net.Conn
	peer   netip.AddrPort // the TCP peer
	client netip.AddrPort // the PROXY source when one was accepted, else peer
	local  netip.AddrPort
	start  time.Time
	// tlsVersion and sni are the TLS handshake's, on https listeners
	// (tls.VersionTLS13, ...; the server name the client asked for)
	tlsVersion uint16
	sni        string

	tun       atomic.Pointer[liveTunnel]
	closeOnce sync.Once
	onClose   func()

	// rio and wio read and write the plain socket under c with raw calls
	// (sock); nil where there is none. A PROXY-header reader may hold
	// bytes above the socket: then reads go through it (rio is nil).
	rio, wio *sock.IO
}

func (c *clientConn) Read(b []byte) (int, error) {
	var n int
	var err error
	if c.rio != nil {
		n, err = c.rio.Read(b)
	} else {
		n, err = c.Conn.Read(b)
	}
	if n > 0 {
		if t := c.tun.Load(); t != nil {
			t.touch()
		}
	}
	return n, err
}

func (c *clientConn) Write(b []byte) (int, error) {
	var n int
	var err error
	if c.wio != nil {
		n, err = c.wio.Write(b)
	} else {
		n, err = c.Conn.Write(b)
	}
	if n > 0 {
		if t := c.tun.Load(); t != nil {
			t.touch()
		}
	}
	return n, err
}

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// ReadEnd gives a tunnel the socket under c unless a PROXY-header reader
// may hold bytes above it; what c's Read does on a read, the tunnel's
// activity, is done per raw read.
func (c *clientConn) ReadEnd() (*net.TCPConn, func([]byte), func() bool) {
	tc, _ := c.Conn.(*net.TCPConn) // a *proxyproto.Conn may hold bytes
	if tc == nil {
		return nil, nil, nil
	}
	return tc, func([]byte) { c.touch() }, nil
}

// WriteEnd gives a tunnel the socket under c: c's Write records the
// tunnel's activity, and a PROXY-header reader buffers reads only.
func (c *clientConn) WriteEnd() (net.Conn, func()) {
	if pc, ok := c.Conn.(*proxyproto.Conn); ok {
		return pc.Raw(), c.touch
	}
	return c.Conn, c.touch
}

// touch records activity on the connection's tunnel, if it has one.
func (c *clientConn) touch() {
	if t := c.tun.Load(); t != nil {
		t.touch()
	}
}

// trackedConn is a connection to a server that reports tunnel activity.
type trackedConn struct {
	net.Conn
	tun *liveTunnel
	ws  *tunnel.WSFramer // websocket tunnels: frame boundaries, for a 1001 close
	// loop is set when the tunnel's bytes move on a tunnel loop, which
	// then reads the node instead of this connection.
	loop atomic.Pointer[tunnel.Handle]
}

func (c *trackedConn) Read(b []byte) (int, error) {
	f := c.ws
	if f != nil && f.Going.Load() {
		if n, err, ok := f.Inject(b); ok {
			return n, err
		}
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.tun.touch()
		if f != nil {
			f.Advance(b[:n])
		}
	}
	if n == 0 && err != nil && f != nil && f.Going.Load() {
		if n, err, ok := f.Inject(b); ok {
			return n, err
		}
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.tun.touch()
	}
	return n, err
}

// ReadEnd gives a tunnel the node's socket; what c's Read does on a read
// (the tunnel's activity, a websocket's frame boundaries) is done per raw
// read, until a websocket goes away and c's Read must end the stream.
func (c *trackedConn) ReadEnd() (*net.TCPConn, func([]byte), func() bool) {
	tc, _ := c.Conn.(*net.TCPConn)
	if tc == nil {
		return nil, nil, nil
	}
	if c.ws == nil {
		return tc, func([]byte) { c.tun.touch() }, nil
	}
	return tc, func(b []byte) {
		c.tun.touch()
		c.ws.Advance(b)
	}, c.ws.Going.Load
}

// WriteEnd gives a tunnel the node's socket, and the tunnel's activity
// that c's Write records.
func (c *trackedConn) WriteEnd() (net.Conn, func()) { return c.Conn, c.tun.touch }

// Both wrappers let a tunnel move bytes on their sockets.
var (
	_ tunnel.Wrapper = (*clientConn)(nil)
	_ tunnel.Wrapper = (*trackedConn)(nil)
)

// liveTunnel is one long-lived connection pair (a websocket or a tcp connection).
// It closes both sides when it has been silent both ways for idle, when its
// server is removed from its pool (after the pool's grace), or at shutdown.
type liveTunnel struct {
	idle   time.Duration
	last   atomic.Int64 // unix nanoseconds of the last byte either way
	timer  *time.Timer
	node   *Node
	reason atomic.Pointer[string]

	mu     sync.Mutex
	conns  []io.Closer
	closed bool
	up     *trackedConn // a websocket's node side, for a graceful 1001 close
}

// newTunnel starts the idle watch when idle > 0. A time.AfterFunc timer
// instead of a goroutine per tunnel keeps 10k idle tunnels cheap.
func newTunnel(idle time.Duration, node *Node) *liveTunnel {
	t := &liveTunnel{idle: idle, node: node}
	t.touch()
	if idle > 0 {
		t.timer = time.AfterFunc(idle, t.checkIdle)
	}
	return t
}

func (t *liveTunnel) touch() { t.last.Store(time.Now().UnixNano()) }

func (t *liveTunnel) checkIdle() {
	silent := time.Since(time.Unix(0, t.last.Load()))
	if silent >= t.idle {
		t.close("idle")
		return
	}
	t.timer.Reset(t.idle - silent)
}

// add registers a connection to close with the tunnel; if the tunnel is
// already closed the connection is closed at once.
func (t *liveTunnel) add(c io.Closer) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.conns = append(t.conns, c)
	t.mu.Unlock()
}

// close closes every connection of the tunnel once; the first reason wins.
// A websocket whose server was removed, or whose portico shuts down, is
// first asked to go away with a close frame; the connections are closed
// goAwayWait later in any case.
func (t *liveTunnel) close(reason string) {
	t.mu.Lock()
	if t.closed { // ended already, by itself or for another reason
		t.mu.Unlock()
		return
	}
	up := t.up
	t.up = nil
	t.mu.Unlock()
	if reason == reasonRemoved || reason == reasonShutdown {
		// The reason is set before the close frame goes out: the peers may
		// end the tunnel, and its record be written, as soon as they read it.
		t.reason.CompareAndSwap(nil, &reason)
		if up.goAway() {
			time.AfterFunc(goAwayWait, func() { t.closeNow(reason) })
			return
		}
	}
	t.closeNow(reason)
}

// setUpstream records a websocket's node side once the dial succeeded.
func (t *liveTunnel) setUpstream(c *trackedConn) {
	t.mu.Lock()
	t.up = c
	t.mu.Unlock()
}

// Why portico ends a tunnel, as logs and metrics say it.
const (
	reasonRemoved  = "server removed from pool"
	reasonShutdown = "shutdown"
)

func (t *liveTunnel) closeNow(reason string) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	t.reason.Store(&reason)
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
	for _, c := range conns {
		c.Close()
	}
}

// finish stops the idle watch when the tunnel ended on its own.
func (t *liveTunnel) finish() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
}

// why reports why the tunnel was closed by portico ("" when it ended by itself).
func (t *liveTunnel) why() string {
	if p := t.reason.Load(); p != nil {
		return *p
	}
	return ""
}

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
}
