package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-lb/portico/accesslog"
	"github.com/portico-lb/portico/proxy/filter"
	"github.com/portico-lb/portico/proxy/internal/tunnel"
	"github.com/portico-lb/portico/proxy/internal/upstream"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// Websocket upgrades are proxied here, not through httputil.ReverseProxy.
//
// ReverseProxy keeps four goroutines per tunnel for the tunnel's whole
// life: net/http's serving goroutine, blocked in handleUpgradeResponse on a
// stack of about 16 KiB, one watching the request context, and two copiers.
// It also keeps the server's hijacked buffered reader, the buffered writer
// Hijack returns, and http.Transport's buffered reader and writer on the
// node side: tens of KiB per idle tunnel (docs/performance.md). Here the
// handler does the handshake itself, with net/http's own serialiser and
// parser ((*http.Request).Write, http.ReadResponse), hands
// the bytes already buffered on either side to the other, and returns:
// what stays is the two connections. Between plain TCP sockets a tunnel
// loop moves the bytes (package tunnel), and one goroutine waits for the
// end to log it; otherwise (TLS, bytes buffered above a socket) two copy
// goroutines do, borrowing their buffers only while bytes move where they
// can (tunnel.Pump). Every other request stays on ReverseProxy.

// handshakeBufSize is the node side's buffered writer and reader during
// the handshake; both are garbage once the tunnel runs.
const handshakeBufSize = 4 << 10

// serveUpgrade proxies an admitted websocket upgrade (HTTP/1.1). It
// reports true when the node switched protocols: the tunnel then runs on
// its own goroutines and writes the request's access-log record when it
// ends. Otherwise the client has its answer (the node's, or an error) and
// the caller observes the request as usual.
func (h *httpHandler) serveUpgrade(w *statusWriter, r *http.Request, st *reqState, start time.Time) bool {
	s := h.slot.srv
	s.websocks.Add(1) // Shutdown waits for the tunnel, not for this handler
	tun := newTunnel(st.lr.cfg.TunnelIdleTimeout, nil)
	st.tun = tun
	t := &wsTunnel{s: s, st: st, tun: tun, start: start,
		stopDrain: context.AfterFunc(s.drain, func() { tun.close(reasonShutdown) })}

	up, br, res, err := h.handshake(w, r, st)
	if err != nil {
		t.abandon()
		s.proxyError(w, r, st, err)
		return false
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.abandon()
		stop := context.AfterFunc(r.Context(), func() { up.Close() })
		err := s.relayResponse(w, res)
		stop()
		up.Close()
		if err != nil {
			// A truncated body must not look complete: abort the
			// response, as ReverseProxy does.
			s.observeRequest(st.lr, st, r, w, start)
			panic(http.ErrAbortHandler)
		}
		return false
	}
	if ws, ok := filter.UpgradeVerdict(res.Header["Upgrade"]); !ws || !ok ||
		!httpguts.HeaderValuesContainsToken(res.Header["Connection"], "Upgrade") {
		t.abandon()
		up.Close()
		s.proxyError(w, r, st, fmt.Errorf("server switched to %q when websocket was requested", res.Header.Get("Upgrade")))
		return false
	}
	if !wsAcceptValid(r.Header, res.Header) {
		t.abandon()
		up.Close()
		s.proxyError(w, r, st, fmt.Errorf("server's Sec-WebSocket-Accept does not answer the client's key"))
		return false
	}
	client, crw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.abandon()
		up.Close()
		s.proxyError(w, r, st, fmt.Errorf("hijack: %w", err))
		return false
	}
	st.lr.resp.apply(res.Header) // the 101 is an answer too
	head, headLen := switchHead(res, br)
	var early []byte // what the client sent after its request
	if n := crw.Reader.Buffered(); n > 0 {
		early = make([]byte, n)
		crw.Reader.Read(early) // from the buffer only: n bytes are there
	}
	// From here on nothing may keep net/http's connection, request or
	// buffers alive: the tunnel holds only what it needs.
	st.sw.ResponseWriter = nil
	t.line = lineOf(r, st)
	t.client, t.up = client, up
	t.begin()
	go t.run(head, headLen, early)
	return true
}

// wsTunnel is a websocket tunnel after the handshake.
type wsTunnel struct {
	s         *Server
	st        *reqState // for the access log; holds no response writer
	line      accesslog.Line
	start     time.Time
	tun       *liveTunnel
	stopDrain func() bool
	client    net.Conn // the hijacked connection (a *tls.Conn on https listeners)
	up        *trackedConn
}

// abandon undoes serveUpgrade's setup when no tunnel came of it.
func (t *wsTunnel) abandon() {
	t.stopDrain()
	t.tun.setUpstream(nil)
	t.tun.finish()
	t.s.websocks.Done()
}

