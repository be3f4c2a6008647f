package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portico-lb/portico/examples/standin"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// filterConf: the management host for 10.1/16 only, the authentication
// endpoints public, the rest for 10/8. Test clients are 127.0.0.1: public.
func filterConf(httpAddr, httpsAddr, admin, servers string) string {
	return fmt.Sprintf(`
[admin]
bind = %q
[log]
access = true
[[listener]]
name = "http"
bind = %q
mode = "http"
pool = "nodes"
max_header_count = 100
max_url_length = 8192
  [[listener.rule]]
  hosts = ["manage.example.com"]
  paths = ["/"]
  allow = ["10.1.0.0/16"]
  [[listener.rule]]
  paths = ["/authorize", "/login", "/oauth/token", "/.well-known/", "/u/", "/testall"]
  allow = ["0.0.0.0/0", "::/0"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
[[listener]]
name = "https"
bind = %q
mode = "https"
pool = "nodes"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
  [[listener.rule]]
  hosts = ["manage.example.com"]
  paths = ["/"]
  allow = ["10.1.0.0/16"]
  [[listener.rule]]
  paths = ["/authorize", "/login", "/oauth/token", "/.well-known/", "/u/", "/testall"]
  allow = ["0.0.0.0/0", "::/0"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["10.0.0.0/8"]
[pool.nodes]
servers = %s
response_timeout = "2s"
health = { interval = "1h" }
`, admin, httpAddr, httpsAddr, servers)
}

type crafted struct {
	name string
	raw  string // request line and headers, without the final CRLF
	// want: a status, or 200 with exactly wantURI at the node
	status  int
	wantURI string
	check   func(r standin.Request) string // extra check on what the node saw
}

const h = "\r\nHost: login.example.com"

func req(line string, hdrs ...string) string {
	s := line + h
	for _, x := range hdrs {
		s += "\r\n" + x
	}
	return s
}

func denied(name, raw string) crafted { return crafted{name: name, raw: raw, status: -1} }
func passes(name, raw, uri string) crafted {
	return crafted{name: name, raw: raw, status: 200, wantURI: uri}
}

func lacks(header string) func(standin.Request) string {
	return func(r standin.Request) string {
		for k := range r.Header {
			if strings.EqualFold(k, header) {
				return fmt.Sprintf("node saw %s: %q", k, r.Header[k])
			}
		}
		return ""
	}
}

