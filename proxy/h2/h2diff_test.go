package h2

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Serve must build the request net/http's HTTP/2 server builds from
// the same frames, and refuse malformed streams the same way. These
// tests send identical raw frames to both servers, each running the
// same capturing handler, and compare what the client got back and
// what the handler saw.

// h2Capture is what the handler saw of one request.
type h2Capture struct {
	Method, URL, RequestURI, Host, Proto string
	ProtoMajor, ProtoMinor               int
	Header                               http.Header
	ContentLength                        int64
	Declared                             []string // r.Trailer's keys
	Body                                 string
	BodyErr                              string // compared as present or not: the wording differs
	Trailer                              http.Header
}

// h2Recorder is one server's handler. It files the first request of a
// connection under the client's address, which the client registers
// before it sends a byte: a handler running late for a connection
// already gone finds no slot.
type h2Recorder struct {
	mu    sync.Mutex
	slots map[string]*h2Capture

	// early reads r.Trailer's keys before the body, as net/http allows.
	// It is off because Serve fills that map from its reader
	// goroutine, a data race (TestH2TrailerKeysBeforeBody).
	early bool
}

func (rec *h2Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &h2Capture{Method: r.Method, URL: r.URL.String(), RequestURI: r.RequestURI, Host: r.Host,
		Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: r.Header.Clone(), ContentLength: r.ContentLength}
	if rec.early {
		c.Declared = slices.Sorted(maps.Keys(r.Trailer))
	}
	b, err := io.ReadAll(r.Body)
	if c.Body = string(b); err != nil {
		c.BodyErr = err.Error()
	}
	if !rec.early {
		c.Declared = slices.Sorted(maps.Keys(r.Trailer))
	}
	c.Trailer = r.Trailer.Clone()
	rec.mu.Lock()
	if first, ok := rec.slots[r.RemoteAddr]; ok && first == nil {
		rec.slots[r.RemoteAddr] = c
	}
	rec.mu.Unlock()
	w.Header().Set("X-Resp", "ok")
	if r.URL.Path == "/resp-trailer" {
		w.Header().Set("Trailer", "X-Resp-Trailer")
	}
	io.WriteString(w, "hello\n")
	switch r.URL.Path {
	case "/resp-trailer":
		w.Header().Set("X-Resp-Trailer", "done")
	case "/late-header":
		w.Header().Set("X-Late", "1") // net/http: "has no effect" after Write
	}
}

func (rec *h2Recorder) slot(addr string, op int) (c *h2Capture) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	switch c = rec.slots[addr]; op {
	case 1:
		rec.slots[addr] = nil
	case -1:
		delete(rec.slots, addr)
	}
	return c
}

type h2Server struct {
	addr string
	rec  *h2Recorder
}

