package h2

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	"github.com/portico-lb/portico/proxy/internal/wire"
)

// Stream is one request on an HTTP/2 connection and its answer.
type Stream struct {
	c       *h2Conn
	id      uint32
	req     http.Request
	url     url.URL   // the request's, for a plain :path
	ctx     streamCtx // the request's context
	handler http.Handler
	main    bool // handler is the connection's, not a refusal
	body    h2Body
	w       Writer
	vals    [8]string // the request's field values, when they fit

	// guarded by c.mu
	sendWin    int64
	winWait    time.Time // since when the answer waits for a send window
	remoteDone bool      // the client ended its side (END_STREAM)
	ended      bool      // closed from the client's view
	err        error     // why it ended, for a handler still writing
}

// Request is the stream's request, as the handler gets it.
func (st *Stream) Request() *http.Request { return &st.req }

// Writer is the stream's answer, as the handler gets it.
func (st *Stream) Writer() *Writer { return &st.w }

// processHeaders opens a stream, or takes a request's trailers.
func (c *h2Conn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		done := st.remoteDone
		st.remoteDone = true
		c.mu.Unlock()
		if done {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return st.body.trailers(f)
	}
	if id <= c.maxID {
		_, reset := c.resetIDs[id]
		c.mu.Unlock()
		if reset {
			return nil // trailers already on the way when portico reset the stream
		}
		return http2.ConnectionError(http2.ErrCodeStreamClosed) // RFC 9113, 5.1
	}
	c.maxID = id
	switch {
	case c.goAway || c.closed:
		c.mu.Unlock()
		return nil // after GOAWAY, new streams are ignored
	case c.open >= h2MaxStreams:
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	c.mu.Unlock()
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}

	st := &Stream{c: c, id: id}
	st.ctx.c = c
	if err := c.newRequest(st, f); err != nil {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: err}
	}
	st.handler, st.main = c.cfg.Handler, true
	if f.Truncated {
		st.main = false
		st.handler = http.HandlerFunc(headerListTooLong)
	} else if err := checkH2RequestHeaders(st.req.Header); err != nil {
		// malformed (RFC 9113, 8.2.2), as HAProxy and nginx answer; net/http
		// answers 400
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: err}
	}
	st.w = Writer{st: st, head: st.req.Method == "HEAD"}
	return c.startStream(st, f.StreamEnded())
}

