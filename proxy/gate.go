package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-lb/portico/proxy/h2"
	"github.com/portico-lb/portico/proxy/internal/sock"
)

// slot owns one listening socket for the process lifetime (or until a reload
// removes its bind). Each accepted connection passes the gate (connection
// cap, PROXY header, tcp allow list, TLS handshake) in its own goroutine, so a
// slow client never holds up the accept loop, and is then handed to the
// current frontend: the tcp handler or the slot's http.Server.
type slot struct {
	srv  *Server
	bind string
	ln   net.Listener
	tls  *tls.Config

	cur   atomic.Pointer[listenerRuntime]
	front atomic.Pointer[frontend]
	conns atomic.Int64
	// perClient counts connections by client address, for
	// max_conns_per_client (ratelimit.go)
	perClient clientConns

	closing chan struct{}
	wg      sync.WaitGroup // the accept loop and gate goroutines
	workers gateWorkers    // the gate goroutines between connections

	// deferSet, deferOn: TCP_DEFER_ACCEPT as last set on ln
	// (deferaccept.go); under Server.mu
	deferSet, deferOn bool
}

// frontend is the http.Server currently fed by a slot. A reload that changes
// server-level settings (timeouts, header limits) builds a new frontend; the
// old one drains its keep-alive connections and stops.
type frontend struct {
	key  frontendKey
	http *http.Server
	ln   *chanListener
	fast *fastConns
	h2   *h2.Conns
	done chan struct{} // closed when Serve returned
}

type frontendKey struct {
	readHeader, idle time.Duration
	maxHeaderBytes   int
}

func (s *slot) serve() {
	defer s.wg.Done()
	s.workers.init()
	var delay time.Duration
	var failures acceptFailures
	for {
		// Room under the process-wide cap first: at the cap, clients
		// wait in the kernel's accept queue until a connection ends.
		if !s.srv.conns.room(s.closing) {
			return
		}
		raw, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), acceptLogEvery)
			if n := failures.add(time.Now()); n > 0 {
				s.srv.log.Error("accept failed", "bind", s.bind, "err", err, "failures", n)
			}
			select {
			case <-time.After(delay):
			case <-s.closing:
				return
			}
			continue
		}
		delay = 0
		if !s.srv.conns.acquire(s.closing) {
			raw.Close() // shutting down; never admitted
			return
		}
		s.run(raw)
	}
}

// acceptLogEvery is the longest accept backoff, and the shortest time
// between two "accept failed" lines.
const acceptLogEvery = time.Second

// acceptFailures keeps an accept loop from writing a line per failed
// accept when they come by the thousand (out of descriptors): the first
// failure is logged, then at most one line per acceptLogEvery with the
// number of failures since the previous line. Successful accepts in
// between do not reset it: under descriptor exhaustion accepts alternate
// between failing and succeeding. One per accept loop, used by it alone.
type acceptFailures struct {
	last    time.Time // of the last line
	pending int       // failures since then, the one being logged included
}

// add counts one failure at now and returns how many failures the line to
// write now reports, or 0 when no line is due.
func (f *acceptFailures) add(now time.Time) int {
	f.pending++
	if !f.last.IsZero() && now.Sub(f.last) < acceptLogEvery {
		return 0
	}
	n := f.pending
	f.last, f.pending = now, 0
	return n
}

// admitted is a connection through the gate that its caller serves (run
// it): on the fast path, as an HTTP/2 connection, or as a tcp listener's
// tunnel. The zero value means admit dealt with the connection itself.
type admitted struct {
	c   net.Conn // what the fast path reads and writes (cc, or TLS over it)
	cc  *clientConn
	h2  *tls.Conn        // set: an HTTP/2 connection
	tcp *listenerRuntime // set: a tunnel of this tcp listener
}

// run serves an admitted connection once admit's frame is gone: that
// frame is large (the gate's steps), and kept under every request it
// would make the goroutine's stack grow to 8 KiB where 4 KiB do; an idle
// keep-alive connection keeps its goroutine's stack. An HTTP/2
// connection, long-lived and mostly idle, is served on a goroutine of its
// own: this one's stack grew to 16 KiB in the handshake, and goes back to
// wait for the next connection (gateworkers.go), while the new one starts
// small and grows only to what serving takes, 4 KiB (docs/performance.md,
// "Memory per idle connection").
func (a admitted) run(s *slot) {
	if a.h2 == nil {
		a.serve(s)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		a.serve(s)
	}()
}

