package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// diffReq is a request of the differential test. The X-Resp field naming
// the node's response kind goes in after the request line.
type diffReq struct {
	name   string
	raw    string
	refuse int // portico answers it itself with this status
}

func (r diffReq) method() string {
	m, _, _ := strings.Cut(r.raw, " ")
	return m
}

// with returns the request asking the node for kind.
func (r diffReq) with(kind string) string {
	line, rest, ok := strings.Cut(r.raw, "\r\n")
	if !ok {
		line, rest, _ = strings.Cut(r.raw, "\n")
		return line + "\nX-Resp: " + kind + "\n" + rest
	}
	return line + "\r\nX-Resp: " + kind + "\r\n" + rest
}

const diffHost = "Host: example.com\r\n"

var diffRequests = []diffReq{
	// served by the fast path
	{name: "get", raw: "GET / HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "head", raw: "HEAD /index.html HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "browser", raw: "GET /index.html HTTP/1.1\r\n" + diffHost +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Referer: https://example.com/\r\nCookie: session=abc123; theme=dark\r\n" +
		"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n" +
		"If-None-Match: \"v0\"\r\nCache-Control: max-age=0\r\nConnection: keep-alive\r\n\r\n"},
	{name: "repeated", raw: "GET /r HTTP/1.1\r\n" + diffHost + "Accept: text/html\r\nAccept: */*\r\n" +
		"Cookie: a=1\r\nCookie: b=2\r\nX-Multi: 1\r\nX-Other: o\r\nX-Multi: 2\r\n\r\n"},
	{name: "user-agent-twice", raw: "GET / HTTP/1.1\r\n" + diffHost + "User-Agent: one\r\nUser-Agent: two\r\n\r\n"},
	{name: "no-user-agent-empty", raw: "GET / HTTP/1.1\r\n" + diffHost + "User-Agent:\r\n\r\n"},
	{name: "odd-case", raw: "GET / HTTP/1.1\r\nhOsT: Example.COM\r\nuSeR-aGeNt: x\r\nx-lower: v\r\nACCEPT: */*\r\n" +
		"connection: KEEP-ALIVE\r\ncOOKIE: k=v\r\n\r\n"},
	{name: "underscores", raw: "GET / HTTP/1.1\r\n" + diffHost + "X_Forwarded_For: 10.0.0.1\r\nX_Real_IP: 10.0.0.2\r\n" +
		"x_forwarded_host: evil\r\nX_Custom_Thing: ok\r\n\r\n"},
	{name: "spoof", raw: "GET / HTTP/1.1\r\n" + diffHost + "X-Forwarded-For: 1.2.3.4\r\nX-Real-IP: 5.6.7.8\r\n" +
		"Forwarded: for=9.9.9.9;proto=https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n" +
		"X-Forwarded-Port: 443\r\nx-forwarded-for: 4.4.4.4\r\nTrue-Client-IP: 1.1.1.1\r\nX-Original-URL: /admin\r\n" +
		"X-Rewrite-URL: /admin\r\nX-Client-IP: 2.2.2.2\r\nX-Cluster-Client-IP: 3.3.3.3\r\nX-Original-Host: evil\r\n" +
		"X-Host: evil\r\n\r\n"},
	{name: "close", raw: "GET / HTTP/1.1\r\n" + diffHost + "Connection: close\r\n\r\n"},
	{name: "close-upper", raw: "HEAD / HTTP/1.1\r\n" + diffHost + "Connection: Close\r\n\r\n"},
	{name: "keep-alive", raw: "GET / HTTP/1.1\r\n" + diffHost + "Connection: keep-alive\r\n\r\n"},
	{name: "keep-alive-close", raw: "GET / HTTP/1.1\r\n" + diffHost + "Connection: keep-alive, close\r\n\r\n"},
	{name: "query", raw: "GET /search?q=go+lang&page=2&x=a%20b HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "query-empty", raw: "GET /a? HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "query-escapes", raw: "GET /a?x=%41%42&y=%E2%82%AC&z=%2F%3F HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "query-semicolon", raw: "GET /a?x=1;y=2&b=3 HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "query-odd", raw: "GET /a?b=2&a=1&&c&=d&e= HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "dot-segments", raw: "GET /a/./b/../c HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "double-slash", raw: "GET //x HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "double-slash-inner", raw: "GET /a//b/ HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "percent-path", raw: "GET /%7Euser/caf%C3%A9/a%20b/%41 HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "sub-delims-path", raw: "GET /a!b$c&d'e(f)g*h+i,j;k=l:m@n HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "encoded-delims", raw: "GET /a%3Fb/c%23d/e%25f?g=%3F HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "query-question", raw: "GET /a?b?c=/d HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "percent-sign", raw: "GET /100%25/x HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "host-port", raw: "GET / HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n"},
	{name: "host-ipv6", raw: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"},
	{name: "host-ip", raw: "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
	{name: "host-trailing-dot", raw: "GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n"},
	{name: "empty-and-ws", raw: "GET / HTTP/1.1\r\n" + diffHost + "X-Empty:\r\nX-Ws: \t a\tb \t\r\nX-Tight:v\r\n\r\n"},
	{name: "pragma-cache", raw: "GET / HTTP/1.1\r\n" + diffHost + "Pragma: no-cache\r\nCache-Control: no-store\r\n\r\n"},
	{name: "if-modified", raw: "GET / HTTP/1.1\r\n" + diffHost + "If-Modified-Since: " + diffNodeDate + "\r\nRange: bytes=0-1\r\n\r\n"},
	{name: "encoded-dots", raw: "GET /a/%2e%2E/b/%2E/c HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "host-empty-port", raw: "GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n"},
	{name: "connection-empty", raw: "GET / HTTP/1.1\r\n" + diffHost + "Connection:\r\nConnection: ,keep-alive,\r\n\r\n"},
	{name: "authorization", raw: "GET / HTTP/1.1\r\n" + diffHost + "Authorization: Bearer abc.def\r\n\r\n"},

	// refused by portico on both paths
	{name: "denied", raw: "GET /denied/x HTTP/1.1\r\n" + diffHost + "\r\n", refuse: 403},
	{name: "encoded-slash", raw: "GET /a%2Fb HTTP/1.1\r\n" + diffHost + "\r\n", refuse: 400},
	{name: "above-root", raw: "GET /../x HTTP/1.1\r\n" + diffHost + "\r\n", refuse: 400},
	{name: "bad-host", raw: "GET / HTTP/1.1\r\nHost: exa_mple..com\r\n\r\n", refuse: 400},
	{name: "url-too-long", raw: "GET /" + strings.Repeat("a", 1100) + " HTTP/1.1\r\n" + diffHost + "\r\n", refuse: 414},
	{name: "too-many-fields", raw: "GET / HTTP/1.1\r\n" + diffHost + strings.Repeat("X-F: 1\r\n", 25) + "\r\n", refuse: 431},
	{name: "no-host", raw: "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", refuse: 400},
	{name: "two-hosts", raw: "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", refuse: 400},
	{name: "bad-escape", raw: "GET /a%zz HTTP/1.1\r\n" + diffHost + "\r\n", refuse: 400},

	// handed off to net/http by the fast path
	{name: "large-head", raw: "GET / HTTP/1.1\r\n" + diffHost + "Cookie: " + strings.Repeat("c", 5000) + "\r\n\r\n"},
	{name: "pragma", raw: "GET / HTTP/1.1\r\n" + diffHost + "Pragma: no-cache\r\n\r\n"},
	{name: "post", raw: "POST /form HTTP/1.1\r\n" + diffHost + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2"},
	{name: "post-chunked", raw: "POST /up HTTP/1.1\r\n" + diffHost + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
	{name: "get-with-body", raw: "GET / HTTP/1.1\r\n" + diffHost + "Content-Length: 3\r\n\r\nabc"},
	{name: "get-cl0", raw: "GET / HTTP/1.1\r\n" + diffHost + "Content-Length: 0\r\n\r\n"},
	{name: "options", raw: "OPTIONS /x HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "options-star", raw: "OPTIONS * HTTP/1.1\r\n" + diffHost + "\r\n", refuse: 400},
	{name: "delete", raw: "DELETE /x HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "http10", raw: "GET / HTTP/1.0\r\n" + diffHost + "\r\n"},
	{name: "http10-keep-alive", raw: "GET / HTTP/1.0\r\n" + diffHost + "Connection: keep-alive\r\n\r\n"},
	{name: "expect", raw: "PUT /x HTTP/1.1\r\n" + diffHost + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"},
	{name: "upgrade-without-connection", raw: "GET / HTTP/1.1\r\n" + diffHost + "Upgrade: websocket\r\n\r\n"},
	{name: "connection-named-field", raw: "GET / HTTP/1.1\r\n" + diffHost + "Connection: X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n\r\n"},
	{name: "te-trailers", raw: "GET / HTTP/1.1\r\n" + diffHost + "TE: trailers\r\n\r\n"},
	{name: "proxy-connection", raw: "GET / HTTP/1.1\r\n" + diffHost + "Proxy-Connection: keep-alive\r\n\r\n"},
	{name: "obs-fold", raw: "GET / HTTP/1.1\r\n" + diffHost + "X-Fold: a\r\n b\r\n\r\n"},
	{name: "absolute-form", raw: "GET http://example.com/abs?q=1 HTTP/1.1\r\n" + diffHost + "\r\n"},
	{name: "bare-lf", raw: "GET / HTTP/1.1\n" + diffHost[:len(diffHost)-2] + "\n\n"},
	{name: "obs-text", raw: "GET / HTTP/1.1\r\n" + diffHost + "X-Latin: caf\xe9\r\n\r\n"},
	{name: "fragment", raw: "GET /a#frag HTTP/1.1\r\n" + diffHost + "\r\n", refuse: 400},
	{name: "raw-utf8-path", raw: "GET /caf\xc3\xa9 HTTP/1.1\r\n" + diffHost + "\r\n"},
}

// TestFastPathMatchesNetHTTP sends each request of diffRequests, asking
// for each response kind of diffKinds, to a Server with the fast path and
// to one without, and expects the same: what the node received (method,
// target, Host, every header field with its values in order, body) and
// what the client got (1xx responses, status, header but for the Date
// portico adds, framing, body, trailers, whether the connection closes).
func TestFastPathMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	p := startDiffPair(t)
	for _, r := range diffRequests {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			for _, kind := range diffKindNames {
				out, same := p.compare(t, r.name+" → "+kind, diffStep{write: r.with(kind), methods: []string{r.method()}})
				if !same || len(out) != 1 {
					continue
				}
				o := out[0]
				switch {
				case diffKinds[kind].broken && r.refuse == 0:
					// a 502 or a cut-off response: compared above
				case o.Err != "":
					t.Errorf("%s → %s: no response: %s", r.name, kind, o.Err)
				case r.refuse != 0 && (o.Status != r.refuse || o.Node != nil):
					t.Errorf("%s → %s: status %d, node reached %v; want %d from portico", r.name, kind, o.Status, o.Node != nil, r.refuse)
				case r.refuse == 0 && o.Node == nil:
					t.Errorf("%s → %s: status %d, but the node got no request", r.name, kind, o.Status)
				}
			}
		})
	}

	// Several requests on one connection.
	get := func(path, kind string) string {
		return "GET " + path + " HTTP/1.1\r\n" + diffHost + "X-Resp: " + kind + "\r\n\r\n"
	}
	post := "POST /form HTTP/1.1\r\n" + diffHost + "X-Resp: chunked\r\nContent-Length: 5\r\n\r\nhello"
	head := "HEAD /h HTTP/1.1\r\n" + diffHost + "X-Resp: large\r\n\r\n"
	seqs := []struct {
		name  string
		steps []diffStep
		n     int
	}{
		{"pipelined", []diffStep{{write: get("/1", "cl") + get("/2", "chunked"), methods: []string{"GET", "GET"}}}, 2},
		{"pipelined-head", []diffStep{{write: head + get("/2", "trailers") + head, methods: []string{"HEAD", "GET", "HEAD"}}}, 3},
		{"pipelined-close", []diffStep{{write: get("/1", "cl") + strings.Replace(get("/2", "cl"), "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1) + get("/3", "cl"),
			methods: []string{"GET", "GET", "GET"}}}, 2},
		{"pipelined-node-closes", []diffStep{{write: get("/1", "hop") + get("/2", "http10") + get("/3", "cl"), methods: []string{"GET", "GET", "GET"}}}, 3},
		// the next request is not complete yet: the first one's
		// response must not wait for it
		{"pipelined-partial", []diffStep{{write: get("/1", "cl") + "GET /2 HTTP/1.1\r\nHo", methods: []string{"GET"}}}, 1},
		{"pipelined-partial-chunked", []diffStep{{write: get("/1", "chunked") + "G", methods: []string{"GET"}}}, 1},
		{"pipelined-partial-204", []diffStep{{write: get("/1", "204") + "GE", methods: []string{"GET"}}}, 1},
		// the second answer breaks off: the first must still arrive
		{"pipelined-then-short", []diffStep{{write: get("/1", "cl") + get("/2", "short"), methods: []string{"GET", "GET"}}}, 1},
		// the head arrives in two writes
		{"split-head", []diffStep{{write: "GET /split HTTP/1.1\r\nHo"}, {write: "st: example.com\r\nX-Resp: cl\r\n\r\n", methods: []string{"GET"}}}, 1},
		{"fast-then-post", []diffStep{{write: get("/1", "cl"), methods: []string{"GET"}}, {write: post, methods: []string{"POST"}},
			{write: get("/3", "cookies"), methods: []string{"GET"}}}, 3},
		{"fast-then-post-pipelined", []diffStep{{write: get("/1", "cl") + post + get("/3", "cl"), methods: []string{"GET", "POST", "GET"}}}, 3},
		{"post-then-fast", []diffStep{{write: post, methods: []string{"POST"}}, {write: get("/2", "cl"), methods: []string{"GET"}}}, 2},
		{"fast-then-refused", []diffStep{{write: get("/1", "cl") + get("/a%2Fb", "cl") + get("/3", "cl"), methods: []string{"GET", "GET", "GET"}}}, 2},
		{"keep-alive-series", []diffStep{{write: get("/1", "cl"), methods: []string{"GET"}}, {write: get("/2", "204"), methods: []string{"GET"}},
			{write: get("/3", "304"), methods: []string{"GET"}}, {write: get("/4", "large"), methods: []string{"GET"}}}, 4},
		// the node does not answer within response_timeout: 504
		{"silent", []diffStep{{write: get("/1", "silent"), methods: []string{"GET"}}, {write: get("/2", "cl"), methods: []string{"GET"}}}, 2},
		{"silent-head", []diffStep{{write: strings.Replace(head, "large", "silent", 1), methods: []string{"HEAD"}}}, 1},
	}

	// The one known difference. A client that sends its requests and
	// shuts down its sending side (printf ... | nc -N) gets its answers
	// from the fast path, as from HAProxy; on the net/http path the
	// server reads the end of input as the client leaving and cancels the
	// request (499). Only the fast path is held to answering.
	halfClose := []struct {
		name  string
		steps []diffStep
		n     int
	}{
		{"half-close", []diffStep{{write: get("/1", "cl"), closeWrite: true, methods: []string{"GET"}}}, 1},
		{"half-close-pipelined", []diffStep{{write: get("/1", "cl") + get("/2", "chunked"), closeWrite: true, methods: []string{"GET", "GET"}}}, 2},
	}
	for _, s := range halfClose {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			out, err := p.node.run(p.fast, s.steps...)
			if err != nil {
				t.Fatal(err)
			}
			answered := 0
			for _, o := range out {
				if o.Err == "" && o.Status == http.StatusOK {
					answered++
				}
			}
			if answered != s.n {
				t.Errorf("%s: %d answers from the fast path, want %d:%s", s.name, answered, s.n, diffShow(out))
			}
		})
	}
	for _, s := range seqs {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			out, same := p.compare(t, s.name, s.steps...)
			if !same {
				return
			}
			answered := 0
			for _, o := range out {
				if o.Err == "" {
					answered++
				}
			}
			if answered != s.n {
				t.Errorf("%s: %d responses, want %d:%s", s.name, answered, s.n, diffShow(out))
			}
		})
	}

	// No node listening: portico answers itself.
	t.Run("no-node", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		q := p.node.pair(t, dead)
		for _, r := range []string{get("/", "cl"), head, strings.Replace(get("/", "cl"), "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)} {
			m, _, _ := strings.Cut(r, " ")
			out, same := q.compare(t, "no node: "+r, diffStep{write: r + r, methods: []string{m, m}})
			if same && (len(out) == 0 || out[0].Status != http.StatusBadGateway) {
				t.Errorf("no node: %q: want 502:%s", r, diffShow(out))
			}
		}
	})
}

// diffIncomplete reports a first request that a server would wait to
// complete (its head, or its body): sending it would only hold both paths
// until a timeout. net/http's reader, run over the bytes, asks for more
// than there are.
func diffIncomplete(raw []byte) bool {
	r := &diffBytesReader{b: raw}
	req, err := http.ReadRequest(bufio.NewReader(r))
	if err == nil {
		io.Copy(io.Discard, req.Body)
	}
	return r.more
}

// diffBytesReader reads b, then notes that more was asked for.
type diffBytesReader struct {
	b    []byte
	more bool
}

func (r *diffBytesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		r.more = true
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// FuzzFastPathDiff sends arbitrary request bytes to a Server with the fast
// path and to one without, one after the other, and expects the same first
// response (status, header but for portico's Date, body, close) and, when
// the node answered it, the same request at the node.
func FuzzFastPathDiff(f *testing.F) {
	for _, r := range diffRequests {
		for _, kind := range []string{"cl", "chunked", "204", "early"} {
			f.Add([]byte(r.with(kind)))
		}
	}
	for _, kind := range diffKindNames {
		f.Add([]byte("GET /r/" + kind + " HTTP/1.1\r\n" + diffHost + "\r\n"))
		f.Add([]byte("HEAD /r/" + kind + "?q=1 HTTP/1.1\r\n" + diffHost + "Connection: close\r\n\r\n"))
	}
	f.Add([]byte("GET /r/cl HTTP/1.1\r\n" + diffHost + "\r\nGET /r/chunked HTTP/1.1\r\n" + diffHost + "\r\n"))
	f.Add([]byte("GET /r/chunked HTTP/1.1\r\n" + diffHost + "\r\nGET /r/cl HTTP/1.1\r\nHo")) // the next head cut short
	// One node and one Server pair for every input of this process: a
	// listener per input would leave ports in TIME_WAIT behind it.
	p := startDiffPair(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if diffIncomplete(raw) {
			return
		}
		m := "GET"
		if bytes.HasPrefix(raw, []byte("HEAD ")) {
			m = "HEAD"
		}
		step := diffStep{write: string(raw), methods: []string{m}}
		fast, err := p.node.run(p.fast, step)
		if err != nil {
			t.Fatalf("fast path: %v", err)
		}
		slow, err := p.node.run(p.slow, step)
		if err != nil {
			t.Fatalf("net/http path: %v", err)
		}
		answered := func(o []diffOutcome) bool { return len(o) == 1 && o[0].Err == "" }
		if !answered(fast) && !answered(slow) {
			return // both closed or failed without a response: they agree
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("the paths differ in %s\ninput: %q\nfast path:%s\nnet/http path:%s",
				diffWhat(fast, slow), raw, diffShow(fast), diffShow(slow))
		}
	})
}