// startStream registers a new stream (ended: the client sent its whole
// request) and runs its handler, or queues it while h2MaxStreams
// handlers run.
func (c *h2Conn) startStream(st *Stream, ended bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.streams[st.id] = st
	if err := c.ctx.Err(); err != nil {
		st.ctx.cancel(err) // cancelStreams ran before the stream was there
	}
	c.open++
	st.sendWin = c.initWin
	st.remoteDone = ended
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.watchLocked()
	c.handlers.Add(1)
	if c.running < h2MaxStreams {
		c.running++
		c.work.start(c, st)
		return nil
	}
	// Handlers of streams the client already reset still count: a
	// client opening and resetting streams faster than they end gets
	// a bounded queue, then ENHANCE_YOUR_CALM (CVE-2023-44487).
	c.queue = append(c.queue, st)
	if len(c.queue) > 4*h2MaxStreams {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// runStreams serves st, then whatever waits in the queue.
func (c *h2Conn) runStreams(st *Stream) {
	for st != nil {
		st.serve()
		c.handlers.Done()
		c.mu.Lock()
		c.running--
		st = nil
		for len(c.queue) > 0 && st == nil {
			next := c.queue[0]
			c.queue = c.queue[1:]
			if next.ended {
				c.handlers.Done()
				continue
			}
			st = next
			c.running++
		}
		c.idleLocked()
		c.mu.Unlock()
	}
}

// serve runs the handler and ends the stream.
func (st *Stream) serve() {
	c := st.c
	completed := false
	defer func() {
		if completed {
			return
		}
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			c.cfg.Log.Error("panic serving an HTTP/2 request", "client", c.raddr, "panic", p, "stack", string(debug.Stack()))
		}
		c.resetStream(st.id, http2.ErrCodeInternal)
	}()
	c.answering.Add(1)
	defer c.answering.Add(-1)
	if c.cfg.Fast == nil || !st.main || !c.cfg.Fast(st) {
		st.handler.ServeHTTP(&st.w, &st.req)
	}
	if st.w.abort {
		panic(http.ErrAbortHandler) // as ReverseProxy does: the stream is reset
	}
	completed = true
	err := st.w.Finish()
	c.mu.Lock()
	// The answer is complete while the client still sends its body:
	// RST_STREAM(NO_ERROR) tells it to stop (RFC 9113, 8.1).
	reset := err == nil && !st.ended && !st.remoteDone
	c.endStreamLocked(st, errStreamDone)
	if reset {
		c.noteResetLocked(st.id)
	}
	c.mu.Unlock()
	if reset {
		c.lockWrite()
		c.fr.WriteRSTStream(st.id, http2.ErrCodeNo)
		c.unlockWrite()
	}
	c.flushWindow()
}

var errStreamDone = errors.New("http2: stream done")

func headerListTooLong(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	io.WriteString(w, "<h1>HTTP Error 431</h1><p>Request Header Field(s) Too Large</p>")
}

// newRequest builds the request net/http's HTTP/2 server would build
// from the same HEADERS (the differential test holds the two together),
// into st.req, or says why the stream is malformed (RFC 9113, 8.3).
func (c *h2Conn) newRequest(st *Stream, f *http2.MetaHeadersFrame) error {
	// One pass over the pseudo-fields, which come first (the framer
	// refused a repeated or unknown one), and over the others: the
	// fields are read in place, as PseudoValue would read them once per
	// name.
	var method, scheme, authority, path string
	all := f.Fields
	npseudo := 0
	for ; npseudo < len(all); npseudo++ {
		hf := &all[npseudo]
		if !hf.IsPseudo() {
			break
		}
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		case ":path":
			path = hf.Value
		case ":protocol":
			if hf.Value != "" {
				return errors.New("extended CONNECT is not offered")
			}
		}
	}
	connect := method == "CONNECT"
	if connect {
		if path != "" || scheme != "" || authority == "" {
			return errors.New("malformed CONNECT")
		}
	} else if method == "" || path == "" || scheme != "https" && scheme != "http" {
		return errors.New("missing :method, :path or :scheme")
	}
	fields := all[npseudo:]
	h := make(http.Header, len(fields))
	// the values share one array, as net/textproto's reader does: a
	// field's first value is a slice of it (a repeated one appends, and
	// gets an array of its own)
	vals := st.vals[:]
	if len(fields) > len(vals) {
		vals = make([]string, len(fields))
	}
	// the fields this function treats apart, noted as they pass, so that
	// a request without them (most) costs no lookup of each
	var seen specialFields
	for i := range fields {
		hf := &fields[i]
		k := c.canonicalName(hf.Name)
		seen.note(k)
		if vv, ok := h[k]; ok {
			h[k] = append(vv, hf.Value)
			continue
		}
		vals[i] = hf.Value
		h[k] = vals[i : i+1 : i+1]
	}
	needsContinue := false
	if seen.expect {
		if needsContinue = httpguts.HeaderValuesContainsToken(h["Expect"], "100-continue"); needsContinue {
			delete(h, "Expect")
		}
	}
	if seen.cookie {
		if cookies := h["Cookie"]; len(cookies) > 1 {
			h["Cookie"] = []string{strings.Join(cookies, "; ")} // RFC 9113, 8.2.3
		}
	}
	var trailer http.Header
	if seen.trailer {
		trailer = announcedTrailer(h["Trailer"])
		delete(h, "Trailer")
	}
	// As net/http's server: a Host field stands in for a missing
	// :authority and stays in the header (the node gets r.Host alone);
	// an odd authority or an absolute :path is for the handler to judge.
	if authority == "" && seen.host {
		if hosts := h["Host"]; len(hosts) > 0 {
			authority = hosts[0]
		}
	}
	// Without either, net/http takes the request with an empty Host and
	// the node would get its own address or nothing, depending on the
	// path: it is malformed instead (RFC 9113, 8.3.1), as for nginx.
	if authority == "" && !connect {
		return errors.New("no :authority and no Host")
	}
	if strings.IndexByte(authority, '@') >= 0 && (scheme == "http" || scheme == "https") {
		return errors.New("userinfo in :authority")
	}
	var u *url.URL
	uri := path
	if connect {
		u, uri = &url.URL{Host: authority}, authority
	} else {
		if !validH2Path(path) {
			return errors.New("bad :path: a character a request target may not hold")
		}
		u = &st.url
		if !plainRequestURI(path, u) {
			var err error
			if u, err = url.ParseRequestURI(path); err != nil {
				return fmt.Errorf("bad :path: %w", err)
			}
		}
	}
	r := &st.req
	*r = http.Request{Method: method, URL: u, RemoteAddr: c.raddr, Header: h, RequestURI: uri,
		Proto: "HTTP/2.0", ProtoMajor: 2, Host: authority, Trailer: trailer, Body: http.NoBody}
	if scheme == "https" {
		r.TLS = c.tls
	}
	if !f.StreamEnded() {
		r.ContentLength = -1
		if vv, ok := h["Content-Length"]; ok && seen.length {
			r.ContentLength = 0
			if n, err := strconv.ParseUint(vv[0], 10, 63); err == nil {
				r.ContentLength = int64(n)
			}
		}
		st.body.init(st, r.ContentLength, trailer, needsContinue)
		r.Body = &st.body
	}
	*r = *r.WithContext(&st.ctx)
	return nil
}