func (a admitted) serve(s *slot) {
	switch {
	case a.tcp != nil:
		if wait := s.srv.serveTCP(a.cc, a.tcp); wait != nil {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				wait()
			}()
		}
	case a.h2 != nil:
		s.serveH2(a.h2)
	case a.c != nil:
		s.serveFast(a.c, a.cc)
	}
}

// admit runs the gate for one connection: the caps, the PROXY header, the
// allow list, the TLS handshake and the hand-off, in that order. The steps
// share the connection's release path, which is why they stay in one
// function. A connection to serve is returned (admitted.run).
func (s *slot) admit(raw net.Conn) admitted {
	lr := s.cur.Load()
	m := s.srv.metrics
	// Count first, then compare: connections admitted concurrently can
	// never slip past the cap together.
	if n := s.conns.Add(1); lr.cfg.MaxConns > 0 && n > int64(lr.cfg.MaxConns) {
		s.conns.Add(-1)
		m.denied(lr.cfg.Name, "conn-limit")
		raw.Close()
		s.srv.conns.release()
		return admitted{}
	}
	counted := lr.rm.connOpened()
	cc := &clientConn{Conn: raw, start: time.Now()}
	cc.onClose = func() { s.conns.Add(-1); counted.closed(); s.srv.conns.release() }
	cc.peer = addrPort(raw.RemoteAddr())
	cc.local = addrPort(raw.LocalAddr())
	cc.client = cc.peer
	if tc, ok := raw.(*net.TCPConn); ok {
		cc.rio = sock.New(tc)
		cc.wio = cc.rio
	}

	if lr.cfg.AcceptProxyProtocol {
		if !lr.trusted(cc.peer.Addr()) {
			s.reject(cc, lr, "proxy-untrusted", "PROXY header required from a trusted peer")
			return admitted{}
		}
		pc, client, err := readProxyHeader(raw, lr.cfg.ProxyHeaderTimeout, cc.peer)
		if err != nil {
			s.reject(cc, lr, "proxy-header", err.Error())
			return admitted{}
		}
		cc.client, cc.Conn = client, pc
		cc.rio = nil // pc may hold bytes past the header
	}
	if !s.admitClient(cc, lr) {
		return admitted{}
	}

	switch lr.cfg.Mode {
	case "tcp":
		if !lr.adm.AdmitConn(cc.client.Addr()).Allow {
			s.reject(cc, lr, "allow", "client not in the listener's allow list")
			return admitted{}
		}
		if tc, ok := raw.(*net.TCPConn); ok {
			// A long-lived tunnel notices a vanished peer (Go's defaults:
			// probes after 15 s idle, every 15 s, 9 of them).
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
		}
		return admitted{cc: cc, tcp: lr}
	case "https":
		tc := tls.Server(cc, s.tls)
		ctx, cancel := context.WithTimeout(s.srv.drain, lr.cfg.TLSHandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			m.tlsFailed(lr.cfg.Name)
			s.srv.log.Debug("tls handshake failed", "listener", lr.cfg.Name, "client", cc.client.String(), "err", err)
			cc.Close()
			return admitted{}
		}
		cs := tc.ConnectionState()
		cc.tlsVersion, cc.sni = cs.Version, cs.ServerName
		h2 := cs.NegotiatedProtocol == "h2"
		if s.srv.fastOff {
			if h2 {
				s.handOff(tc, cc) // net/http's HTTP/2 server needs the *tls.Conn
			} else {
				// for the 408 on a stalled head, and the write limit
				s.handOff(&prefixConn{Conn: tc, wlimit: s.srv.progressLimit(lr.cfg.IdleTimeout), timeout: lr.timeout408}, cc)
			}
			return admitted{}
		}
		if h2 {
			return admitted{h2: tc}
		}
		return admitted{c: tc, cc: cc}
	default:
		if s.srv.fastOff || lr.redirects() { // the fast path is for proxying
			// for the 408 on a stalled head, and the write limit
			s.handOff(&prefixConn{Conn: cc, wlimit: s.srv.progressLimit(lr.cfg.IdleTimeout), timeout: lr.timeout408}, cc)
			return admitted{}
		}
		return admitted{c: cc, cc: cc}
	}
}

