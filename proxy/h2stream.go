package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// h2Stream is one request on an HTTP/2 connection and its answer.
type h2Stream struct {
	c       *h2Conn
	id      uint32
	req     *http.Request
	handler http.Handler
	main    bool // handler is the connection's, not a refusal
	cancel  context.CancelFunc
	body    h2Body
	w       h2Writer
	fast    h2Fast

	// guarded by c.mu
	sendWin    int64
	winWait    time.Time // since when the answer waits for a send window
	remoteDone bool      // the client ended its side (END_STREAM)
	ended      bool      // closed from the client's view
	err        error     // why it ended, for a handler still writing
}

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
		reset := c.resetIDs[id]
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

	st := &h2Stream{c: c, id: id}
	ctx, cancel := context.WithCancel(c.ctx)
	st.cancel = cancel
	req, err := c.newRequest(ctx, st, f)
	if err != nil {
		cancel()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: err}
	}
	st.req = req
	st.handler, st.main = c.cfg.handler, true
	if f.Truncated {
		st.main = false
		st.handler = http.HandlerFunc(headerListTooLong)
	} else if err := checkH2RequestHeaders(req.Header); err != nil {
		// malformed (RFC 9113, 8.2.2), as HAProxy and nginx answer; net/http
		// answers 400
		cancel()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: err}
	}
	st.w = h2Writer{st: st, head: req.Method == "HEAD"}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cancel()
		return nil
	}
	c.streams[id] = st
	c.open++
	st.sendWin = c.initWin
	st.remoteDone = f.StreamEnded()
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.watchLocked()
	c.handlers.Add(1)
	if c.running < h2MaxStreams {
		c.running++
		go c.runStreams(st)
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
func (c *h2Conn) runStreams(st *h2Stream) {
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
func (st *h2Stream) serve() {
	c := st.c
	completed := false
	defer func() {
		if completed {
			return
		}
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			c.cfg.log.Error("panic serving an HTTP/2 request", "client", c.raddr, "panic", p, "stack", string(debug.Stack()))
		}
		c.resetStream(st.id, http2.ErrCodeInternal)
	}()
	c.answering.Add(1)
	defer c.answering.Add(-1)
	if c.cfg.fast == nil || !st.main || !c.cfg.fast(st) {
		st.handler.ServeHTTP(&st.w, st.req)
	}
	if st.w.abort {
		panic(http.ErrAbortHandler) // as ReverseProxy does: the stream is reset
	}
	completed = true
	err := st.w.finish()
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
// or says why the stream is malformed (RFC 9113, 8.3).
func (c *h2Conn) newRequest(ctx context.Context, st *h2Stream, f *http2.MetaHeadersFrame) (*http.Request, error) {
	method := f.PseudoValue("method")
	scheme := f.PseudoValue("scheme")
	authority := f.PseudoValue("authority")
	path := f.PseudoValue("path")
	if f.PseudoValue("protocol") != "" {
		return nil, errors.New("extended CONNECT is not offered")
	}
	connect := method == "CONNECT"
	if connect {
		if path != "" || scheme != "" || authority == "" {
			return nil, errors.New("malformed CONNECT")
		}
	} else if method == "" || path == "" || scheme != "https" && scheme != "http" {
		return nil, errors.New("missing :method, :path or :scheme")
	}
	fields := f.RegularFields()
	h := make(http.Header, len(fields))
	for _, hf := range fields {
		k := c.canonicalName(hf.Name)
		h[k] = append(h[k], hf.Value)
	}
	needsContinue := httpguts.HeaderValuesContainsToken(h["Expect"], "100-continue")
	if needsContinue {
		delete(h, "Expect")
	}
	if cookies := h["Cookie"]; len(cookies) > 1 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")} // RFC 9113, 8.2.3
	}
	var trailer http.Header
	for _, v := range h["Trailer"] {
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
	delete(h, "Trailer")
	// As net/http's server: a Host field stands in for a missing
	// :authority and stays in the header (the node gets r.Host alone);
	// an odd authority or an absolute :path is for the handler to judge.
	if authority == "" {
		if hosts := h["Host"]; len(hosts) > 0 {
			authority = hosts[0]
		}
	}
	// Without either, net/http takes the request with an empty Host and
	// the node would get its own address or nothing, depending on the
	// path: it is malformed instead (RFC 9113, 8.3.1), as for nginx.
	if authority == "" && !connect {
		return nil, errors.New("no :authority and no Host")
	}
	if strings.IndexByte(authority, '@') >= 0 && (scheme == "http" || scheme == "https") {
		return nil, errors.New("userinfo in :authority")
	}
	var u *url.URL
	uri := path
	if connect {
		u, uri = &url.URL{Host: authority}, authority
	} else {
		if !validH2Path(path) {
			return nil, errors.New("bad :path: a character a request target may not hold")
		}
		var err error
		if u, err = url.ParseRequestURI(path); err != nil {
			return nil, fmt.Errorf("bad :path: %w", err)
		}
	}
	r := &http.Request{Method: method, URL: u, RemoteAddr: c.raddr, Header: h, RequestURI: uri,
		Proto: "HTTP/2.0", ProtoMajor: 2, Host: authority, Trailer: trailer, Body: http.NoBody}
	if scheme == "https" {
		r.TLS = c.tls
	}
	if !f.StreamEnded() {
		r.ContentLength = -1
		if vv, ok := h["Content-Length"]; ok {
			r.ContentLength = 0
			if n, err := strconv.ParseUint(vv[0], 10, 63); err == nil {
				r.ContentLength = int64(n)
			}
		}
		st.body.init(st, r.ContentLength, trailer, needsContinue)
		r.Body = &st.body
	}
	return r.WithContext(ctx), nil
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
	for _, k := range [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"} {
		if _, ok := h[k]; ok {
			return fmt.Errorf("request header %q is not valid in HTTP/2", k)
		}
	}
	if te := h["Te"]; len(te) > 1 || len(te) == 1 && te[0] != "trailers" && te[0] != "" {
		return errors.New(`request header "TE" may only be "trailers" in HTTP/2`)
	}
	return nil
}

// h2Body is a request body: DATA frames in, the handler's reads out. It
// holds at most the stream's receive window.
type h2Body struct {
	st       *h2Stream
	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	off      int
	err      error // io.EOF once the client ended the stream
	closed   bool  // the handler closed it: what arrives is dropped
	declared int64 // Content-Length, or -1
	got      int64
	recvWin  int64       // the stream's receive window left
	unacked  int64       // consumed bytes not yet returned to it
	trailer  http.Header // the request's: the declared names
	got1     http.Header // the trailers received, until the handler reads EOF
	expect   bool        // 100-continue is owed at the first read
	readers  int         // Reads waiting for bytes
	progress time.Time   // the last byte in or out, or a Read's start of waiting
}

func (b *h2Body) init(st *h2Stream, declared int64, trailer http.Header, expect bool) {
	b.st, b.declared, b.trailer, b.expect = st, declared, trailer, expect
	b.recvWin = h2StreamWindow
	b.progress = time.Now()
	b.cond.L = &b.mu
}

// receive takes one DATA frame's payload (n counts padding too).
func (b *h2Body) receive(data []byte, n int64, end bool) error {
	if b.st == nil {
		// unreachable: HEADERS that ended the stream marked it remoteDone,
		// and processData answers DATA for it without the body
		return nil
	}
	b.mu.Lock()
	if n > b.recvWin {
		b.mu.Unlock()
		b.st.c.returnConn(n)
		return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeFlowControl}
	}
	b.recvWin -= n
	b.got += int64(len(data))
	if b.declared >= 0 && (b.got > b.declared || end && b.got != b.declared) {
		b.mu.Unlock()
		b.st.c.returnConn(n)
		return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeProtocol,
			Cause: errors.New("body length differs from Content-Length")}
	}
	drop := n - int64(len(data))
	if b.err != nil || b.closed {
		drop = n
	} else {
		b.put(data)
		if len(data) > 0 {
			b.progress = time.Now()
		}
		if end {
			b.err = io.EOF
		}
		b.cond.Broadcast()
	}
	b.mu.Unlock()
	if drop > 0 {
		b.consumed(drop)
	}
	return nil
}

