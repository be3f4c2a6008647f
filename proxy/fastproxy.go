package proxy

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/portico-lb/portico/proxy/filter"
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
	if len(h.target) > lr.cfg.MaxURLLength || h.size > lr.cfg.MaxHeaderBytes {
		return false, false
	}
	peer := fc.cc.client.Addr()
	if lr.trusted(peer) {
		return false, false // net/http merges a trusted proxy's forwarding fields
	}
	hostHeader := string(h.host)
	v := lr.adm.Admit(AdmitRequest{Target: string(h.target), Host: hostHeader, HeaderCount: len(h.fields), Client: peer})
	if !v.Allow {
		return false, false // net/http answers, logs and counts the denial
	}
	canonical := v.Canonical

	s := fc.sl.srv
	st := &fc.st
	*st = reqState{lr: lr, cc: fc.cc, client: peer, canonical: canonical}
	st.nodeTry.reset()
	chooseRequestID(&st.id, s.ids, false, nil) // a trusted peer never gets here
	head := h.method[0] == 'H'
	fc.req = fc.appendNodeRequest(fc.req[:0], lr, canonical, v.Query, hostHeader)

	status, out, keep := fc.exchange(lr, st, head)
	keep = keep && !fc.closing
	method := "GET"
	if head {
		method = "HEAD"
	}
	s.observe(lr, st, reqLine{method: method, host: hostHeader, path: canonical, proto: "HTTP/1.1",
		userAgent: h.userAgent()}, status, 0, out, start)
	return keep, true
}

