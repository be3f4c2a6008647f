package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The internet edge: a redirect listener in front of an https listener,
// a response header table (HSTS in, the nodes' revealing fields out) and
// error pages, on every front.

const edgeHSTS = "max-age=31536000; includeSubDomains"

// edgeConfig is a redirect listener to the https listener, and an http
// and an https listener for the app pool (a live node) and for the down
// pool (a node that refuses connections, taken down by its checks).
func edgeConfig(redirect, web, secure, webDown, secureDown, node, dead string) string {
	answers := fmt.Sprintf(`response_headers = { Strict-Transport-Security = %q }
remove_response_headers = ["X-Seen-XFF", "X-Seen-Proto"]
error_pages = { "403" = "pages/403.html", "503" = "pages/503.html" }
`, edgeHSTS)
	rules := `  [[listener.rule]]
  paths = ["/admin"]
  allow = ["10.0.0.0/8"]
  [[listener.rule]]
  paths = ["/"]
  allow = ["0.0.0.0/0", "::/0"]
`
	cert := `certificates = [{ cert = "tls/app.example.com.crt", key = "tls/app.example.com.key" }]
`
	return fmt.Sprintf(`[admin]
bind = ""

[[listener]]
name = "plain"
bind = %q
mode = "redirect"
https_port = %s

[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "app"
%s%s
[[listener]]
name = "secure"
bind = %q
mode = "https"
pool = "app"
%s%s%s
[[listener]]
name = "web-down"
bind = %q
mode = "http"
pool = "down"
%s
[[listener]]
name = "secure-down"
bind = %q
mode = "https"
pool = "down"
%s%s
[pool.app]
servers = [%q]
health = { enabled = false }

[pool.down]
servers = [%q]
health = { interval = "100ms", timeout = "100ms", rise = 1, fall = 1 }
`, redirect, port(secure), web, answers, rules, secure, cert, answers, rules, webDown, answers, secureDown, cert, answers, node, dead)
}

