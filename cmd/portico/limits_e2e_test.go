package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// expectClosed checks that portico closes c without sending anything.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("%s: read %d bytes, err %v; want the connection closed", what, n, err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: still open after 10s", what)
	}
}

// TestConnectionCapAndHandshakeTimeout: max_conns closes connections over
// the cap (and frees a place when one ends); a client that never completes
// its TLS handshake is closed after tls_handshake_timeout. Both are counted.
func TestConnectionCapAndHandshakeTimeout(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	dir := t.TempDir()
	testCerts(t, dir, "login.example.com")
	httpAddr, httpsAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	startPortico(t, dir, fmt.Sprintf(`
[admin]
bind = %q
[[listener]]
name = "capped"
bind = %q
mode = "http"
pool = "nodes"
max_conns = 2
[[listener]]
name = "tls"
bind = %q
mode = "https"
pool = "nodes"
tls_handshake_timeout = "300ms"
certificates = [{ cert = "tls/login.example.com.crt", key = "tls/login.example.com.key" }]
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, httpAddr, httpsAddr, serverList(ns)))

	// Two keep-alive connections held open, each proven admitted by a
	// response.
	var held []net.Conn
	for i := range 2 {
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /login HTTP/1.1\r\nHost: app\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("connection %d: %v %v", i, res, err)
		}
		res.Body.Close()
		held = append(held, c)
	}
	over, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	expectClosed(t, over, "third connection over max_conns = 2")
	held[0].Close()
	eventually(t, 10*time.Second, "a place freed by a closed connection", func() bool {
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /login HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		return strings.HasPrefix(string(b), "HTTP/1.1 200")
	})

	// A TLS client that connects and says nothing.
	silent, err := net.Dial("tcp", httpsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	expectClosed(t, silent, "silent TLS client")

	// The handshake's end closes the connection before the failure is
	// counted: the client may see the close first.
	for _, want := range []string{
		`portico_denied_total{listener="capped",reason="conn-limit"}`,
		`portico_tls_handshake_failures_total{listener="tls"} 1`,
	} {
		eventually(t, 10*time.Second, "metrics with "+want, func() bool {
			return strings.Contains(scrape(t, admin), want)
		})
	}
}

// expectClosedSoon reads whatever portico still sends (a 408, say) and
// checks that it then closes c.
func expectClosedSoon(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: still open after 10s", what)
	}
}

// TestTimeoutsCloseSilentClients: read_header_timeout ends a slowloris
// request, idle_timeout a silent keep-alive connection, and
// tunnel_idle_timeout a silent websocket (http listener) or tcp connection,
// while a tunnel with traffic outlives that timeout.
func TestTimeoutsCloseSilentClients(t *testing.T) {
	t.Parallel()
	ns := nodes(t, "a")
	httpAddr, tcpAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	p := startPortico(t, t.TempDir(), fmt.Sprintf(`
[admin]
bind = %q
[log]
access = true
[[listener]]
name = "web"
bind = %q
mode = "http"
pool = "nodes"
read_header_timeout = "500ms"
idle_timeout = "500ms"
tunnel_idle_timeout = "2s"
[[listener]]
name = "tcp"
bind = %q
mode = "tcp"
pool = "nodes"
tunnel_idle_timeout = "2s"
[pool.nodes]
servers = %s
health = { interval = "1h" }
`, admin, httpAddr, tcpAddr, serverList(ns)))

	slow, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /login HTTP/1.1\r\nHost: app\r\nX-Slow: ")
	expectClosedSoon(t, slow, "request headers never finished (read_header_timeout 500ms)")

	idle, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /login HTTP/1.1\r\nHost: app\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v %v", res, err)
	}
	io.Copy(io.Discard, res.Body)
	expectClosedSoon(t, idle, "silent keep-alive connection (idle_timeout 500ms)")

	for _, tc := range []struct{ name, addr, log string }{
		{"websocket", httpAddr, `"closed":"idle"`},
		{"tcp", tcpAddr, `"outcome":"idle"`},
	} {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+tc.addr+"/ws", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		defer ws.Close()
		// Traffic every 200ms for 3s: longer than the 2s idle limit.
		tick := time.NewTicker(200 * time.Millisecond)
		for i := range 15 {
			<-tick.C
			msg := fmt.Sprintf("%s %d", tc.name, i)
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatalf("%s with traffic closed at message %d: %v", tc.name, i, err)
			}
			if _, got, err := ws.ReadMessage(); err != nil || string(got) != msg {
				t.Fatalf("%s with traffic: echo %d: %q %v", tc.name, i, got, err)
			}
		}
		tick.Stop()
		// Then silence.
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = ws.ReadMessage()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("silent %s still open after 10s (tunnel_idle_timeout 2s)", tc.name)
		}
		p.waitLog(tc.log, 10*time.Second)
	}
}
