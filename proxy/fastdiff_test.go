package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/config"
)

// The fast path (fastfront.go) must be indistinguishable from the net/http
// path, for a node and for a client. The tests here send the same raw
// request bytes to two Servers in front of the same scripted node, one
// with the fast path and one with Options.NoFastPath, and compare what the
// node received and what the client got back.

// diffNode is a scripted node: raw TCP, one goroutine per connection,
// keep-alive. It reads each request with http.ReadRequest (body included),
// records it under a sequence number, and answers with the canned bytes
// of a response kind, with "X-Seq: <n>" in the final response head so the
// client side finds the record of exactly the request that produced the
// response, whatever else runs concurrently.
//
// The kind is the X-Resp request field when there is one, else the path
// segment after "/r/", else "cl".
type diffNode struct {
	addr string

	mu     sync.Mutex
	seq    int
	recs   map[int]*diffRecord
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// diffRecord is what the node received for one request.
type diffRecord struct {
	Method           string
	RequestURI       string
	Proto            string
	Host             string
	Header           http.Header // canonical keys, values in order
	ContentLength    int64
	TransferEncoding []string
	Close            bool
	Body             string
	Trailer          http.Header
}

// diffKeepRecords bounds the records kept (a fuzzing process sends many).
const diffKeepRecords = 4096

// diffNodeDate is the Date the "dated" kind sends.
const diffNodeDate = "Mon, 02 Jan 2006 15:04:05 GMT"

// diffResp is one canned response. text holds "{seq}" where the final
// response's X-Seq value goes; close: the node closes the connection after
// it (the response says so, or is cut short); broken: portico cannot relay
// a complete response (a 502, or a cut-off one).
type diffResp struct {
	text   string
	close  bool
	broken bool
}

func diffCL(status, fields, body string) string {
	return fmt.Sprintf("HTTP/1.1 %s\r\n%sContent-Length: %d\r\nX-Seq: {seq}\r\n\r\n%s", status, fields, len(body), body)
}

var diffLargeBody = func() string {
	var b strings.Builder
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, "line %06d of a large body\n", i)
	}
	return b.String()[:100<<10]
}()

