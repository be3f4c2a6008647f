package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStalledHeadGets408: a request head that misses read_header_timeout
// is answered 408 with Connection: close, then the connection closes; a
// connection that sent no byte of a request closes silently. On the fast
// path, on a head the fast path handed to net/http (too large for its
// buffer), over TLS, and with -no-fast-path.
func TestStalledHeadGets408(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{{"fast-path", nil}, {"no-fast-path", []string{"-no-fast-path"}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := nodes(t, "a")
			dir := t.TempDir()
			ca := testCerts(t, dir, "login.example.com")
			httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
			startPorticoArgs(t, dir, fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
read_header_timeout = "300ms"
idle_timeout = "300ms"
[[listener]]
name = "tls"
bind = %q
mode = "https"
pool = "nodes"
read_header_timeout = "300ms"
idle_timeout = "300ms"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, httpAddr, httpsAddr, serverList(ns)), tc.args...)
			waitFirstRound(t, admin)
			dialPlain := func() net.Conn {
				c, err := net.Dial("tcp", httpAddr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			dialTLS := func() net.Conn {
				c, err := tls.Dial("tcp", httpsAddr, &tls.Config{RootCAs: ca.Pool(), ServerName: "login.example.com",
					NextProtos: []string{"http/1.1"}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			partial := "GET /login HTTP/1.1\r\nHost: app\r\nX-Slow: "
			large := partial + strings.Repeat("a", 6000) // past the fast path's 4 KiB read buffer
			for _, st := range []struct {
				name string
				dial func() net.Conn
				head string
			}{
				{"partial head", dialPlain, partial},
				{"large partial head", dialPlain, large},
				{"partial head over TLS", dialTLS, partial},
			} {
				c := st.dial()
				io.WriteString(c, st.head)
				expect408(t, c, st.name)
			}

			// Silent: a first request never started, and a keep-alive
			// connection idle after an answer.
			expectClosed(t, dialPlain(), "no byte sent (read_header_timeout)")
			idle := dialPlain()
			io.WriteString(idle, "GET /login HTTP/1.1\r\nHost: app\r\n\r\n")
			br := bufio.NewReader(idle)
			res, err := http.ReadResponse(br, nil)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("keep-alive request: %v %v", res, err)
			}
			io.Copy(io.Discard, res.Body)
			idle.SetReadDeadline(time.Now().Add(10 * time.Second))
			if b, err := br.ReadByte(); err == nil {
				t.Errorf("idle connection: byte %q before the close, want a silent close", b)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Error("idle connection still open after 10s (idle_timeout 300ms)")
			}
		})
	}
}

// expect408 reads a 408 with Connection: close from c, then the close.
func expect408(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Errorf("%s: no answer before the close: %v", what, err)
		return
	}
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Errorf("%s: %s (close %v), want 408 with Connection: close", what, res.Status, res.Close)
	}
	if b, err := br.ReadByte(); err == nil {
		t.Errorf("%s: byte %q after the 408", what, b)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s: still open 10s after the 408", what)
	}
}