// begin does the tunnel's bookkeeping: the node's tunnel list (a node
// already removed by a reload gets its tunnel closed at once), in-flight
// count and metric, and the connections to close with it.
func (t *wsTunnel) begin() {
	st, tun := t.st, t.tun
	n := st.node
	tun.node = n
	n.tunnelN.Add(1)
	t.s.metrics.tunnel(st.lr.cfg.Name, "websocket", 1)
	if !n.addTunnel(tun) {
		tun.close(reasonRemoved)
	}
	if st.cc != nil {
		// below TLS on https listeners; counts activity both ways
		tun.add(st.cc)
		st.cc.tun.Store(tun)
	} else {
		tun.add(t.client)
	}
}

// run copies both ways until either side ends, then closes both, and
// settles the tunnel's accounts once both copies are done. It owns the
// client-to-node copy; the tunnel's close (idle, removed server, shutdown)
// stops both by closing the connections.
func (t *wsTunnel) run(head []byte, headLen int, early []byte) {
	var sent, sentUp int64 // written before the copies: to the client, to the node
	if cs, us := t.loopSockets(); cs != nil {
		// The 101 and the client's early bytes go first, as the copies
		// would send them; then the loop takes over, or else the copies.
		n, err := t.client.Write(head)
		sent, head = int64(n), nil
		if err == nil && len(early) > 0 {
			n, err = t.up.Conn.Write(early)
			sentUp, early = int64(n), nil
		}
		if err != nil {
			t.closeConns()
			t.end(sentUp, max(sent-int64(headLen), 0))
			return
		}
		if h := t.s.l4.Adopt(cs, us, tunnel.Opts{Whole: true, Touch: &t.tun.last, WS: t.up.ws}); h != nil {
			t.tun.add(h)
			t.up.loop.Store(h)
			if t.up.ws.Going.Load() { // a go-away the loop could not hear yet
				h.GoAway()
			}
			r := h.Wait()
			t.closeConns()
			t.end(sentUp+r.Up, max(sent+r.Down-int64(headLen), 0))
			return
		}
	}
	in := make(chan int64, 1)
	go t.copyUp(early, in)
	out := sent + tunnel.Pump(t.client, t.up, head, t.s.tunBufs) - int64(headLen)
	t.closeConns()
	t.end(sentUp+<-in, max(out, 0))
}

// loopSockets returns the two TCP sockets of the tunnel when both are
// plain, with nothing buffered above them: then a tunnel loop can move
// its bytes. Activity still feeds the tunnel's idle watch there, and a
// going-away close frame is still placed between two of the node's
// frames.
func (t *wsTunnel) loopSockets() (client, node *net.TCPConn) {
	cs, _, _ := tunnel.ReadEnd(t.client)
	us, _, _ := tunnel.ReadEnd(t.up)
	if cs == nil || us == nil || t.up.ws == nil {
		return nil, nil
	}
	return cs, us
}

func (t *wsTunnel) copyUp(early []byte, in chan<- int64) {
	n := tunnel.Pump(t.up, t.client, early, t.s.tunBufs)
	t.closeConns()
	in <- n
}

func (t *wsTunnel) closeConns() {
	t.client.Close()
	t.up.Close()
}

func (t *wsTunnel) end(in, out int64) {
	t.stopDrain()
	t.tun.finish()
	st, tun := t.st, t.tun
	if st.cc != nil {
		st.cc.tun.CompareAndSwap(tun, nil)
	}
	tun.node.removeTunnel(tun)
	tun.node.tunnelN.Add(-1)
	t.s.metrics.tunnel(st.lr.cfg.Name, "websocket", -1)
	t.s.observe(st.lr, st, &t.line, http.StatusSwitchingProtocols, in, out, t.start)
	t.s.websocks.Done()
}