func craftedCases() []crafted {
	long := "/login/" + strings.Repeat("a", 9000)
	many := make([]string, 150)
	for i := range many {
		many[i] = fmt.Sprintf("X-H%d: v", i)
	}
	return []crafted{
		passes("plain public path", req("GET /login HTTP/1.1"), "/login"),
		passes("public subtree", req("GET /login/x HTTP/1.1"), "/login/x"),
		passes("trailing slash kept", req("GET /login/ HTTP/1.1"), "/login/"),
		passes("u subtree", req("GET /u/abc HTTP/1.1"), "/u/abc"),
		passes("well-known", req("GET /.well-known/openid-configuration HTTP/1.1"), "/.well-known/openid-configuration"),
		passes("query untouched", req("GET /login?next=../../admin&a=%2F HTTP/1.1"), "/login?next=../../admin&a=%2F"),
		passes("dot segment resolved", req("GET /./login HTTP/1.1"), "/login"),
		passes("double slash collapsed", req("GET //login HTTP/1.1"), "/login"),
		passes("triple slash collapsed", req("GET ///login///x HTTP/1.1"), "/login/x"),
		passes("dotdot inside public", req("GET /u/x/../y HTTP/1.1"), "/u/y"),
		passes("encoded letter decoded once", req("GET /%6cogin HTTP/1.1"), "/login"),
		passes("absolute form agreeing with Host", req("GET http://login.example.com/login HTTP/1.1"), "/login"),
		passes("h2c upgrade stripped", req("GET /login HTTP/1.1", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"), "/login"),
		{name: "h2c upgrade header never reaches node", raw: req("GET /login HTTP/1.1", "Connection: Upgrade", "Upgrade: h2c"), status: 200, wantURI: "/login", check: lacks("Upgrade")},
		{name: "mixed upgrade tokens stripped", raw: req("GET /login HTTP/1.1", "Connection: Upgrade", "Upgrade: websocket, h2c"), status: 200, wantURI: "/login", check: lacks("Upgrade")},
		{name: "split Upgrade headers stripped", raw: req("GET /login HTTP/1.1", "Connection: Upgrade", "Upgrade: websocket", "Upgrade: h2c"), status: 200, wantURI: "/login", check: lacks("Upgrade")},
		{name: "X-Original-URL dropped", raw: req("GET /login HTTP/1.1", "X-Original-URL: /admin"), status: 200, wantURI: "/login", check: lacks("X-Original-URL")},
		{name: "X-Rewrite-URL dropped", raw: req("GET /login HTTP/1.1", "X-Rewrite-URL: /admin"), status: 200, wantURI: "/login", check: lacks("X-Rewrite-URL")},
		{name: "underscore XFF dropped", raw: req("GET /login HTTP/1.1", "X_Forwarded_For: 10.1.2.3"), status: 200, wantURI: "/login", check: lacks("X_Forwarded_For")},
		{name: "Forwarded dropped", raw: req("GET /login HTTP/1.1", "Forwarded: for=10.1.2.3;host=manage.example.com"), status: 200, wantURI: "/login", check: lacks("Forwarded")},
		{name: "X-Real-IP replaced", raw: req("GET /login HTTP/1.1", "X-Real-IP: 10.1.2.3"), status: 200, wantURI: "/login", check: func(r standin.Request) string {
			if v := r.Header.Values("X-Real-Ip"); len(v) != 1 || v[0] != "127.0.0.1" {
				return fmt.Sprintf("X-Real-IP %q", v)
			}
			return ""
		}},
		{name: "Connection header cannot drop XFF", raw: req("GET /login HTTP/1.1", "Connection: close, X-Forwarded-For, X-Forwarded-Proto, X-Real-IP", "X-Forwarded-For: 10.1.2.3"), status: 200, wantURI: "/login", check: func(r standin.Request) string {
			if r.Header.Get("X-Forwarded-For") != "127.0.0.1" || r.Header.Get("X-Forwarded-Proto") != "http" {
				return fmt.Sprintf("XFF %q XFP %q", r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"))
			}
			return ""
		}},
		{name: "spoofed XFF from 10/8 does not unlock admin", raw: req("GET /admin HTTP/1.1", "X-Forwarded-For: 10.1.2.3"), status: 403},

		denied("private path", req("GET /admin HTTP/1.1")),
		denied("double slash private", req("GET //admin HTTP/1.1")),
		denied("dotdot out of public", req("GET /login/../admin HTTP/1.1")),
		denied("encoded dotdot", req("GET /login/%2e%2e/admin HTTP/1.1")),
		denied("upper encoded dotdot", req("GET /login/%2E%2E/admin HTTP/1.1")),
		denied("half encoded dotdot 1", req("GET /login/.%2e/admin HTTP/1.1")),
		denied("half encoded dotdot 2", req("GET /login/%2e./admin HTTP/1.1")),
		denied("encoded slash", req("GET /login%2fadmin HTTP/1.1")),
		denied("encoded slash upper", req("GET /login%2Fadmin HTTP/1.1")),
		denied("encoded slash in dotdot", req("GET /login/..%2fadmin HTTP/1.1")),
		denied("encoded dotdot slash", req("GET /login/%2e%2e%2fadmin HTTP/1.1")),
		denied("encoded backslash", req("GET /login%5cadmin HTTP/1.1")),
		denied("encoded backslash upper", req("GET /login%5C..%5Cadmin HTTP/1.1")),
		denied("raw backslash", req("GET /login\\..\\admin HTTP/1.1")),
		denied("semicolon then dotdot", req("GET /login;/../admin HTTP/1.1")),
		denied("dotdot with parameter", req("GET /login/..;/admin HTTP/1.1")),
		denied("encoded dotdot with parameter", req("GET /login/%2e%2e;x=1/admin HTTP/1.1")),
		denied("dot with parameter", req("GET /login/.;/../admin HTTP/1.1")),
		// Judged as /login (parameters removed for matching), forwarded as sent.
		passes("parameter on public segment", req("GET /login;jsessionid=x HTTP/1.1"), "/login;jsessionid=x"),
		denied("parameter on private segment", req("GET /admin;x HTTP/1.1")),
		denied("encoded parameter on private segment", req("GET /admin%3bx/y HTTP/1.1")),
		denied("fragment", req("GET /login#/../admin HTTP/1.1")),
		denied("encoded NUL", req("GET /login%00 HTTP/1.1")),
		denied("encoded NUL before dotdot", req("GET /login%00/../admin HTTP/1.1")),
		denied("encoded newline", req("GET /login%0a HTTP/1.1")),
		denied("encoded CR", req("GET /login%0d%0aX:1 HTTP/1.1")),
		denied("encoded DEL", req("GET /login%7f HTTP/1.1")),
		denied("overlong slash", req("GET /login%c0%afadmin HTTP/1.1")),
		denied("overlong dots", req("GET /login/%c0%ae%c0%ae/admin HTTP/1.1")),
		denied("three-byte overlong slash", req("GET /login%e0%80%afadmin HTTP/1.1")),
		denied("invalid utf-8", req("GET /login%ff HTTP/1.1")),
		denied("invalid escape", req("GET /login%zz HTTP/1.1")),
		denied("truncated escape", req("GET /login%4 HTTP/1.1")),
		denied("climb above root", req("GET /../login HTTP/1.1")),
		denied("encoded climb above root", req("GET /%2e%2e/login HTTP/1.1")),
		denied("deep climb", req("GET /login/../../admin HTTP/1.1")),
		denied("case trick upper", req("GET /LOGIN HTTP/1.1")),
		denied("case trick mixed", req("GET /Login/x HTTP/1.1")),
		denied("prefix without boundary", req("GET /loginx HTTP/1.1")),
		denied("bare u without slash", req("GET /u HTTP/1.1")),
		denied("space encoded in segment", req("GET /login%20 HTTP/1.1")),
		denied("double encoded dotdot", req("GET /login/%252e%252e/admin HTTP/1.1")),
		denied("absolute form other host", "GET http://manage.example.com/login HTTP/1.1"+h),
		denied("absolute form private path", req("GET http://login.example.com/admin HTTP/1.1")),
		denied("absolute form odd scheme", req("GET ftp://login.example.com/login HTTP/1.1")),
		denied("absolute form with userinfo", req("GET http://x@login.example.com/login HTTP/1.1")),
		denied("absolute form query without path", req("GET http://login.example.com?x=/login HTTP/1.1")),
		denied("management host", "GET /login HTTP/1.1\r\nHost: manage.example.com"),
		denied("management host upper", "GET /login HTTP/1.1\r\nHost: MANAGE.EXAMPLE.COM"),
		denied("management host trailing dot", "GET /login HTTP/1.1\r\nHost: manage.example.com."),
		denied("management host with port", "GET /login HTTP/1.1\r\nHost: manage.example.com:443"),
		denied("two Host headers", "GET /login HTTP/1.1\r\nHost: login.example.com\r\nHost: manage.example.com"),
		denied("host with userinfo", "GET /login HTTP/1.1\r\nHost: login.example.com@manage.example.com"),
		denied("asterisk form", req("OPTIONS * HTTP/1.1")),
		denied("no leading slash", req("GET login HTTP/1.1")),
		denied("websocket to private path", req("GET /admin HTTP/1.1", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")),
		denied("h2c to private path", req("GET /admin HTTP/1.1", "Connection: Upgrade", "Upgrade: h2c")),
		{name: "URL too long", raw: req("GET " + long + " HTTP/1.1"), status: 414},
		{name: "too many headers", raw: req("GET /login HTTP/1.1", many...), status: 431},
		{name: "1 MiB header", raw: req("GET /login HTTP/1.1", "X-Big: "+strings.Repeat("a", 1<<20)), status: 431},
	}
}

func TestCraftedRequestsNeverReachPrivatePaths(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	node := ns[0]
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	p := startPortico(t, dir, filterConf(httpAddr, httpsAddr, admin, serverList(ns)))
	cases := craftedCases()
	if len(cases) < 60 {
		t.Fatalf("only %d crafted cases", len(cases))
	}
	for _, tc := range cases {
		before := len(node.Requests())
		code := rawRoundTrip(t, httpAddr, tc.raw+"\r\n\r\n")
		reqs := node.Requests()
		switch {
		case tc.status == -1:
			if code != 400 && code != 403 {
				t.Errorf("%s: status %d, want 400 or 403", tc.name, code)
			}
		case code != tc.status:
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.status)
		}
		if tc.status != 200 {
			if len(reqs) != before {
				t.Errorf("%s: the node received %q", tc.name, reqs[len(reqs)-1].RequestURI)
			}
			continue
		}
		if len(reqs) != before+1 {
			t.Errorf("%s: node received %d requests, want 1", tc.name, len(reqs)-before)
			continue
		}
		got := reqs[len(reqs)-1]
		if got.RequestURI != tc.wantURI {
			t.Errorf("%s: node received %q, want exactly %q", tc.name, got.RequestURI, tc.wantURI)
		}
		if tc.check != nil {
			if msg := tc.check(got); msg != "" {
				t.Errorf("%s: %s", tc.name, msg)
			}
		}
	}
	// Denials are logged with their reason and counted.
	m := scrape(t, admin)
	for _, reason := range []string{"rule", "bad-path", "upgrade", "limit"} {
		if !strings.Contains(m, fmt.Sprintf(`portico_denied_total{listener="http",reason=%q}`, reason)) {
			t.Errorf("no denial counted for reason %s:\n%s", reason, grepLines(m, "denied"))
		}
	}
	// A denial is one access line with its reason (and the deciding
	// rule's index), not a process-log line besides; a refused upgrade
	// goes on as a plain request and is logged as such.
	for _, want := range []string{`"reason":"rule","rule":2`, `"reason":"rule","rule":0`,
		`"reason":"bad-path"`, `"reason":"limit"`} {
		eventually(t, 10*time.Second, "an access line with "+want, func() bool {
			for _, l := range strings.Split(p.Logs(), "\n") {
				if strings.Contains(l, `"log":"access"`) && strings.Contains(l, want) {
					return true
				}
			}
			return false
		})
	}
	logs := p.Logs()
	if !strings.Contains(logs, `"msg":"upgrade refused"`) || !strings.Contains(logs, `"reason":"upgrade"`) {
		t.Error("no refused upgrade was logged")
	}
	if strings.Contains(logs, "request denied") {
		t.Errorf("a denial was logged twice, as a process-log line besides its access line:\n%s", grepLines(logs, "request denied"))
	}
}

// rawRoundTrip writes raw bytes on a fresh connection and returns the
// response status (0 when the connection closed without one).
func rawRoundTrip(t testing.TB, addr, raw string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.Copy(c, strings.NewReader(raw)) // a large request may be answered before it is all sent
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// TestCraftedHTTP2Paths sends crafted :path and :authority values over
// HTTP/2 (TLS, ALPN h2) with a hand-built HEADERS frame.
func TestCraftedHTTP2Paths(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	ca := testCerts(t, dir, "login.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	startPortico(t, dir, filterConf(httpAddr, httpsAddr, admin, serverList(ns)))
	for _, tc := range []struct {
		authority, path string
		want            int // -1 = 400 or 403
		wantURI         string
	}{
		{"login.example.com", "/login", 200, "/login"},
		{"login.example.com", "//login", 200, "/login"},
		{"login.example.com", "/admin", -1, ""},
		{"login.example.com", "//admin", -1, ""},
		{"login.example.com", "/login/../admin", -1, ""},
		{"login.example.com", "/login/%2e%2e/admin", -1, ""},
		{"login.example.com", "/login%2fadmin", -1, ""},
		{"login.example.com", "/login%5cadmin", -1, ""},
		{"login.example.com", "/login/..;/admin", -1, ""},
		{"login.example.com", "/login%00", -1, ""},
		{"login.example.com", "/%c0%ae%c0%ae/admin", -1, ""},
		{"manage.example.com", "/login", -1, ""},
		{"MANAGE.example.com.", "/login", -1, ""},
	} {
		before := len(ns[0].Requests())
		code := h2Request(t, httpsAddr, ca.Pool(), tc.authority, tc.path)
		reqs := ns[0].Requests()
		if tc.want == -1 {
			if code != 400 && code != 403 {
				t.Errorf("h2 %s %s: status %d, want 400/403", tc.authority, tc.path, code)
			}
			if len(reqs) != before {
				t.Errorf("h2 %s %s: node received %q", tc.authority, tc.path, reqs[len(reqs)-1].RequestURI)
			}
			continue
		}
		if code != tc.want || len(reqs) != before+1 || reqs[len(reqs)-1].RequestURI != tc.wantURI {
			t.Errorf("h2 %s %s: status %d, node saw %d new requests", tc.authority, tc.path, code, len(reqs)-before)
		}
	}
}

// h2Request sends one GET with exactly the given pseudo-headers and returns
// the :status (0 when the stream was reset or the connection closed).
func h2Request(t testing.TB, addr string, roots *x509.CertPool, authority, path string) int {
	t.Helper()
	conf := &tls.Config{RootCAs: roots, ServerName: "login.example.com", NextProtos: []string{"h2"}}
	c, err := tls.Dial("tcp", addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN chose %q", c.ConnectionState().NegotiatedProtocol)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", authority}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: buf.Bytes(), EndStream: true, EndHeaders: true})
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					var code int
					fmt.Sscan(hf.Value, &code)
					return code
				}
			}
		case *http2.GoAwayFrame:
			// A graceful GOAWAY that still covers stream 1 announces
			// the end of the connection, not of this request.
			if f.ErrCode != http2.ErrCodeNo || f.LastStreamID < 1 {
				return 0
			}
		case *http2.RSTStreamFrame:
			return 0
		}
	}
}

