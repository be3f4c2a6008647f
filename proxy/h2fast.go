package proxy

import (
	"io"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/portico-lb/portico/accesslog"
	"github.com/portico-lb/portico/proxy/filter"
	"github.com/portico-lb/portico/proxy/h2"
	"github.com/portico-lb/portico/proxy/internal/upstream"
	"github.com/portico-lb/portico/proxy/internal/wire"
)

// The HTTP/2 fast path. A bodiless GET or HEAD stream that the HTTP/1.1
// fast path would serve (every check passes, no field that needs
// ReverseProxy's judgement) goes to a node the same way: its request
// head written straight from the stream's fields to a kept-alive node
// connection (nodeCall), and the answer relayed into the stream's
// writer, the node's field lines as they came when wire.ParseRespHead takes
// them. This skips ReverseProxy's second request and header map, its
// hop-by-hop scans and net/http's request writer and response reader.
// Anything else is served by httpHandler; a differential test holds the
// two paths to the same node request and the same answer.

// h2Fast is a stream's fast-path state.
type h2Fast struct {
	nodeCall
	rs reqState
	st *h2.Stream
	w  *h2.Writer // the stream's
	// a node connection is tied to the stream (bindNode)
	tied bool
	// fp's methods as nodeCall takes them, made once per h2Fast: a
	// method value is an allocation each time
	bindFn func(*upstream.Conn)
	infoFn func(*http.Response) error
	// scratch for a small answer's field lines and body (relayOwned)
	own   []byte
	lines [][]byte
}

// h2FastScratch bounds the scratch a pooled h2Fast keeps: a small
// answer's lines and body fit.
const h2FastScratch = 4 * upstream.SmallAnswer

// h2FastLines bounds the line table of an answer's head a pooled h2Fast
// keeps.
const h2FastLines = 64

// bindNode ties a node connection to the stream: when the stream ends
// before the exchange does (the client reset it, portico reset it after
// a stream error or a stall, the connection closed), the node
// connection is closed, which ends the node's work on it at once.
func (fp *h2Fast) bindNode(nc *upstream.Conn) {
	fp.st.Tie(nc.NetConn)
	fp.tied = true
}

// release unties the node connection from the stream before it goes
// back to the pool; false when the stream ended first and the
// connection was closed for it.
func (fp *h2Fast) release() bool {
	if !fp.tied {
		return true
	}
	fp.tied = false
	return fp.st.Untie()
}

// serveH2Fast serves st and reports true, or reports false having done
// nothing, when the stream must go to httpHandler.
func (s *slot) serveH2Fast(st *h2.Stream, cc *clientConn) bool {
	r := st.Request()
	head := r.Method == http.MethodHead
	if !head && r.Method != http.MethodGet || r.Body != http.NoBody || r.Trailer != nil || cc == nil {
		return false
	}
	start := time.Now()
	lr := s.cur.Load()
	peer := cc.client.Addr()
	if lr.trusted(peer) || !strings.HasPrefix(r.RequestURI, "/") {
		return false // the handler merges a trusted proxy's forwarding fields
	}
	for k := range r.Header {
		if wire.HandOffField(k) {
			// as on HTTP/1.1; the connection-specific fields never get
			// this far
			return false
		}
	}
	v := lr.adm.Admit(AdmitRequest{Target: r.RequestURI, Host: r.Host, HeaderCount: headerCount(r.Header), Client: peer})
	if !v.Allow {
		return false // the handler answers, logs and counts the denial
	}
	canonical, query := v.Canonical, strings.TrimPrefix(v.Query, "?")

	s.srv.h2FastServed.Add(1)
	// portico relays the node's Content-Type or none (statusWriter)
	w := st.Writer()
	w.NoSniff()
	w.DateAt(start) // as the HTTP/1.1 fast path: the clock is read once
	fp := s.srv.getH2Fast()
	defer s.srv.putH2Fast(fp)
	fp.st, fp.w = st, w
	rs := &fp.rs
	*rs = reqState{lr: lr, cc: cc, client: peer, canonical: canonical}
	rs.nodeTry.reset(s.srv.nodeTimes())
	chooseRequestID(&rs.id, s.srv.ids, false, nil) // a trusted peer never gets here
	fp.srv = s.srv
	fp.info = fp.infoFn
	fp.ctx = r.Context()
	fp.bind = fp.bindFn
	fp.host = r.Host
	fp.req = appendH2NodeRequest(fp.req[:0], r, lr, canonical, query, peer, &rs.id)
	status, out := s.h2Exchange(fp, head)
	fp.release()
	s.srv.observe(lr, rs, &accesslog.Line{Method: r.Method, Host: r.Host, Path: canonical, Proto: r.Proto,
		UserAgent: firstValue(r.Header["User-Agent"])}, status, 0, out, start)
	return true
}