// specialFields notes which of the fields newRequest treats apart a
// request carries, by canonical name.
type specialFields struct {
	expect, cookie, trailer, host, length bool
}

func (s *specialFields) note(k string) {
	switch k {
	case "Expect":
		s.expect = true
	case "Cookie":
		s.cookie = true
	case "Trailer":
		s.trailer = true
	case "Host":
		s.host = true
	case "Content-Length":
		s.length = true
	}
}

// announcedTrailer is the request's Trailer field values as net/http's
// server reads them: the names a trailer may carry, nil when none.
func announcedTrailer(vals []string) http.Header {
	var trailer http.Header
	for _, v := range vals {
		for _, k := range strings.Split(v, ",") {
			k = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(k))
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
			default:
				if trailer == nil {
					trailer = make(http.Header)
				}
				trailer[k] = nil
			}
		}
	}
	return trailer
}

// plainRequestURI sets u as url.ParseRequestURI(p) would, for the usual
// p: an absolute path of letters, digits and the bytes path escaping
// leaves alone (no '%' to unescape, so no RawPath), then any query.
// False: p is for ParseRequestURI. (Its URL would be an allocation of
// its own per stream.)
func plainRequestURI(p string, u *url.URL) bool {
	path, query, hasQuery := strings.Cut(p, "?")
	if path == "" || path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/$&+,:;=@", c) >= 0:
		default:
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if query[i] < ' ' || query[i] == 0x7f {
			return false // ParseRequestURI refuses control bytes
		}
	}
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return true
}

// validH2Path: every byte of :path is one RFC 3986 allows in a request
// target (RFC 9113, 8.3.1): no space, control, non-ASCII byte, fragment
// or delimiter such as '<' or '"'. It is written into the node's request
// line, where a space would end the target and start another.
func validH2Path(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~%!$&'()*+,;=:@/?", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// canonicalName is http.CanonicalHeaderKey, remembered per connection
// (names arrive lowercase, so each would be converted again); the
// reader goroutine's alone.
func (c *h2Conn) canonicalName(name string) string {
	if k, ok := c.canon[name]; ok {
		return k
	}
	k := textproto.CanonicalMIMEHeaderKey(name)
	if len(c.canon) < 256 {
		c.canon[name] = k
	}
	return k
}

// checkH2RequestHeaders refuses connection-specific fields (RFC 9113,
// 8.2.2).
func checkH2RequestHeaders(h http.Header) error {
	for _, k := range wire.H2ConnectionFields() {
		if _, ok := h[k]; ok {
			return fmt.Errorf("request header %q is not valid in HTTP/2", k)
		}
	}
	if te := h["Te"]; len(te) > 1 || len(te) == 1 && te[0] != "trailers" && te[0] != "" {
		return errors.New(`request header "TE" may only be "trailers" in HTTP/2`)
	}
	return nil
}