// appendNodeRequest writes the request head a node receives.
func (fc *fastConn) appendNodeRequest(b []byte, lr *listenerRuntime, canonical, query, host string) []byte {
	h := &fc.h
	b = append(b, h.method...)
	b = append(b, ' ')
	b = append(b, filter.Escape(canonical)...)
	b = append(b, query...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for _, f := range h.fields {
		if isIdentityField(f.name) {
			continue
		}
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
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
	nc, res, err := fc.call(p, &st.nodeTry, head)
	switch {
	case err != nil:
		return fc.fail(st, err)
	case res == nil:
		return fc.relaySimple(p.fast, nc, head)
	}
	return fc.relay(p.fast, nc, res, head)
}

// nodeCall is one fast-path request to a node and the head of its
// answer, for an HTTP/1.1 connection (fastConn) or an HTTP/2 stream.
type nodeCall struct {
	srv  *Server
	req  []byte                     // the request head for the node, kept for a retry
	rh   respHead                   // the answer's head, when parseRespHead took it
	info func(*http.Response) error // relays an informational answer
	// ctx, when set, is the request's (else the server's drain): the
	// dial ends with it, and bind ties each node connection to it
	ctx  context.Context
	bind func(*nodeConn)
}

// roundTrip writes the request to a connection to addr and reads the
// response head, retrying once on a fresh connection when a kept-alive one
// turns out to have been closed by the node. a learns when the connection
// was in hand.
func (fc *nodeCall) roundTrip(t *nodeTransport, addr string, head bool, a *nodeTry) (*nodeConn, *http.Response, error) {
	req := fc.srv.fastGET
	if head {
		req = fc.srv.fastHEAD
	}
	ctx := fc.srv.drain
	if fc.ctx != nil {
		ctx = fc.ctx
	}
	for {
		nc, reused, err := t.get(ctx, addr)
		if err != nil {
			return nil, nil, err
		}
		a.gotConn()
		if fc.bind != nil {
			fc.bind(nc)
		}
		res, err := fc.send(nc, req)
		if err == nil {
			return nc, res, nil
		}
		nc.c.Close()
		if reused && nothingReceived(err) {
			continue
		}
		return nil, nil, err
	}
}

func (fc *nodeCall) send(nc *nodeConn, req *http.Request) (*http.Response, error) {
	if _, err := nc.bw.Write(fc.req); err != nil {
		return nil, err
	}
	if nc.t.respTimeout > 0 {
		nc.c.SetReadDeadline(time.Now().Add(nc.t.respTimeout))
	}
	if err := nc.flushAndWait(); err != nil {
		return nil, err
	}
	simple, err := fc.peekResponse(nc, req.Method == http.MethodHead)
	if err != nil {
		return nil, err
	}
	var res *http.Response
	if !simple {
		// informational answers (103 Early Hints) go on to the client
		res, err = readFinalResponse(nc.br, &nc.lr, req, fc.info)
		if err != nil {
			return nil, err
		}
	}
	if nc.t.respTimeout > 0 {
		nc.c.SetReadDeadline(time.Time{})
	}
	return res, nil
}

// peekResponse reads the response head into fc.rh when parseRespHead
// takes it (simple), without consuming it. Otherwise nothing is consumed
// and http.ReadResponse reads it; err is only a failure before any byte.
func (fc *nodeCall) peekResponse(nc *nodeConn, head bool) (simple bool, err error) {
	nc.lr.n = nodeMaxHeaderBytes
	for {
		b, _ := nc.br.Peek(nc.br.Buffered())
		switch parseRespHead(b, &fc.rh, head) {
		case headFast:
			nc.lr.n = 1<<63 - 1
			return true, nil
		case headHandOff:
			return false, nil
		}
		if nc.br.Buffered() == nc.br.Size() {
			return false, nil
		}
		if _, err := nc.br.Peek(nc.br.Buffered() + 1); err != nil {
			if nc.br.Buffered() == 0 {
				return false, err
			}
			return false, nil // ReadResponse reports it
		}
	}
}

// relaySimple relays a response parseRespHead took: the node's field
// lines as they came, then exactly Content-Length body bytes.
func (fc *fastConn) relaySimple(t *nodeTransport, nc *nodeConn, head bool) (status int, out int64, keep bool) {
	rh := &fc.rh
	b := appendStatusLine(fc.out[:0], rh.code)
	for _, l := range rh.lines {
		b = append(b, l...)
		b = append(b, "\r\n"...)
	}
	if !rh.hasDate {
		b = fc.appendDate(b)
	}
	if fc.closeAfterAnswer() {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	fc.out = b
	fc.bw.Write(b)
	nc.br.Discard(rh.size)
	var err error
	if !head && rh.length > 0 {
		out, err = copyN(fc.bw, nc.br, rh.length)
	}
	if err == nil && !rh.close {
		t.put(nc)
	} else {
		nc.c.Close()
	}
	if err != nil {
		fc.abort = true
	}
	return rh.code, out, err == nil
}

// copyN relays n body bytes from a node's buffered reader to dst (a
// client connection's writer, or an HTTP/2 stream's), without a copy
// buffer of its own.
func copyN(dst io.Writer, br *bufio.Reader, n int64) (int64, error) {
	var done int64
	for done < n {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return done, err
			}
		}
		b, _ := br.Peek(int(min(int64(br.Buffered()), n-done)))
		w, err := dst.Write(b)
		br.Discard(w)
		done += int64(w)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// appendDate appends a Date field for the second the request began,
// formatted once per second.
func (fc *fastConn) appendDate(b []byte) []byte {
	s := fc.sl.srv
	sec := fc.start.Unix()
	d := s.date.Load()
	if d == nil || d.sec != sec {
		d = &dateLine{sec: sec}
		d.b = append(d.b, "Date: "...)
		d.b = fc.start.UTC().AppendFormat(d.b, http.TimeFormat)
		d.b = append(d.b, "\r\n"...)
		s.date.Store(d)
	}
	return append(b, d.b...)
}

// dateLine is a formatted Date field and the second it names.
type dateLine struct {
	sec int64
	b   []byte
}

// relay writes the node's response to the client and returns the node
// connection to the pool when its response was read to the end.
func (fc *fastConn) relay(t *nodeTransport, nc *nodeConn, res *http.Response, head bool) (status int, out int64, keep bool) {
	removeHopByHop(res.Header)
	fc.announceTrailers(res)
	bodyless := head || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified
	chunked := !bodyless && res.ContentLength < 0
	switch res.StatusCode {
	case http.StatusNotModified: // what net/http's server drops (RFC 9110 15.4.5)
		delete(res.Header, "Content-Type")
		delete(res.Header, "Content-Length")
	case http.StatusNoContent:
		delete(res.Header, "Content-Length")
	}
	if chunked {
		res.Header["Transfer-Encoding"] = []string{"chunked"}
	} else if !bodyless {
		res.Header["Content-Length"] = []string{strconv.FormatInt(res.ContentLength, 10)}
	}
	fc.writeHead(res.StatusCode, res.Header, fc.closeAfterAnswer())
	var err error
	eof := bodyless || res.Body == http.NoBody
	if !eof {
		out, eof, err = fc.copyBody(res, chunked)
	}
	if eof && !res.Close {
		res.Body.Close() // at EOF: reads nothing
		t.put(nc)
	} else {
		nc.c.Close()
	}
	if err != nil {
		fc.abort = true
	}
	return res.StatusCode, out, err == nil
}

// announceTrailers names the node's announced trailers, as ReverseProxy
// does (for a HEAD response too).
func (fc *fastConn) announceTrailers(res *http.Response) {
	if len(res.Trailer) == 0 {
		return
	}
	v := make([]byte, 0, 64)
	for k := range res.Trailer {
		if len(v) > 0 {
			v = append(v, ", "...)
		}
		v = append(v, k...)
	}
	res.Header["Trailer"] = []string{string(v)}
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
	if fc.h.close || fc.fs.stopping.Load() {
		fc.closing = true
	}
	return fc.closing
}

// writeHead writes a status line and header fields to the client, with a
// Date when the node sent none, as net/http's server adds.
func (fc *fastConn) writeHead(code int, hdr http.Header, close bool) {
	b := appendStatusLine(fc.out[:0], code)
	for k, vv := range hdr {
		if code < 200 && (k == "Content-Length" || k == "Transfer-Encoding") {
			continue // an informational response has no body (net/http drops both)
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendFieldValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	if _, ok := hdr["Date"]; !ok && code >= 200 {
		b = fc.appendDate(b)
	}
	if close {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	fc.out = b
	fc.bw.Write(b)
}

// appendFieldValue writes a field value as net/http's Header.Write does:
// CR and LF become spaces, so a value can never start another field.
func appendFieldValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// copyBody relays the response body; chunked re-frames it and writes the
// trailers. eof reports the node's body was read to its end.
func (fc *fastConn) copyBody(res *http.Response, chunked bool) (out int64, eof bool, err error) {
	s := fc.sl.srv
	if !chunked {
		// Straight into the client's buffer; full buffers are written on.
		out, err = fc.bw.ReadFrom(res.Body)
		return out, err == nil, err
	}
	buf := s.buffers.Get()
	defer s.buffers.Put(buf)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			fc.chunk = strconv.AppendInt(fc.chunk[:0], int64(n), 16)
			fc.chunk = append(fc.chunk, "\r\n"...)
			fc.bw.Write(fc.chunk)
			fc.bw.Write(buf[:n])
			fc.bw.WriteString("\r\n")
			out += int64(n)
			// streamed responses (server-sent events) go out as they come
			if werr := fc.bw.Flush(); werr != nil {
				return out, false, werr
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return out, false, rerr
		}
	}
	fc.bw.WriteString("0\r\n")
	for k, vv := range res.Trailer {
		for _, v := range vv {
			fc.bw.WriteString(k)
			fc.bw.WriteString(": ")
			fc.bw.Write(appendFieldValue(fc.chunk[:0], v))
			fc.bw.WriteString("\r\n")
		}
	}
	fc.bw.WriteString("\r\n")
	return out, true, nil
}

// fail answers a request no node answered, as proxyError does.
func (fc *fastConn) fail(st *reqState, err error) (status int, out int64, keep bool) {
	status, msg := failure(fc.sl.srv, st, err)
	hdr := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Content-Type-Options": {"nosniff"}}
	if status == http.StatusServiceUnavailable {
		hdr["Retry-After"] = []string{"5"}
	}
	hdr["Content-Length"] = []string{strconv.Itoa(len(msg))}
	fc.writeHead(status, hdr, fc.closeAfterAnswer())
	if fc.h.method[0] != 'H' {
		fc.bw.WriteString(msg)
		out = int64(len(msg))
	}
	return status, out, true
}

// failure logs why no node answered and picks the status and message
// the client gets, as proxyError does.
func failure(s *Server, st *reqState, err error) (status int, msg string) {
	status, msg, st.errKind = failureStatus(err)
	s.logProxyError(st, err)
	return status, msg + "\n"
}