// startH2Pair starts net/http's HTTP/2 server (prior knowledge,
// cleartext) and Serve with the same header limit: [0] and [1].
func startH2Pair(tb testing.TB, maxHeader int, early bool) [2]*h2Server {
	var lns [2]net.Listener
	var pair [2]*h2Server
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ln.Close() })
		lns[i] = ln
		pair[i] = &h2Server{addr: ln.Addr().String(), rec: &h2Recorder{slots: map[string]*h2Capture{}, early: early}}
	}
	srv := &http.Server{Handler: pair[0].rec, MaxHeaderBytes: maxHeader, ErrorLog: log.New(io.Discard, "", 0),
		Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(lns[0])
	tb.Cleanup(func() { srv.Close() })

	cfg := &Config{Handler: pair[1].rec, ReadHeader: 5 * time.Second, Idle: time.Minute, Progress: time.Minute,
		MaxHeaderBytes: maxHeader, Log: slog.New(slog.DiscardHandler)}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Go(func() {
		for c, err := lns[1].Accept(); err == nil; c, err = lns[1].Accept() {
			conns.Store(c, nil)
			wg.Go(func() {
				Serve(context.Background(), c, cfg, nil)
				conns.Delete(c)
			})
		}
	})
	tb.Cleanup(func() {
		lns[1].Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return pair
}

// h2Req is what the client sends on stream 1: HEADERS (END_STREAM when
// nothing follows), a DATA frame per body element, then trailers.
type h2Req struct {
	fields   []hpack.HeaderField
	body     []string
	trailers []hpack.HeaderField
}

// h2Outcome is what the client saw of stream 1.
type h2Outcome struct {
	Status                  int
	Body                    string
	RespHeader, RespTrailer []string // "name: value", sorted, no Date
	Reset, GoAway           int      // error codes, or -1
	Timeout                 bool
	Alive                   string // the class of a GET on stream 3 afterwards, when sent
	Req                     *h2Capture
}

// class is the outcome as the client sees it. A GOAWAY and a bare
// close are alike: a close with unread input may lose the GOAWAY to a
// TCP reset.
func (o *h2Outcome) class() string {
	switch {
	case o.Status != 0 && o.Reset >= 0:
		return fmt.Sprintf("status %d, then reset %v", o.Status, http2.ErrCode(o.Reset))
	case o.Status != 0:
		return fmt.Sprintf("status %d", o.Status)
	case o.Reset >= 0:
		return "reset " + http2.ErrCode(o.Reset).String()
	case o.Timeout:
		return "timeout"
	}
	return "connection error"
}

func (o *h2Outcome) String() string {
	return fmt.Sprintf("%s (GOAWAY %d) body=%q header=%q trailer=%q, stream 3: %q\n\trequest %+v",
		o.class(), o.GoAway, o.Body, o.RespHeader, o.RespTrailer, o.Alive, o.Req)
}

// run sends rq on a new connection and reads until stream 1 is done.
func (s *h2Server) run(tb testing.TB, rq h2Req, wait time.Duration) *h2Outcome {
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	addr := conn.LocalAddr().String()
	s.rec.slot(addr, 1)
	defer s.rec.slot(addr, -1)

	bw := bufio.NewWriter(conn)
	fr := http2.NewFramer(bw, conn)
	fr.AllowIllegalWrites = true
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	headers := func(id uint32, fs []hpack.HeaderField, end bool) {
		hbuf.Reset()
		for _, f := range fs {
			enc.WriteField(f)
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndStream: end, EndHeaders: true})
	}
	bw.WriteString(http2.ClientPreface)
	fr.WriteSettings()
	headers(1, rq.fields, len(rq.body) == 0 && rq.trailers == nil)
	for i, d := range rq.body {
		fr.WriteData(1, i == len(rq.body)-1 && rq.trailers == nil, []byte(d))
	}
	if rq.trailers != nil {
		headers(1, rq.trailers, true)
	}
	bw.Flush()
	o := h2ReadStream(fr, bw, 1)
	o.Req = s.rec.slot(addr, 0)

	// Is the connection still usable? Trailers the server reads after it
	// closed the stream are a connection error, at a time that races
	// the handler, so only a stream whose handler read it all is followed.
	if (o.Status != 0 || o.Reset >= 0) && (rq.trailers == nil || o.Req != nil && o.Req.BodyErr == "") {
		headers(3, h2Fields(":method", "GET", ":scheme", "http", ":authority", "example.com", ":path", "/alive"), true)
		bw.Flush()
		o.Alive = h2ReadStream(fr, bw, 3).class()
	}
	return o
}

// h2ReadStream reads frames until stream id is done, or the connection.
func h2ReadStream(fr *http2.Framer, bw *bufio.Writer, id uint32) *h2Outcome {
	o := &h2Outcome{Reset: -1, GoAway: -1}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			o.Timeout = errors.Is(err, os.ErrDeadlineExceeded)
			return o
		}
		switch f := f.(type) {
		case *http2.SettingsFrame: // neither server pings
			if !f.IsAck() {
				fr.WriteSettingsAck()
				bw.Flush()
			}
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeNo || f.LastStreamID < id {
				o.GoAway = int(f.ErrCode)
				return o
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				o.Reset = int(f.ErrCode)
				return o
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			to := &o.RespTrailer
			if o.Status == 0 {
				if fmt.Sscan(f.PseudoValue("status"), &o.Status); o.Status < 200 {
					o.Status = 0 // 100 Continue: the answer follows
					continue
				}
				to = &o.RespHeader
			}
			for _, hf := range f.RegularFields() {
				if hf.Name != "date" {
					*to = append(*to, hf.Name+": "+hf.Value)
				}
			}
			slices.Sort(*to)
			if f.StreamEnded() {
				return o
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				if o.Body += string(f.Data()); f.StreamEnded() {
					return o
				}
			}
		}
	}
}

