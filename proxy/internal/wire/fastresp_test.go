package wire

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// ParseRespHead is held to http.ReadResponse: every response head it
// takes, net/http reads with the same status, length, connection fate and
// size, and the field lines it relays are exactly the fields
// httputil.ReverseProxy would relay from net/http's reading.

// respHopHeaders are the fields httputil.ReverseProxy removes from a
// response before relaying it (its hopHeaders), besides those named in
// Connection.
var respHopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// checkRespAgainstNetHTTP holds ParseRespHead's verdict on b, the answer
// to a GET (head false) or HEAD request, to http.ReadResponse's reading.
func checkRespAgainstNetHTTP(t testing.TB, b []byte, head bool) HeadVerdict {
	t.Helper()
	var r RespHead
	verdict := ParseRespHead(b, &r, head)
	switch verdict {
	case HeadMore:
		if bytes.Contains(b, []byte("\r\n\r\n")) {
			t.Errorf("ParseRespHead(%q) = HeadMore, but the head is complete", b)
		}
		for i, c := range b {
			if c == '\n' && (i == 0 || b[i-1] != '\r') {
				t.Errorf("ParseRespHead(%q) = HeadMore, but it holds a bare LF at %d", b, i)
				break
			}
			if c == '\r' && i+1 < len(b) && b[i+1] != '\n' {
				t.Errorf("ParseRespHead(%q) = HeadMore, but it holds a bare CR at %d", b, i)
				break
			}
		}
	case HeadFast:
		checkRespFast(t, b, head, &r)
	}
	return verdict
}

// checkRespFast compares a head ParseRespHead took with net/http's reading.
func checkRespFast(t testing.TB, b []byte, head bool, r *RespHead) {
	t.Helper()
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	cr := &countingReader{r: bytes.NewReader(b)}
	br := bufio.NewReader(cr)
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Errorf("ParseRespHead(%q, head %v) = HeadFast, but http.ReadResponse fails: %v", b, head, err)
		return
	}
	if consumed := cr.n - br.Buffered(); consumed != r.Size {
		t.Errorf("%q: net/http read a head of %d bytes, ParseRespHead size %d", b, consumed, r.Size)
	}
	if r.Size < 4 || r.Size > len(b) || string(b[r.Size-4:r.Size]) != "\r\n\r\n" {
		t.Errorf("%q: size %d does not end at a blank line", b, r.Size)
	}
	if res.StatusCode != r.Code {
		t.Errorf("%q: StatusCode %d, ParseRespHead %d", b, res.StatusCode, r.Code)
	}
	if res.ProtoMajor != 1 || res.ProtoMinor != 1 {
		t.Errorf("%q: proto %d.%d", b, res.ProtoMajor, res.ProtoMinor)
	}
	if res.Close != r.Close {
		t.Errorf("%q (head %v): net/http Close %v, ParseRespHead close %v", b, head, res.Close, r.Close)
	}
	if res.ContentLength != r.Length {
		t.Errorf("%q (head %v): ContentLength %d, ParseRespHead length %d", b, head, res.ContentLength, r.Length)
	}
	if len(res.TransferEncoding) != 0 {
		t.Errorf("%q: TransferEncoding %q", b, res.TransferEncoding)
	}
	if len(res.Trailer) != 0 {
		t.Errorf("%q: Trailer %q", b, res.Trailer)
	}
	if head {
		if cl, ok := res.Header["Content-Length"]; ok {
			n, err := strconv.ParseInt(textproto.TrimString(cl[0]), 10, 64)
			if len(cl) != 1 || err != nil || n != r.Length {
				t.Errorf("%q: HEAD response Content-Length %q, ParseRespHead length %d", b, cl, r.Length)
			}
		} else if r.Length != -1 {
			t.Errorf("%q: HEAD response without Content-Length, ParseRespHead length %d", b, r.Length)
		}
		if n, err := io.Copy(io.Discard, res.Body); n != 0 || err != nil {
			t.Errorf("%q: HEAD response body of %d bytes (%v)", b, n, err)
		}
	} else {
		if r.Length < 0 {
			t.Errorf("%q: GET response taken without a length", b)
		} else if r.Size <= len(b) && int64(len(b)-r.Size) >= r.Length {
			body, err := io.ReadAll(res.Body)
			if err != nil || !bytes.Equal(body, b[r.Size:r.Size+int(r.Length)]) {
				t.Errorf("%q: net/http body %q (%v), want the %d bytes after the head", b, body, err, r.Length)
			}
		}
	}
	if _, ok := res.Header["Date"]; ok != r.HasDate {
		t.Errorf("%q: Date present %v, ParseRespHead hasDate %v", b, ok, r.HasDate)
	}

	// The relayed lines: verbatim from the head, in order, valid, and
	// together exactly what ReverseProxy relays.
	want := http.Header{}
	pos := 0
	for _, l := range r.Lines {
		name, value, ok := strings.Cut(string(l), ":")
		if !ok {
			t.Errorf("%q: relayed line %q has no colon", b, l)
			continue
		}
		value = strings.Trim(value, " \t")
		if !httpguts.ValidHeaderFieldName(name) {
			t.Errorf("%q: relayed line %q: invalid name", b, l)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			t.Errorf("%q: relayed line %q: invalid value", b, l)
		}
		k := http.CanonicalHeaderKey(name)
		want[k] = append(want[k], value)
		if end := min(r.Size, len(b)); pos <= end {
			i := bytes.Index(b[pos:end], append([]byte("\r\n"), append(l, '\r', '\n')...))
			if i < 0 {
				t.Errorf("%q: relayed line %q is not a line of the head after offset %d", b, l, pos)
			} else {
				pos += i + len(l) + 2
			}
		}
	}
	got := http.Header{}
	for k, vv := range res.Header {
		got[k] = vv
	}
	for _, f := range res.Header["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				got.Del(sf)
			}
		}
	}
	for _, f := range respHopHeaders {
		got.Del(f)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q: net/http header (hop-by-hop removed) %q, ParseRespHead lines %q", b, got, want)
	}
}