func TestInternetEdge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testCerts(t, dir, "app.example.com")
	os.MkdirAll(filepath.Join(dir, "pages"), 0o755)
	const page403, page503 = "<h1>not for you</h1>\n", "<h1>back soon</h1>\n"
	os.WriteFile(filepath.Join(dir, "pages", "403.html"), []byte(page403), 0o644)
	os.WriteFile(filepath.Join(dir, "pages", "503.html"), []byte(page503), 0o644)
	n := nodes(t, "a")[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	type front struct {
		redirect, web, secure, webDown, secureDown string
	}
	start := func(args ...string) front {
		f := front{freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)}
		d := filepath.Join(dir, fmt.Sprint(len(args)))
		os.MkdirAll(d, 0o755)
		os.Symlink(filepath.Join(dir, "tls"), filepath.Join(d, "tls"))
		os.Symlink(filepath.Join(dir, "pages"), filepath.Join(d, "pages"))
		startPorticoArgs(t, d, edgeConfig(f.redirect, f.web, f.secure, f.webDown, f.secureDown, n.Addr(), dead), args...)
		return f
	}
	fast, slow := start(), start("-no-fast-path")
	os.WriteFile(filepath.Join(dir, "ca.pem"), ca.PEM, 0o644)

	// curl follows the redirect to the https listener, path and query kept
	out, err := exec.Command("curl", "-sS", "-L", "-o", "/dev/null", "-w", "%{http_code} %{url_effective} %{num_redirects}",
		"--cacert", filepath.Join(dir, "ca.pem"),
		"--resolve", "app.example.com:"+port(fast.redirect)+":"+hostOf(fast.redirect),
		"--resolve", "app.example.com:"+port(fast.secure)+":"+hostOf(fast.secure),
		"http://app.example.com:"+port(fast.redirect)+"/login?next=%2Fhome&x=1").CombinedOutput()
	want := fmt.Sprintf("200 https://app.example.com:%s/login?next=%%2Fhome&x=1 1", port(fast.secure))
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Fatalf("curl -L: %v %q, want %q", err, out, want)
	}
	if got := n.Requests(); len(got) != 1 || got[0].Method != "GET" {
		t.Fatalf("node requests after the redirect: %v", got)
	}

	// the redirect listener's own answers
	rc := client(fast.redirect, nil)
	for _, tc := range []struct {
		method, target, host string
		status               int
		location             string
	}{
		{"GET", "/a/b?c=d", "App.Example.com:80", 301, "https://app.example.com:" + port(fast.secure) + "/a/b?c=d"},
		{"HEAD", "/", "app.example.com", 301, "https://app.example.com:" + port(fast.secure) + "/"},
		{"POST", "/form", "app.example.com", 308, "https://app.example.com:" + port(fast.secure) + "/form"},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+fast.redirect+tc.target, strings.NewReader(""))
		req.Host = tc.host
		res, err := rc.Do(req)
		if err != nil {
			t.Fatalf("%s %s to the redirect listener: %v", tc.method, tc.target, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || res.Header.Get("Location") != tc.location {
			t.Errorf("%s %s Host %q: %d Location %q, want %d %q", tc.method, tc.target, tc.host,
				res.StatusCode, res.Header.Get("Location"), tc.status, tc.location)
		}
	}

	// a Host that is a bad request anywhere is one here, never a redirect
	for _, host := range []string{"evil.example/x", "a@evil.example", "evil.example:80:80", ""} {
		c, err := net.Dial("tcp", fast.redirect)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") || strings.Contains(string(b), "Location") {
			t.Errorf("Host %q: %.200q, want 400 without a Location", host, b)
		}
	}

	// HSTS and the removed fields on every front: the node's answers,
	// portico's 403 and 503 with their pages.
	for _, addr := range []string{fast.webDown, slow.webDown} {
		eventually(t, 10*time.Second, "the down pool's server to be down", func() bool {
			res, err := client(addr, nil).Get("http://" + addr + "/")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusServiceUnavailable
		})
	}
	h1 := func(addr string) *http.Client { return client(addr, nil) }
	h2 := func(addr string) *http.Client { return client(addr, ca) }
	type check struct {
		name   string
		c      *http.Client
		url    string
		method string
		status int
		body   string
	}
	var checks []check
	for _, f := range []struct {
		name string
		fr   front
	}{{"fast", fast}, {"no-fast-path", slow}} {
		for _, m := range []string{"GET", "POST"} { // POST: off the fast paths (h2 handler, net/http)
			checks = append(checks,
				check{f.name + " http " + m, h1(f.fr.web), "http://app.example.com/x", m, 200, ""},
				check{f.name + " http 403 " + m, h1(f.fr.web), "http://app.example.com/admin", m, 403, page403},
				check{f.name + " http 503 " + m, h1(f.fr.webDown), "http://app.example.com/", m, 503, page503},
				check{f.name + " h2 " + m, h2(f.fr.secure), "https://app.example.com/x", m, 200, ""},
				check{f.name + " h2 403 " + m, h2(f.fr.secure), "https://app.example.com/admin", m, 403, page403},
				check{f.name + " h2 503 " + m, h2(f.fr.secureDown), "https://app.example.com/", m, 503, page503},
			)
		}
	}
	for _, c := range checks {
		req, _ := http.NewRequest(c.method, c.url, strings.NewReader("body"))
		if c.method == "GET" {
			req.Body, req.ContentLength = nil, 0
		}
		res, err := c.c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, res.StatusCode, c.status)
		}
		if strings.HasPrefix(c.url, "https") && res.ProtoMajor != 2 {
			t.Errorf("%s: %s, want HTTP/2", c.name, res.Proto)
		}
		if got := res.Header.Get("Strict-Transport-Security"); got != edgeHSTS {
			t.Errorf("%s: Strict-Transport-Security %q", c.name, got)
		}
		for _, k := range []string{"X-Seen-Xff", "X-Seen-Proto"} {
			if _, ok := res.Header[k]; ok {
				t.Errorf("%s: removed field %s present", c.name, k)
			}
		}
		if c.status == 200 && res.Header.Get("X-Node") != "a" {
			t.Errorf("%s: not the node's answer: %v", c.name, res.Header)
		}
		if c.body != "" && (string(b) != c.body || res.Header.Get("Content-Type") != "text/html; charset=utf-8") {
			t.Errorf("%s: %q as %q, want the error page", c.name, b, res.Header.Get("Content-Type"))
		}
	}
}

// A TLS client that offers only ALPN http/1.0 (curl --http1.0) is served
// over HTTP/1.x instead of failing the handshake.
func TestHTTP10ALPNServed(t *testing.T) {
	t.Parallel()
	cs, _ := startCore(t, "a")
	tc, err := tls.Dial("tcp", cs.httpsAddr, &tls.Config{NextProtos: []string{"http/1.0"},
		ServerName: "manage.example.com", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake offering only http/1.0: %v", err)
	}
	defer tc.Close()
	if p := tc.ConnectionState().NegotiatedProtocol; p != "http/1.0" {
		t.Errorf("negotiated %q", p)
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(tc, "GET /login HTTP/1.0\r\nHost: manage.example.com\r\n\r\n")
	b, _ := io.ReadAll(tc)
	if !strings.HasPrefix(string(b), "HTTP/1.0 200 ") && !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
		t.Errorf("answer: %.200q", b)
	}
	out, err := exec.Command("curl", "-sS", "--http1.0", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
		"--cacert", cs.p.dir+"/ca.pem", "--resolve", "manage.example.com:"+port(cs.httpsAddr)+":"+hostOf(cs.httpsAddr),
		"https://manage.example.com:"+port(cs.httpsAddr)+"/login").CombinedOutput()
	// curl names an HTTP/1.x answer's version "1", "1.0" or "1.1"
	if got := strings.TrimSpace(string(out)); err != nil || !strings.HasPrefix(got, "1") || !strings.HasSuffix(got, " 200") {
		t.Errorf("curl --http1.0: %v %q, want HTTP/1.x 200", err, out)
	}
}