// h2Diff says how two outcomes differ, or "". When the client sent
// frames after a HEADERS that was refused, whether they end the
// connection (and whether RST_STREAM or GOAWAY comes first) races in
// net/http (resetQueued), so then any two refusals are alike.
func h2Diff(rq h2Req, ref, ours *h2Outcome) string {
	refused := func(o *h2Outcome) bool { return o.Status == 0 && !o.Timeout }
	if (len(rq.body) > 0 || rq.trailers != nil) && refused(ref) && refused(ours) {
		return ""
	}
	if ref.class() != ours.class() || ref.Alive != ours.Alive {
		return "outcome"
	}
	if ref.Status == 0 {
		return "" // refused alike: nothing was handled
	}
	if ref.Body != ours.Body || !slices.Equal(ref.RespHeader, ours.RespHeader) || !slices.Equal(ref.RespTrailer, ours.RespTrailer) {
		return "response"
	}
	a, b := ref.Req, ours.Req
	if a != nil && b != nil {
		ac, bc := *a, *b
		ac.BodyErr, bc.BodyErr = fmt.Sprint(a.BodyErr != ""), fmt.Sprint(b.BodyErr != "")
		a, b = &ac, &bc
	}
	if !reflect.DeepEqual(a, b) {
		return "request"
	}
	return ""
}

