package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// view is net/http's server-side reading of a request head.
type view struct {
	req      *http.Request
	consumed int // bytes of the input ReadRequest used
}

// countingReader counts the bytes handed to the bufio.Reader above it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// netHTTPView parses b the way net/http's server does: http.ReadRequest,
// then the checks (*conn).readRequest makes on its result (server.go).
func netHTTPView(b []byte) (view, error) {
	cr := &countingReader{r: bytes.NewReader(b)}
	br := bufio.NewReader(cr)
	req, err := http.ReadRequest(br)
	if err != nil {
		return view{}, err
	}
	v := view{req: req, consumed: cr.n - br.Buffered()}

	if !(req.ProtoMajor == 1 ||
		req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		return view{}, errors.New("unsupported protocol version")
	}
	// ReadRequest has deleted the Host field from req.Header; read the
	// header again (ReadRequest accepted it, so textproto does too) for
	// the Host values the server checks.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	if _, err := tp.ReadLine(); err != nil {
		return view{}, err
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return view{}, fmt.Errorf("textproto disagrees with ReadRequest: %v", err)
	}
	hosts, haveHost := hdr["Host"]
	isH2Upgrade := req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && !isH2Upgrade && req.Method != "CONNECT" {
		return view{}, errors.New("missing required Host header")
	}
	if len(hosts) > 1 {
		return view{}, errors.New("too many Host headers")
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return view{}, errors.New("malformed Host header")
	}
	for k, vv := range hdr {
		if !httpguts.ValidHeaderFieldName(k) {
			return view{}, errors.New("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return view{}, errors.New("invalid header value")
			}
		}
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return view{}, errors.New("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return view{}, errors.New("invalid header value")
			}
		}
	}
	return v, nil
}