// A node that never answers gives 504 within response_timeout.
func TestSilentNodeGives504(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c) }() // reads, never answers
		}
	}()
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	startPortico(t, dir, strings.Replace(filterConf(httpAddr, httpsAddr, admin, fmt.Sprintf("[%q]", ln.Addr())),
		`health = { interval = "1h" }`, `health = { enabled = false }`, 1))
	start := time.Now()
	code := rawRoundTrip(t, httpAddr, req("GET /login HTTP/1.1")+"\r\n\r\n")
	if code != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", code)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("504 took %v with response_timeout 2s", d)
	}
}

// 500 slowloris connections do not stop a normal client being served.
func TestSlowlorisDoesNotStarveClients(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	startPortico(t, dir, filterConf(httpAddr, httpsAddr, admin, serverList(ns)))
	var slow []net.Conn
	for i := range 500 {
		target := httpAddr
		if i%2 == 1 {
			target = httpsAddr // a TLS handshake that never starts
		}
		c, err := net.Dial("tcp", target)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		if target == httpAddr {
			io.WriteString(c, "GET /login HTTP/1.1\r\nHost: login.example.com\r\nX-Slow: ")
		}
		slow = append(slow, c)
	}
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	if code := rawRoundTrip(t, httpAddr, req("GET /login HTTP/1.1")+"\r\n\r\n"); code != 200 {
		t.Fatalf("normal client got %d while 500 slow connections are open", code)
	}
}