func h2Fields(kv ...string) []hpack.HeaderField {
	var fs []hpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		fs = append(fs, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return fs
}

// h2At is a request with the usual pseudo-fields, then extra fields.
func h2At(method, path string, extra ...string) []hpack.HeaderField {
	return h2Fields(append([]string{":method", method, ":scheme", "http", ":authority", "example.com", ":path", path}, extra...)...)
}

func h2Get(extra ...string) []hpack.HeaderField  { return h2At("GET", "/", extra...) }
func h2Post(extra ...string) []hpack.HeaderField { return h2At("POST", "/up", extra...) }

// h2Long is n fields of 600 bytes: well over a 4096-byte limit and
// net/http's slack of 320, yet, unless n is large, a block small enough
// for neither framer to give up on it.
func h2Long(n int, extra ...string) []hpack.HeaderField {
	kv := []string{}
	for i := range n {
		kv = append(kv, fmt.Sprintf("x-long-%d", i), strings.Repeat("a", 600))
	}
	return h2Get(append(kv, extra...)...)
}

type h2Case struct {
	name     string
	fields   []hpack.HeaderField
	body     []string
	trailers []hpack.HeaderField
	small    bool // on the servers limited to 4096 header bytes

	// differs documents a known difference from net/http: the outcomes
	// must differ, and Serve's class must be ours.
	differs, ours string
}

var h2Cases = []h2Case{
	{name: "get", fields: h2Get()},
	{name: "get with fields", fields: h2Get("accept", "*/*", "x-a", "1", "x-a", "2", "user-agent", "t")},
	{name: "host no authority", fields: h2Fields(":method", "GET", ":scheme", "http", ":path", "/", "host", "example.com")},
	{name: "authority and same host", fields: h2Get("host", "example.com")},
	{name: "authority and other host", fields: h2Get("host", "other.example")},
	{name: "two hosts", fields: h2Fields(":method", "GET", ":scheme", "http", ":path", "/", "host", "a.example", "host", "b.example")},
	{name: "no authority no host", fields: h2Fields(":method", "GET", ":scheme", "http", ":path", "/"),
		differs: "net/http takes it with an empty Host; Serve: malformed", ours: "reset PROTOCOL_ERROR"},
	{name: "empty authority no host", fields: h2Fields(":method", "GET", ":scheme", "http", ":authority", "", ":path", "/"),
		differs: "net/http takes it with an empty Host; Serve: malformed", ours: "reset PROTOCOL_ERROR"},
	{name: "empty authority empty host", fields: h2Fields(":method", "GET", ":scheme", "http", ":authority", "", ":path", "/", "host", ""),
		differs: "net/http takes it with an empty Host; Serve: malformed", ours: "reset PROTOCOL_ERROR"},
	{name: "userinfo", fields: h2Fields(":method", "GET", ":scheme", "http", ":authority", "u:p@example.com", ":path", "/")},
	{name: "bad authority", fields: h2Fields(":method", "GET", ":scheme", "http", ":authority", "exa mple.com/x", ":path", "/")},
	{name: "authority with port", fields: h2Fields(":method", "GET", ":scheme", "http", ":authority", "[::1]:8080", ":path", "/")},
	{name: "no method", fields: h2Fields(":scheme", "http", ":authority", "example.com", ":path", "/")},
	{name: "no path", fields: h2Fields(":method", "GET", ":scheme", "http", ":authority", "example.com")},
	{name: "no scheme", fields: h2Fields(":method", "GET", ":authority", "example.com", ":path", "/")},
	{name: "scheme ftp", fields: h2Fields(":method", "GET", ":scheme", "ftp", ":authority", "example.com", ":path", "/")},
	{name: "path relative", fields: h2At("GET", "a/b")},
	{name: "path absolute-form", fields: h2At("GET", "http://example.com/a")},
	{name: "options star", fields: h2At("OPTIONS", "*"),
		differs: "net/http answers OPTIONS * itself (200, empty, no handler); Serve calls the handler", ours: "status 200"},
	{name: "get star", fields: h2At("GET", "*")},
	{name: "path odd", fields: h2At("GET", "//a/../b/%2F%zz?q=1&r=%20")},
	{name: "path fragment", fields: h2At("GET", "/a#f"),
		differs: "net/http takes the # into the path; Serve: malformed (RFC 9113, 8.3.1)", ours: "reset PROTOCOL_ERROR"},
	{name: "path space in query", fields: h2At("GET", "/login?a b"),
		differs: "net/http takes it; Serve: malformed, it would split the node's request line", ours: "reset PROTOCOL_ERROR"},
	{name: "path non-ASCII", fields: h2At("GET", "/caf\xc3\xa9"),
		differs: "net/http takes it; Serve: malformed (RFC 3986)", ours: "reset PROTOCOL_ERROR"},
	{name: "path quote", fields: h2At("GET", "/a?b=\"c\""),
		differs: "net/http takes it; Serve: malformed (RFC 3986)", ours: "reset PROTOCOL_ERROR"},
	{name: "path query escapes", fields: h2At("GET", "/a%20b/./c/..//d?x=y%26z&;w")},
	{name: "connect", fields: h2Fields(":method", "CONNECT", ":authority", "example.com:443")},
	{name: "connect no authority", fields: h2Fields(":method", "CONNECT")},
	{name: "connect with path", fields: h2Fields(":method", "CONNECT", ":authority", "example.com:443", ":path", "/")},
	{name: "connect with scheme", fields: h2Fields(":method", "CONNECT", ":authority", "example.com:443", ":scheme", "https")},
	{name: "extended connect", fields: h2Fields(":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":authority", "example.com", ":path", "/ws")},
	{name: "protocol on get", fields: h2Get(":protocol", "x")},
	{name: "pseudo after regular", fields: h2Fields(":method", "GET", ":scheme", "http", "x-a", "1", ":authority", "example.com", ":path", "/")},
	{name: "unknown pseudo", fields: h2Get(":foo", "1")},
	{name: "status pseudo", fields: h2Get(":status", "200")},
	{name: "duplicate path", fields: h2Get(":path", "/x")},
	{name: "uppercase name", fields: h2Get("X-Upper", "1")},
	{name: "value with nul", fields: h2Get("x-a", "a\x00b")},
	{name: "value with cr", fields: h2Get("x-a", "a\rb")},
	{name: "value with spaces", fields: h2Get("x-a", " a b ")},
	{name: "empty name", fields: h2Get("", "x")},
	{name: "connection", fields: h2Get("connection", "close"),
		differs: "net/http answers 400; Serve resets the stream (malformed, RFC 9113, 8.2.2)", ours: "reset PROTOCOL_ERROR"},
	{name: "keep-alive", fields: h2Get("keep-alive", "1"),
		differs: "net/http answers 400; Serve resets the stream (malformed, RFC 9113, 8.2.2)", ours: "reset PROTOCOL_ERROR"},
	{name: "proxy-connection", fields: h2Get("proxy-connection", "1"),
		differs: "net/http answers 400; Serve resets the stream (malformed, RFC 9113, 8.2.2)", ours: "reset PROTOCOL_ERROR"},
	{name: "transfer-encoding", fields: h2Get("transfer-encoding", "chunked"),
		differs: "net/http answers 400; Serve resets the stream (malformed, RFC 9113, 8.2.2)", ours: "reset PROTOCOL_ERROR"},
	{name: "upgrade", fields: h2Get("upgrade", "websocket"),
		differs: "net/http answers 400; Serve resets the stream (malformed, RFC 9113, 8.2.2)", ours: "reset PROTOCOL_ERROR"},
	{name: "te trailers", fields: h2Get("te", "trailers")},
	{name: "te gzip", fields: h2Get("te", "gzip"),
		differs: "net/http answers 400; Serve resets the stream (malformed, RFC 9113, 8.2.2)", ours: "reset PROTOCOL_ERROR"},
	{name: "te twice", fields: h2Get("te", "trailers", "te", "trailers"),
		differs: "net/http answers 400; Serve resets the stream (malformed, RFC 9113, 8.2.2)", ours: "reset PROTOCOL_ERROR"},
	{name: "cookies", fields: h2Get("cookie", "a=1", "cookie", "b=2", "x-c", "3", "cookie", "c=3")},
	{name: "expect continue", fields: h2Post("expect", "100-continue", "content-length", "5"), body: []string{"hello"}},
	{name: "expect other", fields: h2Post("expect", "something"), body: []string{"hi"}},
	{name: "post", fields: h2Post("content-length", "11"), body: []string{"hello", " world"}},
	{name: "post no length", fields: h2Post(), body: []string{"abc", "", "def"}},
	{name: "post empty", fields: h2Post("content-length", "0"), body: []string{""}},
	{name: "post ended by headers", fields: h2Post("content-length", "5")},
	{name: "body longer than length", fields: h2Post("content-length", "3"), body: []string{"hello"}},
	{name: "body shorter than length", fields: h2Post("content-length", "10"), body: []string{"hello"},
		differs: "net/http answers, the handler's read fails; Serve resets the stream (RFC 9113, 8.1.1)", ours: "reset PROTOCOL_ERROR"},
	{name: "bad length", fields: h2Post("content-length", "x1"), body: []string{"hello"}},
	{name: "bad length no body", fields: h2Post("content-length", "x1"), body: []string{""}},
	{name: "two lengths", fields: h2Post("content-length", "5", "content-length", "6"), body: []string{"hello"}},
	{name: "trailers", fields: h2Post("trailer", "X-T1, x-t2", "trailer", "content-length"), body: []string{"abc"},
		trailers: h2Fields("x-t1", "1", "x-t2", "2", "x-t1", "3")},
	{name: "trailers no body", fields: h2Post("trailer", "x-t1"), trailers: h2Fields("x-t1", "1")},
	{name: "trailers end a short body", fields: h2Post("content-length", "10", "trailer", "x-t1"), body: []string{"hello"}, trailers: h2Fields("x-t1", "1"),
		differs: "net/http answers, the handler's read fails; Serve resets the stream (RFC 9113, 8.1.1)", ours: "reset PROTOCOL_ERROR"},
	{name: "undeclared trailer", fields: h2Post(), body: []string{"abc"}, trailers: h2Fields("x-u", "1")},
	{name: "undeclared and declared trailer", fields: h2Post("trailer", "x-t1"), body: []string{"abc"}, trailers: h2Fields("x-t1", "1", "x-u", "2")},
	{name: "forbidden trailer", fields: h2Post("trailer", "x-t1"), body: []string{"abc"}, trailers: h2Fields("content-length", "3")},
	{name: "forbidden undeclared trailer", fields: h2Post(), body: []string{"abc"}, trailers: h2Fields("content-length", "3")},
	{name: "pseudo in trailers", fields: h2Post("trailer", "x-t1"), body: []string{"abc"}, trailers: h2Fields(":path", "/x", "x-t1", "1")},
	{name: "response trailer", fields: h2At("GET", "/resp-trailer")},
	{name: "header set after write", fields: h2At("GET", "/late-header")},
	{name: "header list too long", small: true, fields: h2Long(10)},
	{name: "header block too long", small: true, fields: h2Long(30),
		differs: "net/http: GOAWAY PROTOCOL_ERROR (block over 2*(limit+320)); Serve: 431 (x/net gives up over 2*2*limit)", ours: "status 431"},
	{name: "header list in the slack", small: true, fields: h2Long(6, "x-pad", strings.Repeat("a", 170))},
	{name: "long trailer field", small: true, fields: h2Long(5, "trailer", "x-"+strings.Repeat("a", 2400)),
		differs: "x/net budgets the trailer field apart from the rest, net/http's bundle does not: 5.8kB pass Serve", ours: "status 200"},
}

func TestH2RequestMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	big, small := startH2Pair(t, 1<<20, false), startH2Pair(t, 4096, false)
	for _, c := range h2Cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pair := big
			if c.small {
				pair = small
			}
			rq := h2Req{fields: c.fields, body: c.body, trailers: c.trailers}
			ref, ours := pair[0].run(t, rq, 5*time.Second), pair[1].run(t, rq, 5*time.Second)
			switch d := h2Diff(rq, ref, ours); {
			case c.differs == "" && d != "":
				t.Errorf("%s differs:\nnet/http: %v\nserveH2:  %v", d, ref, ours)
			case c.differs != "" && d == "":
				t.Errorf("documented difference (%s) is gone: update the case\nboth: %v", c.differs, ours)
			case c.differs != "" && ours.class() != c.ours:
				t.Errorf("Serve: %v, documented as %q", ours, c.ours)
			default:
				t.Logf("net/http: %v\nserveH2:  %v", ref, ours)
			}
		})
	}
}

// TestH2TrailerKeysBeforeBody reads r.Trailer's keys before the body, as
// net/http allows ("initially contains only the trailer keys"): the
// values must reach the map on the handler's goroutine, at EOF, or
// -race reports the reader goroutine's write.
func TestH2TrailerKeysBeforeBody(t *testing.T) {
	t.Parallel()
	ours := startH2Pair(t, 1<<20, true)[1]
	for range 20 {
		o := ours.run(t, h2Req{fields: h2Post("trailer", "x-t1"), body: []string{"abc"}, trailers: h2Fields("x-t1", "1")}, 5*time.Second)
		if o.Req == nil || !slices.Equal(o.Req.Declared, []string{"X-T1"}) {
			t.Fatalf("got %v", o)
		}
	}
}