// checkAgainstNetHTTP holds ParseHead's verdict on b to net/http's
// reading of it.
func checkAgainstNetHTTP(t testing.TB, b []byte) HeadVerdict {
	t.Helper()
	var h ReqHead
	verdict := ParseHead(b, &h, 100)
	switch verdict {
	case HeadMore:
		if bytes.Contains(b, []byte("\r\n\r\n")) {
			t.Errorf("ParseHead(%q) = HeadMore, but the head is complete", b)
		}
		for i, c := range b {
			if c == '\n' && (i == 0 || b[i-1] != '\r') {
				t.Errorf("ParseHead(%q) = HeadMore, but it holds a bare LF at %d", b, i)
			}
		}
	case HeadFast:
		v, err := netHTTPView(b)
		if err != nil {
			t.Errorf("ParseHead(%q) = HeadFast, but net/http rejects it: %v", b, err)
			return verdict
		}
		req := v.req
		if req.Method != string(h.Method) {
			t.Errorf("%q: Method %q, ParseHead %q", b, req.Method, h.Method)
		}
		if req.RequestURI != string(h.Target) {
			t.Errorf("%q: RequestURI %q, ParseHead target %q", b, req.RequestURI, h.Target)
		}
		if req.Host != string(h.Host) {
			t.Errorf("%q: Host %q, ParseHead %q", b, req.Host, h.Host)
		}
		if req.Close != h.Close {
			t.Errorf("%q: Close %v, ParseHead %v", b, req.Close, h.Close)
		}
		if v.consumed != h.Size {
			t.Errorf("%q: net/http consumed %d bytes, ParseHead size %d", b, v.consumed, h.Size)
		}
		if req.ProtoMajor != 1 || req.ProtoMinor != 1 {
			t.Errorf("%q: proto %d.%d", b, req.ProtoMajor, req.ProtoMinor)
		}
		if req.ContentLength != 0 {
			t.Errorf("%q: ContentLength %d", b, req.ContentLength)
		}
		if req.Body != http.NoBody && req.Body != nil {
			if n, err := io.Copy(io.Discard, req.Body); n != 0 || err != nil {
				t.Errorf("%q: body of %d bytes (%v)", b, n, err)
			}
		}
		want := http.Header{}
		for _, f := range h.Fields {
			k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
			want[k] = append(want[k], string(f.Value))
		}
		got := http.Header{}
		for k, vv := range req.Header {
			if k != "Connection" {
				got[k] = vv
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: net/http header %q, ParseHead fields %q", b, got, want)
		}
	}
	return verdict
}

// fastHeadCase is one head for the table; fields, close and size are
// checked when want is HeadFast.
type fastHeadCase struct {
	name      string
	in        string
	want      HeadVerdict
	maxFields int      // 0: 100
	fields    []string // "name: value", in order; nil: not checked
	close     bool
	size      int // 0: len(in)
}

var fastHeadCases = []fastHeadCase{
	// Accepted.
	{name: "minimal", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadFast, fields: []string{}},
	{name: "head", in: "HEAD /x/y.html HTTP/1.1\r\nHost: example.com\r\n\r\n", want: HeadFast},
	{name: "query", in: "GET /search?q=a+b&lang=en HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", want: HeadFast},
	{name: "empty query", in: "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadFast},
	{name: "escapes", in: "GET /a%20b/%2F%c3%A9?x=%3D HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadFast},
	{name: "sub-delims", in: "GET /a;b=c/d:e@f!$&'()*+,~._- HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadFast},
	{name: "ipv6 host", in: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", want: HeadFast},
	{name: "host lower case", in: "GET / HTTP/1.1\r\nhost: a.b-c_d\r\n\r\n", want: HeadFast},
	{name: "connection close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", want: HeadFast, close: true, fields: []string{}},
	{name: "connection keep-alive", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", want: HeadFast},
	{name: "connection both", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close\r\n\r\n", want: HeadFast, close: true},
	{name: "connection CLOSE", in: "GET / HTTP/1.1\r\nConnection: CLOSE\r\nHost: a\r\n\r\n", want: HeadFast, close: true},
	{name: "connection empty", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection:\r\n\r\n", want: HeadFast},
	{name: "connection twice", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: ,close ,\r\n\r\n", want: HeadFast, close: true},
	{
		name: "repeated fields", want: HeadFast,
		in:     "GET / HTTP/1.1\r\nAccept: text/html\r\nHost: a\r\nX-Trace: 1\r\naccept: */*\r\nACCEPT: image/png\r\n\r\n",
		fields: []string{"Accept: text/html", "X-Trace: 1", "accept: */*", "ACCEPT: image/png"},
	},
	{
		name: "ows", want: HeadFast,
		in:     "GET / HTTP/1.1\r\nHost:\t a \t\r\nX-A: \t v  w \t\r\nX-B:v\r\nX-Empty:\r\nX-Blank: \t \r\n\r\n",
		fields: []string{"X-A: v  w", "X-B: v", "X-Empty: ", "X-Blank: "},
	},
	{
		name: "browser", want: HeadFast,
		in: "GET /index.html?v=3 HTTP/1.1\r\nHost: www.example.com\r\n" +
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
			"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n" +
			"Accept-Encoding: gzip, deflate, br\r\n" +
			"Cookie: a=b; c=d\r\nCookie: e=\"f\"\r\n" +
			"Cache-Control: max-age=0\r\nPragma: no-cache\r\n" +
			"Connection: keep-alive\r\n\r\n",
		fields: []string{
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
			"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
			"Accept-Encoding: gzip, deflate, br",
			"Cookie: a=b; c=d", "Cookie: e=\"f\"",
			"Cache-Control: max-age=0", "Pragma: no-cache",
		},
	},
	{name: "pragma and cache-control", in: "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\ncache-control: no-cache\r\n\r\n", want: HeadFast},
	{name: "token name", in: "GET / HTTP/1.1\r\nHost: a\r\nX-!#$%&'*+-.^_`|~1: v\r\n\r\n", want: HeadFast},
	{
		name: "pipelined", want: HeadFast,
		in:     "GET /1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		size:   len("GET /1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n"),
		fields: []string{"X-A: 1"},
	},
	{
		name: "trailing junk", want: HeadFast,
		in:   "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x00\xff\n\r junk",
		size: len("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	},
	{name: "max fields", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nConnection: close\r\n\r\n", want: HeadFast, maxFields: 3, close: true},

	// Incomplete.
	{name: "empty", in: "", want: HeadMore},
	{name: "one byte", in: "G", want: HeadMore},
	{name: "request line", in: "GET / HTTP/1.1", want: HeadMore},
	{name: "request line CR", in: "GET / HTTP/1.1\r", want: HeadMore},
	{name: "request line CRLF", in: "GET / HTTP/1.1\r\n", want: HeadMore},
	{name: "mid field", in: "GET / HTTP/1.1\r\nHo", want: HeadMore},
	{name: "field", in: "GET / HTTP/1.1\r\nHost: a", want: HeadMore},
	{name: "field CR", in: "GET / HTTP/1.1\r\nHost: a\r", want: HeadMore},
	{name: "field CRLF", in: "GET / HTTP/1.1\r\nHost: a\r\n", want: HeadMore},
	{name: "final CR", in: "GET / HTTP/1.1\r\nHost: a\r\n\r", want: HeadMore},
	{name: "post line incomplete", in: "POST / HTTP/1.1", want: HeadMore},
	{name: "bad byte in incomplete line", in: "GET / HTTP/1.1\r\nX-A: \x01", want: HeadMore},

	// Handed off: the request line.
	{name: "post", in: "POST / HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "put", in: "PUT / HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "options star", in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "get star", in: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "connect", in: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", want: HeadHandOff},
	{name: "absolute form", in: "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "http/1.0", in: "GET / HTTP/1.0\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "http/2.0", in: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "lower-case proto", in: "GET / http/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "lower-case method", in: "get / HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "double space", in: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "double space before proto", in: "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "trailing space", in: "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "no target", in: "GET HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "empty target", in: "GET  HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "leading CRLF", in: "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "fragment", in: "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "bad escape", in: "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "short escape", in: "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "bad escape in query", in: "GET /a?b=%g1 HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "space in target", in: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "tab in target", in: "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "non-ascii target", in: "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "brackets in target", in: "GET /a[1] HTTP/1.1\r\nHost: a\r\n\r\n", want: HeadHandOff},

	// Handed off: line endings and field syntax.
	{name: "bare LF", in: "GET / HTTP/1.1\nHost: a\n\n", want: HeadHandOff},
	{name: "bare LF after field", in: "GET / HTTP/1.1\r\nHost: a\n\r\n", want: HeadHandOff},
	{name: "bare LF end", in: "GET / HTTP/1.1\r\nHost: a\r\n\n", want: HeadHandOff},
	{name: "bare CR", in: "GET / HTTP/1.1\rHost: a\r\n\r\n", want: HeadHandOff},
	{name: "bare CR in value", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", want: HeadHandOff},
	{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", want: HeadHandOff},
	{name: "obs-fold tab", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", want: HeadHandOff},
	{name: "leading space first field", in: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", want: HeadHandOff},
	{name: "space before colon", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", want: HeadHandOff},
	{name: "empty name", in: "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", want: HeadHandOff},
	{name: "no colon", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", want: HeadHandOff},
	{name: "non-token name", in: "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", want: HeadHandOff},
	{name: "non-ascii value", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n", want: HeadHandOff},
	{name: "control in value", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", want: HeadHandOff},
	{name: "NUL in value", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", want: HeadHandOff},
	{name: "DEL in value", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n", want: HeadHandOff},
	{name: "too many fields", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\n", want: HeadHandOff, maxFields: 2},
	{name: "too many with connection", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nConnection: close\r\n\r\n", want: HeadHandOff, maxFields: 2},

	// Handed off: Host.
	{name: "missing host", in: "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", want: HeadHandOff},
	{name: "no fields", in: "GET / HTTP/1.1\r\n\r\n", want: HeadHandOff},
	{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", want: HeadHandOff},
	{name: "two hosts case", in: "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", want: HeadHandOff},
	{name: "empty host", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: HeadHandOff},
	{name: "blank host", in: "GET / HTTP/1.1\r\nHost:  \t\r\n\r\n", want: HeadHandOff},
	{name: "host with space", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", want: HeadHandOff},
	{name: "host with at", in: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", want: HeadHandOff},
	{name: "host with slash", in: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", want: HeadHandOff},
	{name: "host with comma", in: "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", want: HeadHandOff},

	// Handed off: fields that need judgement.
	{name: "content-length 0", in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "content-length", in: "GET / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\nhello", want: HeadHandOff},
	{name: "transfer-encoding", in: "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: HeadHandOff},
	{name: "expect", in: "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", want: HeadHandOff},
	{name: "upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", want: HeadHandOff},
	{name: "te", in: "GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n", want: HeadHandOff},
	{name: "trailer", in: "GET / HTTP/1.1\r\nHost: a\r\nTrailer: X-A\r\n\r\n", want: HeadHandOff},
	{name: "keep-alive", in: "GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: timeout=5\r\n\r\n", want: HeadHandOff},
	{name: "proxy-connection", in: "GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: keep-alive\r\n\r\n", want: HeadHandOff},
	{name: "proxy-authorization", in: "GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic eDp5\r\n\r\n", want: HeadHandOff},
	{name: "http2-settings", in: "GET / HTTP/1.1\r\nHost: a\r\nHTTP2-Settings: AAA\r\n\r\n", want: HeadHandOff},
	{name: "connection names a field", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-foo\r\nX-Foo: 1\r\n\r\n", want: HeadHandOff},
	{name: "connection close and field", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, x-foo\r\n\r\n", want: HeadHandOff},
	{name: "pragma no-cache", in: "GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n", want: HeadHandOff},
	{name: "pragma other", in: "GET / HTTP/1.1\r\nHost: a\r\npragma: x\r\n\r\n", want: HeadHandOff},
	{name: "connection upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n", want: HeadHandOff},
}

func TestParseHead(t *testing.T) {
	for _, c := range fastHeadCases {
		t.Run(c.name, func(t *testing.T) {
			maxFields := c.maxFields
			if maxFields == 0 {
				maxFields = 100
			}
			b := []byte(c.in)
			var h ReqHead
			got := ParseHead(b, &h, maxFields)
			if got != c.want {
				t.Fatalf("ParseHead(%q) = %v, want %v", c.in, got, c.want)
			}
			checkAgainstNetHTTP(t, b)
			if got != HeadFast {
				return
			}
			size := c.size
			if size == 0 {
				size = len(c.in)
			}
			if h.Size != size {
				t.Errorf("size %d, want %d", h.Size, size)
			}
			if h.Close != c.close {
				t.Errorf("close %v, want %v", h.Close, c.close)
			}
			if c.fields != nil {
				fields := []string{}
				for _, f := range h.Fields {
					fields = append(fields, string(f.Name)+": "+string(f.Value))
				}
				if !reflect.DeepEqual(fields, c.fields) {
					t.Errorf("fields %q, want %q", fields, c.fields)
				}
			}
			// The verdict on a complete head does not depend on what
			// follows it.
			var h2 ReqHead
			if v := ParseHead(append(b[:size:size], "GET /next HTTP/1.1\r\n"...), &h2, maxFields); v != HeadFast || h2.Size != size {
				t.Errorf("with a following request: %v, size %d", v, h2.Size)
			}
		})
	}
}

// String keeps test failures readable.
func (v HeadVerdict) String() string {
	switch v {
	case HeadMore:
		return "HeadMore"
	case HeadFast:
		return "HeadFast"
	case HeadHandOff:
		return "HeadHandOff"
	}
	return fmt.Sprintf("headVerdict(%d)", int(v))
}

func FuzzFastHead(f *testing.F) {
	for _, c := range fastHeadCases {
		f.Add([]byte(c.in), []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
		f.Add([]byte(c.in), []byte{})
	}
	f.Add([]byte(strings.Repeat("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 2)), []byte("\n\r\x00"))
	f.Fuzz(func(t *testing.T, b, tail []byte) {
		verdict := checkAgainstNetHTTP(t, b)
		if verdict != HeadFast {
			return
		}
		var h ReqHead
		ParseHead(b, &h, 100)
		size := h.Size
		// A complete head's verdict and size do not depend on what
		// follows it, nor does any strict prefix of it look complete.
		bt := append(b[:size:size], tail...)
		var h2 ReqHead
		if v := ParseHead(bt, &h2, 100); v != HeadFast || h2.Size != size {
			t.Errorf("ParseHead(%q) = HeadFast, size %d; with %q after the head: %v, size %d", b, size, tail, v, h2.Size)
		}
		checkAgainstNetHTTP(t, bt)
		for i := 0; i < size; i++ {
			if v := ParseHead(b[:i], &h2, 100); v != HeadMore {
				t.Errorf("ParseHead(%q) = HeadFast, but its prefix %q is %v", b, b[:i], v)
				break
			}
		}
	})
}

// nextLine's verdicts at the edges its scans meet: a bare LF before or
// after the CR, a CR last, no line end at all.
func TestNextLineEdges(t *testing.T) {
	for _, c := range []struct {
		in, line, rest string
		v              HeadVerdict
	}{
		{in: "ab\r\ncd", line: "ab", rest: "cd", v: HeadFast},
		{in: "\r\n", v: HeadFast},
		{in: "a\nb\r\n", v: HeadHandOff},
		{in: "ab\rc\n", v: HeadHandOff},
		{in: "ab\n", v: HeadHandOff},
		{in: "ab\r", v: HeadMore},
		{in: "a\nb\r", v: HeadHandOff},
		{in: "abc", v: HeadMore},
		{in: "", v: HeadMore},
	} {
		line, rest, v := nextLine([]byte(c.in))
		if v != c.v || string(line) != c.line || string(rest) != c.rest {
			t.Errorf("nextLine(%q) = %q, %q, %v; want %q, %q, %v", c.in, line, rest, v, c.line, c.rest, c.v)
		}
	}
}