// handshake sends the upgrade request to a node (the next one when a dial
// fails, as the retrier does) and reads the response head. The node's
// side is registered with the tunnel from the dial on, so an idle timeout
// or shutdown during the handshake ends it too.
func (h *httpHandler) handshake(w http.ResponseWriter, r *http.Request, st *reqState) (*trackedConn, *bufio.Reader, *http.Response, error) {
	s, p := h.slot.srv, st.lr.pool
	out := upgradeRequest(r, st)
	ctx := r.Context()
	d := net.Dialer{Timeout: p.cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	var up *trackedConn
	var br *bufio.Reader
	var res *http.Response
	// A failed dial moves on to the next node; once the handshake went
	// out it is not repeated (replay false).
	err := s.forEachNode(ctx, p, &st.nodeTry, false, func(n *Node) error {
		c, err := d.DialContext(ctx, "tcp", n.addr)
		if err != nil {
			return err
		}
		if p.tls != nil {
			// a *tls.Conn has no raw socket for the tunnel loop:
			// loopSockets sends such a tunnel to the copy goroutines
			if c, err = p.tls.Handshake(ctx, c, p.tls.ServerName(r.Host, n.addr), p.cfg.ConnectTimeout); err != nil {
				return err
			}
		}
		st.nodeTry.gotConn()
		up = &trackedConn{Conn: c, tun: st.tun, ws: tunnel.NewWSFramer()}
		st.tun.add(up)
		st.tun.setUpstream(up)
		out.URL.Host = n.addr
		br, res, err = exchange(ctx, w, up, out, p.cfg.ResponseTimeout)
		if err != nil {
			up.Close()
		}
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return up, br, res, nil
}

// upgradeRequest builds the request a node sees, as ReverseProxy does for
// an upgrade: hop-by-hop headers removed (also those the client's
// Connection header names), Connection and Upgrade set again for the
// switch, the client's forwarding headers dropped, then the rewrite every
// proxied request gets.
func upgradeRequest(r *http.Request, st *reqState) *http.Request {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Close = false
	if r.ContentLength == 0 {
		out.Body = nil
	}
	h := out.Header
	wire.RemoveHopByHop(h)
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		h["Te"] = []string{"trailers"}
	}
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = []string{"websocket"}
	st.rewrite(r, out)
	return out
}

// exchange writes out on c and reads the response head, each within timeout,
// passing informational responses on to the client as ReverseProxy does.
// A client that goes away ends the wait at once.
func exchange(ctx context.Context, w http.ResponseWriter, c net.Conn, out *http.Request, timeout time.Duration) (*bufio.Reader, *http.Response, error) {
	if timeout > 0 {
		// a node that takes no byte of the request is given up on as one
		// that does not answer it; set before the client's going away can
		// poison the deadline, which this must not undo
		c.SetWriteDeadline(time.Now().Add(timeout))
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	br, res, err := exchangeHead(w, c, out, timeout)
	if !stop() {
		return nil, nil, ctx.Err() // the deadline is poisoned
	}
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Time{})
	return br, res, nil
}

func exchangeHead(w http.ResponseWriter, c net.Conn, out *http.Request, timeout time.Duration) (*bufio.Reader, *http.Response, error) {
	bw := bufio.NewWriterSize(c, handshakeBufSize)
	if err := out.Write(bw); err != nil {
		return nil, nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, err
	}
	if timeout > 0 {
		c.SetReadDeadline(time.Now().Add(timeout))
	}
	lr := &upstream.LimitReader{R: c}
	br := bufio.NewReaderSize(lr, handshakeBufSize)
	res, err := upstream.ReadFinalResponse(br, lr, out, func(res *http.Response) error {
		wh := w.Header()
		for k, vv := range res.Header {
			wh[k] = vv
		}
		w.WriteHeader(res.StatusCode)
		clear(wh)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return br, res, nil
}

// switchHead is what the client gets first: the node's 101 head with its
// headers as sent (Connection and Upgrade included), followed by the bytes
// the node sent after it that the handshake reader already holds. headLen
// is the length of the head alone.
func switchHead(res *http.Response, br *bufio.Reader) (head []byte, headLen int) {
	reason, ok := strings.CutPrefix(res.Status, "101 ")
	if !ok || reason == "" {
		reason = "Switching Protocols"
	}
	var b bytes.Buffer
	b.Grow(256 + br.Buffered())
	b.WriteString("HTTP/1.1 101 ")
	b.WriteString(reason)
	b.WriteString("\r\n")
	res.Header.Write(&b)
	b.WriteString("\r\n")
	headLen = b.Len()
	if n := br.Buffered(); n > 0 {
		p, _ := br.Peek(n)
		b.Write(p)
	}
	return b.Bytes(), headLen
}

// relayResponse answers the client with a node's answer other than 101, as
// ReverseProxy would: hop-by-hop headers removed, the body copied with the
// server's buffers, flushed as it comes when its length is unknown, and
// trailers passed on.
func (s *Server) relayResponse(w *statusWriter, res *http.Response) error {
	wire.RemoveHopByHop(res.Header)
	h := w.Header()
	for k, vv := range res.Header {
		h[k] = vv
	}
	if len(res.Trailer) > 0 {
		names := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	buf := s.buffers.Get()
	defer s.buffers.Put(buf)
	flush := res.ContentLength == -1
	for {
		n, err := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				w.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	for k, vv := range res.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return nil
}
