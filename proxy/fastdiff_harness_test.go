package proxy

import (
	"bufio"
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