// appendH2NodeRequest writes the request head a node receives for an
// HTTP/2 stream: what st.rewrite and net/http's request writer make of
// it on the httpHandler path.
func appendH2NodeRequest(b []byte, r *http.Request, lr *listenerRuntime, canonical, query string, client netip.Addr, id *accesslog.RequestID) []byte {
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, filter.Escape(canonical)...)
	if query != "" {
		b = append(b, '?')
		b = append(b, query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for k, vv := range r.Header {
		if k == "Host" || wire.IsIdentityField(k) {
			continue // Host: r.Host alone, as net/http's request writer
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			// trimmed, as net/http's request writer does on the other path
			b = appendFieldValue(b, textproto.TrimString(v))
			b = append(b, "\r\n"...)
		}
	}
	b = appendForwarded(b, client, lr.proto, r.Host, id)
	b = append(b, "\r\n"...)
	return b
}

// h2Exchange sends fp.req to the pool's nodes until one answers, as the
// retrier does for a replayable request, and relays the answer into w.
func (s *slot) h2Exchange(fp *h2Fast, head bool) (status int, out int64) {
	rs, w := &fp.rs, fp.w
	p := rs.lr.pool
	nc, res, err := fp.call(p, &rs.nodeTry, head)
	switch {
	case err != nil:
		return h2Fail(s.srv, w, rs, err, head)
	case res == nil:
		fp.rh.Lines = rs.lr.resp.applyLines(fp.rh.Lines)
		return fp.relaySimple(p.fast, nc, &fp.rh, head)
	}
	return fp.relay(s.srv, p.fast, nc, res, rs.lr.resp)
}

// relaySimple relays an answer wire.ParseRespHead took: its field lines as
// they came, then Content-Length body bytes.
func (fp *h2Fast) relaySimple(t *upstream.Transport, nc *upstream.Conn, rh *wire.RespHead, head bool) (int, int64) {
	w := fp.w
	w.RelayHead(rh.Code, rh.Length, rh.Lines, rh.HasDate)
	nc.Reader.Discard(rh.Size)
	body := rh.Length
	if head || body < 0 {
		body = 0
	}
	if body <= upstream.SmallAnswer {
		return fp.relayOwned(t, nc, rh, int(body))
	}
	// The lines point into the node's read buffer, which the body is
	// about to refill: they are copied.
	lines, _ := ownLines(rh.Lines, 0)
	w.SetLines(lines)
	out, err := copyN(w, nc.Reader, body)
	// The node's answer is all read (what is left of it is in w): the
	// connection goes back before the stream's last frame, which ends
	// the stream's context.
	releaseNode(t, nc, fp.release() && err == nil && !rh.Close)
	if err == nil {
		err = w.Finish()
	}
	w.SetLines(nil)
	if err != nil {
		w.Abort()
	}
	return rh.Code, out
}

// relayOwned reads a small answer's body, releases the node connection,
// then answers the client from a copy.
func (fp *h2Fast) relayOwned(t *upstream.Transport, nc *upstream.Conn, rh *wire.RespHead, body int) (int, int64) {
	w := fp.w
	lines, own := fp.ownLines(rh.Lines, body)
	_, err := io.ReadFull(nc.Reader, own)
	releaseNode(t, nc, fp.release() && err == nil && !rh.Close)
	if err != nil {
		w.Abort()
		return rh.Code, 0
	}
	w.SetLines(lines)
	err = w.WriteFinal(own) // sent before fp's scratch is reused
	w.SetLines(nil)
	if err != nil {
		w.Abort()
		return rh.Code, 0
	}
	return rh.Code, int64(len(own))
}

// ownLines copies a node's field lines out of its read buffer, into one
// allocation with room for extra body bytes after them.
func ownLines(src [][]byte, extra int) (lines [][]byte, body []byte) {
	own, lines := copyLines(nil, nil, src, extra)
	return lines, own[len(own)-extra:]
}

// fp.ownLines is ownLines into fp's scratch, which a pooled h2Fast keeps
// for the next stream (putH2Fast).
func (fp *h2Fast) ownLines(src [][]byte, extra int) (lines [][]byte, body []byte) {
	fp.own, fp.lines = copyLines(fp.own[:0], fp.lines[:0], src, extra)
	return fp.lines, fp.own[len(fp.own)-extra:]
}

// copyLines copies src into own (grown when short), each line an entry
// of lines, with extra bytes after them: own's length is all of it.
func copyLines(own []byte, lines, src [][]byte, extra int) ([]byte, [][]byte) {
	n := extra
	for _, l := range src {
		n += len(l)
	}
	if cap(own) < n {
		own = make([]byte, 0, n)
	}
	for _, l := range src {
		own = append(own, l...)
		lines = append(lines, own[len(own)-len(l):len(own):len(own)])
	}
	return own[:n], lines
}

// relay relays an answer http.ReadResponse read, as ReverseProxy does:
// hop-by-hop fields dropped, trailers announced and relayed, a body of
// unknown length flushed as it comes.
func (fp *h2Fast) relay(srv *Server, t *upstream.Transport, nc *upstream.Conn, res *http.Response, resp *respHeaders) (int, int64) {
	w := fp.w
	wire.RemoveHopByHop(res.Header)
	resp.apply(res.Header) // after: the node's Connection cannot name what portico sets
	hdr := w.Header()
	for k, vv := range res.Header {
		hdr[k] = vv
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		hdr.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)
	stream := res.ContentLength < 0 || strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream")
	buf := srv.buffers.Get()
	defer srv.buffers.Put(buf)
	var out int64
	var err error
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, err = w.Write(buf[:n]); err != nil {
				break
			}
			out += int64(n)
			if stream {
				if err = w.FlushError(); err != nil {
					break
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if fp.release() && err == nil && !res.Close {
		res.Body.Close() // at EOF: reads nothing, and fills res.Trailer
		t.Put(nc)
	} else {
		nc.NetConn.Close()
	}
	if err != nil {
		w.Abort()
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			hdr[k] = vv
		}
	} else {
		for k, vv := range res.Trailer {
			hdr[http.TrailerPrefix+k] = vv
		}
	}
	return res.StatusCode, out
}

// relayInformational passes a node's 1xx answer on, as ReverseProxy does.
func (fp *h2Fast) relayInformational(res *http.Response) error {
	fp.w.Informational(res.StatusCode, res.Header)
	return nil
}

// h2Fail answers a request no node answered, as proxyError does.
func h2Fail(srv *Server, w *h2.Writer, rs *reqState, err error, head bool) (int, int64) {
	status, msg := failure(srv, rs, err)
	body := rs.lr.ownAnswer(w.Header(), status, msg)
	w.WriteHeader(status)
	io.WriteString(w, body) // for HEAD too: the length is announced
	if head {
		return status, 0
	}
	return status, int64(len(body))
}

// getH2Fast returns a stream's fast-path state, ready for use.
func (s *Server) getH2Fast() *h2Fast {
	if fp, ok := s.h2Fasts.Get().(*h2Fast); ok {
		return fp
	}
	fp := new(h2Fast)
	fp.bindFn, fp.infoFn = fp.bindNode, fp.relayInformational
	return fp
}

// putH2Fast takes back a stream's fast-path state once the stream is
// answered. Only buffers are kept (the request's, the scratch and the
// answer head's line table, emptied) and fp's method values: nothing of
// one stream (its context, its runtime, a node's lines) outlives it.
func (s *Server) putH2Fast(fp *h2Fast) {
	req, bindFn, infoFn := fp.req[:0], fp.bindFn, fp.infoFn
	own, lines := fp.own[:0], fp.lines[:0]
	if cap(own) > h2FastScratch {
		own, lines = nil, nil
	}
	clear(lines[:cap(lines)])
	// wire.ParseRespHead appends the node's lines to it: kept, it is
	// not grown again (three allocations for three lines) per stream
	rhLines := fp.rh.Lines[:0]
	if cap(rhLines) > h2FastLines {
		rhLines = nil
	}
	clear(rhLines[:cap(rhLines)])
	*fp = h2Fast{}
	fp.req, fp.bindFn, fp.infoFn = req, bindFn, infoFn
	fp.own, fp.lines, fp.rh.Lines = own, lines, rhLines
	s.h2Fasts.Put(fp)
}