// respHeadCase is one response head for the table. For HeadFast, the
// head ends at the first blank line; close, length, hasDate and lines
// (when not nil) are checked.
type respHeadCase struct {
	name    string
	in      string
	head    bool // the answer to a HEAD request
	want    HeadVerdict
	close   bool
	length  int64
	hasDate bool
	lines   []string // relayed lines, in order; nil: not checked
}

var respHeadCases = []respHeadCase{
	// Accepted.
	{
		name: "200", want: HeadFast, length: 5,
		in:    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		lines: []string{"Content-Length: 5", "Content-Type: text/plain"},
	},
	{name: "404", want: HeadFast, length: 9, in: "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found"},
	{name: "500", want: HeadFast, length: 3, in: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nerr"},
	{
		name: "301", want: HeadFast, length: 0,
		in:    "HTTP/1.1 301 Moved Permanently\r\nLocation: https://example.com/x?y=1\r\nContent-Length: 0\r\n\r\n",
		lines: []string{"Location: https://example.com/x?y=1", "Content-Length: 0"},
	},
	{name: "302 body", want: HeadFast, length: 4, in: "HTTP/1.1 302 Found\r\nLocation: /a\r\nContent-Length: 4\r\n\r\n/a\r\n"},
	{name: "no reason", want: HeadFast, length: 2, in: "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"},
	{name: "empty reason", want: HeadFast, length: 2, in: "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"},
	{name: "reason spaces", want: HeadFast, length: 2, in: "HTTP/1.1 418 I'm a  teapot \r\nContent-Length: 2\r\n\r\nok"},
	{name: "reason tab obs-text", want: HeadFast, length: 0, in: "HTTP/1.1 200 \xc3\xa9t\xe9\tok\r\nContent-Length: 0\r\n\r\n"},
	{name: "599", want: HeadFast, length: 0, in: "HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n"},
	{name: "200 unknown reason", want: HeadFast, length: 0, in: "HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n"},
	{name: "content-length 0", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", lines: []string{"Content-Length: 0"}},
	{name: "body longer than the buffer", want: HeadFast, length: 1 << 20, in: "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\nabc"},
	{name: "18 digits", want: HeadFast, length: 999999999999999999, in: "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n"},
	{name: "leading zeros", want: HeadFast, length: 7, in: "HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n1234567", lines: []string{"Content-Length: 007"}},
	{name: "content-length ows", want: HeadFast, length: 2, in: "HTTP/1.1 200 OK\r\nContent-Length:\t 2 \t\r\n\r\nok"},
	{
		name: "connection close", want: HeadFast, length: 2, close: true,
		in:    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		lines: []string{"Content-Length: 2"},
	},
	{
		name: "connection keep-alive", want: HeadFast, length: 2,
		in:    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-A: b\r\n\r\nok",
		lines: []string{"Content-Length: 2", "X-A: b"},
	},
	{name: "connection both", want: HeadFast, length: 0, close: true, in: "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n"},
	{name: "connection twice", want: HeadFast, length: 0, close: true, in: "HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nCONNECTION: ,close ,\r\nContent-Length: 0\r\n\r\n"},
	{name: "connection empty", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nConnection:\r\nContent-Length: 0\r\n\r\n", lines: []string{"Content-Length: 0"}},
	{
		// ReadResponse drops "Connection: close" before ReverseProxy
		// looks for the fields it names, so a Close field goes through.
		name: "close field", want: HeadFast, length: 0, close: true,
		in:    "HTTP/1.1 200 OK\r\nConnection: close\r\nClose: x\r\nContent-Length: 0\r\n\r\n",
		lines: []string{"Close: x", "Content-Length: 0"},
	},
	{
		name: "date", want: HeadFast, length: 2, hasDate: true,
		in:    "HTTP/1.1 200 OK\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 2\r\n\r\nok",
		lines: []string{"Date: Mon, 02 Jan 2006 15:04:05 GMT", "Content-Length: 2"},
	},
	{name: "date lower case", want: HeadFast, length: 0, hasDate: true, in: "HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: x\r\n\r\n"},
	{name: "no date", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nX-Date: x\r\nDates: y\r\nContent-Length: 0\r\n\r\n"},
	{
		name: "set-cookie twice", want: HeadFast, length: 0,
		in:    "HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nContent-Length: 0\r\nset-cookie: b=2; HttpOnly\r\n\r\n",
		lines: []string{"Set-Cookie: a=1; Path=/", "Content-Length: 0", "set-cookie: b=2; HttpOnly"},
	},
	{
		name: "odd-case names", want: HeadFast, length: 3,
		in:    "HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: 3\r\nx-CUSTOM-header: v\r\nETAG: \"1\"\r\n\r\nabc",
		lines: []string{"cOnTeNt-LeNgTh: 3", "x-CUSTOM-header: v", "ETAG: \"1\""},
	},
	{
		name: "ows", want: HeadFast, length: 0,
		in:    "HTTP/1.1 200 OK\r\nX-A: \t v  w \t\r\nX-B:v\r\nX-Empty:\r\nX-Blank: \t \r\nContent-Length: 0\r\n\r\n",
		lines: []string{"X-A: \t v  w \t", "X-B:v", "X-Empty:", "X-Blank: \t ", "Content-Length: 0"},
	},
	{name: "token names", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nX!#$%&'*+-.^_`|~9: v\r\nContent-Length: 0\r\n\r\n"},
	{name: "obs-text value", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9 \xff\x80\r\nContent-Length: 0\r\n\r\n"},
	{name: "tab in value", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nX-A: a\tb\r\nContent-Length: 0\r\n\r\n"},
	{name: "pragma with cache-control", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nCache-Control: no-store\r\nContent-Length: 0\r\n\r\n"},
	{name: "cache-control before pragma", want: HeadFast, length: 0, in: "HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\npragma: no-cache\r\nContent-Length: 0\r\n\r\n"},
	{name: "head with length", head: true, want: HeadFast, length: 1234, in: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/html\r\n\r\n"},
	{
		name: "head without length", head: true, want: HeadFast, length: -1,
		in:    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
		lines: []string{"Content-Type: text/html"},
	},
	{name: "head no fields", head: true, want: HeadFast, length: -1, in: "HTTP/1.1 404 Not Found\r\n\r\n", lines: []string{}},
	{name: "head close", head: true, want: HeadFast, length: -1, close: true, in: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", lines: []string{}},
	{name: "following response", want: HeadFast, length: 2, in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"},

	// Incomplete.
	{name: "empty", in: "", want: HeadMore},
	{name: "part of the version", in: "HTTP/1.", want: HeadMore},
	{name: "status line", in: "HTTP/1.1 200 OK", want: HeadMore},
	{name: "status line CR", in: "HTTP/1.1 200 OK\r", want: HeadMore},
	{name: "status line CRLF", in: "HTTP/1.1 200 OK\r\n", want: HeadMore},
	{name: "in a field", in: "HTTP/1.1 200 OK\r\nContent-Len", want: HeadMore},
	{name: "field CR", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r", want: HeadMore},
	{name: "field CRLF", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", want: HeadMore},
	{name: "blank line CR", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r", want: HeadMore},
	{name: "incomplete 1.0", in: "HTTP/1.0 200 OK", want: HeadMore},

	// Handed off.
	{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", want: HeadHandOff},
	{name: "HTTP/2", in: "HTTP/2 200\r\nContent-Length: 2\r\n\r\nok", want: HeadHandOff},
	{name: "HTTP/2.0", in: "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", want: HeadHandOff},
	{name: "lower-case version", in: "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", want: HeadHandOff},
	{name: "100", in: "HTTP/1.1 100 Continue\r\n\r\n", want: HeadHandOff},
	{name: "103", in: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "101", in: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", want: HeadHandOff},
	{name: "199", in: "HTTP/1.1 199 x\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "204", in: "HTTP/1.1 204 No Content\r\n\r\n", want: HeadHandOff},
	{name: "204 length", in: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "304", in: "HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n", want: HeadHandOff},
	{name: "304 head", head: true, in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", want: HeadHandOff},
	{name: "600", in: "HTTP/1.1 600 x\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "999", in: "HTTP/1.1 999 x\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "000", in: "HTTP/1.1 000 x\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status 20", in: "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status 20 no reason", in: "HTTP/1.1 20\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status 2000", in: "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status 20x", in: "HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status +20", in: "HTTP/1.1 +20 OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status no space", in: "HTTP/1.1200 OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status glued reason", in: "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status two spaces", in: "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "status tab", in: "HTTP/1.1 200\tOK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "reason NUL", in: "HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "reason DEL", in: "HTTP/1.1 200 OK\x7f\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "no content-length", in: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", want: HeadHandOff},
	{name: "no fields", in: "HTTP/1.1 200 OK\r\n\r\n", want: HeadHandOff},
	{name: "two content-lengths same", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", want: HeadHandOff},
	{name: "two content-lengths differ", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", want: HeadHandOff},
	{name: "two content-lengths head", head: true, in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n", want: HeadHandOff},
	{name: "content-length plus", in: "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", want: HeadHandOff},
	{name: "content-length minus", in: "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok", want: HeadHandOff},
	{name: "content-length inner space", in: "HTTP/1.1 200 OK\r\nContent-Length: 1 0\r\n\r\nok", want: HeadHandOff},
	{name: "content-length list", in: "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", want: HeadHandOff},
	{name: "content-length hex", in: "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello", want: HeadHandOff},
	{name: "content-length exponent", in: "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", want: HeadHandOff},
	{name: "content-length 19 digits", in: "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n", want: HeadHandOff},
	{name: "content-length 19 digits zero", in: "HTTP/1.1 200 OK\r\nContent-Length: 0000000000000000005\r\n\r\nhello", want: HeadHandOff},
	{name: "content-length empty", in: "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", want: HeadHandOff},
	{name: "content-length space name", in: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", want: HeadHandOff},
	{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", want: HeadHandOff},
	{name: "chunked and length", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", want: HeadHandOff},
	{name: "identity", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok", want: HeadHandOff},
	{name: "chunked head", head: true, in: "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", want: HeadHandOff},
	{name: "keep-alive", in: "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "keep-alive alone", in: "HTTP/1.1 200 OK\r\nkeep-alive: timeout=5\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "upgrade", in: "HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "trailer", in: "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "te", in: "HTTP/1.1 200 OK\r\nTE: trailers\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "proxy-authenticate", in: "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "proxy-authorization", in: "HTTP/1.1 200 OK\r\nProxy-Authorization: Basic eA==\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "proxy-connection", in: "HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "connection x-foo", in: "HTTP/1.1 200 OK\r\nConnection: x-foo\r\nX-Foo: 1\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "connection close x-foo", in: "HTTP/1.1 200 OK\r\nConnection: close, x-foo\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "connection upgrade", in: "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "connection close;", in: "HTTP/1.1 200 OK\r\nConnection: close;\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "pragma", in: "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "pragma other", in: "HTTP/1.1 200 OK\r\nPRAGMA: x\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "obs-fold", in: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "obs-fold tab", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: a\r\n\tb\r\n\r\n", want: HeadHandOff},
	{name: "bare LF status", in: "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "bare LF field", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\nX: y\r\n\r\n", want: HeadHandOff},
	{name: "bare LF end", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", want: HeadHandOff},
	{name: "LF only", in: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", want: HeadHandOff},
	{name: "bare CR status", in: "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "bare CR field", in: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "bare CR end", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX", want: HeadHandOff},
	{name: "NUL in value", in: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "control in value", in: "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "DEL in value", in: "HTTP/1.1 200 OK\r\nX-A: a\x7f\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "ESC at value end", in: "HTTP/1.1 200 OK\r\nX-A: a \x1b\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "space before colon", in: "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "tab before colon", in: "HTTP/1.1 200 OK\r\nX-A\t: a\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "empty name", in: "HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "no colon", in: "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "space-prefixed first field", in: "HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "tab-prefixed first field", in: "HTTP/1.1 200 OK\r\n\tX: a\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "separator in name", in: "HTTP/1.1 200 OK\r\nX(a): b\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
	{name: "non-ASCII name", in: "HTTP/1.1 200 OK\r\nX-\xc3\xa9: b\r\nContent-Length: 0\r\n\r\n", want: HeadHandOff},
}

func TestParseRespHead(t *testing.T) {
	for _, c := range respHeadCases {
		t.Run(c.name, func(t *testing.T) {
			b := []byte(c.in)
			var r RespHead
			got := ParseRespHead(b, &r, c.head)
			if got != c.want {
				t.Fatalf("ParseRespHead(%q, head %v) = %v, want %v", c.in, c.head, got, c.want)
			}
			checkRespAgainstNetHTTP(t, b, c.head)
			if got != HeadFast {
				return
			}
			size := strings.Index(c.in, "\r\n\r\n") + 4
			if r.Size != size {
				t.Errorf("size %d, want %d", r.Size, size)
			}
			if r.Length != c.length {
				t.Errorf("length %d, want %d", r.Length, c.length)
			}
			if r.Close != c.close {
				t.Errorf("close %v, want %v", r.Close, c.close)
			}
			if r.HasDate != c.hasDate {
				t.Errorf("hasDate %v, want %v", r.HasDate, c.hasDate)
			}
			if c.lines != nil {
				lines := []string{}
				for _, l := range r.Lines {
					lines = append(lines, string(l))
				}
				if !reflect.DeepEqual(lines, c.lines) {
					t.Errorf("lines %q, want %q", lines, c.lines)
				}
			}
			checkRespHeadBounds(t, b, c.head, size)
		})
	}
}

// respTails follow a complete head in the tests of its independence from
// what comes next.
var respTails = []string{"", "\n", "\r", "\r\n", " x", "\x00", "HTTP/1.1 200 OK\r\n", "Connection: close\r\n\r\n"}

// checkRespHeadBounds checks that a head ParseRespHead took with the given
// size is read the same whatever follows it, and that no strict prefix of
// it looks complete.
func checkRespHeadBounds(t testing.TB, b []byte, head bool, size int) {
	t.Helper()
	var r RespHead
	for _, tail := range append(respTails, string(b[size:])) {
		bt := append(b[:size:size], tail...)
		if v := ParseRespHead(bt, &r, head); v != HeadFast || r.Size != size {
			t.Errorf("ParseRespHead(%q) = HeadFast, size %d; with %q after the head: %v, size %d", b, size, tail, v, r.Size)
		}
	}
	for i := range size {
		if v := ParseRespHead(b[:i], &r, head); v != HeadMore {
			t.Errorf("ParseRespHead(%q) = HeadFast, but its prefix %q is %v", b, b[:i], v)
			break
		}
	}
}

func FuzzRespHead(f *testing.F) {
	for _, c := range respHeadCases {
		f.Add([]byte(c.in), c.head)
		f.Add([]byte(c.in), !c.head)
	}
	f.Fuzz(func(t *testing.T, b []byte, head bool) {
		if checkRespAgainstNetHTTP(t, b, head) != HeadFast {
			return
		}
		var r RespHead
		ParseRespHead(b, &r, head)
		checkRespHeadBounds(t, b, head, r.Size)
		// With something else after the head, net/http still agrees.
		checkRespAgainstNetHTTP(t, append(b[:r.Size:r.Size], "X"...), head)
	})
}