// admitClient applies max_conns_per_client to the connection's client
// (the peer, or the PROXY header's source): over it, the connection is
// closed. An admitted connection is counted until it closes.
func (s *slot) admitClient(cc *clientConn, lr *listenerRuntime) bool {
	max := lr.cfg.MaxConnsPerClient
	if max <= 0 {
		return true
	}
	a := cc.client.Addr().Unmap()
	if !s.perClient.acquire(a, max) {
		// Counted, not logged at Info: a flood would write a line per
		// connection (as for max_conns).
		m := s.srv.metrics
		m.denied(lr.cfg.Name, "client-conn-limit")
		m.limitedBy(lr.cfg.Name, "conns")
		s.srv.log.Debug("connection refused", "listener", lr.cfg.Name, "client", cc.client.String(),
			"reason", "client-conn-limit")
		cc.Close()
		return false
	}
	closed := cc.onClose
	cc.onClose = func() { s.perClient.release(a); closed() }
	return true
}

func (s *slot) reject(cc *clientConn, lr *listenerRuntime, reason, msg string) {
	s.srv.metrics.denied(lr.cfg.Name, reason)
	s.srv.log.Info("connection refused", "listener", lr.cfg.Name, "peer", cc.peer.String(),
		"client", cc.client.String(), "reason", reason, "detail", msg)
	cc.Close()
}

// handOff gives a connection to the current frontend, retrying on the next
// one when a reload replaced it meanwhile.
func (s *slot) handOff(c net.Conn, cc *clientConn) {
	for {
		f := s.front.Load()
		if f == nil {
			cc.Close()
			return
		}
		select {
		case f.ln.ch <- c:
			return
		case <-f.ln.closed:
			// replaced or shutting down; try the newest frontend
			if s.front.Load() == f {
				c.Close()
				return
			}
		case <-s.closing:
			c.Close()
			return
		}
	}
}

// chanListener feeds admitted connections to an http.Server.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{}), addr: addr}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// newFrontend builds the http.Server for a listener's settings.
func (s *slot) newFrontend(lr *listenerRuntime) *frontend {
	key := frontendKey{lr.cfg.ReadHeaderTimeout, lr.cfg.IdleTimeout, lr.cfg.MaxHeaderBytes}
	f := &frontend{key: key, ln: newChanListener(s.ln.Addr()), fast: newFastConns(), h2: h2.NewConns(), done: make(chan struct{})}
	hs := &http.Server{
		Handler:           &httpHandler{slot: s},
		ReadHeaderTimeout: key.readHeader,
		IdleTimeout:       key.idle,
		MaxHeaderBytes:    key.maxHeaderBytes,
		// "OPTIONS *" must reach the handler (and get a 400 there) rather
		// than the server's built-in answer, so every request is judged.
		DisableGeneralOptionsHandler: true,
		BaseContext:                  func(net.Listener) context.Context { return s.srv.drain },
		ConnContext:                  withConn,
		ErrorLog:                     slog.NewLogLogger(s.srv.log.Handler(), slog.LevelDebug),
	}
	hs.SetKeepAlivesEnabled(true)
	f.http = hs
	return f
}

func (f *frontend) start() {
	go func() {
		defer close(f.done)
		_ = f.http.Serve(f.ln)
	}()
}

// stop closes the frontend gracefully within ctx, then forcibly.
func (f *frontend) stop(ctx context.Context) {
	f.ln.Close()
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		f.fast.stop(ctx)
	}()
	h2Done := make(chan struct{})
	go func() {
		defer close(h2Done)
		f.h2.Stop(ctx)
	}()
	if err := f.http.Shutdown(ctx); err != nil {
		f.http.Close()
	}
	<-f.done
	<-fastDone
	<-h2Done
}