// put appends data to the unread bytes. Flow control keeps those within
// one stream window; the buffer never grows past that, and the bytes
// already read make room (they are dropped, not kept until the handler
// catches up, which it never does while a node reads behind a client).
func (b *h2Body) put(data []byte) {
	if len(b.buf)+len(data) > cap(b.buf) && b.off > 0 {
		b.buf = b.buf[:copy(b.buf, b.buf[b.off:])]
		b.off = 0
	}
	if need := len(b.buf) + len(data); need > cap(b.buf) {
		grown := make([]byte, len(b.buf), min(max(need, 2*cap(b.buf), 16<<10), max(need, h2StreamWindow)))
		copy(grown, b.buf)
		b.buf = grown
	}
	b.buf = append(b.buf, data...)
}

// trailers ends the body with the client's trailer fields. As in
// net/http, only declared trailers are kept (and only then are the
// names checked); the handler sees them once it read the body to its
// end, on its own goroutine.
func (b *h2Body) trailers(f *http2.MetaHeadersFrame) error {
	if b.st == nil {
		return nil
	}
	b.mu.Lock()
	defer func() {
		if b.err == nil {
			b.err = io.EOF
		}
		b.cond.Broadcast()
		b.mu.Unlock()
	}()
	if b.declared >= 0 && b.got != b.declared {
		b.err = errors.New("http2: body length differs from Content-Length")
		return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeProtocol, Cause: b.err}
	}
	if b.trailer == nil {
		return nil
	}
	for _, hf := range f.RegularFields() {
		k := b.st.c.canonicalName(hf.Name)
		if !httpguts.ValidTrailerHeader(k) {
			return http2.StreamError{StreamID: b.st.id, Code: http2.ErrCodeProtocol}
		}
		if _, ok := b.trailer[k]; ok {
			if b.got1 == nil {
				b.got1 = make(http.Header)
			}
			b.got1[k] = append(b.got1[k], hf.Value)
		}
	}
	return nil
}