// diffKinds are the node's response kinds.
var diffKinds = map[string]diffResp{
	"cl":      {text: diffCL("200 OK", "Content-Type: text/plain\r\n", "hello")},
	"cl-zero": {text: diffCL("200 OK", "Content-Type: text/plain\r\n", "")},
	"lower":   {text: "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nx-lower: v\r\nX-Seq: {seq}\r\n\r\nhello"},
	"dated":   {text: diffCL("200 OK", "Date: "+diffNodeDate+"\r\nContent-Type: text/plain\r\n", "dated")},
	"chunked": {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Seq: {seq}\r\n\r\n" +
		"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
	"trailers": {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Done\r\nX-Seq: {seq}\r\n\r\n" +
		"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Done: yes\r\n\r\n"},
	"trailers-unannounced": {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Seq: {seq}\r\n\r\n" +
		"5\r\nhello\r\n0\r\nX-Late: 1\r\n\r\n"},
	"notype":       {text: diffCL("200 OK", "", "<html><body>no type</body></html>")},
	"notype-plain": {text: diffCL("200 OK", "", "plain words, no type")},
	"204":          {text: "HTTP/1.1 204 No Content\r\nX-A: 1\r\nX-Seq: {seq}\r\n\r\n"},
	"204-cl0":      {text: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-Seq: {seq}\r\n\r\n"},
	"304":          {text: "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\nX-Seq: {seq}\r\n\r\n"},
	"304-ct":       {text: "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Type: text/html\r\nContent-Length: 1234\r\nX-Seq: {seq}\r\n\r\n"},
	"early": {text: "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n" +
		diffCL("200 OK", "Content-Type: text/plain\r\nLink: </style.css>; rel=preload; as=style\r\n", "early")},
	"hop": {text: diffCL("200 OK", "Connection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"+
		"Proxy-Authenticate: Basic realm=x\r\nUpgrade: h2c\r\nContent-Type: text/plain\r\n", "hop"), close: true},
	"hop-keep": {text: diffCL("200 OK", "Connection: X-Hop\r\nX-Hop: secret\r\nContent-Type: text/plain\r\n", "hop")},
	"http10":   {text: "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Seq: {seq}\r\n\r\nclose-delimited body", close: true},
	"cookies": {text: diffCL("200 OK", "Content-Type: text/plain\r\nSet-Cookie: a=1; Path=/\r\n"+
		"Set-Cookie: b=2; HttpOnly\r\nSet-Cookie: c=3; Secure; SameSite=Lax\r\n", "cookies")},
	"404":      {text: diffCL("404 Not Found", "Content-Type: text/html\r\n", "<h1>not found</h1>")},
	"500":      {text: diffCL("500 Internal Server Error", "Content-Type: text/plain\r\n", "it broke\n")},
	"large":    {text: diffCL("200 OK", "Content-Type: application/octet-stream\r\n", diffLargeBody)},
	"299":      {text: diffCL("299 Whatever", "Content-Type: text/plain\r\n", "ok")},
	"dup-cl":   {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nContent-Length: 5\r\nX-Seq: {seq}\r\n\r\nhello"},
	"noreason": {text: diffCL("200", "Content-Type: text/plain\r\n", "ok")},
	"reason":   {text: diffCL("200 Fine Thanks", "Content-Type: text/plain\r\n", "ok")},
	"odd-fields": {text: diffCL("200 OK", "Content-Type: text/plain\r\nx-empty:\r\nX-Tab:\tv\t\r\nX-Sp:   v  \r\n"+
		"x_under: 1\r\nVary: A\r\nvary: B\r\nX-Latin: caf\xe9\r\nDate: yesterday\r\n", "odd")},
	"gzip-notype": {text: diffCL("200 OK", "Content-Encoding: gzip\r\n", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
	"cl-and-te": {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\nX-Seq: {seq}\r\n\r\n" +
		"5\r\nhello\r\n0\r\n\r\n"},
	"100-first": {text: "HTTP/1.1 100 Continue\r\n\r\n" + diffCL("200 OK", "Content-Type: text/plain\r\n", "after 100")},
	"many-1xx": {text: strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 6) +
		diffCL("200 OK", "Content-Type: text/plain\r\n", "late"), broken: true},
	"cl-zeros": {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 005\r\nX-Seq: {seq}\r\n\r\nhello"},
	"600":      {text: diffCL("600 Beyond", "Content-Type: text/plain\r\n", "600")},
	"099":      {text: diffCL("099 Below", "Content-Type: text/plain\r\n", "099"), broken: true},
	"early-odd": {text: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: X-A\r\nX-A: 1\r\nContent-Length: 0\r\nDate: " + diffNodeDate + "\r\n\r\n" +
		diffCL("200 OK", "Content-Type: text/plain\r\n", "early")},
	"199":    {text: "HTTP/1.1 199 Odd\r\nX-Info: 1\r\n\r\n" + diffCL("200 OK", "Content-Type: text/plain\r\n", "after 199")},
	"switch": {text: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", close: true, broken: true},

	// failures: portico answers for the node, or cuts the response off
	"garbage":       {text: "NOT HTTP\r\n\r\n", close: true, broken: true},
	"hangup":        {text: "", close: true, broken: true},
	"short":         {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nX-Seq: {seq}\r\n\r\nabc", close: true, broken: true},
	"short-chunked": {text: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Seq: {seq}\r\n\r\n5\r\nhello\r\n10\r\nabc", close: true, broken: true},
	"silent":        {text: "", broken: true}, // the pool's response_timeout ends the wait
}

// diffKindNames is diffKinds' keys, sorted, but "silent": each request
// for it takes the pool's response_timeout.
var diffKindNames = func() []string {
	var n []string
	for k := range diffKinds {
		if k != "silent" {
			n = append(n, k)
		}
	}
	slices.Sort(n)
	return n
}()

func startDiffNode(tb testing.TB) *diffNode {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	n := &diffNode{addr: ln.Addr().String(), recs: make(map[int]*diffRecord), conns: make(map[net.Conn]struct{})}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.mu.Lock()
			if n.closed {
				n.mu.Unlock()
				c.Close()
				return
			}
			n.conns[c] = struct{}{}
			n.wg.Add(1)
			n.mu.Unlock()
			go func() {
				defer n.wg.Done()
				defer func() {
					n.mu.Lock()
					delete(n.conns, c)
					n.mu.Unlock()
					c.Close()
				}()
				n.serve(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		n.mu.Lock()
		n.closed = true
		for c := range n.conns {
			c.Close()
		}
		n.mu.Unlock()
		n.wg.Wait()
	})
	return n
}

func (n *diffNode) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		if id := req.Header["X-Request-Id"]; len(id) == 1 && validFreshID(id[0]) {
			// a fresh id per request, by design: its form is compared
			req.Header["X-Request-Id"] = []string{"(a fresh id)"}
		}
		rec := &diffRecord{Method: req.Method, RequestURI: req.RequestURI, Proto: req.Proto, Host: req.Host,
			Header: req.Header, ContentLength: req.ContentLength, TransferEncoding: req.TransferEncoding,
			Close: req.Close, Body: string(body), Trailer: req.Trailer}
		kind := req.Header.Get("X-Resp")
		if kind == "" {
			if rest, ok := strings.CutPrefix(req.URL.Path, "/r/"); ok {
				kind, _, _ = strings.Cut(rest, "/")
			}
		}
		r, ok := diffKinds[kind]
		if !ok {
			r = diffKinds["cl"]
		}
		n.mu.Lock()
		n.seq++
		seq := n.seq
		n.recs[seq] = rec
		delete(n.recs, seq-diffKeepRecords)
		n.mu.Unlock()
		resp := strings.Replace(r.text, "{seq}", strconv.Itoa(seq), 1)
		if req.Method == http.MethodHead {
			resp = diffHeadOnly(resp)
		}
		if _, err := io.WriteString(c, resp); err != nil || r.close || req.Close {
			return
		}
	}
}

// diffHeadOnly cuts a canned response after the final response's head:
// the answer to HEAD.
func diffHeadOnly(resp string) string {
	for off := 0; ; {
		i := strings.Index(resp[off:], "\r\n\r\n")
		if i < 0 {
			return resp
		}
		end := off + i + 4
		if !strings.HasPrefix(resp[off:], "HTTP/1.1 1") {
			return resp[:end]
		}
		off = end
	}
}

func (n *diffNode) record(seq int) *diffRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.recs[seq]
}

// startDiffServer starts a Server with one http listener in front of node
// (health checks off), with opts; it is shut down in Cleanup. A rule
// refuses /denied to 127.0.0.1; limits are lowered so that 414 and 431
// answers fit the fast path's read buffer.
func startDiffServer(tb testing.TB, node string, opts Options) *Server {
	return startDiffServerMode(tb, node, "http", "", opts, nil)
}

// startDiffServerMode is startDiffServer with the listener's mode and any
// further listener keys (certificates); before runs before Start.
func startDiffServerMode(tb testing.TB, node, mode, extra string, opts Options, before func(*Server)) *Server {
	return startDiffServerRules(tb, node, mode, extra, diffRules, opts, before)
}

// diffRules are the diff listener's rules: /denied for 10.0.0.0/8 only,
// the rest for everyone.
const diffRules = `  [[listener.rule]]
  paths = ["/denied"]
  allow = ["10.0.0.0/8"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
`

// diffConfig is the diff listener's configuration with its rules.
func diffConfig(tb testing.TB, node, mode, extra, rules string) *config.Config {
	src := fmt.Sprintf(`
[admin]
bind = ""

[[listener]]
name = "diff"
bind = "127.0.0.1:1"
mode = %q
pool = "nodes"
max_url_length = 1024
max_header_count = 20
%s
%s
[pool.nodes]
servers = ["%s"]
response_timeout = "1s"
health = { enabled = false }
`, mode, extra, rules, node)
	cfg := parseTestConfig(tb, "diff.toml", src)
	cfg.Listeners[0].Bind = "127.0.0.1:0"
	return cfg
}

// startDiffServerRules is startDiffServerMode with the listener's rules.
func startDiffServerRules(tb testing.TB, node, mode, extra, rules string, opts Options, before func(*Server)) *Server {
	return startTestServer(tb, diffConfig(tb, node, mode, extra, rules), opts, before)
}

// diffPair is a node with a fast-path Server and a NoFastPath Server in
// front of it.
type diffPair struct {
	node       *diffNode
	fast, slow string // listener addresses
}

func startDiffPair(tb testing.TB) *diffPair {
	n := startDiffNode(tb)
	return n.pair(tb, n.addr)
}

// pair starts the two Servers in front of addr (n's, or another).
func (n *diffNode) pair(tb testing.TB, addr string) *diffPair {
	fast := startDiffServer(tb, addr, Options{})
	slow := startDiffServer(tb, addr, Options{NoFastPath: true})
	return &diffPair{node: n, fast: fast.benchSlot().ln.Addr().String(), slow: slow.benchSlot().ln.Addr().String()}
}

// diffInfo is an informational (1xx) response as the client read it.
type diffInfo struct {
	Status int
	Header http.Header
}

// diffOutcome is one response as the client read it, and what the node
// received for it.
type diffOutcome struct {
	Infos            []diffInfo
	Proto            string
	Status           int
	Reason           string // the status line after the protocol
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	Body             string
	Trailer          http.Header
	Close            bool
	Err              string // no (complete) response: what went wrong
	Node             *diffRecord
}

// diffStep writes bytes (then half-closes when closeWrite), then reads
// one response for each method.
type diffStep struct {
	write      string
	closeWrite bool
	methods    []string
}

// diffDeadline bounds each client connection: well over the pool's
// response_timeout, and twice it well under the fuzzing engine's 10s limit
// for an input.
const diffDeadline = 3 * time.Second

// diffRun runs steps on one fresh connection to addr. It stops at the
// first response that could not be read.
func (n *diffNode) run(addr string, steps ...diffStep) ([]diffOutcome, error) {
	c, err := net.DialTimeout("tcp", addr, diffDeadline)
	if err != nil {
		return nil, err
	}
	// Reset instead of FIN: no TIME_WAIT left behind per connection.
	defer c.Close()
	defer c.(*net.TCPConn).SetLinger(0)
	c.SetDeadline(time.Now().Add(diffDeadline))
	br := bufio.NewReader(c)
	var outs []diffOutcome
	for _, st := range steps {
		if _, err := io.WriteString(c, st.write); err != nil {
			// portico may have answered and closed already (a
			// refused request): read what it sent
			outs = append(outs, diffOutcome{Err: "write: " + diffErrClass(err)})
			return outs, nil
		}
		if st.closeWrite {
			c.(*net.TCPConn).CloseWrite()
		}
		for _, m := range st.methods {
			o := n.read(br, m)
			outs = append(outs, o)
			if o.Err != "" {
				return outs, nil
			}
		}
	}
	return outs, nil
}

// read reads one final response (and the informational ones before it)
// to a request with method m.
func (n *diffNode) read(br *bufio.Reader, m string) diffOutcome {
	var o diffOutcome
	req := &http.Request{Method: m}
	for {
		res, err := http.ReadResponse(br, req)
		if err != nil {
			o.Err = "head: " + diffErrClass(err)
			return o
		}
		if res.StatusCode >= 100 && res.StatusCode <= 199 && res.StatusCode != http.StatusSwitchingProtocols {
			o.Infos = append(o.Infos, diffInfo{res.StatusCode, res.Header})
			if len(o.Infos) > 10 {
				o.Err = "too many 1xx"
				return o
			}
			continue
		}
		body, err := io.ReadAll(res.Body)
		o.Proto, o.Status, o.Reason, o.ContentLength, o.TransferEncoding = res.Proto, res.StatusCode, res.Status, res.ContentLength, res.TransferEncoding
		o.Body, o.Trailer, o.Close = string(body), res.Trailer, res.Close
		if err != nil {
			o.Err = "body: " + diffErrClass(err)
		}
		o.Header = res.Header
		if v := res.Header.Get("X-Seq"); v != "" {
			if seq, err := strconv.Atoi(v); err == nil {
				o.Node = n.record(seq)
				if o.Node == nil {
					o.Err = "no node record for X-Seq " + v
				}
			}
		}
		diffNormalize(o.Header)
		return o
	}
}

// diffNormalize removes from a response header what may differ between two
// correct answers: X-Seq (the node's request number, a different request
// on each path), and the Date portico adds (the node's own must pass
// unchanged); the names a Trailer field announces come from a map, in no
// set order, on both paths.
func diffNormalize(h http.Header) {
	delete(h, "X-Seq")
	for i, v := range h["Date"] {
		if v == diffNodeDate {
			continue
		}
		if _, err := http.ParseTime(v); err == nil {
			h["Date"][i] = "(a date)"
		}
	}
	if vv, ok := h["Trailer"]; ok {
		var names []string
		for _, v := range vv {
			for f := range strings.SplitSeq(v, ",") {
				names = append(names, strings.TrimSpace(f))
			}
		}
		slices.Sort(names)
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
}

// diffErrClass names a client-side error. The ways a connection ends (a
// FIN or, with unread bytes left behind, a reset) are one: which of them
// the client sees depends on timing.
func diffErrClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// diffShow prints outcomes for a failure message, long bodies cut.
func diffShow(outs []diffOutcome) string {
	var b strings.Builder
	for i, o := range outs {
		if len(o.Body) > 200 {
			o.Body = o.Body[:200] + fmt.Sprintf("...(%d bytes)", len(o.Body))
		}
		fmt.Fprintf(&b, "\n  [%d] %s %q infos=%v err=%q close=%v cl=%d te=%v\n      header  %v\n      body    %q\n      trailer %v",
			i, o.Proto, o.Reason, o.Infos, o.Err, o.Close, o.ContentLength, o.TransferEncoding, o.Header, o.Body, o.Trailer)
		if o.Node != nil {
			r := *o.Node
			fmt.Fprintf(&b, "\n      node    %s %q %s host=%q cl=%d te=%v close=%v body=%q\n      node header %v",
				r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength, r.TransferEncoding, r.Close, r.Body, r.Header)
		} else {
			b.WriteString("\n      node    (no request)")
		}
	}
	return b.String()
}

// diffWhat names the fields in which two outcome lists differ.
func diffWhat(a, b []diffOutcome) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d responses vs %d", len(a), len(b))
	}
	var d []string
	for i := range a {
		x, y := reflect.ValueOf(a[i]), reflect.ValueOf(b[i])
		for j := 0; j < x.NumField(); j++ {
			name := x.Type().Field(j).Name
			if name == "Node" {
				xn, yn := a[i].Node, b[i].Node
				if (xn == nil) != (yn == nil) {
					d = append(d, fmt.Sprintf("[%d].Node presence", i))
					continue
				}
				if xn == nil {
					continue
				}
				xv, yv := reflect.ValueOf(*xn), reflect.ValueOf(*yn)
				for k := 0; k < xv.NumField(); k++ {
					if !reflect.DeepEqual(xv.Field(k).Interface(), yv.Field(k).Interface()) {
						d = append(d, fmt.Sprintf("[%d].Node.%s", i, xv.Type().Field(k).Name))
					}
				}
				continue
			}
			if !reflect.DeepEqual(x.Field(j).Interface(), y.Field(j).Interface()) {
				d = append(d, fmt.Sprintf("[%d].%s", i, name))
			}
		}
	}
	return strings.Join(d, ", ")
}

// compare runs steps against both Servers, one after the other, and
// reports any difference. It returns the fast path's outcomes and whether
// the net/http path's were the same.
func (p *diffPair) compare(t *testing.T, name string, steps ...diffStep) ([]diffOutcome, bool) {
	t.Helper()
	fast, err := p.node.run(p.fast, steps...)
	if err != nil {
		t.Fatalf("%s: fast path: %v", name, err)
	}
	slow, err := p.node.run(p.slow, steps...)
	if err != nil {
		t.Fatalf("%s: net/http path: %v", name, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		var in strings.Builder
		for _, st := range steps {
			fmt.Fprintf(&in, "%q ", st.write)
		}
		t.Errorf("%s: the paths differ in %s\ninput: %s\nfast path:%s\nnet/http path:%s",
			name, diffWhat(fast, slow), in.String(), diffShow(fast), diffShow(slow))
		return fast, false
	}
	return fast, true
}

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
