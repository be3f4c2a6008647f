package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// getOn sends one keep-alive GET on c and reads the answer.
func getOn(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: app.example\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// count is the number of connections on the fast path.
func (fs *fastConns) count() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.conns)
}

// fastClient starts a node and a Server in front of it, and connects to
// the Server's listener; the connection closes with the test.
func fastClient(t *testing.T) (*benchNode, *Server, net.Conn) {
	t.Helper()
	node := startBenchNode(t)
	s := benchServer(t, node.ln.Addr().String(), nil)
	c, err := net.Dial("tcp", s.benchSlot().ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return node, s, c
}

// TestFastPathShutdownEndsIdleConnections: an idle keep-alive connection
// on the fast path is closed at once by Shutdown, which then returns
// without waiting for the idle timeout or its own deadline.
func TestFastPathShutdownEndsIdleConnections(t *testing.T) {
	t.Parallel()
	_, s, c := fastClient(t)
	br := bufio.NewReader(c)
	if res := getOn(t, c, br, "/"); res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := s.benchSlot().front.Load().fast.count(); got != 1 {
		t.Fatalf("%d fast-path connections, want 1", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v (it waited for the idle connection)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return while a fast-path connection sat idle")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after shutdown: %v, want EOF", err)
	}
}

// TestFastPathHandsOffMidConnection: a connection that began on the fast
// path and then sends what the fast path does not take (here a target it
// would refuse) is served
// on by net/http, in order, with nothing lost.
func TestFastPathHandsOffMidConnection(t *testing.T) {
	t.Parallel()
	_, s, c := fastClient(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	// Three requests in one write: fast, hand-off (a denied target),
	// then a plain GET that net/http now serves on the same connection.
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n"+
		"GET /%2e%2e/x HTTP/1.1\r\nHost: app.example\r\n\r\n"+
		"GET /b HTTP/1.1\r\nHost: app.example\r\n\r\n")
	want := []int{http.StatusOK, http.StatusBadRequest}
	for i, code := range want {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != code {
			t.Fatalf("response %d: status %d, want %d", i, res.StatusCode, code)
		}
	}
	if got := s.benchSlot().front.Load().fast.count(); got != 0 {
		t.Fatalf("%d fast-path connections after the hand-off, want 0", got)
	}
}

// TestFastPathKeepAliveSeesReload: the next request on a kept-alive
// fast-path connection is judged by the configuration loaded meanwhile.
func TestFastPathKeepAliveSeesReload(t *testing.T) {
	t.Parallel()
	node, s, c := fastClient(t)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	if res := getOn(t, c, br, "/admin/x"); res.StatusCode != http.StatusOK {
		t.Fatalf("before the reload: status %d", res.StatusCode)
	}
	src := fmt.Sprintf(`
[[listener]]
name = "bench"
bind = "127.0.0.1:1"
mode = "http"
pool = "nodes"

[[listener.rule]]
paths = ["/admin"]
allow = ["10.0.0.0/8"]

[pool.nodes]
servers = ["%s"]
health = { enabled = false }
`, node.ln.Addr().String())
	cfg := parseTestConfig(t, "reload.toml", src)
	cfg.Listeners[0].Bind = s.benchSlot().bind
	cfg.Admin.Bind = ""
	if _, err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if res := getOn(t, c, br, "/admin/x"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("after a reload that denies /admin: status %d, want 403", res.StatusCode)
	}
}