func (b *h2Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	for b.off == len(b.buf) && b.err == nil && !b.closed {
		if b.expect {
			b.expect = false
			b.mu.Unlock()
			b.st.w.informationalFields(http.StatusContinue, nil)
			b.mu.Lock()
			continue
		}
		if b.readers == 0 {
			b.progress = time.Now()
		}
		b.readers++
		b.cond.Wait()
		b.readers--
	}
	if b.closed {
		b.mu.Unlock()
		return 0, errors.New("http2: request body closed")
	}
	if b.off == len(b.buf) {
		err := b.err
		if err == io.EOF && b.got1 != nil {
			for k, vv := range b.got1 {
				b.trailer[k] = vv
			}
			b.got1 = nil
		}
		b.mu.Unlock()
		return 0, err
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	b.progress = time.Now()
	if b.off == len(b.buf) {
		b.buf, b.off = b.buf[:0], 0
	}
	b.mu.Unlock()
	b.consumed(int64(n))
	return n, nil
}

func (b *h2Body) Close() error {
	b.mu.Lock()
	n := len(b.buf) - b.off
	b.closed = true
	b.buf, b.off = nil, 0
	b.cond.Broadcast()
	b.mu.Unlock()
	if n > 0 {
		b.st.c.returnConn(int64(n))
	}
	return nil
}

// fail ends the body for the handler (the stream ended) and returns
// what it still held, for the connection window. Called with c.mu held.
func (b *h2Body) fail(err error) int64 {
	if b.st == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil || b.err == io.EOF && err != errStreamDone {
		b.err = err
	}
	n := int64(len(b.buf) - b.off)
	b.buf, b.off = nil, 0
	b.cond.Broadcast()
	return n
}

// consumed returns n bytes to the connection and stream windows, in
// updates of at least a quarter window, each credited as it is written.
func (b *h2Body) consumed(n int64) {
	c := b.st.c
	c.returnConn(n)
	b.mu.Lock()
	b.unacked += n
	due := b.unacked >= h2StreamWindow/4 && b.err == nil && !b.closed
	b.mu.Unlock()
	if !due {
		return
	}
	c.lockWrite()
	b.mu.Lock()
	inc := b.unacked
	if inc < h2StreamWindow/4 || b.err != nil || b.closed {
		b.mu.Unlock()
		c.unlockWrite()
		return
	}
	b.unacked = 0
	b.recvWin += inc
	b.mu.Unlock()
	c.fr.WriteWindowUpdate(b.st.id, uint32(inc))
	c.unlockWrite()
}

// returnConn notes n consumed bytes and writes the connection's window
// update when one is due.
func (c *h2Conn) returnConn(n int64) {
	c.mu.Lock()
	c.returnConnLocked(n)
	c.mu.Unlock()
	c.flushWindow()
}
