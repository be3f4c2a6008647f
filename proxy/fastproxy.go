package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/portico-lb/portico/accesslog"
	"github.com/portico-lb/portico/proxy/filter"
	"github.com/portico-lb/portico/proxy/internal/upstream"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// serveRequest serves the request in fc.h. served is false when the
// request must be judged by net/http instead (nothing was written then);
// keep is false when the connection must close after the response.
//
// What the node receives and what the client gets back are what the
// net/http path produces for the same request (a differential test holds
// both paths to that): the canonical path, the client's Host, the
// client's fields minus hop-by-hop and identity fields, and portico's
// X-Forwarded-*; the node's response minus hop-by-hop fields.
func (fc *fastConn) serveRequest(lr *listenerRuntime, start time.Time) (keep, served bool) {
	h := &fc.h
	if len(h.Target) > lr.cfg.MaxURLLength || h.Size > lr.cfg.MaxHeaderBytes {
		return false, false
	}
	peer := fc.cc.client.Addr()
	if lr.trusted(peer) {
		return false, false // net/http merges a trusted proxy's forwarding fields
	}
	// A keep-alive client names the same Host on every request: the
	// string made for the one before serves again.
	hostHeader := fc.host
	if string(h.Host) != hostHeader {
		hostHeader = string(h.Host)
	}
	v := lr.adm.Admit(AdmitRequest{Target: string(h.Target), Host: hostHeader, HeaderCount: len(h.Fields), Client: peer})
	if !v.Allow {
		return false, false // net/http answers, logs and counts the denial
	}
	canonical := v.Canonical

	s := fc.sl.srv
	st := &fc.st
	*st = reqState{lr: lr, cc: fc.cc, client: peer, canonical: canonical}
	st.nodeTry.reset(s.nodeTimes())
	chooseRequestID(&st.id, s.ids, false, nil) // a trusted peer never gets here
	head := h.Method[0] == 'H'
	fc.host = hostHeader
	fc.req = fc.appendNodeRequest(fc.req[:0], lr, canonical, v.Query, hostHeader)

	status, out, keep := fc.exchange(lr, st, head)
	keep = keep && !fc.closing
	method := "GET"
	if head {
		method = "HEAD"
	}
	s.observe(lr, st, &accesslog.Line{Method: method, Host: hostHeader, Path: canonical, Proto: "HTTP/1.1",
		UserAgent: h.UserAgent()}, status, 0, out, start)
	return keep, true
}

// appendNodeRequest writes the request head a node receives.
func (fc *fastConn) appendNodeRequest(b []byte, lr *listenerRuntime, canonical, query, host string) []byte {
	h := &fc.h
	b = append(b, h.Method...)
	b = append(b, ' ')
	b = append(b, filter.Escape(canonical)...)
	b = append(b, query...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for _, f := range h.Fields {
		if wire.IsIdentityField(f.Name) {
			continue
		}
		b = append(b, f.Name...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	b = appendForwarded(b, fc.st.client, lr.proto, host, &fc.st.id)
	b = append(b, "\r\n"...)
	return b
}

// exchange sends fc.out to the pool's nodes until one answers, as the
// retrier does for a replayable request, and relays the answer. It
// returns the status the client got, the body bytes sent, and whether the
// client connection may carry another request.
func (fc *fastConn) exchange(lr *listenerRuntime, st *reqState, head bool) (status int, out int64, keep bool) {
	p := lr.pool
	// Nothing pipelined behind this request: while the node works, a
	// hang-up of the client can be noticed and the node's work cancelled.
	watched := fc.br.Buffered() == fc.h.Size
	if watched {
		fc.watch.arm()
	}
	nc, res, err := fc.call(p, &st.nodeTry, head)
	if watched && fc.watch.disarm() {
		if err == nil {
			nc.NetConn.Close()
		}
		st.errKind = "client-gone"
		fc.abort = true
		return 499, 0, false
	}
	switch {
	case err != nil:
		return fc.fail(st, err)
	case res == nil:
		fc.rh.Lines = lr.resp.applyLines(fc.rh.Lines)
		return fc.relaySimple(p.fast, nc, head)
	}
	return fc.relay(p.fast, nc, res, head, lr.resp)
}

// nodeCall is one fast-path request to a node and the head of its
// answer, for an HTTP/1.1 connection (fastConn) or an HTTP/2 stream.
type nodeCall struct {
	srv  *Server
	req  []byte                     // the request head for the node, kept for a retry
	rh   wire.RespHead              // the answer's head, when wire.ParseRespHead took it
	info func(*http.Response) error // relays an informational answer
	// ctx, when set, is the request's (else the server's drain): the
	// dial ends with it, and bind ties each node connection to it
	ctx  context.Context
	bind func(*upstream.Conn)
	// host is the request's Host: the server name when the pool's TLS
	// takes it from the request
	host string
}

// roundTrip writes the request to a connection to addr and reads the
// response head, retrying once on a fresh connection when a kept-alive one
// turns out to have been closed by the node. a learns when the connection
// was in hand.
func (fc *nodeCall) roundTrip(t *upstream.Transport, addr string, head bool, a *nodeTry) (*upstream.Conn, *http.Response, error) {
	req := fc.srv.fastGET
	if head {
		req = fc.srv.fastHEAD
	}
	ctx := fc.srv.drain
	if fc.ctx != nil {
		ctx = fc.ctx
	}
	for {
		nc, reused, err := t.Get(ctx, addr, fc.host, true)
		if err != nil {
			return nil, nil, err
		}
		a.gotConn()
		if fc.bind != nil {
			fc.bind(nc)
		}
		res, err := nc.Send(fc.req, req, &fc.rh, fc.info)
		if err == nil {
			return nc, res, nil
		}
		nc.NetConn.Close()
		if reused && upstream.NothingReceived(err) {
			continue
		}
		return nil, nil, err
	}
}

// closeAfterAnswer decides, as a final answer's head is written, whether
// the connection closes after it: when the client asked, and when the
// frontend is stopping (a shutdown, or a reload that removed the listener
// or replaced its frontend). Deciding when the head is written, not when
// the request arrived, lets an answer that was in flight when the stop
// began still say so, as net/http's server does: the client then opens a
// new connection for its next request instead of losing it on a closed
// one. The decision holds for the rest of the connection.
func (fc *fastConn) closeAfterAnswer() bool {
	if fc.h.Close || fc.fs.stopping.Load() {
		fc.closing = true
	}
	return fc.closing
}

// failure logs why no node answered and picks the status and message
// the client gets, as proxyError does.
func failure(s *Server, st *reqState, err error) (status int, msg string) {
	status, msg, st.errKind = failureStatus(err)
	s.logProxyError(st, err)
	return status, msg
}
